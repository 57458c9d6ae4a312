//! The CPU backend: the same integers as [`crate::sketch::responses_reference`], computed fast.
//!
//! Elements are converted through `f32`/`f64` instead of the integer-only rule: every supported
//! dtype converts to `f32` exactly, scaling by a power of two is exact, and `|x|·2^k + 0.5` is
//! exact in `f64` (at most 24 significant bits below 2^11), so `floor` gives the same rounding
//! (half away from zero) as the format's integer rule. The tests check this on every bit
//! pattern of the 8- and 16-bit types and on random `f32`s.

use rayon::prelude::*;

use crate::dtype::{self, Dtype};
use crate::probe::K;
use crate::scale::Axis;
use crate::sketch::SideJob;

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

/// Fixed-point integers of `row` (`f32`s), element `k` at scale `scales[k] = 2^(bits-1-top_k)`:
/// `round(x · scale)`, half away from zero, saturated at `±2^bits` (values at or above
/// `2^(top+1)` and infinities), NaN to 0. Equals [`crate::dtype::fixed_point`].
#[multiversion::multiversion(targets(
    "x86_64+avx512f+avx512dq+avx512vl",
    "x86_64+avx2+fma",
    "aarch64+neon"
))]
fn quantize(row: &[f32], scales: &[f64], out: &mut [i32], bits: u32) {
    let limit = f64::from(1u32 << bits);
    for ((q, &x), &scale) in out.iter_mut().zip(row).zip(scales) {
        let v = f64::from(x.abs()) * scale + 0.5;
        // f64::min would turn NaN into the limit: NaN reads as 0.
        let m = if v.is_nan() { 0 } else { v.min(limit) as i32 };
        *q = if x.is_sign_negative() { -m } else { m };
    }
}

fn scale_of(top: i32, bits: u32) -> f64 {
    2f64.powi(bits as i32 - 1 - top)
}

/// `acc[p] += Σ_t q[t] · table[t][p]`: one row unit's responses. The hot loop of the row
/// side, compiled for the widest vector units the CPU has (integer sums are the same in any
/// order or width).
#[multiversion::multiversion(targets(
    "x86_64+avx512f+avx512bw+avx512vl+avx512dq",
    "x86_64+avx2+fma",
    "aarch64+neon"
))]
fn row_dot(q: &[i32], table: &[i8], acc: &mut [i32; K]) {
    for (&qt, probes) in q.iter().zip(table.chunks_exact(K)) {
        for (a, &p) in acc.iter_mut().zip(probes) {
            *a += qt * i32::from(p);
        }
    }
}

/// `acc[n][p] += q[n] · probes[p]` for every column unit `n` of one row.
#[multiversion::multiversion(targets(
    "x86_64+avx512f+avx512bw+avx512vl+avx512dq",
    "x86_64+avx2+fma",
    "aarch64+neon"
))]
fn col_axpy(q: &[i32], probes: &[i32; K], acc: &mut [[i32; K]]) {
    for (&qn, a) in q.iter().zip(acc.iter_mut()) {
        for (a, &p) in a.iter_mut().zip(probes) {
            *a += qn * p;
        }
    }
}

/// Columns per block on the column side (memory per task: 256 bytes per column).
const COL_BLOCK: usize = 1 << 12;

/// The responses of one side of a matrix (`units × 64`), equal to
/// [`crate::sketch::responses_reference`].
pub fn side_responses(job: &SideJob<'_>) -> Vec<i32> {
    let (m, n) = (job.rows as usize, job.cols as usize);
    let esize = job.dtype.size();
    let f8 = f8_table(job.dtype);
    let row_bytes = |i: usize, c0: usize, width: usize| {
        let start = (i * n + c0) * esize;
        &job.bytes[start..start + width * esize]
    };
    match job.axis {
        Axis::Rows => {
            let mut out = vec![0i32; m * K];
            out.par_chunks_mut(K * 64)
                .enumerate()
                .for_each(|(task, out)| {
                    let mut xf = vec![0f32; n];
                    let mut q = vec![0i32; n];
                    let mut scales = vec![0f64; n];
                    for (k, r) in out.chunks_exact_mut(K).enumerate() {
                        let i = task * 64 + k;
                        to_f32(job.dtype, row_bytes(i, 0, n), &mut xf, &f8);
                        scales.fill(scale_of(job.tops[i], job.bits));
                        quantize(&xf, &scales, &mut q, job.bits);
                        let mut acc = [0i32; K];
                        row_dot(&q, &job.probes.values, &mut acc);
                        r.copy_from_slice(&acc);
                    }
                });
            out
        }
        Axis::Cols => {
            let mut out = vec![0i32; n * K];
            let threads = rayon::current_num_threads().max(1);
            let rows_per_task = m.div_ceil(threads * 2).max(1);
            for c0 in (0..n).step_by(COL_BLOCK) {
                let width = COL_BLOCK.min(n - c0);
                let scales: Vec<f64> = job.tops[c0..c0 + width]
                    .iter()
                    .map(|&t| scale_of(t, job.bits))
                    .collect();
                let zero = || vec![[0i32; K]; width];
                let block = (0..m.div_ceil(rows_per_task))
                    .into_par_iter()
                    .map(|task| {
                        let mut acc = zero();
                        let mut xf = vec![0f32; width];
                        let mut q = vec![0i32; width];
                        for i in task * rows_per_task..((task + 1) * rows_per_task).min(m) {
                            to_f32(job.dtype, row_bytes(i, c0, width), &mut xf, &f8);
                            quantize(&xf, &scales, &mut q, job.bits);
                            let probes: [i32; K] =
                                std::array::from_fn(|p| i32::from(job.probes.values[i * K + p]));
                            col_axpy(&q, &probes, &mut acc);
                        }
                        acc
                    })
                    .reduce(zero, |mut a, b| {
                        for (x, y) in a.iter_mut().zip(&b) {
                            x.iter_mut().zip(y).for_each(|(x, y)| *x += y);
                        }
                        a
                    });
                for (o, a) in out[c0 * K..(c0 + width) * K]
                    .chunks_exact_mut(K)
                    .zip(&block)
                {
                    o.copy_from_slice(a);
                }
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::{probe_word, ProbeTable};
    use crate::scale::unit_tops;
    use crate::sketch::{bits_for, responses_reference};

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
            for top in [-20, -3, 0, 2, 7, 15] {
                let mut q = vec![0i32; count];
                quantize(&xf, &vec![scale_of(top, 11); count], &mut q, 11);
                for (k, &qk) in q.iter().enumerate() {
                    let expected =
                        dtype::fixed_point(dtype::decode(dtype, dtype.bits_at(&bytes, k)), top, 11);
                    assert_eq!(qk, expected, "{dtype:?} bits {k:#x} top {top}");
                }
            }
        }
    }

    #[test]
    fn matches_the_reference_on_every_dtype_side_and_odd_shapes() {
        for (seed, dtype) in Dtype::ALL.into_iter().enumerate() {
            for (m, n) in [
                (1u32, 1u32),
                (3, 5),
                (17, 257),
                (257, 17),
                (64, 129),
                (3, 5000),
            ] {
                let bytes =
                    pseudo_random_bytes((m * n) as usize * dtype.size(), seed as u32 * 7 + m);
                for axis in [Axis::Rows, Axis::Cols] {
                    let tops = unit_tops(dtype, &bytes, m as usize, n as usize, axis);
                    let len = if axis == Axis::Rows { n } else { m };
                    let mut probes = ProbeTable::hashed(len as usize);
                    // anchor-like values too: the full int8 range
                    probes.values.iter_mut().enumerate().for_each(|(k, v)| {
                        *v = (probe_word(k as u32) % 255) as i8;
                    });
                    probes.max = 127;
                    let job = SideJob {
                        dtype,
                        bytes: &bytes,
                        rows: m,
                        cols: n,
                        axis,
                        tops: &tops,
                        bits: bits_for(u64::from(len), probes.max).unwrap(),
                        probes: &probes,
                    };
                    assert_eq!(
                        side_responses(&job),
                        responses_reference(&job),
                        "{dtype:?} {m}x{n} {axis:?}"
                    );
                }
            }
        }
    }
}
