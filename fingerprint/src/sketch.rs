//! The behavioural sketch of one tensor: exact integer responses to the probes (computed by a
//! backend), reduced here on the CPU to per-neuron signatures and a tensor-level sketch.

use crate::dtype::{self, Dtype};
use crate::probe::{probe_sums, probe_word, PROBES};

/// Values per neuron in a [`Responses`] table: the 32 probe responses, then the plain sum.
pub const STRIDE: usize = PROBES + 1;

/// Largest fixed-point magnitude bits.
pub const MAX_BITS: u32 = 11;

/// Matrices with a side longer than this get no sketch (only their content hash).
pub const MAX_SIDE: u64 = 1 << 24;

/// Matrices with a side shorter than this get no sketch: their signatures would carry little
/// information per neuron and cost more memory than the weights (responses take 132 bytes per
/// row and per column).
pub const MIN_SIDE: u64 = 16;

/// A tensor viewed as a matrix: `rows = shape[0]`, `cols = product(shape[1..])`.
#[derive(Debug, Clone, Copy)]
pub struct MatrixJob<'a> {
    pub dtype: Dtype,
    /// Little-endian element bytes, row-major, `rows × cols × dtype.size()` long.
    pub bytes: &'a [u8],
    pub rows: u32,
    pub cols: u32,
    /// `floor(log2)` of the largest finite magnitude (0 when there is none).
    pub top: i32,
    /// Fixed-point magnitude bits.
    pub bits: u32,
}

impl MatrixJob<'_> {
    /// The fixed-point integer of element (i, j), by the integer-only rule of the format.
    #[inline]
    pub fn q(&self, i: u32, j: u32) -> i32 {
        let index = i as usize * self.cols as usize + j as usize;
        dtype::fixed_point(
            dtype::decode(self.dtype, self.dtype.bits_at(self.bytes, index)),
            self.top,
            self.bits,
        )
    }
}

/// Fixed-point bits for a matrix whose longer side is `len`: every sum of `len` integers of
/// magnitude `<= 2^bits` stays below 2^31, so integer sums are exact in any order.
pub fn bits_for(len: u64) -> u32 {
    let ceil_log2 = 64 - (len.max(1) - 1).leading_zeros();
    MAX_BITS.min(30u32.saturating_sub(ceil_log2))
}

/// What a backend computes for a matrix: for every row `i`, `rows[i*STRIDE + p] = Σ_j q(i,j) ·
/// sign_p(j)` and `rows[i*STRIDE + 32] = Σ_j q(i,j)`; for every column `j` the same over `i`
/// with `sign_p(i)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Responses {
    pub rows: Vec<i32>,
    pub cols: Vec<i32>,
}

/// The definition of [`Responses`], element by element with the integer-only rule. Slow; the
/// reference every backend is checked against.
pub fn responses_reference(job: &MatrixJob<'_>) -> Responses {
    let (m, n) = (job.rows as usize, job.cols as usize);
    let mut rows = vec![0i32; m * STRIDE];
    let mut cols = vec![0i32; n * STRIDE];
    for i in 0..job.rows {
        let wi = probe_word(i);
        for j in 0..job.cols {
            let q = job.q(i, j);
            let wj = probe_word(j);
            let (r, c) = (
                &mut rows[i as usize * STRIDE..],
                &mut cols[j as usize * STRIDE..],
            );
            for p in 0..PROBES {
                r[p] += if (wj >> p) & 1 == 1 { q } else { -q };
                c[p] += if (wi >> p) & 1 == 1 { q } else { -q };
            }
            r[PROBES] += q;
            c[PROBES] += q;
        }
    }
    Responses { rows, cols }
}

/// The sketch of one matrix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatrixSketch {
    pub rows: u32,
    pub cols: u32,
    pub top: i32,
    pub bits: u32,
    /// Per row: bit p set when the row, centred on its mean, has a positive response to probe p.
    pub row_signatures: Vec<u32>,
    /// Per column, the same over the column.
    pub col_signatures: Vec<u32>,
    /// Tensor-level: bit p set when `Σ_i Σ_j sign_p(i) q(i,j) sign_p(j) > 0` (the same for the
    /// matrix stored transposed).
    pub sketch: u32,
}

/// Reduces a backend's responses to signatures.
pub fn reduce(job: &MatrixJob<'_>, responses: &Responses) -> MatrixSketch {
    let row_signatures = centred_signatures(&responses.rows, job.cols, true);
    let col_signatures = centred_signatures(&responses.cols, job.rows, true);
    let mut global = [0i128; PROBES];
    for i in 0..job.rows as usize {
        let wi = probe_word(i as u32);
        for (p, g) in global.iter_mut().enumerate() {
            let r = i128::from(responses.rows[i * STRIDE + p]);
            *g += if (wi >> p) & 1 == 1 { r } else { -r };
        }
    }
    let sketch = global
        .iter()
        .enumerate()
        .fold(0u32, |s, (p, &g)| s | (u32::from(g > 0) << p));
    MatrixSketch {
        rows: job.rows,
        cols: job.cols,
        top: job.top,
        bits: job.bits,
        row_signatures,
        col_signatures,
        sketch,
    }
}

/// Signature bits of the neurons of one side, whose responses run over `len` indices.
///
/// First each neuron is centred on its own mean: `c[k][p] = len · R[k][p] − S[k] · P[p]`
/// (exact in i64: |len·R| < 2^24 · 2^31). With `across` the result is centred again on the
/// mean over the side's `K` neurons: `d[k][p] = K · c[k][p] − Σ_k' c[k'][p]` (exact in i128), which
/// removes a direction shared by every neuron (the mean vector of an embedding matrix, say)
/// that would otherwise make every signature follow it in unrelated models alike. Bit p of
/// neuron k is `d[k][p] > 0` (`c[k][p] > 0` without `across`).
fn centred_signatures(table: &[i32], len: u32, across: bool) -> Vec<u32> {
    let sums = probe_sums(len);
    let len = i64::from(len);
    let centred: Vec<[i64; PROBES]> = table
        .chunks_exact(STRIDE)
        .map(|neuron| {
            let total = i64::from(neuron[PROBES]);
            std::array::from_fn(|p| len * i64::from(neuron[p]) - total * sums[p])
        })
        .collect();
    let count = centred.len() as i128;
    let mut mean = [0i128; PROBES];
    if across {
        for c in &centred {
            mean.iter_mut()
                .zip(c)
                .for_each(|(m, &v)| *m += i128::from(v));
        }
    }
    centred
        .iter()
        .map(|c| {
            (0..PROBES).fold(0u32, |sig, p| {
                let d = if across {
                    count * i128::from(c[p]) - mean[p]
                } else {
                    i128::from(c[p])
                };
                sig | (u32::from(d > 0) << p)
            })
        })
        .collect()
}

/// Signature of a 1-D tensor: its 32 centred probe responses' signs.
pub fn vector_signature(dtype: Dtype, bytes: &[u8], len: u32) -> (i32, u32, u32) {
    let top = top_exponent(dtype, bytes, len as usize);
    let bits = bits_for(u64::from(len));
    let job = MatrixJob {
        dtype,
        bytes,
        rows: 1,
        cols: len,
        top,
        bits,
    };
    let mut table = vec![0i32; STRIDE];
    for j in 0..len {
        let q = job.q(0, j);
        let w = probe_word(j);
        for (p, r) in table.iter_mut().take(PROBES).enumerate() {
            *r += if (w >> p) & 1 == 1 { q } else { -q };
        }
        table[PROBES] += q;
    }
    (top, bits, centred_signatures(&table, len, false)[0])
}

/// `floor(log2)` of the largest finite magnitude among the first `len` elements, 0 if none.
pub fn top_exponent(dtype: Dtype, bytes: &[u8], len: usize) -> i32 {
    (0..len)
        .filter_map(|k| dtype::top_exponent(dtype::decode(dtype, dtype.bits_at(bytes, k))))
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_keep_sums_below_two_to_the_31() {
        assert_eq!(bits_for(1), 11);
        assert_eq!(bits_for(384), 11);
        assert_eq!(bits_for(1 << 19), 11);
        assert_eq!(bits_for((1 << 19) + 1), 10);
        assert_eq!(bits_for(1 << 24), 6);
        for len in [1u64, 7, 1000, 1 << 19, 3 << 20, 1 << 24] {
            assert!(len << bits_for(len) <= 1 << 30, "{len}");
        }
    }

    #[test]
    fn transposed_matrix_swaps_rows_and_columns() {
        let (m, n) = (5u32, 7u32);
        let a: Vec<f32> = (0..m * n)
            .map(|k| ((k * 37 % 11) as f32 - 5.0) * 0.1)
            .collect();
        let at: Vec<f32> = (0..n)
            .flat_map(|j| (0..m).map(move |i| (i, j)))
            .map(|(i, j)| a[(i * n + j) as usize])
            .collect();
        let bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let (ba, bt) = (bytes(&a), bytes(&at));
        let top = top_exponent(Dtype::F32, &ba, (m * n) as usize);
        let bits = bits_for(u64::from(m.max(n)));
        let ja = MatrixJob {
            dtype: Dtype::F32,
            bytes: &ba,
            rows: m,
            cols: n,
            top,
            bits,
        };
        let jt = MatrixJob {
            dtype: Dtype::F32,
            bytes: &bt,
            rows: n,
            cols: m,
            top,
            bits,
        };
        let (sa, st) = (
            reduce(&ja, &responses_reference(&ja)),
            reduce(&jt, &responses_reference(&jt)),
        );
        assert_eq!(sa.row_signatures, st.col_signatures);
        assert_eq!(sa.col_signatures, st.row_signatures);
        assert_eq!(sa.sketch, st.sketch);
    }
}
