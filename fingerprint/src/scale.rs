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

mod window;

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
        if let Some(e) = exponent(dtype, bits) {
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

/// `floor(log2 |x|)` of the element with raw bits `bits`, `None` for zero, NaN and infinities:
/// [`dtype::top_exponent`] of [`dtype::decode`], read straight from the bit fields (this runs
/// once per element of every sketched tensor).
#[inline]
pub fn exponent(dtype: Dtype, bits: u32) -> Option<i32> {
    // (exponent bits, mantissa bits, bias) of the float types
    let (ebits, mbits, bias) = match dtype {
        Dtype::F32 => (8u32, 23u32, 127i32),
        Dtype::BF16 => (8, 7, 127),
        Dtype::F16 => (5, 10, 15),
        Dtype::F8E4M3 => (4, 3, 7),
        Dtype::F8E5M2 => (5, 2, 15),
        Dtype::I8 | Dtype::U8 => {
            let mag = if dtype == Dtype::I8 {
                u32::from((bits as u8 as i8).unsigned_abs())
            } else {
                bits & 0xff
            };
            return (mag != 0).then(|| 31 - mag.leading_zeros() as i32);
        }
        _ => return dtype::top_exponent(dtype::decode(dtype, bits)),
    };
    let e = (bits >> mbits) & ((1 << ebits) - 1);
    let m = bits & ((1 << mbits) - 1);
    let e_max = (1 << ebits) - 1;
    if dtype == Dtype::F8E4M3 {
        if e == e_max && m == (1 << mbits) - 1 {
            return None; // the one NaN of E4M3 ("fn": no infinities)
        }
    } else if e == e_max {
        return None;
    }
    if e == 0 {
        // subnormal: m × 2^(1 − bias − mbits)
        (m != 0).then(|| 1 - bias - mbits as i32 + 31 - m.leading_zeros() as i32)
    } else {
        Some(e as i32 - bias)
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

/// The exponent field of a bf16 value, with ±0 moved to field 255 (which, like ±inf and NaN,
/// is not counted): field 0 then holds only subnormals, which need their mantissa.
#[inline(always)]
fn bf16_field(b: u16) -> usize {
    if b & 0x7fff == 0 {
        255
    } else {
        usize::from((b >> 7) & 0xff)
    }
}

/// Adds bf16 exponent-field counts to a histogram; `subnormals` yields the raw values of the
/// unit whose field is 0, called only when there are some.
fn place_bf16_fields<I: Iterator<Item = u16>>(
    h: &mut Histogram,
    fields: &[u32; 256],
    subnormals: impl FnOnce() -> I,
) {
    for (e, &n) in fields.iter().enumerate().take(255).skip(1) {
        if n > 0 {
            h.0[(e as i32 - 127 + OFFSET) as usize] += n;
        }
    }
    if fields[0] > 0 {
        for b in subnormals() {
            if bf16_field(b) == 0 {
                h.add(Dtype::BF16, u32::from(b));
            }
        }
    }
}

/// Histogram bin of every value of an 8- or 16-bit type (`u16::MAX`: not counted).
fn bin_table(dtype: Dtype) -> Vec<u16> {
    (0..1u32 << (8 * dtype.size()))
        .map(|bits| exponent(dtype, bits).map_or(u16::MAX, |e| (e + OFFSET) as u16))
        .collect()
}

/// Counts the elements of `bytes` (whole elements of `dtype`) into `h`.
fn count(h: &mut Histogram, dtype: Dtype, bytes: &[u8], table: &[u16]) {
    match dtype.size() {
        4 => {
            for c in bytes.chunks_exact(4) {
                h.add(dtype, u32::from_le_bytes([c[0], c[1], c[2], c[3]]));
            }
        }
        2 if dtype == Dtype::BF16 => {
            // Count exponent fields, four histograms interleaved (independent increments).
            let mut fields = [[0u32; 256]; 4];
            let mut pieces = bytes.chunks_exact(8);
            for c in &mut pieces {
                for k in 0..4 {
                    fields[k][bf16_field(u16::from_le_bytes([c[2 * k], c[2 * k + 1]]))] += 1;
                }
            }
            for c in pieces.remainder().chunks_exact(2) {
                fields[0][bf16_field(u16::from_le_bytes([c[0], c[1]]))] += 1;
            }
            let total: [u32; 256] = std::array::from_fn(|e| fields.iter().map(|f| f[e]).sum());
            place_bf16_fields(h, &total, || {
                bytes
                    .chunks_exact(2)
                    .map(|c| u16::from_le_bytes([c[0], c[1]]))
            });
        }
        2 => {
            for c in bytes.chunks_exact(2) {
                let bin = table[usize::from(u16::from_le_bytes([c[0], c[1]]))];
                if bin != u16::MAX {
                    h.0[usize::from(bin)] += 1;
                }
            }
        }
        _ => {
            for &b in bytes {
                let bin = table[usize::from(b)];
                if bin != u16::MAX {
                    h.0[usize::from(bin)] += 1;
                }
            }
        }
    }
}

/// Counts element `j` of `row` into `hs[j]`.
fn count_into(hs: &mut [Histogram], dtype: Dtype, row: &[u8], table: &[u16]) {
    let put = |h: &mut Histogram, bin: u16| {
        if bin != u16::MAX {
            h.0[usize::from(bin)] += 1;
        }
    };
    match dtype.size() {
        4 => {
            for (h, c) in hs.iter_mut().zip(row.chunks_exact(4)) {
                h.add(dtype, u32::from_le_bytes([c[0], c[1], c[2], c[3]]));
            }
        }
        2 => {
            for (h, c) in hs.iter_mut().zip(row.chunks_exact(2)) {
                put(h, table[usize::from(u16::from_le_bytes([c[0], c[1]]))]);
            }
        }
        _ => {
            for (h, &b) in hs.iter_mut().zip(row) {
                put(h, table[usize::from(b)]);
            }
        }
    }
}

/// The scale of every unit of a `rows × cols` row-major matrix of `dtype`, units along `axis`.
pub fn unit_tops(dtype: Dtype, bytes: &[u8], rows: usize, cols: usize, axis: Axis) -> Vec<i32> {
    use rayon::prelude::*;
    let size = dtype.size();
    let table = if size <= 2 {
        bin_table(dtype)
    } else {
        Vec::new()
    };
    let half = window::Half::of(dtype);
    match axis {
        Axis::Rows => (0..rows)
            .into_par_iter()
            .map(|i| {
                let unit = &bytes[i * cols * size..(i + 1) * cols * size];
                half.and_then(|h| window::row_top(h, unit))
                    .unwrap_or_else(|| {
                        let mut h = Histogram::default();
                        count(&mut h, dtype, unit, &table);
                        h.top()
                    })
            })
            .collect(),
        Axis::Cols => (0..cols.div_ceil(COL_BLOCK))
            .into_par_iter()
            .flat_map_iter(|b| {
                let (c0, c1) = (b * COL_BLOCK, ((b + 1) * COL_BLOCK).min(cols));
                if let Some(h) = half {
                    let fast = window::col_tops(h, bytes, rows, cols, c0, c1 - c0);
                    let tops: Vec<i32> = fast
                        .into_iter()
                        .enumerate()
                        .map(|(k, top)| {
                            top.unwrap_or_else(|| {
                                // the full histogram of this one column
                                let mut h = Histogram::default();
                                for i in 0..rows {
                                    h.add(dtype, dtype.bits_at(bytes, i * cols + c0 + k));
                                }
                                h.top()
                            })
                        })
                        .collect();
                    return tops.into_iter();
                }
                let mut hs = vec![Histogram::default(); c1 - c0];
                for i in 0..rows {
                    let row = &bytes[(i * cols + c0) * size..(i * cols + c1) * size];
                    count_into(&mut hs, dtype, row, &table);
                }
                hs.into_iter()
                    .map(|h| h.top())
                    .collect::<Vec<_>>()
                    .into_iter()
            })
            .collect(),
    }
}

/// The scale of a whole tensor taken as one unit (the vocabulary tables of [`crate::anchor`]).
pub fn tensor_top(dtype: Dtype, bytes: &[u8]) -> i32 {
    use rayon::prelude::*;
    let size = dtype.size();
    let table = if size <= 2 {
        bin_table(dtype)
    } else {
        Vec::new()
    };
    bytes
        .par_chunks((1 << 16) * size)
        .map(|chunk| {
            let mut h = Histogram::default();
            count(&mut h, dtype, chunk, &table);
            h
        })
        .reduce(Histogram::default, |mut a, b| {
            a.0.iter_mut().zip(&b.0).for_each(|(x, y)| *x += y);
            a
        })
        .top()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f32s(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn exponents_from_bit_fields_equal_the_decoded_values() {
        for dtype in Dtype::ALL {
            let patterns: Vec<u32> = if dtype.size() <= 2 {
                (0..1u32 << (8 * dtype.size())).collect()
            } else {
                (0..1_000_000u32)
                    .map(crate::probe::probe_word)
                    .chain([0, 1, 0x7f80_0000, 0x7fc0_0000, 0x8000_0001, 0x0080_0000])
                    .collect()
            };
            for bits in patterns {
                assert_eq!(
                    exponent(dtype, bits),
                    dtype::top_exponent(dtype::decode(dtype, bits)),
                    "{dtype:?} {bits:#x}"
                );
            }
        }
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

    /// Every unit's scale by the definition: a full histogram of its elements.
    fn reference_tops(
        dtype: Dtype,
        bytes: &[u8],
        rows: usize,
        cols: usize,
        axis: Axis,
    ) -> Vec<i32> {
        let (units, len) = match axis {
            Axis::Rows => (rows, cols),
            Axis::Cols => (cols, rows),
        };
        (0..units)
            .map(|u| {
                let mut h = Histogram::default();
                for t in 0..len {
                    let at = match axis {
                        Axis::Rows => u * cols + t,
                        Axis::Cols => t * cols + u,
                    };
                    h.add(dtype, dtype.bits_at(bytes, at));
                }
                h.top()
            })
            .collect()
    }

    #[test]
    fn the_windowed_scales_of_16_bit_floats_equal_the_full_histograms() {
        // Units of every kind the window meets: ordinary ones, an outlier far above the rest
        // (the quantile below the window), many zeros, a subnormal, infinities and NaNs,
        // nothing counted at all, and elements spread over many binades.
        let mut rng = 0x1234_5678_9abc_def0u64;
        let mut next = move || {
            rng = crate::probe::hash64(rng);
            rng
        };
        let (rows, cols) = (67usize, 300usize);
        for dtype in [Dtype::BF16, Dtype::F16] {
            let mut values = vec![0f32; rows * cols];
            for (k, v) in values.iter_mut().enumerate() {
                let (i, j) = (k / cols, k % cols);
                let r = next();
                let gauss = ((r >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.2;
                *v = match (i % 7, j % 9) {
                    // outliers, 1 in 37 of every row and column: 15 binades above the rest
                    _ if k % 37 == 0 => 2f32.powi(10),
                    (_, 1) if r % 3 != 0 => 0.0, // mostly zero columns
                    (_, 2) => gauss * 2f32.powi((r % 30) as i32 - 15), // many binades
                    (3, 3) => f32::INFINITY,
                    (4, 3) => f32::NAN,
                    (_, 4) => 0.0, // nothing counted
                    _ => gauss,
                };
            }
            // subnormals: one in a row and a column, and a row and a column of them
            let tiny = if dtype == Dtype::BF16 { 1e-39 } else { 1e-6 };
            values[5 * cols + 7] = tiny;
            for k in 0..cols {
                values[6 * cols + k] = tiny * (k % 5) as f32;
            }
            for i in 0..rows {
                values[i * cols + 8] = if i % 4 == 0 { 0.1 } else { tiny };
            }
            let bytes: Vec<u8> = values
                .iter()
                .flat_map(|&v| {
                    if dtype == Dtype::BF16 {
                        half::bf16::from_f32(v).to_le_bytes()
                    } else {
                        half::f16::from_f32(v).to_le_bytes()
                    }
                })
                .collect();
            for axis in [Axis::Rows, Axis::Cols] {
                assert_eq!(
                    unit_tops(dtype, &bytes, rows, cols, axis),
                    reference_tops(dtype, &bytes, rows, cols, axis),
                    "{dtype:?} {axis:?}"
                );
            }
        }
    }
}
