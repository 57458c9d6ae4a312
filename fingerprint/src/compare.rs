//! Comparing two fingerprints: which units of one model reappear in the other, through which
//! transformation, how unlikely that is for unrelated models, and a verdict.
//!
//! Format v2 (v1 fingerprints are compared by [`crate::v1`]):
//! - **Units as multisets.** Every unit (a neuron, a token row, a position) has a 64-bit
//!   signature that does not depend on where the unit sits, so the smaller model's units (the
//!   *query* model, by sketched parameters) are looked up among *all* the other model's units
//!   of the same kind ([`Probes`]), whatever tensor, index, name or shape holds them.
//!   Permuted hidden units, heads and head dimensions, renamed, fused, split or sharded
//!   tensors, dropped, duplicated or reordered layers, added or removed units and vocabulary
//!   rows all leave the units themselves to be found. Signatures are sign-canonical, and a
//!   complemented signature counts as well (a unit negated where canonicalisation was
//!   unstable).
//! - **A match** is a unit of the other model within a Hamming distance `r` of the query
//!   unit (or of its complement); `r ≤ 7` is the largest radius at which a unit of unrelated
//!   models matches by chance with probability at most [`TARGET_CHANCE`] ([`radius_for`]), so
//!   it shrinks as the other model grows (7 for a few thousand units, 5 for MiniLM's 59 k,
//!   3 for a 7B model's 1.6 M). The lookup is multi-index hashing: the 64 bits in 4 blocks of
//!   16, every stored unit indexed by each block, and a query probing each block and its 16
//!   one-bit neighbours, which finds every unit within distance 7 (pigeonhole: 4 blocks with 2
//!   or more differing bits each would make 8). Identical signatures within a query tensor
//!   side are looked up once (duplicates would otherwise count one chance match many times),
//!   and at most [`MAX_QUERIES`] per side, evenly spread.
//! - **Significance of a side.** For unrelated models (signatures independent and uniform) a
//!   query unit has a chance match with probability `p0 = 2·M·P(Bin(64, ½) ≤ r)` among `M`
//!   stored units, inflated by [`NULL_INFLATION`] for the structure real models share (see
//!   there). With `k` of `N` distinct queried units matched, `P(Bin(N, p0) ≥ k) ≤
//!   exp(−N·KL(k/N ‖ p0))` (Chernoff). Sides and layers of one model are not independent, so
//!   nothing is multiplied across them: the model's **false-positive probability** is the union
//!   bound, the number of query sides times the smallest side bound. A side is significant
//!   when its bound times that number is below 10⁻⁶.
//! - **Units in place.** A heavy fine-tune or a merge can move units farther than the lookup
//!   radius while leaving them at their indices: each query side is also compared index by
//!   index with the other model's sides of the same size and kind (the same name first, at
//!   most 16), by the mean per-unit share of equal bits `s̄` over `N` units, bounded by
//!   Hoeffding's `exp(−2N(s̄ − ½)²)` times the candidates tried. A side's bound is the better of
//!   the two statistics.
//! - **Shared tensors.** A tensor whose exact bytes (data hash) appear in both models, or that
//!   looks like a fixed analytic table in either ([`crate::structure`]: an STFT basis matches
//!   its twin in an unrelated model to the last bit of rounding), is reported as shared. It counts towards coverage (a copy is derived) but not towards the
//!   false-positive probability: fixed, untrained tensors (STFT or DCT bases, position tables)
//!   are bit-identical in unrelated models, so exact equality alone proves nothing.
//! - **Verdict**: *identical* when the content roots are equal, the data hashes are equal as
//!   multisets (a renamed copy), or every side's signatures are equal as multisets and the
//!   unsketched tensors are equal (a renamed, transposed or re-laid-out copy); *derived* when
//!   significant sides and shared tensors cover at least half the query model's sketched
//!   parameters and either the false-positive probability is below 10⁻⁶ or shared tensors
//!   alone cover half; *unrelated* otherwise. **Similarity** is the parameter-weighted share
//!   of the query model's units found in the other model, each found unit counting
//!   `1 − distance/32` (so an exact copy scores 1 and a fine-tune a little less), or for units
//!   compared in place `2s̄ − 1`.
//! - **Explanation**: per query tensor, the other model's tensor most of its matches fall in,
//!   and how they got there: aligned (same unit indices) or permuted, sign-flipped units,
//!   resized (another unit count: padding, pruning, added tokens), transposed, renamed, spread
//!   over several tensors (fused or split), or identical bytes.
//!
//! Cost: building the index is linear in the stored units; each query probes 8 buckets (4
//! blocks × 2 for the complement; 136 when the radius is above 3, for models of up to a few
//! hundred thousand units) of about `M / 65536` entries each. `cargo run --release -p
//! fingerprint --example compare_bench` times a Llama-7B-shaped pair (2.17 M units).

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

use crate::fingerprint::{Fingerprint, TensorSketch};
use crate::probe::K;
use crate::scale::Axis;
use crate::sketch::Probes;
use crate::v1;

/// Largest Hamming distance (of the signature or its complement) the index finds; the radius
/// that counts as a match is at most this ([`radius_for`]).
pub const RADIUS: u32 = 7;
/// The radius of a lookup is the largest that keeps the chance-match rate per query unit
/// (analytic, times [`NULL_INFLATION`]) at most this.
pub const TARGET_CHANCE: f64 = 1e-3;
/// Distinct units looked up per query side at most.
pub const MAX_QUERIES: usize = 4096;
/// A side (and a comparison) is significant below this false-positive bound.
pub const SIGNIFICANCE: f64 = 1e-6;
/// Share of the query model's sketched parameters that must be covered for *derived*.
pub const DERIVED_COVERAGE: f64 = 0.5;
/// Factor on the analytic chance-match rate: real, unrelated models share structure that
/// uniform random signatures do not, so their units collide more often than `p0`. In the real
/// negative set (Silero VAD v5 and v6, independently trained, identical shapes) a few of the
/// first convolution's 128 filters, which read the same STFT features, agree within distance
/// 7 between the two releases: convergent first-layer features, as in vision models. The
/// factor is the smallest power of ten with which no pair of the negative set claims a
/// false-positive probability below 10⁻³ (the calibration test fails otherwise).
pub const NULL_INFLATION: f64 = 1e4;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Identical,
    Derived,
    #[default]
    Unrelated,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Identical => "identical",
            Verdict::Derived => "derived",
            Verdict::Unrelated => "unrelated",
        }
    }
}

/// What one tensor of model A matched in model B.
#[derive(Debug, Clone, Serialize, Default)]
pub struct TensorMatch {
    /// The tensor in model A (the first argument of [`compare`]).
    pub a: String,
    /// The tensor in model B most of its matched units are in.
    pub b: String,
    pub transposed: bool,
    /// v1: share of equal signature bits; v2: share of queried units matched.
    pub agreement: f64,
    pub similarity: f64,
    /// log10 of the false-positive bound of this tensor (its best side), union over sides
    /// included.
    pub log10_false_positive: f64,
    pub significant: bool,
    pub parameters: u64,
    /// v2: distinct units looked up and matched (best side).
    pub units_queried: usize,
    pub units_matched: usize,
    /// v2: how the units got where they are ("permuted", "sign-flipped 48%", "resized 1536 →
    /// 1537", "transposed", "renamed", "spread over 3 tensors", "identical bytes").
    pub transforms: Vec<String>,
}

/// The result of [`compare`].
#[derive(Debug, Clone, Serialize, Default)]
pub struct Comparison {
    /// Format of the fingerprints compared (1 or 2; 0 when they differ).
    pub format: u16,
    pub verdict: Verdict,
    pub similarity: f64,
    pub false_positive_probability: f64,
    pub log10_false_positive_probability: f64,
    pub same_content: bool,
    /// Share of the query model's sketched parameters in significant or shared tensors.
    pub coverage: f64,
    pub tensors_matched: usize,
    pub tensors_significant: usize,
    pub matrices_a: usize,
    pub matrices_b: usize,
    /// v1 only: 1-D tensors whose signatures are equal in both (by name).
    pub vectors_equal: usize,
    /// v2: which model's units were looked up in the other's ("a" or "b").
    pub query: String,
    /// v2: tensors whose exact bytes both models hold.
    pub tensors_shared: usize,
    /// One line per notable fact, for people.
    pub explanation: Vec<String>,
    pub tensors: Vec<TensorMatch>,
}

/// Compares two fingerprints: `a` against `b`.
pub fn compare(a: &Fingerprint, b: &Fingerprint) -> Comparison {
    match (a.version, b.version) {
        (1, 1) => v1::compare(a, b),
        (2, 2) => compare_v2(a, b),
        _ => {
            let same_content = a.content_root == b.content_root;
            let identical = same_content || v1::data_hashes(a) == v1::data_hashes(b);
            Comparison {
                format: 0,
                verdict: if identical {
                    Verdict::Identical
                } else {
                    Verdict::Unrelated
                },
                similarity: if identical { 1.0 } else { 0.0 },
                false_positive_probability: 1.0,
                same_content,
                explanation: vec![format!(
                    "the fingerprints have different formats (v{} and v{}): only exact \
                     identity can be decided; recompute the older one",
                    a.version, b.version
                )],
                ..Comparison::default()
            }
        }
    }
}

/// log10 of `P(Bin(64, ½) <= radius)`, doubled for complements: the chance that a random
/// signature lies within `radius` of a given one or of its complement.
fn log10_unit_chance(radius: u32) -> f64 {
    let mut total = 0f64;
    let mut c = 1f64;
    for i in 0..=radius as usize {
        if i > 0 {
            c = c * (K - i + 1) as f64 / i as f64;
        }
        total += c;
    }
    (2.0 * total).log10() - K as f64 * 2f64.log10()
}

/// The match radius for lookups among `stored` units and the chance-match rate per query unit
/// at that radius: the largest radius up to [`RADIUS`] whose rate is at most
/// [`TARGET_CHANCE`] (0 when even exact matches are more likely than that).
pub fn radius_for(stored: usize) -> (u32, f64) {
    let rate = |r| (10f64.powf(log10_unit_chance(r)) * stored as f64 * NULL_INFLATION).min(1.0);
    let radius = (0..=RADIUS)
        .rev()
        .find(|&r| rate(r) <= TARGET_CHANCE)
        .unwrap_or(0);
    (radius, rate(radius))
}

/// `log10 P(Bin(n, p) >= k)` by the Chernoff bound (0 when `k/n <= p`).
fn log10_binomial_tail(n: usize, k: usize, p: f64) -> f64 {
    if n == 0 || k == 0 {
        return 0.0;
    }
    let (n, x) = (n as f64, k as f64 / n as f64);
    if x <= p || p >= 1.0 {
        return 0.0;
    }
    let p = p.max(1e-300);
    let kl = if x >= 1.0 {
        -p.ln()
    } else {
        x * (x / p).ln() + (1.0 - x) * ((1.0 - x) / (1.0 - p)).ln()
    };
    (-n * kl / std::f64::consts::LN_10).min(0.0)
}

/// One side of one tensor: its units.
struct SideRef<'a> {
    tensor: usize,
    axis: Axis,
    probes: Probes,
    signatures: &'a [u64],
}

fn sides(f: &Fingerprint) -> Vec<SideRef<'_>> {
    let mut out = Vec::new();
    for (k, t) in f.tensors.iter().enumerate() {
        if let TensorSketch::Units(sides) = &t.sketch {
            for s in sides {
                out.push(SideRef {
                    tensor: k,
                    axis: s.axis,
                    probes: s.probes,
                    signatures: &s.signatures,
                });
            }
        }
    }
    out
}

fn sketched_parameters(f: &Fingerprint) -> u64 {
    f.tensors
        .iter()
        .filter(|t| matches!(t.sketch, TensorSketch::Units(_)))
        .map(|t| crate::fingerprint::matrix_len(&t.shape))
        .sum()
}

/// Multi-index hash of a set of signatures.
struct Index {
    /// (side, unit) of each signature.
    owners: Vec<(u32, u32)>,
    /// Per 16-bit block: bucket offsets (65 537), and each bucket's entries as signatures
    /// (scanned in order: no random access per candidate) and ids.
    offsets: [Vec<u32>; 4],
    bucket_signatures: [Vec<u64>; 4],
    entries: [Vec<u32>; 4],
}

impl Index {
    fn build(items: Vec<(u64, u32, u32)>) -> Self {
        let signatures: Vec<u64> = items.iter().map(|i| i.0).collect();
        let owners = items.iter().map(|i| (i.1, i.2)).collect();
        let block = |s: u64, b: usize| ((s >> (16 * b)) & 0xffff) as usize;
        let mut offsets: [Vec<u32>; 4] = Default::default();
        let mut entries: [Vec<u32>; 4] = Default::default();
        let mut bucket_signatures: [Vec<u64>; 4] = Default::default();
        for b in 0..4 {
            let mut counts = vec![0u32; 65_537];
            for &s in &signatures {
                counts[block(s, b) + 1] += 1;
            }
            for i in 1..counts.len() {
                counts[i] += counts[i - 1];
            }
            let mut fill = counts.clone();
            let mut e = vec![0u32; signatures.len()];
            for (id, &s) in signatures.iter().enumerate() {
                let k = block(s, b);
                e[fill[k] as usize] = id as u32;
                fill[k] += 1;
            }
            offsets[b] = counts;
            bucket_signatures[b] = e.iter().map(|&id| signatures[id as usize]).collect();
            entries[b] = e;
        }
        Index {
            owners,
            offsets,
            bucket_signatures,
            entries,
        }
    }

    fn len(&self) -> usize {
        self.owners.len()
    }

    /// [`Index::nearest`] of every query, visiting the buckets in key order, block by block
    /// (bucket after bucket through memory rather than at random: the lookups of a large
    /// model are bound by memory latency otherwise).
    fn nearest_all(&self, queries: &[u64], radius: u32) -> Vec<Option<(u32, usize)>> {
        // (distance << 32 | id), u64::MAX for none: ordering these is ordering (distance, id)
        let mut best = vec![u64::MAX; queries.len()];
        let flips = if radius <= 3 { 0 } else { 16 };
        for b in 0..4 {
            let key = |q: u64| ((q >> (16 * b)) & 0xffff) as usize;
            // the queries laid out in key order, so buckets and queries are both read in order
            let order = order_by_key(queries.len(), |i| key(queries[i]));
            let sorted: Vec<u64> = order.iter().map(|&i| queries[i as usize]).collect();
            let mut found = vec![u64::MAX; sorted.len()];
            for (&q, slot) in sorted.iter().zip(found.iter_mut()) {
                for flip in 0..=flips {
                    let k = if flip == flips {
                        key(q)
                    } else {
                        key(q) ^ (1 << flip)
                    };
                    let (lo, hi) = (self.offsets[b][k] as usize, self.offsets[b][k + 1] as usize);
                    // the first closest in a bucket; entries of one key are in id order, so
                    // ties go to the smaller id
                    if let Some((d, j)) = scan_bucket(&self.bucket_signatures[b][lo..hi], q, radius)
                    {
                        let packed = (u64::from(d) << 32) | u64::from(self.entries[b][lo + j]);
                        *slot = (*slot).min(packed);
                    }
                }
            }
            for (&i, &f) in order.iter().zip(&found) {
                let slot = &mut best[i as usize];
                *slot = (*slot).min(f);
            }
        }
        best.into_iter()
            .map(|p| (p != u64::MAX).then_some(((p >> 32) as u32, (p & 0xffff_ffff) as usize)))
            .collect()
    }

    /// The closest stored signature within `radius` (at most [`RADIUS`]) of `q`: (distance,
    /// entry).
    #[cfg(test)]
    fn nearest(&self, q: u64, radius: u32) -> Option<(u32, usize)> {
        let mut best: Option<(u32, usize)> = None;
        // Within distance 3 one of the four blocks is equal (four differing blocks would
        // make 4); within 7 one differs in at most one bit.
        let flips = if radius <= 3 { 0 } else { 16 };
        for b in 0..4 {
            let key = ((q >> (16 * b)) & 0xffff) as usize;
            for flip in 0..=flips {
                let k = if flip == flips {
                    key
                } else {
                    key ^ (1 << flip)
                };
                let (lo, hi) = (self.offsets[b][k] as usize, self.offsets[b][k + 1] as usize);
                for (k, &sig) in self.bucket_signatures[b][lo..hi].iter().enumerate() {
                    let d = (sig ^ q).count_ones();
                    if d <= radius {
                        let id = self.entries[b][lo + k] as usize;
                        if best.is_none_or(|(bd, bi)| (d, id) < (bd, bi)) {
                            best = Some((d, id));
                        }
                    }
                }
            }
        }
        best
    }
}

/// What the lookups of one query side found.
#[derive(Default)]
struct SideResult {
    queried: usize,
    matched: usize,
    /// Σ over matched units of `1 − distance/32`: 1 per exact match, less for drifted ones.
    closeness: f64,
    complemented: usize,
    aligned: usize,
    /// Matches per (other model's) side.
    by_side: HashMap<u32, usize>,
    log10_bound: f64,
    /// The positional comparison: the other side of the same size and kind whose units agree
    /// best index by index, its mean bit agreement, and its bound (candidates tried included).
    positional: Option<(u32, f64, f64)>,
}

/// Candidates scored per side by the positional comparison at most.
const MAX_POSITIONAL: usize = 16;

/// Equal bits of two unit lists index by index, over units non-zero in both, and how many.
#[multiversion::multiversion(targets("x86_64+avx512f+avx512vpopcntdq", "x86_64+popcnt"))]
fn equal_bits(x: &[u64], y: &[u64]) -> (u64, u64) {
    let (mut equal, mut n) = (0u64, 0u64);
    for (&a, &b) in x.iter().zip(y) {
        let both = u64::from(a != 0 && b != 0);
        equal += both * u64::from(K as u32 - (a ^ b).count_ones());
        n += both;
    }
    (equal, n)
}

/// The closest entry of a bucket within `radius` of `q`: (distance, position).
#[multiversion::multiversion(targets("x86_64+popcnt"))]
fn scan_bucket(signatures: &[u64], q: u64, radius: u32) -> Option<(u32, usize)> {
    let mut best: Option<(u32, usize)> = None;
    for (j, &sig) in signatures.iter().enumerate() {
        let d = (sig ^ q).count_ones();
        if d <= radius && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, j));
        }
    }
    best
}

/// `0..n` ordered by the 16-bit key of each element (a counting sort, stable).
fn order_by_key(n: usize, key: impl Fn(usize) -> usize) -> Vec<u32> {
    let mut counts = vec![0u32; 65_537];
    for i in 0..n {
        counts[key(i) + 1] += 1;
    }
    for i in 1..counts.len() {
        counts[i] += counts[i - 1];
    }
    let mut order = vec![0u32; n];
    for i in 0..n {
        let k = key(i);
        order[counts[k] as usize] = i as u32;
        counts[k] += 1;
    }
    order
}

/// Mean per-unit bit agreement of two equally long unit lists, index by index, over units
/// non-zero in both, and Hoeffding's bound on it for unrelated units (log10):
/// `P(s̄ ≥ s) ≤ exp(−2N(s − ½)²)`.
fn positional(x: &[u64], y: &[u64]) -> (f64, f64) {
    let (equal, n) = equal_bits(x, y);
    if n == 0 {
        return (0.5, 0.0);
    }
    let mean = equal as f64 / (n as f64 * K as f64);
    let excess = (mean - 0.5).max(0.0);
    (
        mean,
        -2.0 * n as f64 * excess * excess / std::f64::consts::LN_10,
    )
}

fn compare_v2(a: &Fingerprint, b: &Fingerprint) -> Comparison {
    let same_content = a.content_root == b.content_root;
    let (params_a, params_b) = (sketched_parameters(a), sketched_parameters(b));
    // The smaller model's units are looked up in the larger's.
    let swapped = params_b < params_a;
    let (q, s) = if swapped { (b, a) } else { (a, b) };
    let (q_sides, s_sides) = (sides(q), sides(s));

    let mut indexes: HashMap<Probes, Index> = HashMap::new();
    for kind in Probes::ALL {
        let items: Vec<(u64, u32, u32)> = s_sides
            .iter()
            .enumerate()
            .filter(|(_, side)| side.probes == kind)
            .flat_map(|(k, side)| {
                side.signatures
                    .iter()
                    .enumerate()
                    .filter(|(_, &sig)| sig != 0)
                    .map(move |(u, &sig)| (sig, k as u32, u as u32))
            })
            .collect();
        indexes.insert(kind, Index::build(items));
    }

    // The units each side looks up (distinct, evenly spread), then every lookup of one kind
    // in a single batch: sorted by key, the batch sweeps the index's buckets in order.
    let chosen: Vec<Vec<(usize, u64)>> = q_sides
        .iter()
        .map(|side| {
            let mut seen = HashSet::new();
            let distinct: Vec<(usize, u64)> = side
                .signatures
                .iter()
                .enumerate()
                .filter(|(_, &sig)| sig != 0 && seen.insert(sig))
                .map(|(u, &sig)| (u, sig))
                .collect();
            let step = distinct.len().div_ceil(MAX_QUERIES).max(1);
            distinct.into_iter().step_by(step).collect()
        })
        .collect();
    let mut found: Vec<Vec<Option<(u32, usize)>>> = vec![Vec::new(); q_sides.len()];
    for kind in Probes::ALL {
        let members: Vec<usize> = (0..q_sides.len())
            .filter(|&k| q_sides[k].probes == kind)
            .collect();
        let keys: Vec<u64> = members
            .iter()
            .flat_map(|&k| chosen[k].iter().flat_map(|&(_, sig)| [sig, !sig]))
            .collect();
        let index = &indexes[&kind];
        let mut all = index
            .nearest_all(&keys, radius_for(index.len()).0)
            .into_iter();
        for &k in &members {
            found[k] = all.by_ref().take(2 * chosen[k].len()).collect();
        }
    }
    let results: Vec<SideResult> = q_sides
        .iter()
        .enumerate()
        .map(|(side_index, side)| {
            let index = &indexes[&side.probes];
            let (_, p0) = radius_for(index.len());
            let mut r = SideResult::default();
            let chosen = &chosen[side_index];
            let found = &found[side_index];
            for (k, &(unit, _)) in chosen.iter().enumerate() {
                r.queried += 1;
                let (direct, flipped) = (found[2 * k], found[2 * k + 1]);
                let hit = match (direct, flipped) {
                    (Some(d), Some(f)) if f.0 < d.0 => Some((f, true)),
                    (Some(d), _) => Some((d, false)),
                    (None, Some(f)) => Some((f, true)),
                    (None, None) => None,
                };
                if let Some(((distance, id), complemented)) = hit {
                    r.matched += 1;
                    r.closeness += 1.0 - f64::from(distance) / 32.0;
                    r.complemented += usize::from(complemented);
                    let (other, other_unit) = index.owners[id];
                    *r.by_side.entry(other).or_default() += 1;
                    r.aligned += usize::from(other_unit as usize == unit);
                }
            }
            r.log10_bound = log10_binomial_tail(r.queried, r.matched, p0);
            // Units that stayed where they were but drifted too far for a lookup (a heavy
            // fine-tune, a merge) still agree index by index with their old selves.
            let tensor_name = &q.tensors[side.tensor].name;
            let mut candidates: Vec<usize> = s_sides
                .iter()
                .enumerate()
                .filter(|(_, o)| {
                    o.probes == side.probes && o.signatures.len() == side.signatures.len()
                })
                .map(|(k, _)| k)
                .collect();
            candidates.sort_by_key(|&k| (&s.tensors[s_sides[k].tensor].name != tensor_name, k));
            candidates.truncate(MAX_POSITIONAL);
            let tried = (candidates.len().max(1) as f64).log10();
            r.positional = candidates
                .iter()
                .map(|&k| {
                    let (mean, bound) = positional(side.signatures, s_sides[k].signatures);
                    (k as u32, mean, (bound + tried).min(0.0))
                })
                .min_by(|x, y| x.2.total_cmp(&y.2).then(y.1.total_cmp(&x.1)));
            r
        })
        .collect();
    let union = (q_sides.len().max(1) as f64).log10();

    // Tensors whose exact bytes the other model holds.
    let other_hashes: HashSet<[u8; 32]> = s.tensors.iter().map(|t| t.data_hash).collect();

    // Per query tensor: its best side.
    let mut per_tensor: BTreeMap<usize, usize> = BTreeMap::new();
    for (k, side) in q_sides.iter().enumerate() {
        let better = |old: usize| {
            let (x, y) = (&results[k], &results[old]);
            (x.log10_bound, -(x.matched as f64)) < (y.log10_bound, -(y.matched as f64))
        };
        match per_tensor.get(&side.tensor) {
            Some(&old) if !better(old) => {}
            _ => {
                per_tensor.insert(side.tensor, k);
            }
        }
    }
    let mut tensors = Vec::new();
    let (mut covered, mut shared_params, mut found) = (0u64, 0u64, 0f64);
    let mut best_log10 = 0f64;
    let mut shared_count = 0usize;
    for (&t, &k) in &per_tensor {
        let (tensor, side, r) = (&q.tensors[t], &q_sides[k], &results[k]);
        let parameters = crate::fingerprint::matrix_len(&tensor.shape);
        let positional = r.positional.filter(|p| p.2 < r.log10_bound);
        // A fixed, analytic table (in either model) proves nothing when it matches.
        let fixed = tensor.structured
            || r.by_side
                .keys()
                .chain(positional.iter().map(|p| &p.0))
                .any(|&o| s.tensors[s_sides[o as usize].tensor].structured);
        let identical = other_hashes.contains(&tensor.data_hash);
        let log10 = (positional.map_or(r.log10_bound, |p| p.2) + union).min(0.0);
        let significant = log10 < SIGNIFICANCE.log10();
        let share = match positional {
            // agreement ½ is chance, 1 is equality
            Some((_, mean, _)) => (2.0 * mean - 1.0).max(0.0),
            None if r.queried == 0 => 0.0,
            None => r.closeness / r.queried as f64,
        };
        if identical {
            shared_count += 1;
            shared_params += parameters;
        }
        if !identical && !fixed {
            best_log10 = best_log10.min(log10);
        }
        if identical || significant {
            covered += parameters;
        }
        found += share * parameters as f64;
        if r.matched == 0 && !identical && !significant {
            continue;
        }
        let mut ranked: Vec<(u32, usize)> = r.by_side.iter().map(|(&s, &n)| (s, n)).collect();
        ranked.sort_by(|x, y| y.1.cmp(&x.1).then(x.0.cmp(&y.0)));
        if let Some((other, _, _)) = positional {
            ranked = vec![(other, r.matched)];
        }
        let (other_name, transposed, mut transforms) = match ranked.first() {
            Some(&(o, _)) => {
                let os = &s_sides[o as usize];
                let ot = &s.tensors[os.tensor];
                let mut tr = Vec::new();
                if let Some((_, mean, _)) = positional {
                    tr.push(format!("in place, {:.0}% of bits agree", 100.0 * mean));
                } else if r.aligned * 2 < r.matched {
                    tr.push("permuted".to_string());
                }
                if r.complemented > 0 {
                    tr.push(format!(
                        "sign-flipped {:.0}%",
                        100.0 * r.complemented as f64 / r.matched as f64
                    ));
                }
                if os.signatures.len() != side.signatures.len() {
                    tr.push(format!(
                        "resized {} → {}",
                        side.signatures.len(),
                        os.signatures.len()
                    ));
                }
                let transposed = tensor.shape.len() == 2 && os.axis != side.axis;
                if transposed {
                    tr.push("transposed".into());
                }
                if ot.name != tensor.name {
                    tr.push("renamed".into());
                }
                let spread = ranked
                    .iter()
                    .filter(|(_, n)| *n > 0 && n * 5 >= r.matched)
                    .count();
                if spread > 1 {
                    tr.push(format!("spread over {spread} tensors"));
                }
                (ot.name.clone(), transposed, tr)
            }
            None => (String::new(), false, Vec::new()),
        };
        if identical {
            transforms.push("identical bytes".into());
        }
        if fixed {
            transforms.push("fixed table (not evidence)".into());
        }
        tensors.push(TensorMatch {
            a: tensor.name.clone(),
            b: other_name,
            transposed,
            agreement: share,
            similarity: share,
            log10_false_positive: log10,
            significant,
            parameters,
            units_queried: r.queried,
            units_matched: r.matched,

            transforms,
        });
    }
    if swapped {
        for t in &mut tensors {
            std::mem::swap(&mut t.a, &mut t.b);
        }
        tensors.sort_by(|x, y| x.a.cmp(&y.a));
    }
    let total = sketched_parameters(q).max(1) as f64;
    let coverage = (covered as f64 / total).min(1.0);
    let shared_coverage = shared_params as f64 / total;
    let similarity = (found / total).min(1.0);
    let log10_fpp = best_log10.min(0.0);

    // Every unit set equal as a multiset: the same weights, laid out anew. The vocabulary
    // rows' twin sides are left out: reordering the vocabulary or a few rows more changes
    // them, and their tensors' keyed sides say whether the rows are the same.
    let all_sides_equal = {
        let key = |f: &Fingerprint| {
            let mut v: Vec<(Probes, Vec<u64>)> = sides(f)
                .iter()
                .filter(|s| s.probes.layout_free())
                .map(|s| {
                    let mut sig = s.signatures.to_vec();
                    sig.sort_unstable();
                    (s.probes, sig)
                })
                .collect();
            v.sort();
            v
        };
        let units = |sides: &[SideRef<'_>]| {
            sides
                .iter()
                .filter(|s| s.probes.layout_free())
                .map(|s| s.signatures.len())
                .sum::<usize>()
        };
        !q_sides.is_empty()
            && q_sides.len() == s_sides.len()
            && units(&q_sides) == units(&s_sides)
            && key(a) == key(b)
            && v1::unsketched_hashes(a) == v1::unsketched_hashes(b)
    };
    let verdict = if same_content || v1::data_hashes(a) == v1::data_hashes(b) || all_sides_equal {
        Verdict::Identical
    } else if coverage >= DERIVED_COVERAGE
        && (log10_fpp < SIGNIFICANCE.log10() || shared_coverage >= DERIVED_COVERAGE)
    {
        Verdict::Derived
    } else {
        Verdict::Unrelated
    };
    let similarity = if verdict == Verdict::Identical {
        1.0
    } else {
        similarity
    };
    let significant = tensors.iter().filter(|t| t.significant).count();
    let query = if swapped { "b" } else { "a" };
    let mut explanation = vec![format!(
        "looked up the units of model {query} ({} sketched tensors) among model {}'s; {} of \
         its tensors have units there, {significant} significantly; {shared_count} tensors \
         are byte-identical in both",
        per_tensor.len(),
        if swapped { "a" } else { "b" },
        tensors.len()
    )];
    let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
    for t in tensors.iter().filter(|t| t.significant) {
        for tr in &t.transforms {
            let word = tr.split(' ').next().unwrap_or(tr);
            *reasons.entry(word).or_default() += 1;
        }
    }
    if !reasons.is_empty() {
        explanation.push(format!(
            "significant tensors were: {}",
            reasons
                .iter()
                .map(|(r, n)| format!("{r} ({n})"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    match (a.anchors.as_ref(), b.anchors.as_ref()) {
        (Some(x), Some(y)) if x.keying != y.keying => explanation.push(
            "the residual anchors were keyed differently (one by token strings, one by row \
             ids, or by other vocabularies): only the vocabulary rows, also probed with \
             anchors keyed by row id, can match; fingerprint both with the same tokenizer \
             to compare every layer"
                .into(),
        ),
        (Some(_), None) | (None, Some(_)) => explanation.push(
            "only one model has a vocabulary table: its residual units were anchored, the \
             other's hashed, and the two kinds cannot match"
                .into(),
        ),
        _ => {}
    }
    Comparison {
        format: 2,
        verdict,
        similarity,
        false_positive_probability: 10f64.powf(log10_fpp),
        log10_false_positive_probability: log10_fpp,
        same_content,
        coverage,
        tensors_matched: tensors.len(),
        tensors_significant: significant,
        matrices_a: per_tensor_count(a),
        matrices_b: per_tensor_count(b),
        vectors_equal: 0,
        query: query.into(),
        tensors_shared: shared_count,
        explanation,
        tensors,
    }
}

fn per_tensor_count(f: &Fingerprint) -> usize {
    f.tensors
        .iter()
        .filter(|t| matches!(t.sketch, TensorSketch::Units(_)))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chance_and_tail_arithmetic() {
        // P(Bin(64, 1/2) <= 7) = 3.819e-11 by direct summation; doubled for complements.
        let l = log10_unit_chance(7);
        assert!((l - (2.0 * 3.819e-11f64).log10()).abs() < 0.001, "{l}");
        assert_eq!(log10_binomial_tail(100, 0, 0.01), 0.0);
        assert_eq!(log10_binomial_tail(100, 1, 0.01), 0.0);
        // 50 of 100 at p = 0.01: the Chernoff bound is 10^-70.1
        let t = log10_binomial_tail(100, 50, 0.01);
        assert!((t + 70.115).abs() < 0.01, "{t}");
        // Radii shrink as the stored units grow, keeping the chance rate under the target.
        let (small, rate) = radius_for(1_500);
        let (large, _) = radius_for(1_600_000);
        assert!(
            small > large && rate <= TARGET_CHANCE,
            "{small} {large} {rate}"
        );
    }

    #[test]
    fn the_index_finds_every_signature_within_the_radius() {
        let mut x = 0x1234_5678_9abc_def0u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let stored: Vec<u64> = (0..5000).map(|_| next()).collect();
        let index = Index::build(
            stored
                .iter()
                .enumerate()
                .map(|(i, &s)| (s, 0, i as u32))
                .collect(),
        );
        for radius in [3, RADIUS] {
            for (i, &s) in stored.iter().enumerate().take(500) {
                // flip `d` bits spread over the word
                let d = i % 9;
                let mut q = s;
                for k in 0..d {
                    q ^= 1 << ((k * 23 + i) % 64);
                }
                let found = index.nearest(q, radius);
                assert_eq!(found, index.nearest_all(&[q], radius)[0]);
                let distance = (q ^ s).count_ones();
                if distance <= radius {
                    assert_eq!(
                        found.map(|f| f.1),
                        Some(i),
                        "distance {distance} radius {radius}"
                    );
                } else {
                    assert!(found.is_none_or(|f| f.1 != i || f.0 <= radius));
                }
            }
        }
    }
}
