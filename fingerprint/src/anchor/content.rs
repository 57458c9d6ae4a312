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

use super::{centred_with_sums, source_job, Source};
use crate::backend::cpu;
use crate::norms;
use crate::probe::{ProbeTable, K};
use crate::scale;
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
    let top = scale::tensor_top(s.tensor.dtype, model.data(s.tensor));
    // one precision for every stage: sums over the vocabulary of weights up to 64, and over
    // a row of directions up to 127
    let bits = bits_for(v as u64, WEIGHT as u32)
        .min(bits_for(width as u64, 127))
        .expect("vocabularies are at most 2^20 rows");
    let row_tops = vec![top; v];
    let none = ProbeTable::default();
    let norms = cpu::unit_square_sums(&source_job(model, s, &row_tops, bits, &none, true));
    // stage 1: the bins' centred sums, orthonormalised
    let (centroids, sums) = centred_with_sums(model, s, &rank_weights(&norms), bits);
    let directions = norms::table(&orthonormal(&centroids, width), None, width);
    // stage 2: each row's signs on them, centred: V·(q_t·u_p) − S·u_p
    let projections =
        cpu::side_responses(&source_job(model, s, &row_tops, bits, &directions, true));
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

/// The weights of rows with squared norms `norms` in 64 bins of their norm ranks (`V × 64`,
/// integers in `[0, 64]`): the same whatever the rows' order or a rotation of the residual
/// stream, and moving little when a few rows are added, removed or drift.
fn rank_weights(norms: &[i64]) -> ProbeTable {
    let (v, bins) = (norms.len() as i64, K as i64);
    let mut sorted = norms.to_vec();
    sorted.sort_unstable();
    let mut values = vec![0i8; norms.len() * K];
    for (t, &n) in norms.iter().enumerate() {
        let less = sorted.partition_point(|&x| x < n) as i64;
        let equal = sorted.partition_point(|&x| x <= n) as i64 - less;
        // the mid-rank on a scale of 64 · WEIGHT; bin b's centre is at WEIGHT · b + WEIGHT/2
        let u = (2 * less + equal - 1) * bins * WEIGHT / (2 * v) - WEIGHT / 2;
        let (bin, frac) = (u.div_euclid(WEIGHT), u.rem_euclid(WEIGHT));
        if bin >= 0 {
            values[t * K + bin as usize] = (WEIGHT - frac) as i8;
        }
        if bin + 1 < bins {
            values[t * K + bin as usize + 1] = frac as i8;
        }
    }
    ProbeTable {
        values,
        max: WEIGHT as u32,
    }
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
