//! The fixed-point scale of a unit (one neuron's weights: a row or a column of a matrix).
//!
//! v1 scaled a whole tensor by its largest element, so one element multiplied by 2^12 (an exact,
//! free change in any float format) rounded every other element of the tensor to zero. v2 takes
//! the scale of each unit from a quantile of its own elements' binary exponents: `top` is one
//! more than the exponent at or below which 15/16 of the unit's finite non-zero elements lie.
//! Elements at or above `2^(top+1)` saturate ([`crate::dtype::fixed_point`]), so an outlier
//! costs only its own precision; and multiplying a unit by any power of two shifts `top` by
//! exactly that power, leaving its fixed-point integers, and so its signature, unchanged. The
//! histogram is order-independent integer counting, the same on every backend.

use crate::dtype::{self, Dtype};

/// Exponents of finite non-zero values of every supported type lie in `[-149, 127]` (f32
/// subnormals to f32's largest); bin `e + OFFSET`.
const OFFSET: i32 = 149;
/// Histogram bins.
pub const BINS: usize = 277;

/// Counts of the binary exponents (`floor(log2 |x|)`) of a unit's finite non-zero elements.
#[derive(Debug, Clone)]
pub struct Histogram(pub [u32; BINS]);

impl Default for Histogram {
    fn default() -> Self {
        Histogram([0; BINS])
    }
}

impl Histogram {
    /// Counts one element given as raw bits of `dtype`.
    #[inline]
    pub fn add(&mut self, dtype: Dtype, bits: u32) {
        if let Some(e) = dtype::top_exponent(dtype::decode(dtype, bits)) {
            self.0[(e + OFFSET) as usize] += 1;
        }
    }

    /// The unit's scale: one more than the smallest exponent `e` such that at least
    /// `n − floor(n/16)` of the `n` counted elements have an exponent `<= e`; 0 when `n = 0`.
    pub fn top(&self) -> i32 {
        let n: u64 = self.0.iter().map(|&c| u64::from(c)).sum();
        if n == 0 {
            return 0;
        }
        let want = n - n / 16;
        let mut seen = 0u64;
        for (bin, &c) in self.0.iter().enumerate() {
            seen += u64::from(c);
            if seen >= want {
                return bin as i32 - OFFSET + 1;
            }
        }
        unreachable!("the counts add up to n")
    }
}

/// Which units of a matrix: its rows (each row a unit, its responses run over the columns) or
/// its columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Axis {
    Rows,
    Cols,
}

impl Axis {
    pub fn as_str(self) -> &'static str {
        match self {
            Axis::Rows => "rows",
            Axis::Cols => "columns",
        }
    }
}

/// Columns per block when histograms are taken column-wise (bounds memory to about 1 KiB per
/// column of the block).
const COL_BLOCK: usize = 256;

/// The scale of every unit of a `rows × cols` row-major matrix of `dtype`, units along `axis`.
pub fn unit_tops(dtype: Dtype, bytes: &[u8], rows: usize, cols: usize, axis: Axis) -> Vec<i32> {
    use rayon::prelude::*;
    match axis {
        Axis::Rows => (0..rows)
            .into_par_iter()
            .map(|i| {
                let mut h = Histogram::default();
                for j in 0..cols {
                    h.add(dtype, dtype.bits_at(bytes, i * cols + j));
                }
                h.top()
            })
            .collect(),
        Axis::Cols => (0..cols.div_ceil(COL_BLOCK))
            .into_par_iter()
            .flat_map_iter(|b| {
                let (c0, c1) = (b * COL_BLOCK, ((b + 1) * COL_BLOCK).min(cols));
                let mut hs = vec![Histogram::default(); c1 - c0];
                for i in 0..rows {
                    for (j, h) in (c0..c1).zip(hs.iter_mut()) {
                        h.add(dtype, dtype.bits_at(bytes, i * cols + j));
                    }
                }
                hs.into_iter().map(|h| h.top())
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f32s(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn one_outlier_does_not_set_the_scale() {
        // 31 values near 1 and one at 2^12: the scale follows the 31.
        let mut v = vec![1.5f32; 31];
        v.push(4096.0);
        let tops = unit_tops(Dtype::F32, &f32s(&v), 1, 32, Axis::Rows);
        assert_eq!(tops, vec![1]);
        assert_eq!(
            dtype::fixed_point(dtype::decode(Dtype::F32, 4096f32.to_bits()), 1, 11),
            2048
        );
    }

    #[test]
    fn powers_of_two_shift_the_scale_exactly() {
        let v: Vec<f32> = (0..40).map(|k| (k as f32 - 17.5) * 0.013).collect();
        let scaled: Vec<f32> = v.iter().map(|x| x * 4096.0).collect();
        let (a, b) = (f32s(&v), f32s(&scaled));
        let ta = unit_tops(Dtype::F32, &a, 1, 40, Axis::Rows)[0];
        let tb = unit_tops(Dtype::F32, &b, 1, 40, Axis::Rows)[0];
        assert_eq!(tb, ta + 12);
        for k in 0..40 {
            let q = |bytes: &[u8], top| {
                dtype::fixed_point(
                    dtype::decode(Dtype::F32, Dtype::F32.bits_at(bytes, k)),
                    top,
                    11,
                )
            };
            assert_eq!(q(&a, ta), q(&b, tb));
        }
    }

    #[test]
    fn column_tops_equal_row_tops_of_the_transpose() {
        let (m, n) = (7usize, 300usize);
        let v: Vec<f32> = (0..m * n)
            .map(|k| ((k * 7919 % 1013) as f32 - 506.0) * (1 << (k % 5)) as f32)
            .collect();
        let t: Vec<f32> = (0..n)
            .flat_map(|j| (0..m).map(move |i| (i, j)))
            .map(|(i, j)| v[i * n + j])
            .collect();
        assert_eq!(
            unit_tops(Dtype::F32, &f32s(&v), m, n, Axis::Cols),
            unit_tops(Dtype::F32, &f32s(&t), n, m, Axis::Rows)
        );
    }
}
