//! The probes: pseudo-random ±1 vectors from a counter-based hash, so they need no memory and
//! are the same on every backend. Index `t` of every probe comes from one 32-bit word
//! `probe_word(t)`; bit `p` of it is the sign of probe `p` at `t` (1 → +1, 0 → −1).

/// Number of probes, one per bit of a probe word: each neuron's signature has this many bits.
pub const PROBES: usize = 32;

/// Offset of the probe stream (the first 32 bits of SHA-256's initial state).
pub const PROBE_SEED: u32 = 0x6a09_e667;

/// The 32 probe signs at index `t`: `lowbias32(t × 0x9e3779b9 + PROBE_SEED)` in wrapping u32
/// arithmetic. lowbias32 is Chris Wellons' 2-round integer hash (xorshift-multiply).
#[inline]
pub fn probe_word(t: u32) -> u32 {
    let mut x = t.wrapping_mul(0x9e37_79b9).wrapping_add(PROBE_SEED);
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^= x >> 16;
    x
}

/// `Σ_{t < len} sign_p(t)` for every probe `p`: what centering subtracts.
pub fn probe_sums(len: u32) -> [i64; PROBES] {
    let mut sums = [0i64; PROBES];
    for t in 0..len {
        let w = probe_word(t);
        for (p, sum) in sums.iter_mut().enumerate() {
            *sum += if (w >> p) & 1 == 1 { 1 } else { -1 };
        }
    }
    sums
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_words_are_fixed_and_balanced() {
        // Pinned values: the probe stream is part of the format.
        // Pinned values (computed independently): the probe stream is part of the format.
        assert_eq!(probe_word(0), 0x7ba9_71df);
        assert_eq!(probe_word(1), 0xc48f_2bc4);
        assert_eq!(probe_word(12_345), 0x63d8_ad32);
        let ones: u32 = (0..100_000).map(|t| probe_word(t).count_ones()).sum();
        let mean = f64::from(ones) / 100_000.0;
        assert!((mean - 16.0).abs() < 0.05, "mean bits set {mean}");
        let sums = probe_sums(100_000);
        assert!(sums.iter().all(|s| s.abs() < 2_000), "{sums:?}");
    }
}

/// Probes per unit in format v2: each unit's signature has this many bits.
pub const K: usize = 64;

/// A table of probe values over an axis of length `len`: `values[t * K + p]` is probe `p` at
/// index `t`. Hashed tables hold ±1; anchor tables ([`crate::anchor`]) hold integers in
/// `[-127, 127]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProbeTable {
    pub values: Vec<i8>,
    /// Largest magnitude in the table (sets the fixed-point bits, [`crate::sketch::bits_for`]).
    pub max: u32,
}

impl ProbeTable {
    pub fn len(&self) -> usize {
        self.values.len() / K
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// ±1 probes of a hashed axis (one with no canonical meaning, e.g. a convolution's input
    /// channels): bit `p` of [`hash64`]`(t)`.
    pub fn hashed(len: usize) -> Self {
        let mut values = Vec::with_capacity(len * K);
        for t in 0..len {
            let w = hash64(t as u64);
            values.extend((0..K).map(|p| if (w >> p) & 1 == 1 { 1i8 } else { -1 }));
        }
        ProbeTable { values, max: 1 }
    }
}

/// SplitMix64's finaliser of `x + PROBE_SEED`: the 64 probe signs of hashed index `x`.
#[inline]
pub fn hash64(x: u64) -> u64 {
    let mut z = x
        .wrapping_add(u64::from(PROBE_SEED))
        .wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod v2_tests {
    use super::*;

    #[test]
    fn hashed_tables_are_fixed_and_balanced() {
        // Pinned: the hashed probes are part of format v2.
        assert_eq!(hash64(0), 0x8d1b_c625_075c_2f32);
        let t = ProbeTable::hashed(10_000);
        assert_eq!(t.len(), 10_000);
        for p in 0..K {
            let sum: i32 = (0..10_000).map(|i| i32::from(t.values[i * K + p])).sum();
            assert!(sum.abs() < 400, "probe {p}: {sum}");
        }
    }
}
