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
#[multiversion::multiversion(targets(
    "x86_64+avx512f+avx512bw+avx512vl+f16c",
    "x86_64+avx2+f16c",
    "aarch64+neon"
))]
fn to_f32(dtype: Dtype, bytes: &[u8], out: &mut [f32], f8: &[f32; 256]) {
    match dtype {
        Dtype::F32 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
        }
        Dtype::F16 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = f16_to_f32(u16::from_le_bytes([c[0], c[1]]));
            }
        }
        Dtype::BF16 => {
            // bf16 is the top half of an f32
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = f32::from_bits(u32::from(u16::from_le_bytes([c[0], c[1]])) << 16);
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

/// An f16 value as f32, exactly, without branches (so that a row's conversion vectorises;
/// element by element, `half`'s conversion does not, and in bulk it cost a tenth of an f16
/// fingerprint in copies): shift the exponent and mantissa into place and rebias; infinities
/// and NaNs get the rest of the exponent range; subnormals (exponent 0) are renormalised by
/// one exact float subtraction.
#[inline(always)]
fn f16_to_f32(h: u16) -> f32 {
    const SHIFTED_EXP: u32 = 0x7c00 << 13;
    let h = u32::from(h);
    let mut o = (h & 0x7fff) << 13;
    let exp = o & SHIFTED_EXP;
    o += (127 - 15) << 23;
    let inf_nan = o + ((128 - 16) << 23);
    // exponent 0: 2^-14 · (m / 2^10) = (2^-14 · (1 + m / 2^10)) − 2^-14
    let subnormal = (f32::from_bits(o + (1 << 23)) - f32::from_bits(113 << 23)).to_bits();
    let o = if exp == SHIFTED_EXP {
        inf_nan
    } else if exp == 0 {
        subnormal
    } else {
        o
    };
    f32::from_bits(o | ((h & 0x8000) << 16))
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

/// The scale `2^(bits-1-top)` as an `f32`, when it is a normal `f32`.
fn scale_f32(top: i32, bits: u32) -> Option<f32> {
    let e = bits as i32 - 1 - top;
    (-126..=127)
        .contains(&e)
        .then(|| f32::from_bits(((e + 127) as u32) << 23))
}

/// [`quantize`] in `f32`, to int16, for scales that are normal `f32`s: `|x| · scale` is then
/// exact (a power of two) unless it underflows, where the value rounds to 0 either way, and
/// `round` rounds half away from zero exactly; `|q| <= 2^11` fits int16.
#[multiversion::multiversion(targets(
    "x86_64+avx512f+avx512dq+avx512vl",
    "x86_64+avx2+fma",
    "aarch64+neon"
))]
fn quantize_f32(row: &[f32], scales: &[f32], out: &mut [i16], bits: u32) {
    let limit = (1u32 << bits) as f32;
    for ((q, &x), &scale) in out.iter_mut().zip(row).zip(scales) {
        let m = round_half_away(x.abs() * scale).min(limit);
        *q = small_int(if x.is_sign_negative() { -m } else { m });
    }
}

/// The integer value of an integer-valued `x` with `|x| <= 2^22`: adding 1.5 × 2^23 puts it in
/// the mantissa of a float whose bits then hold it (a float-to-int cast, saturating in Rust,
/// does not vectorise).
#[inline(always)]
fn small_int(x: f32) -> i16 {
    ((x + 12_582_912.0).to_bits() as i32 - 0x4b40_0000) as i16
}

/// `round` (half away from zero) of a non-negative `v`, NaN to 0, in operations that
/// vectorise: the fractional part `v − trunc(v)` is exact.
#[inline(always)]
fn round_half_away(v: f32) -> f32 {
    let t = v.trunc();
    let r = t + if v - t >= 0.5 { 1.0 } else { 0.0 };
    if v.is_nan() {
        0.0
    } else {
        r
    }
}

/// [`quantize_f32`] with one scale for the whole row.
#[multiversion::multiversion(targets(
    "x86_64+avx512f+avx512dq+avx512vl",
    "x86_64+avx2+fma",
    "aarch64+neon"
))]
fn quantize_f32_uniform(row: &[f32], scale: f32, out: &mut [i16], bits: u32) {
    let limit = (1u32 << bits) as f32;
    for (q, &x) in out.iter_mut().zip(row) {
        let m = round_half_away(x.abs() * scale).min(limit);
        *q = small_int(if x.is_sign_negative() { -m } else { m });
    }
}

/// Per-element scales of a column block, prepared once: `f32` when every one is a normal
/// `f32`, else `f64`.
enum ColScales {
    F32(Vec<f32>),
    F64(Vec<f64>),
}

impl ColScales {
    fn new(tops: &[i32], bits: u32) -> Self {
        match tops.iter().map(|&t| scale_f32(t, bits)).collect() {
            Some(s) => ColScales::F32(s),
            None => ColScales::F64(tops.iter().map(|&t| scale_of(t, bits)).collect()),
        }
    }

    fn quantize(&self, xf: &[f32], bits: u32, out: &mut [i16]) {
        match self {
            ColScales::F32(s) => quantize_f32(xf, s, out, bits),
            ColScales::F64(s) => {
                let mut q = vec![0i32; xf.len()];
                quantize(xf, s, &mut q, bits);
                out.iter_mut().zip(&q).for_each(|(o, &v)| *o = v as i16);
            }
        }
    }
}

/// One row of fixed-point int16 integers, element `k` at scale `tops[k]` (or `tops[0]` for
/// every element when `tops` has one entry), through `f32` when every scale allows, else `f64`.
fn quantize_row(xf: &[f32], tops: &[i32], bits: u32, out: &mut [i16]) {
    let uniform = tops.len() == 1;
    if let Some(scale) = scale_f32(tops[0], bits).filter(|_| uniform) {
        return quantize_f32_uniform(xf, scale, out, bits);
    }
    let f32_scales: Option<Vec<f32>> = if uniform {
        scale_f32(tops[0], bits).map(|s| vec![s; xf.len()])
    } else {
        tops.iter().map(|&t| scale_f32(t, bits)).collect()
    };
    match f32_scales {
        Some(scales) => quantize_f32(xf, &scales, out, bits),
        None => {
            let scales: Vec<f64> = if uniform {
                vec![scale_of(tops[0], bits); xf.len()]
            } else {
                tops.iter().map(|&t| scale_of(t, bits)).collect()
            };
            let mut q = vec![0i32; xf.len()];
            quantize(xf, &scales, &mut q, bits);
            out.iter_mut().zip(&q).for_each(|(o, &v)| *o = v as i16);
        }
    }
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

/// Row `i` of a job's matrix as fixed-point integers at scales `tops` (one entry: one scale
/// for the whole row), through `xf`.
fn quantized_row(
    job: &SideJob<'_>,
    i: usize,
    tops: &[i32],
    f8: &[f32; 256],
    xf: &mut [f32],
    q: &mut [i16],
) {
    let (n, esize) = (job.cols as usize, job.dtype.size());
    to_f32(
        job.dtype,
        &job.bytes[i * n * esize..(i + 1) * n * esize],
        xf,
        f8,
    );
    quantize_row(xf, tops, job.bits, q);
}

/// Each unit's sum `Σ_t q(n, t)` (exact), equal to [`crate::sketch::unit_sums`].
pub fn unit_sums(job: &SideJob<'_>) -> Vec<i64> {
    per_unit(job, |v| v)
}

/// Each unit's sum of squares `Σ_t q(n, t)²` (exact).
pub fn unit_square_sums(job: &SideJob<'_>) -> Vec<i64> {
    per_unit(job, |v| v * v)
}

/// `Σ_t f(q(n, t))` for every unit `n`.
fn per_unit(job: &SideJob<'_>, f: impl Fn(i64) -> i64 + Sync) -> Vec<i64> {
    let (m, n) = (job.rows as usize, job.cols as usize);
    let esize = job.dtype.size();
    let f8 = f8_table(job.dtype);
    let row_q = |i: usize, xf: &mut [f32], q: &mut [i16], tops: &[i32]| {
        quantized_row(job, i, tops, &f8, xf, q)
    };
    match job.axis {
        Axis::Rows => (0..m)
            .into_par_iter()
            .map(|i| {
                let (mut xf, mut q) = (vec![0f32; n], vec![0i16; n]);
                row_q(i, &mut xf, &mut q, &job.tops[i..i + 1]);
                q.iter().map(|&v| f(i64::from(v))).sum()
            })
            .collect(),
        Axis::Cols => {
            let scales = ColScales::new(job.tops, job.bits);
            (0..m)
                .into_par_iter()
                .fold(
                    || (vec![0i64; n], vec![0f32; n], vec![0i16; n]),
                    |(mut sums, mut xf, mut q), i| {
                        to_f32(
                            job.dtype,
                            &job.bytes[i * n * esize..(i + 1) * n * esize],
                            &mut xf,
                            &f8,
                        );
                        scales.quantize(&xf, job.bits, &mut q);
                        sums.iter_mut()
                            .zip(&q)
                            .for_each(|(s, &v)| *s += f(i64::from(v)));
                        (sums, xf, q)
                    },
                )
                .map(|(sums, _, _)| sums)
                .reduce(
                    || vec![0i64; n],
                    |mut a, b| {
                        a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                        a
                    },
                )
        }
    }
}

/// For a side whose units all share one scale (`job.tops[0]`), the units mixed with sparse
/// weights: `mix[t][p] = Σ_n w_p(n)·q(n, t)` (`len × 64`), where unit `n` has the at most two
/// non-zero weights `weights[n]` (probe, weight); and the sums `S[t] = Σ_n q(n, t)`. Exact.
/// A 64-probe side over the transposed matrix gives the same, at 32 times the work.
pub fn sparse_mix(job: &SideJob<'_>, weights: &[[(u8, i32); 2]]) -> (Vec<i64>, Vec<i64>) {
    let (m, n) = (job.rows as usize, job.cols as usize);
    let f8 = f8_table(job.dtype);
    let row_q =
        |i: usize, xf: &mut [f32], q: &mut [i16]| quantized_row(job, i, &job.tops[..1], &f8, xf, q);
    match job.axis {
        // units are rows: each row adds into two columns of every element's table
        Axis::Rows => {
            // few, large tasks: each holds a 64-row table per column
            let per_task = m.div_ceil(2 * rayon::current_num_threads().max(1)).max(1);
            let (by_probe, sums) = (0..m)
                .into_par_iter()
                .with_min_len(per_task)
                .fold(
                    || {
                        (
                            vec![0i64; n * K],
                            vec![0i64; n],
                            vec![0f32; n],
                            vec![0i16; n],
                        )
                    },
                    |(mut mix, mut sums, mut xf, mut q), i| {
                        row_q(i, &mut xf, &mut q);
                        // probe-major while accumulating: one contiguous row per probe
                        for &(p, w) in &weights[i] {
                            if w != 0 {
                                let (p, w) = (usize::from(p), i64::from(w));
                                mix[p * n..(p + 1) * n]
                                    .iter_mut()
                                    .zip(&q)
                                    .for_each(|(m, &v)| *m += w * i64::from(v));
                            }
                        }
                        sums.iter_mut()
                            .zip(&q)
                            .for_each(|(s, &v)| *s += i64::from(v));
                        (mix, sums, xf, q)
                    },
                )
                .map(|(mix, sums, _, _)| (mix, sums))
                .reduce(
                    || (vec![0i64; n * K], vec![0i64; n]),
                    |(mut a, mut s), (b, t)| {
                        a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                        s.iter_mut().zip(&t).for_each(|(x, y)| *x += y);
                        (a, s)
                    },
                );
            let mix = (0..n * K).map(|i| by_probe[(i % K) * n + i / K]).collect();
            (mix, sums)
        }
        // units are columns: each row is one element's table
        Axis::Cols => {
            let per_row: Vec<([i64; K], i64)> = (0..m)
                .into_par_iter()
                .map(|i| {
                    let (mut xf, mut q) = (vec![0f32; n], vec![0i16; n]);
                    row_q(i, &mut xf, &mut q);
                    let mut mix = [0i64; K];
                    for (unit, &v) in q.iter().enumerate() {
                        for &(p, w) in &weights[unit] {
                            mix[usize::from(p)] += i64::from(w) * i64::from(v);
                        }
                    }
                    (mix, q.iter().map(|&v| i64::from(v)).sum())
                })
                .collect();
            (
                per_row.iter().flat_map(|(mix, _)| *mix).collect(),
                per_row.iter().map(|&(_, s)| s).collect(),
            )
        }
    }
}

/// Adds two tasks' column tables.
fn add_tables(mut a: Vec<[i32; K]>, b: Vec<[i32; K]>) -> Vec<[i32; K]> {
    for (x, y) in a.iter_mut().zip(&b) {
        x.iter_mut().zip(y).for_each(|(x, y)| *x += y);
    }
    a
}

/// Writes a block of column tables (columns `c0..`) into the side's output.
fn write_block(out: &mut [i32], c0: usize, block: &[[i32; K]]) {
    for (o, a) in out[c0 * K..(c0 + block.len()) * K]
        .chunks_exact_mut(K)
        .zip(block)
    {
        o.copy_from_slice(a);
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
        Axis::Rows if super::simd::available() => {
            // Four rows at a time through AVX-512 VNNI.
            let table = super::simd::pair_table(job.probes);
            let even = n.div_ceil(2) * 2;
            let mut out = vec![0i32; m * K];
            out.par_chunks_mut(K * 64)
                .enumerate()
                .for_each(|(task, out)| {
                    let mut xf = vec![0f32; n];
                    let mut q16 = vec![vec![0i16; even]; 4];
                    let mut acc = [[0i32; K]; 4];
                    for (g, group) in out.chunks_mut(4 * K).enumerate() {
                        let count = group.len() / K;
                        for (r, q16) in q16.iter_mut().enumerate().take(count) {
                            let i = task * 64 + g * 4 + r;
                            to_f32(job.dtype, row_bytes(i, 0, n), &mut xf, &f8);
                            quantize_row(&xf, &job.tops[i..i + 1], job.bits, &mut q16[..n]);
                        }
                        let rows: Vec<&[i16]> = q16.iter().take(count).map(|r| &r[..]).collect();
                        super::simd::rows4(&rows, &table, &mut acc[..count]);
                        for (o, a) in group.chunks_exact_mut(K).zip(&acc) {
                            o.copy_from_slice(a);
                        }
                    }
                });
            out
        }
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
        Axis::Cols if super::simd::available() => {
            // Eight rows (four pairs) at a time through AVX-512 VNNI, columns in blocks.
            let table = super::simd::pair_table(job.probes);
            let mut out = vec![0i32; n * K];
            let threads = rayon::current_num_threads().max(1);
            let rows_per_task = (m.div_ceil(threads * 2).max(1)).div_ceil(8) * 8;
            for c0 in (0..n).step_by(COL_BLOCK) {
                let width = COL_BLOCK.min(n - c0);
                let scales = ColScales::new(&job.tops[c0..c0 + width], job.bits);
                let zero = || vec![[0i32; K]; width];
                let block = (0..m.div_ceil(rows_per_task))
                    .into_par_iter()
                    .map(|task| {
                        let mut acc = zero();
                        let mut xf = vec![0f32; width];
                        let mut q = vec![vec![0i16; width]; 8];
                        let mut words = vec![vec![0i32; width]; 4];
                        let end = ((task + 1) * rows_per_task).min(m);
                        for i0 in (task * rows_per_task..end).step_by(8) {
                            let count = (end - i0).min(8);
                            for (r, q) in q.iter_mut().enumerate() {
                                if r < count {
                                    to_f32(job.dtype, row_bytes(i0 + r, c0, width), &mut xf, &f8);
                                    scales.quantize(&xf, job.bits, q);
                                } else {
                                    q.fill(0);
                                }
                            }
                            let pairs = count.div_ceil(2);
                            for (k, w) in words.iter_mut().enumerate().take(pairs) {
                                for ((w, &a), &b) in w.iter_mut().zip(&q[2 * k]).zip(&q[2 * k + 1])
                                {
                                    *w = i32::from(a as u16) | (i32::from(b as u16) << 16);
                                }
                            }
                            let first = i0 / 2 * 2 * K;
                            let tables = &table[first..first + pairs * 2 * K];
                            let refs: Vec<&[i32]> =
                                words.iter().take(pairs).map(|w| &w[..]).collect();
                            super::simd::cols8(&refs, tables, &mut acc);
                        }
                        acc
                    })
                    .reduce(zero, add_tables);
                write_block(&mut out, c0, &block);
            }
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
                    .reduce(zero, add_tables);
                write_block(&mut out, c0, &block);
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
                    assert_eq!(
                        unit_sums(&job),
                        crate::sketch::unit_sums(&job),
                        "sums {dtype:?} {m}x{n} {axis:?}"
                    );
                }
            }
        }
    }

    /// The sparse mix equals its definition, `Σ_n w_p(n)·q(n, t)`, read element by element,
    /// and its sums the reference unit sums of the other side.
    #[test]
    fn sparse_mix_matches_its_definition() {
        for (seed, dtype) in [Dtype::BF16, Dtype::F16, Dtype::F32]
            .into_iter()
            .enumerate()
        {
            for (m, n) in [(3u32, 5u32), (257, 17), (17, 300)] {
                let bytes =
                    pseudo_random_bytes((m * n) as usize * dtype.size(), seed as u32 * 5 + m);
                for axis in [Axis::Rows, Axis::Cols] {
                    let (units, len) = if axis == Axis::Rows { (m, n) } else { (n, m) };
                    let tops = vec![3; units as usize];
                    let weights: Vec<[(u8, i32); 2]> = (0..units)
                        .map(|u| {
                            let r = probe_word(u * 31 + 7);
                            [
                                ((r % 64) as u8, (r >> 8) as i32 % 65),
                                (((r >> 16) % 64) as u8, (r >> 24) as i32 % 65),
                            ]
                        })
                        .collect();
                    let none = ProbeTable::default();
                    let job = SideJob {
                        dtype,
                        bytes: &bytes,
                        rows: m,
                        cols: n,
                        axis,
                        tops: &tops,
                        bits: 8,
                        probes: &none,
                    };
                    let (mix, sums) = sparse_mix(&job, &weights);
                    for t in 0..len as usize {
                        let mut want = [0i64; K];
                        let mut sum = 0i64;
                        for (u, w) in weights.iter().enumerate() {
                            let q = i64::from(job.q(u, t));
                            sum += q;
                            for &(p, w) in w {
                                want[usize::from(p)] += i64::from(w) * q;
                            }
                        }
                        assert_eq!(
                            &mix[t * K..(t + 1) * K],
                            &want,
                            "{dtype:?} {m}x{n} {axis:?}"
                        );
                        assert_eq!(sums[t], sum, "{dtype:?} {m}x{n} {axis:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn f16_conversion_is_exact_on_every_bit_pattern() {
        for h in 0..=u16::MAX {
            let (ours, theirs) = (f16_to_f32(h), half::f16::from_bits(h).to_f32());
            if theirs.is_nan() {
                assert!(ours.is_nan(), "{h:#06x}");
            } else {
                assert_eq!(ours.to_bits(), theirs.to_bits(), "{h:#06x}");
            }
        }
    }
}
