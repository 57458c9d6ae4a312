//! Anchors keyed by row content: for a vocabulary table whose token strings are unknown, or
//! whose rows were reordered, so that nothing but the rows themselves can say which row is
//! which.
//!
//! Row weights `z_p(t)` must be (a) particular to each row, or unrelated models' token rows
//! would share their patterns (a row's response to an anchor holds its own `z_p(t)·|x_t|²`);
//! (b) stable when rows drift; (c) unchanged by row order and by any rotation of the residual
//! stream. In two stages:
//! 1. Reference directions: rows ranked by norm (rotation-invariant, order-free) fall into
//!    64 overlapping bins; each bin's centred row sum is a direction, and the 64 directions
//!    are orthonormalised in bin order (Gram–Schmidt in f64: inner products only, so
//!    rotations commute with it). Bins share directions a model's norms correlate with;
//!    orthonormalising keeps those from making every anchor alike.
//! 2. Each row's weights are the signs of its centred projections on those directions, a
//!    locality-sensitive hash of the row particular to this model's own directions, and the
//!    anchors are the rows mixed by them (as token keys mix them, [`super`]).

use super::{source_job, Source};
use crate::backend::cpu;
use crate::norms;
use crate::probe::{ProbeTable, K};
use crate::sketch::bits_for;
use crate::source::Model;

/// The smallest residual width given content anchors: below it there are fewer than 64
/// directions, the signatures of token rows carry less than 64 bits, and unrelated rows meet
/// too often (seen at width 16).
pub(super) const MIN_WIDTH: usize = K;

/// A row's weight in the norm bins, shared between its two nearest (a partition of unity).
const WEIGHT: i64 = 64;

/// The ±1 weights `z_p(t)` of the rows of source `s` (`V × 64`); see the module.
pub(super) fn weights(model: &Model, s: &Source<'_>) -> ProbeTable {
    let (v, width) = (s.vocab, s.width);
    // one precision for every stage: sums over the vocabulary of weights up to 64, and over
    // a row of directions up to 127
    let bits = bits_for(v as u64, WEIGHT as u32)
        .min(bits_for(width as u64, 127))
        .expect("vocabularies are at most 2^20 rows");
    let row_tops = vec![s.top; v];
    let none = ProbeTable::default();
    let data = model.data(s.tensor);
    let rows = source_job(&data, s, &row_tops, bits, &none, true);
    let norms = cpu::unit_square_sums(&rows);
    // stage 1: the bins' centred sums, c[j][b] = V·Σ_t w_b(t)·q_t[j] − (Σ_t w_b(t))·S[j],
    // orthonormalised
    let weights = rank_weights(&norms);
    let (mix, sums) = cpu::sparse_mix(&rows, &weights);
    let mut totals = [0i64; K];
    for &(b, w) in weights.iter().flatten() {
        totals[usize::from(b)] += i64::from(w);
    }
    let centroids: Vec<i64> = (0..width * K)
        .map(|i| v as i64 * mix[i] - totals[i % K] * sums[i / K])
        .collect();
    let directions = norms::table(&orthonormal(&centroids, width), None, width);
    // stage 2: each row's signs on them, centred: V·(q_t·u_p) − S·u_p
    let projections =
        cpu::side_responses(&source_job(&data, s, &row_tops, bits, &directions, true));
    let offsets: [i64; K] = std::array::from_fn(|p| {
        (0..width)
            .map(|j| sums[j] * i64::from(directions.values[j * K + p]))
            .sum()
    });
    ProbeTable {
        values: projections
            .chunks_exact(K)
            .flat_map(|r| {
                (0..K).map(move |p| {
                    if v as i64 * i64::from(r[p]) >= offsets[p] {
                        1i8
                    } else {
                        -1
                    }
                })
            })
            .collect(),
        max: 1,
    }
}

/// The weights of rows with squared norms `norms` in 64 bins of their norm ranks: for each
/// row, its two nearest bins and its weights in them (integers in `[0, 64]`, adding up to
/// 64 but at the ends). The same whatever the rows' order or a rotation of the residual
/// stream, and moving little when a few rows are added, removed or drift.
fn rank_weights(norms: &[i64]) -> Vec<[(u8, i32); 2]> {
    let (v, bins) = (norms.len() as i64, K as i64);
    let mut sorted = norms.to_vec();
    sorted.sort_unstable();
    norms
        .iter()
        .map(|&n| {
            let less = sorted.partition_point(|&x| x < n) as i64;
            let equal = sorted.partition_point(|&x| x <= n) as i64 - less;
            // the mid-rank on a scale of 64 · WEIGHT; bin b's centre is at WEIGHT·b + WEIGHT/2
            let u = (2 * less + equal - 1) * bins * WEIGHT / (2 * v) - WEIGHT / 2;
            let (bin, frac) = (u.div_euclid(WEIGHT), u.rem_euclid(WEIGHT));
            let at = |b: i64, w: i64| {
                if (0..bins).contains(&b) {
                    (b as u8, w as i32)
                } else {
                    (0, 0)
                }
            };
            [at(bin, WEIGHT - frac), at(bin + 1, frac)]
        })
        .collect()
}

/// Gram–Schmidt on the 64 columns of `c` (`width × 64`), in column order, in f64. A column
/// left with almost nothing of its own (the width is below 64, or bins coincide) is replaced
/// by a fixed ±1 mixture of the directions kept: a zero probe would give every row the same
/// bit, and unrelated rows would then meet by chance far more often than the comparison
/// allows for.
fn orthonormal(c: &[i64], width: usize) -> Vec<f64> {
    let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    let mut directions: Vec<Option<Vec<f64>>> = Vec::with_capacity(K);
    let mut kept: Vec<Vec<f64>> = Vec::new();
    for p in 0..K {
        let mut v: Vec<f64> = (0..width).map(|j| c[j * K + p] as f64).collect();
        let before = norm(&v);
        for u in &kept {
            let dot: f64 = v.iter().zip(u).map(|(a, b)| a * b).sum();
            v.iter_mut().zip(u).for_each(|(a, b)| *a -= dot * b);
        }
        let after = norm(&v);
        if before > 0.0 && after > 1e-6 * before {
            v.iter_mut().for_each(|x| *x /= after);
            kept.push(v.clone());
            directions.push(Some(v));
        } else {
            directions.push(None);
        }
    }
    let mut out = vec![0f64; width * K];
    for (p, d) in directions.into_iter().enumerate() {
        let d = d.unwrap_or_else(|| {
            let mut m = vec![0f64; width];
            for (k, u) in kept.iter().enumerate() {
                let sign = if crate::probe::hash64(((p as u64) << 32) | k as u64) & 1 == 1 {
                    1.0
                } else {
                    -1.0
                };
                m.iter_mut().zip(u).for_each(|(a, b)| *a += sign * b);
            }
            m
        });
        for (j, x) in d.iter().enumerate() {
            out[j * K + p] = *x;
        }
    }
    out
}
