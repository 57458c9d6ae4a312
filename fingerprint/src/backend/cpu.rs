//! The CPU backend: the same integers as [`crate::sketch::responses_reference`], computed fast.
//!
//! Elements are converted through `f32`/`f64` instead of the integer-only rule: every supported
//! dtype converts to `f32` exactly, scaling by a power of two is exact, and `|x|·2^k + 0.5` is
//! exact in `f64` (at most 24 significant bits below 2^11), so `floor` gives the same rounding
//! (half away from zero) as the format's integer rule. The tests check this on every bit
//! pattern of the 8- and 16-bit types and on random `f32`s.

use rayon::prelude::*;

use crate::dtype::{self, Dtype};
use crate::probe::{probe_word, PROBES};
use crate::sketch::{MatrixJob, Responses, STRIDE};

/// Converts the elements of one row to `f32`.
fn to_f32(dtype: Dtype, bytes: &[u8], out: &mut [f32], f8: &[f32; 256]) {
    match dtype {
        Dtype::F32 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
        }
        Dtype::F16 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = half::f16::from_le_bytes([c[0], c[1]]).to_f32();
            }
        }
        Dtype::BF16 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = half::bf16::from_le_bytes([c[0], c[1]]).to_f32();
            }
        }
        Dtype::I8 => out
            .iter_mut()
            .zip(bytes)
            .for_each(|(o, &b)| *o = f32::from(b as i8)),
        Dtype::U8 => out
            .iter_mut()
            .zip(bytes)
            .for_each(|(o, &b)| *o = f32::from(b)),
        Dtype::F8E4M3 | Dtype::F8E5M2 => out
            .iter_mut()
            .zip(bytes)
            .for_each(|(o, &b)| *o = f8[usize::from(b)]),
        other => unreachable!("{other:?} is hashed only, never sketched"),
    }
}

/// The 256 values of an 8-bit float type (exact in f32); zeros for other types.
fn f8_table(dtype: Dtype) -> [f32; 256] {
    let mut table = [0f32; 256];
    if matches!(dtype, Dtype::F8E4M3 | Dtype::F8E5M2) {
        for (b, v) in table.iter_mut().enumerate() {
            *v = match dtype::decode(dtype, b as u32) {
                dtype::Value::Finite { negative, mag, exp } => {
                    let x = mag as f32 * 2f32.powi(exp);
                    if negative {
                        -x
                    } else {
                        x
                    }
                }
                dtype::Value::NaN => f32::NAN,
                dtype::Value::Inf { negative } => {
                    if negative {
                        f32::NEG_INFINITY
                    } else {
                        f32::INFINITY
                    }
                }
            };
        }
    }
    table
}

/// `floor(log2 |x|)` of a finite non-zero f32.
fn f32_top(x: f32) -> i32 {
    let bits = x.to_bits() & 0x7fff_ffff;
    let e = (bits >> 23) as i32;
    if e == 0 {
        -149 + 31 - bits.leading_zeros() as i32
    } else {
        e - 127
    }
}

/// `floor(log2)` of the largest finite magnitude, 0 when there is none; equals
/// [`crate::sketch::top_exponent`].
pub fn top_exponent(dtype: Dtype, bytes: &[u8]) -> i32 {
    let f8 = f8_table(dtype);
    const CHUNK: usize = 1 << 16;
    let max = bytes
        .par_chunks(CHUNK * dtype.size())
        .map(|chunk| {
            let mut buf = vec![0f32; chunk.len() / dtype.size()];
            to_f32(dtype, chunk, &mut buf, &f8);
            buf.iter()
                .fold(0f32, |m, &x| if x.is_finite() { m.max(x.abs()) } else { m })
        })
        .reduce(|| 0f32, f32::max);
    if max > 0.0 {
        f32_top(max)
    } else {
        0
    }
}

/// Fixed-point integers of one row of `f32`s: `round(x · 2^(bits-1-top))`, half away from
/// zero, infinities saturated to `±2^bits`, NaN to 0.
#[multiversion::multiversion(targets(
    "x86_64+avx512f+avx512dq+avx512vl",
    "x86_64+avx2+fma",
    "aarch64+neon"
))]
fn quantize(row: &[f32], out: &mut [i32], top: i32, bits: u32) {
    let scale = 2f64.powi(bits as i32 - 1 - top);
    let limit = f64::from(1u32 << bits);
    for (q, &x) in out.iter_mut().zip(row) {
        let v = f64::from(x.abs()) * scale + 0.5;
        // f64::min would turn NaN into the limit: NaN reads as 0.
        let m = if v.is_nan() { 0 } else { v.min(limit) as i32 };
        *q = if x.is_sign_negative() { -m } else { m };
    }
}

/// Columns per block (memory per task: about 140 bytes per column).
const COL_BLOCK: usize = 1 << 14;

/// Probe signs at `t` expanded to lane masks: `mask[p]` is 0 for +1 and -1 for −1, so that
/// `(q ^ mask) - mask` is `±q` without a branch.
fn mask_of(t: u32) -> [i32; PROBES] {
    let w = probe_word(t);
    std::array::from_fn(|p| if (w >> p) & 1 == 1 { 0 } else { -1 })
}

/// The masks of indices `first..first + len`.
fn probe_masks(first: u32, len: u32) -> Vec<[i32; PROBES]> {
    (first..first + len).map(mask_of).collect()
}

/// One row's contribution: its 32 responses and sum, and its share of every column's. The hot
/// loop of the fingerprint, compiled for the widest vector units the CPU has (the integer sums
/// are the same whatever the order or width).
#[multiversion::multiversion(targets(
    "x86_64+avx512f+avx512bw+avx512vl+avx512dq",
    "x86_64+avx2+fma",
    "x86_64+sse4.1",
    "aarch64+neon"
))]
fn accumulate(
    q: &[i32],
    masks: &[[i32; PROBES]],
    row_mask: &[i32; PROBES],
    cols: &mut [[i32; PROBES]],
    col_sums: &mut [i32],
) -> ([i32; PROBES], i32) {
    let mut acc = [0i32; PROBES];
    let mut sum = 0i32;
    for (((&qj, mj), col), col_sum) in q
        .iter()
        .zip(masks)
        .zip(cols.iter_mut())
        .zip(col_sums.iter_mut())
    {
        for p in 0..PROBES {
            acc[p] += (qj ^ mj[p]) - mj[p];
            col[p] += (qj ^ row_mask[p]) - row_mask[p];
        }
        sum += qj;
        *col_sum += qj;
    }
    (acc, sum)
}

/// Computes the responses of a matrix.
pub fn responses(job: &MatrixJob<'_>) -> Responses {
    let (m, n) = (job.rows as usize, job.cols as usize);
    let esize = job.dtype.size();
    let f8 = f8_table(job.dtype);
    let threads = rayon::current_num_threads().max(1);
    let rows_per_task = m.div_ceil(threads * 4).max(1);
    let mut rows = vec![0i32; m * STRIDE];
    let mut cols = vec![0i32; n * STRIDE];
    type Partial = (Vec<[i32; PROBES]>, Vec<i32>);

    // Columns go in blocks, so that memory per task stays small however wide the matrix.
    for c0 in (0..n).step_by(COL_BLOCK) {
        let width = COL_BLOCK.min(n - c0);
        let masks = probe_masks(c0 as u32, width as u32);
        let zero = || -> Partial { (vec![[0i32; PROBES]; width], vec![0i32; width]) };
        let (block, sums) = rows
            .par_chunks_mut(rows_per_task * STRIDE)
            .enumerate()
            .map(|(task, out)| {
                let first = task * rows_per_task;
                let (mut block, mut sums) = zero();
                let mut xf = vec![0f32; width];
                let mut q = vec![0i32; width];
                for (k, row_out) in out.chunks_exact_mut(STRIDE).enumerate() {
                    let i = first + k;
                    let start = (i * n + c0) * esize;
                    to_f32(
                        job.dtype,
                        &job.bytes[start..start + width * esize],
                        &mut xf,
                        &f8,
                    );
                    quantize(&xf, &mut q, job.top, job.bits);
                    let (acc, sum) =
                        accumulate(&q, &masks, &mask_of(i as u32), &mut block, &mut sums);
                    row_out[..PROBES]
                        .iter_mut()
                        .zip(acc)
                        .for_each(|(r, a)| *r += a);
                    row_out[PROBES] += sum;
                }
                (block, sums)
            })
            .reduce(zero, |(mut a, mut a_sums), (b, b_sums)| {
                for (x, y) in a.iter_mut().zip(&b) {
                    x.iter_mut().zip(y).for_each(|(x, y)| *x += y);
                }
                a_sums.iter_mut().zip(&b_sums).for_each(|(x, y)| *x += y);
                (a, a_sums)
            });
        for ((out, col), sum) in cols[c0 * STRIDE..(c0 + width) * STRIDE]
            .chunks_exact_mut(STRIDE)
            .zip(&block)
            .zip(&sums)
        {
            out[..PROBES].copy_from_slice(col);
            out[PROBES] = *sum;
        }
    }
    Responses { rows, cols }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sketch::{bits_for, responses_reference, top_exponent as reference_top};

    fn pseudo_random_bytes(len: usize, seed: u32) -> Vec<u8> {
        (0..len as u32)
            .map(|k| (probe_word(k ^ seed.wrapping_mul(0x51ed_270b)) >> 11) as u8)
            .collect()
    }

    #[test]
    fn quantize_matches_the_integer_rule_on_every_small_bit_pattern() {
        // Every sketched type of at most 16 bits: all their bit patterns fit in a test.
        for dtype in Dtype::ALL.into_iter().filter(|d| d.size() <= 2) {
            let count = 1usize << (8 * dtype.size());
            let bytes: Vec<u8> = (0..count as u32)
                .flat_map(|b| b.to_le_bytes()[..dtype.size()].to_vec())
                .collect();
            let f8 = f8_table(dtype);
            let mut xf = vec![0f32; count];
            to_f32(dtype, &bytes, &mut xf, &f8);
            let top = reference_top(dtype, &bytes, count);
            assert_eq!(top_exponent(dtype, &bytes), top, "{dtype:?}");
            for t in [top, top + 3, top - 2] {
                let mut q = vec![0i32; count];
                quantize(&xf, &mut q, t, 11);
                for (k, &qk) in q.iter().enumerate() {
                    if t < top
                        && !matches!(dtype::decode(dtype, k as u32), dtype::Value::Inf { .. })
                    {
                        continue; // values above 2^(top+1) are outside the rule's domain
                    }
                    let expected =
                        dtype::fixed_point(dtype::decode(dtype, dtype.bits_at(&bytes, k)), t, 11);
                    assert_eq!(qk, expected, "{dtype:?} bits {k:#x} top {t}");
                }
            }
        }
    }

    #[test]
    fn matches_the_reference_on_every_dtype_and_odd_shapes() {
        for (seed, dtype) in Dtype::ALL.into_iter().enumerate() {
            for (m, n) in [
                (1u32, 1u32),
                (3, 5),
                (17, 257),
                (257, 17),
                (64, 129),
                (3, 40_000),
                (40_000, 3),
            ] {
                let bytes =
                    pseudo_random_bytes((m * n) as usize * dtype.size(), seed as u32 * 7 + m);
                let top = reference_top(dtype, &bytes, (m * n) as usize);
                let job = MatrixJob {
                    dtype,
                    bytes: &bytes,
                    rows: m,
                    cols: n,
                    top,
                    bits: bits_for(u64::from(m.max(n))),
                };
                assert_eq!(
                    responses(&job),
                    responses_reference(&job),
                    "{dtype:?} {m}x{n}"
                );
            }
        }
    }
}
