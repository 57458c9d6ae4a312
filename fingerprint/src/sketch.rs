//! The behavioural sketch of one side of a matrix (format v2): exact integer responses of its
//! units to 64 probes (computed by a backend), reduced here on the CPU to one 64-bit signature
//! per unit.
//!
//! A matrix `rows × cols` has two sides: its rows as units, whose responses run over the
//! columns, and its columns as units, whose responses run over the rows. The probes of a side
//! are a [`ProbeTable`] over the axis the responses run along: the model's own token-anchored
//! residual probes when that axis is the residual stream ([`crate::anchor`]), hashed ±1 probes
//! otherwise. Unit `n`'s response to probe `p` is `R[n][p] = Σ_t q(n, t) · P[t][p]`, where
//! `q(n, t)` is the element's fixed-point integer at the unit's own scale ([`crate::scale`]).
//!
//! On a hashed side the responses are first centred on the unit's own mean
//! ([`centre_on_unit_means`]); anchored sides are not (a unit's mean along the residual
//! stream is not invariant under its rotations).
//!
//! Signature of unit `n`: its responses get a canonical sign `σ_n` (the sign of its response of
//! largest magnitude, the first such probe on ties; `+1` for zero), so that negating a unit's
//! weights (an exact change wherever the next layer can absorb the sign) leaves them unchanged;
//! then they are centred on the mean over the side's non-zero units, `d[n][p] = N·σ_n·R[n][p] −
//! Σ_m σ_m·R[m][p]`, which removes a direction every unit shares (an embedding's mean row, say)
//! that would otherwise make unrelated models look alike; bit `p` is `d[n][p] > 0`. A unit
//! whose responses are all zero (a zero neuron, width padding) gets signature 0, which compare
//! skips.

use crate::dtype::{self, Dtype};
use crate::probe::{ProbeTable, K};
use crate::scale::Axis;

/// Sides shorter than this get no sketch: too little information per unit.
pub const MIN_SIDE: u64 = 16;
/// Most units on a side.
pub const MAX_UNITS: u64 = 1 << 24;
/// Longest axis a side's responses run along (probe tables are `len × 64` bytes).
pub const MAX_LEN: u64 = 1 << 20;
/// Largest fixed-point magnitude bits.
pub const MAX_BITS: u32 = 11;

/// One side of a matrix to sketch.
#[derive(Debug, Clone, Copy)]
pub struct SideJob<'a> {
    pub dtype: Dtype,
    /// Little-endian element bytes, row-major, `rows × cols × dtype.size()` long.
    pub bytes: &'a [u8],
    pub rows: u32,
    pub cols: u32,
    /// Which units.
    pub axis: Axis,
    /// Each unit's scale ([`crate::scale::unit_tops`]).
    pub tops: &'a [i32],
    /// Fixed-point magnitude bits ([`bits_for`]).
    pub bits: u32,
    /// Probes over the other axis (`len()` entries).
    pub probes: &'a ProbeTable,
}

impl SideJob<'_> {
    pub fn units(&self) -> usize {
        match self.axis {
            Axis::Rows => self.rows as usize,
            Axis::Cols => self.cols as usize,
        }
    }

    /// Length of the axis the responses run along.
    pub fn len(&self) -> usize {
        match self.axis {
            Axis::Rows => self.cols as usize,
            Axis::Cols => self.rows as usize,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.units() == 0 || self.len() == 0
    }

    /// The fixed-point integer of element `t` of unit `n`, by the integer-only rule.
    #[inline]
    pub fn q(&self, n: usize, t: usize) -> i32 {
        let index = match self.axis {
            Axis::Rows => n * self.cols as usize + t,
            Axis::Cols => t * self.cols as usize + n,
        };
        dtype::fixed_point(
            dtype::decode(self.dtype, self.dtype.bits_at(self.bytes, index)),
            self.tops[n],
            self.bits,
        )
    }
}

/// Fixed-point bits for responses over `len` indices with probe values of magnitude at most
/// `max`: every sum of `len` products `|q| · |P| <= 2^bits · max` stays below 2^31, so integer
/// sums are exact in any order. `None` when not even one bit fits.
pub fn bits_for(len: u64, max: u32) -> Option<u32> {
    let ceil_log2 = |x: u64| 64 - (x.max(1) - 1).leading_zeros();
    let used = ceil_log2(len) + ceil_log2(u64::from(max.max(1)) + 1);
    let bits = MAX_BITS.min(30u32.saturating_sub(used));
    (bits >= 1).then_some(bits)
}

/// The definition of a side's responses (`units × 64`, unit-major), element by element with
/// the integer-only rule. Slow; the reference every backend is checked against.
pub fn responses_reference(job: &SideJob<'_>) -> Vec<i32> {
    let mut out = vec![0i32; job.units() * K];
    for n in 0..job.units() {
        let r = &mut out[n * K..(n + 1) * K];
        for t in 0..job.len() {
            let q = job.q(n, t);
            let probes = &job.probes.values[t * K..(t + 1) * K];
            for (r, &p) in r.iter_mut().zip(probes) {
                *r += q * i32::from(p);
            }
        }
    }
    out
}

/// Each unit's sum `S[n] = Σ_t q(n, t)` (exact, i64), by the integer-only rule.
pub fn unit_sums(job: &SideJob<'_>) -> Vec<i64> {
    use rayon::prelude::*;
    (0..job.units())
        .into_par_iter()
        .map(|n| (0..job.len()).map(|t| i64::from(job.q(n, t))).sum())
        .collect()
}

/// Responses of a hashed side centred on each unit's own mean: `len·R[n][p] − S[n]·Σ_t P[t][p]`.
/// Without it, a unit with a large mean (a smooth filter, say) responds to every probe by
/// `mean × Σ_t P[t][p]`, the same pattern in any model with such units.
pub fn centre_on_unit_means(responses: &[i32], sums: &[i64], probes: &ProbeTable) -> Vec<i64> {
    let len = probes.len() as i64;
    let totals: [i64; K] = std::array::from_fn(|p| {
        (0..probes.len())
            .map(|t| i64::from(probes.values[t * K + p]))
            .sum()
    });
    responses
        .chunks_exact(K)
        .zip(sums)
        .flat_map(|(r, &s)| (0..K).map(move |p| len * i64::from(r[p]) - s * totals[p]))
        .collect()
}

/// The signatures of a side from its (possibly centred) responses (`units × 64`); see the
/// module docs.
pub fn signatures(responses: &[i64]) -> Vec<u64> {
    let canonical: Vec<Option<[i64; K]>> = responses
        .chunks_exact(K)
        .map(|r| {
            let (mut best, mut at) = (0u64, 0usize);
            for (p, &v) in r.iter().enumerate() {
                if v.unsigned_abs() > best {
                    (best, at) = (v.unsigned_abs(), p);
                }
            }
            (best > 0).then(|| {
                let sign = if r[at] < 0 { -1 } else { 1 };
                std::array::from_fn(|p| sign * r[p])
            })
        })
        .collect();
    // |values| < 2^56 (centred: 2^20 · 2^31 · 2), units < 2^24: i128 holds every sum.
    let mut sum = [0i128; K];
    let mut count = 0i128;
    for c in canonical.iter().flatten() {
        sum.iter_mut()
            .zip(c)
            .for_each(|(s, &v)| *s += i128::from(v));
        count += 1;
    }
    canonical
        .iter()
        .map(|c| match c {
            None => 0,
            Some(c) => (0..K).fold(0u64, |sig, p| {
                sig | (u64::from(count * i128::from(c[p]) - sum[p] > 0) << p)
            }),
        })
        .collect()
}

/// What a side's units were probed with; units are only compared with units of the same kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Probes {
    /// Hashed ±1 probes ([`ProbeTable::hashed`]).
    Hashed,
    /// The model's residual anchors, its vocabulary rows weighted by their keys
    /// ([`crate::anchor`]).
    Keyed,
    /// The residual anchors with vocabulary rows keyed by id, whether or not the model's
    /// token strings are known; only the vocabulary tables' rows are probed with them, so
    /// that a copy stripped of its tokenizer (keyed by id) still meets the original there
    /// ([`crate::anchor`]).
    Ids,
    /// The residual anchors with vocabulary rows keyed by their content (norm ranks, then
    /// each row's signs on directions taken from them); only the vocabulary tables' rows are
    /// probed with them, so that a copy whose vocabulary was reordered and whose tokenizer
    /// is withheld still meets the original there ([`crate::anchor`]).
    Content,
}

impl Probes {
    pub const ALL: [Probes; 4] = [Probes::Hashed, Probes::Keyed, Probes::Ids, Probes::Content];

    /// Whether a side of this kind is the same for the same units however they are laid
    /// out (not so the twin sides of vocabulary rows, [`Probes::Ids`] and
    /// [`Probes::Content`]).
    pub fn layout_free(self) -> bool {
        matches!(self, Probes::Hashed | Probes::Keyed)
    }

    /// Whether the probes run along the residual stream.
    pub fn anchored(self) -> bool {
        self != Probes::Hashed
    }

    pub fn code(self) -> u8 {
        match self {
            Probes::Hashed => 0,
            Probes::Keyed => 1,
            Probes::Ids => 2,
            Probes::Content => 3,
        }
    }

    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.code() == code)
    }
}

/// The sketch of one side of a tensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitSide {
    /// Which units of the tensor's canonical matrix ([`crate::layout`]).
    pub axis: Axis,
    /// What probed the units.
    pub probes: Probes,
    /// Fixed-point bits used.
    pub bits: u32,
    /// One per unit, in unit order; 0 for a unit whose responses are all zero.
    pub signatures: Vec<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scale::unit_tops;

    #[test]
    fn bits_keep_sums_below_two_to_the_31() {
        assert_eq!(bits_for(384, 1), Some(11));
        assert_eq!(bits_for(384, 127), Some(11));
        assert_eq!(bits_for(4096, 127), Some(11));
        assert_eq!(bits_for(16384, 127), Some(9));
        assert_eq!(bits_for(1 << 20, 127), Some(3));
        assert_eq!(bits_for(1 << 30, 127), None);
        for (len, max) in [
            (1u64, 1u32),
            (7, 127),
            (1000, 127),
            (1 << 19, 1),
            (1 << 16, 127),
        ] {
            let bits = bits_for(len, max).unwrap();
            assert!((len * u64::from(max)) << bits < 1 << 31, "{len} {max}");
        }
    }

    fn f32s(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    fn sketch(v: &[f32], rows: u32, cols: u32, axis: Axis) -> Vec<u64> {
        let bytes = f32s(v);
        let tops = unit_tops(Dtype::F32, &bytes, rows as usize, cols as usize, axis);
        let len = if axis == Axis::Rows { cols } else { rows };
        let probes = ProbeTable::hashed(len as usize);
        let job = SideJob {
            dtype: Dtype::F32,
            bytes: &bytes,
            rows,
            cols,
            axis,
            tops: &tops,
            bits: bits_for(u64::from(len), 1).unwrap(),
            probes: &probes,
        };
        let r = responses_reference(&job);
        signatures(&centre_on_unit_means(&r, &unit_sums(&job), &probes))
    }

    #[test]
    fn units_keep_their_signature_under_permutation_sign_and_power_of_two_scaling() {
        let (m, n) = (24u32, 40u32);
        let w: Vec<f32> = (0..m * n)
            .map(|k| (((k * 2_654_435_761u32) >> 7) % 2001) as f32 / 1000.0 - 1.0)
            .collect();
        let original = sketch(&w, m, n, Axis::Rows);
        // Row i of the variant is row perm(i) of the original, negated or scaled by 2^±12.
        let perm: Vec<u32> = (0..m).map(|i| (i * 7 + 3) % m).collect();
        let mut v = vec![0f32; w.len()];
        for i in 0..m {
            let factor = match i % 3 {
                0 => -1.0,
                1 => 4096.0,
                _ => -1.0 / 4096.0,
            };
            for j in 0..n {
                v[(i * n + j) as usize] = w[(perm[i as usize] * n + j) as usize] * factor;
            }
        }
        let variant = sketch(&v, m, n, Axis::Rows);
        for i in 0..m as usize {
            assert_eq!(variant[i], original[perm[i] as usize], "row {i}");
        }
        assert!(original.iter().all(|&s| s != 0));
    }

    #[test]
    fn transposed_matrix_swaps_the_sides() {
        let (m, n) = (20u32, 33u32);
        let a: Vec<f32> = (0..m * n)
            .map(|k| ((k * 37 % 101) as f32 - 50.0) * 0.01)
            .collect();
        let at: Vec<f32> = (0..n)
            .flat_map(|j| (0..m).map(move |i| (i, j)))
            .map(|(i, j)| a[(i * n + j) as usize])
            .collect();
        assert_eq!(sketch(&a, m, n, Axis::Rows), sketch(&at, n, m, Axis::Cols));
        assert_eq!(sketch(&a, m, n, Axis::Cols), sketch(&at, n, m, Axis::Rows));
    }

    #[test]
    fn a_zero_unit_gets_signature_zero() {
        let mut w: Vec<f32> = (0..20 * 16).map(|k| ((k * 13 % 7) as f32) - 3.0).collect();
        w[16..32].iter_mut().for_each(|x| *x = 0.0);
        let s = sketch(&w, 20, 16, Axis::Rows);
        assert_eq!(s[1], 0);
        assert!(s.iter().enumerate().all(|(i, &x)| i == 1 || x != 0));
    }
}
