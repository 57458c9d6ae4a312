//! Format v1, kept so fingerprints committed before v2 can still be read and compared with
//! each other: per-tensor-position SimHash signatures of rows and columns, compared index by
//! index over tensors matched by shape. Nothing computes v1 any more.
//!
//! v1 comparison: matched tensors, similarities, a verdict and the probability
//! that unrelated models would look this related.
//!
//! - Matrices are matched by shape, whatever their names: `r × c` against `r × c` (aligned)
//!   or, for 2-D tensors, against `c × r` (the same matrix stored transposed: rows are compared
//!   with columns). Up to 64 candidates per tensor are scored (when there are more, the same
//!   name first, then the closest tensor-level sketches); pairs are then taken greedily, best
//!   first, each tensor used once.
//! - A pair's **agreement** `s` is the fraction of equal signature bits over all rows and
//!   columns; its **similarity** is `max(0, 2s − 1)` (0 for unrelated, 1 for equal signatures).
//!   For a neuron whose weights keep an angle θ to the original, each bit agrees with
//!   probability 1 − θ/π, so fine-tunes, casts, quantization, pruning and merges keep `s`
//!   well above ½, while unrelated neurons agree on half their bits.
//! - Bits of probes that are constant over a side's length (every centred response is then
//!   exactly 0, in every model) and neurons whose signature is 0 in both models (all-zero
//!   weights) carry no information and are left out.
//! - **Significance**: under "unrelated", neurons agree on ½ of their bits on average,
//!   independently, so by Hoeffding's inequality on the mean per-neuron agreement `s̄` of a
//!   side's `N` neurons, `P(s̄ ≥ s) ≤ exp(−2N(s − ½)²)`; the smaller of the rows' and the
//!   columns' bounds is taken, times 2 (either side may carry the evidence) and times the
//!   number of candidates the tensor was scored against (a union bound over the matching). A
//!   pair is significant when this is below 10⁻⁶.
//! - **Verdict**: *identical* when the content roots are equal, when the tensors' data hashes
//!   are equal as multisets (a renamed copy), or when every matrix of both models is paired with
//!   equal signatures and every other tensor's data hash is equal (2-D ones too small to sketch:
//!   their shape up to transposition) (a renamed or transposed copy;
//!   signatures do not see a positive rescaling, so this is behavioural identity); *derived* when
//!   the significant pairs cover at least half the matrix parameters of the smaller model;
//!   *unrelated* otherwise. A single shared tensor (a fixed, untrained matrix, say) covers too
//!   little of a model to make it derived. A hidden-unit permutation moves neurons away from
//!   the positions their signatures are compared at: the permuted layers stop matching (see the
//!   `hidden_unit_permutation` test); a model with every hidden layer permuted reads unrelated.
//! - The model's **similarity** is the parameter-weighted mean similarity of the pairs over the
//!   smaller model's matrix parameters; its **false-positive probability** bounds the chance
//!   that unrelated models (independent tensors) give `k` significant pairs out of the `K`
//!   matched: `C(K, k) · t^k`, with `t` the largest bound among them; 1 when none.

use std::collections::{BTreeMap, HashSet};

use crate::compare::{Comparison, TensorMatch, Verdict};
use crate::fingerprint::{Fingerprint, TensorSketch};
use crate::probe::probe_word;

/// A pair is significant below this false-positive bound.
const SIGNIFICANCE: f64 = 1e-6;
/// Candidates scored per tensor at most (the union bound counts those scored).
const MAX_CANDIDATES: usize = 64;
/// Share of the smaller model's matrix parameters that significant pairs must cover.
const DERIVED_COVERAGE: f64 = 0.5;

struct Candidate {
    a: usize,
    b: usize,
    transposed: bool,
    agreement: f64,
    log10_bound: f64,
}

impl Candidate {
    fn scored(mut self, a: &MatrixSketch, b: &MatrixSketch) -> Self {
        (self.agreement, self.log10_bound) = pair_agreement(a, b, self.transposed);
        self
    }
}

/// Probes that are constant on indices `0..len` give a centred response of exactly 0 for every
/// neuron of that length, so their bits are 0 in every model: they carry no information and are
/// left out. Bit p of the result is set for the informative probes.
fn informative_probes(len: u32) -> u32 {
    let first = probe_word(0);
    let mut mask = 0u32;
    for t in 1..len.min(4096) {
        mask |= probe_word(t) ^ first;
        if mask == u32::MAX {
            break;
        }
    }
    mask
}

/// Agreement of one side (rows or columns) of two matrices.
#[derive(Debug, Clone, Copy, Default)]
struct Side {
    equal_bits: u64,
    bits: u64,
    /// Neurons compared (a neuron whose signature is 0 in both, e.g. all-zero weights, is not).
    neurons: u64,
}

impl Side {
    fn of(x: &[u32], y: &[u32], len: u32) -> Self {
        let mask = informative_probes(len);
        let per = u64::from(mask.count_ones());
        let mut side = Side::default();
        if per == 0 {
            return side;
        }
        for (a, b) in x.iter().zip(y) {
            if a | b == 0 {
                continue;
            }
            let equal = per - u64::from(((a ^ b) & mask).count_ones());
            side.equal_bits += equal;
            side.bits += per;
            side.neurons += 1;
        }
        side
    }

    /// Hoeffding's bound on the mean per-neuron agreement of unrelated neurons, as log10.
    fn log10_bound(&self) -> f64 {
        if self.neurons == 0 {
            return 0.0;
        }
        // Every neuron of a side has the same number of informative bits, so the mean of the
        // per-neuron fractions is the pooled fraction.
        let mean = self.equal_bits as f64 / self.bits as f64;
        let excess = (mean - 0.5).max(0.0);
        -2.0 * self.neurons as f64 * excess * excess / std::f64::consts::LN_10
    }
}

/// (agreement over informative bits, log10 of the false-positive bound before the union over
/// candidates).
fn pair_agreement(a: &MatrixSketch, b: &MatrixSketch, transposed: bool) -> (f64, f64) {
    let (b_rows, b_cols) = if transposed {
        (&b.col_signatures, &b.row_signatures)
    } else {
        (&b.row_signatures, &b.col_signatures)
    };
    // Row signatures run over the columns' indices, and the other way round.
    let rows = Side::of(&a.row_signatures, b_rows, a.cols);
    let cols = Side::of(&a.col_signatures, b_cols, a.rows);
    let bits = rows.bits + cols.bits;
    let agreement = if bits == 0 {
        0.5
    } else {
        (rows.equal_bits + cols.equal_bits) as f64 / bits as f64
    };
    // Either side may carry the evidence: a union bound over the two.
    let log10 = (2f64.log10() + rows.log10_bound().min(cols.log10_bound())).min(0.0);
    (agreement, log10)
}

fn matrices(f: &Fingerprint) -> Vec<(&str, &MatrixSketch)> {
    f.tensors
        .iter()
        .filter_map(|t| match &t.sketch {
            TensorSketch::Matrix(m) => Some((t.name.as_str(), m)),
            _ => None,
        })
        .collect()
}

/// Compares two v1 fingerprints.
pub(crate) fn compare(a: &Fingerprint, b: &Fingerprint) -> Comparison {
    let (ma, mb) = (matrices(a), matrices(b));
    let mut by_shape: BTreeMap<(u32, u32), Vec<usize>> = BTreeMap::new();
    for (k, (_, m)) in mb.iter().enumerate() {
        by_shape.entry((m.rows, m.cols)).or_default().push(k);
    }
    let two_d = |f: &Fingerprint| -> HashSet<String> {
        f.tensors
            .iter()
            .filter(|t| t.shape.len() == 2)
            .map(|t| t.name.clone())
            .collect()
    };
    let (two_d_a, two_d_b) = (two_d(a), two_d(b));
    let mut candidates = Vec::new();
    let mut tried = vec![0usize; ma.len()];
    for (i, (name_a, x)) in ma.iter().enumerate() {
        let mut options: Vec<(usize, bool)> = by_shape
            .get(&(x.rows, x.cols))
            .into_iter()
            .flatten()
            .map(|&k| (k, false))
            .collect();
        if two_d_a.contains(*name_a) {
            options.extend(
                by_shape
                    .get(&(x.cols, x.rows))
                    .into_iter()
                    .flatten()
                    .filter(|&&k| two_d_b.contains(mb[k].0))
                    .map(|&k| (k, true)),
            );
        }
        if options.len() > MAX_CANDIDATES {
            // Many tensors of one shape (experts, layers): score the likeliest only — the
            // same name first, then the closest tensor-level sketches.
            options.sort_by_key(|&(k, transposed)| {
                (
                    mb[k].0 != *name_a,
                    (x.sketch ^ mb[k].1.sketch).count_ones(),
                    transposed,
                    k,
                )
            });
            options.truncate(MAX_CANDIDATES);
        }
        tried[i] = options.len();
        for (k, transposed) in options {
            let candidate = Candidate {
                a: i,
                b: k,
                transposed,
                agreement: 0.0,
                log10_bound: 0.0,
            };
            candidates.push(candidate.scored(x, mb[k].1));
        }
    }
    // Best first; ties broken by aligned before transposed, then by name order, so the
    // result does not depend on anything but the fingerprints.
    candidates.sort_by(|x, y| {
        y.agreement
            .total_cmp(&x.agreement)
            .then(x.transposed.cmp(&y.transposed))
            .then(x.a.cmp(&y.a))
            .then(x.b.cmp(&y.b))
    });
    let (mut used_a, mut used_b) = (HashSet::new(), HashSet::new());
    let mut tensors = Vec::new();
    for c in candidates {
        if used_a.contains(&c.a) || used_b.contains(&c.b) {
            continue;
        }
        used_a.insert(c.a);
        used_b.insert(c.b);
        let x = ma[c.a].1;
        let log10_fp = ((tried[c.a] as f64).log10() + c.log10_bound).min(0.0);
        tensors.push(TensorMatch {
            a: ma[c.a].0.to_string(),
            b: mb[c.b].0.to_string(),
            transposed: c.transposed,
            agreement: c.agreement,
            similarity: (2.0 * c.agreement - 1.0).max(0.0),
            log10_false_positive: log10_fp,
            significant: log10_fp < SIGNIFICANCE.log10(),
            parameters: u64::from(x.rows) * u64::from(x.cols),
            ..TensorMatch::default()
        });
    }
    tensors.sort_by(|x, y| x.a.cmp(&y.a));

    let params = |m: &[(&str, &MatrixSketch)]| {
        m.iter()
            .map(|(_, x)| u64::from(x.rows) * u64::from(x.cols))
            .sum::<u64>()
    };
    let smaller = params(&ma).min(params(&mb)).max(1) as f64;
    let significant: Vec<&TensorMatch> = tensors.iter().filter(|t| t.significant).collect();
    let coverage =
        (significant.iter().map(|t| t.parameters).sum::<u64>() as f64 / smaller).min(1.0);
    let similarity = (tensors
        .iter()
        .map(|t| t.similarity * t.parameters as f64)
        .sum::<f64>()
        / smaller)
        .min(1.0);
    // k significant pairs out of K matched, each with a bound of at most t: under "unrelated"
    // (independent tensors) that happens with probability at most C(K, k) · t^k.
    let log10_fpp = match significant
        .iter()
        .map(|t| t.log10_false_positive)
        .max_by(f64::total_cmp)
    {
        Some(t) => {
            let (big_k, k) = (tensors.len(), significant.len());
            let log10_choose: f64 = (0..k)
                .map(|i| ((big_k - i) as f64 / (i + 1) as f64).log10())
                .sum();
            (log10_choose + k as f64 * t).min(0.0)
        }
        None => 0.0,
    };

    let same_content = a.content_root == b.content_root;
    let all_paired_equal = !tensors.is_empty()
        && ma.len() == mb.len()
        && tensors.len() == ma.len()
        && tensors.iter().all(|t| t.agreement == 1.0)
        && unsketched_hashes(a) == unsketched_hashes(b);
    let verdict = if same_content || data_hashes(a) == data_hashes(b) || all_paired_equal {
        Verdict::Identical
    } else if coverage >= DERIVED_COVERAGE {
        Verdict::Derived
    } else {
        Verdict::Unrelated
    };
    let (similarity, log10_fpp) = if same_content {
        (1.0, log10_fpp.min(0.0))
    } else {
        (similarity, log10_fpp)
    };
    let vectors_a: BTreeMap<&str, u32> = vectors(a).collect();
    let vectors_equal = vectors(b)
        .filter(|(n, s)| vectors_a.get(n) == Some(s))
        .count();
    Comparison {
        format: 1,
        verdict,
        similarity,
        false_positive_probability: 10f64.powf(log10_fpp),
        log10_false_positive_probability: log10_fpp,
        same_content,
        coverage,
        tensors_matched: tensors.len(),
        tensors_significant: significant.len(),
        matrices_a: ma.len(),
        matrices_b: mb.len(),
        vectors_equal,
        tensors,
        ..Comparison::default()
    }
}

fn vectors(f: &Fingerprint) -> impl Iterator<Item = (&str, u32)> {
    f.tensors.iter().filter_map(|t| match t.sketch {
        TensorSketch::Vector { signature, .. } => Some((t.name.as_str(), signature)),
        _ => None,
    })
}

/// The data hashes of every tensor, sorted (names ignored): equal for renamed copies.
pub(crate) fn data_hashes(f: &Fingerprint) -> Vec<[u8; 32]> {
    let mut v: Vec<[u8; 32]> = f.tensors.iter().map(|t| t.data_hash).collect();
    v.sort_unstable();
    v
}

/// What identifies the tensors that are not sketched as matrices, sorted: their data hashes,
/// except for 2-D ones (too small to sketch, which may be stored transposed), whose shapes with
/// sorted dimensions stand in.
pub(crate) fn unsketched_hashes(f: &Fingerprint) -> Vec<[u8; 32]> {
    let mut v: Vec<[u8; 32]> = f
        .tensors
        .iter()
        .filter(|t| !matches!(t.sketch, TensorSketch::Matrix(_) | TensorSketch::Units(_)))
        .map(|t| {
            if t.shape.len() == 2 {
                let (x, y) = (t.shape[0].min(t.shape[1]), t.shape[0].max(t.shape[1]));
                let mut key = [0u8; 32];
                key[..8].copy_from_slice(&x.to_le_bytes());
                key[8..16].copy_from_slice(&y.to_le_bytes());
                key[16] = t.dtype.code();
                key
            } else {
                t.data_hash
            }
        })
        .collect();
    v.sort_unstable();
    v
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
