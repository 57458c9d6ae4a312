//! The row side's multiply-adds on AVX-512 VNNI: `vpdpwssd` multiplies pairs of int16 and adds
//! both products to an int32 lane, 32 multiply-adds per instruction. Fixed-point integers fit
//! int16 (`|q| <= 2^11`) and probe values int8, and every sum stays below 2^31
//! ([`crate::sketch::bits_for`]), so the non-saturating instruction gives exactly the integer
//! sums of the reference, in any order.
//!
//! Layout: the probe table is re-laid in pairs of indices, `[P[2k][p], P[2k+1][p]]` for the 64
//! probes (128 int16 per pair, an odd length padded with a zero index), and each row's
//! integers are read two at a time as one 32-bit word broadcast to every lane. Four rows share
//! each table load.

use crate::probe::{ProbeTable, K};

/// The probe table in index pairs (see the module docs).
pub(crate) fn pair_table(probes: &ProbeTable) -> Vec<i16> {
    let len = probes.len();
    let pairs = len.div_ceil(2);
    let mut out = vec![0i16; pairs * 2 * K];
    for t in 0..len {
        let (k, half) = (t / 2, t % 2);
        for p in 0..K {
            out[k * 2 * K + 2 * p + half] = i16::from(probes.values[t * K + p]);
        }
    }
    out
}

/// Whether this CPU runs [`rows4`].
pub(crate) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Responses of up to four rows of int16 integers (each of even length `2 × pairs`, zero
/// padded) against a pair table: `out[r][p] = Σ_t q_r[t] · P[t][p]`. Only call when
/// [`available`].
pub(crate) fn rows4(rows: &[&[i16]], table: &[i16], out: &mut [[i32; K]]) {
    assert!(rows.len() <= 4 && out.len() >= rows.len() && available());
    let pairs = table.len() / (2 * K);
    assert!(rows.iter().all(|r| r.len() >= 2 * pairs));
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the CPU has the features (checked above), and every load reads within `table`
    // (pairs × 128 int16) or within a row (at least 2 × pairs int16), as asserted.
    #[allow(unsafe_code)]
    unsafe {
        rows4_vnni(rows, table, pairs, out)
    }
}

/// Column units: `acc[n][p] += Σ_k (a_k[n] · P[2k][p] + b_k[n] · P[2k+1][p])` for up to four
/// pairs of rows, where `words[k][n]` holds the pair `(a_k[n], b_k[n])` of row integers as two
/// int16 (low half first) and `tables` the pairs' 128 int16 each ([`pair_table`] rows). Only
/// call when [`available`].
pub(crate) fn cols8(words: &[&[i32]], tables: &[i16], acc: &mut [[i32; K]]) {
    let pairs = words.len();
    assert!(pairs <= 4 && tables.len() == pairs * 2 * K && available());
    assert!(words.iter().all(|w| w.len() >= acc.len()));
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the CPU has the features (checked above); table loads stay within `tables`
    // (pairs × 128 int16) and word loads within each `words[k]` (at least `acc.len()`), as
    // asserted; accumulators are read and written through `acc`'s own rows.
    #[allow(unsafe_code)]
    unsafe {
        cols8_vnni(words, tables, acc)
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn cols8_vnni(words: &[&[i32]], tables: &[i16], acc: &mut [[i32; K]]) {
    use std::arch::x86_64::*;
    let pairs = words.len();
    let zero = _mm512_setzero_si512();
    let mut t = [[zero; 4]; 4];
    for (k, tk) in t.iter_mut().enumerate().take(pairs) {
        for (g, tg) in tk.iter_mut().enumerate() {
            *tg = _mm512_loadu_si512(tables.as_ptr().add(k * 2 * K + 32 * g).cast());
        }
    }
    for (n, a) in acc.iter_mut().enumerate() {
        let p = a.as_mut_ptr();
        let mut v = [
            _mm512_loadu_si512(p.cast()),
            _mm512_loadu_si512(p.add(16).cast()),
            _mm512_loadu_si512(p.add(32).cast()),
            _mm512_loadu_si512(p.add(48).cast()),
        ];
        for (w, tk) in words.iter().zip(&t) {
            let b = _mm512_set1_epi32(*w.get_unchecked(n));
            for (vg, tg) in v.iter_mut().zip(tk) {
                *vg = _mm512_dpwssd_epi32(*vg, b, *tg);
            }
        }
        for (g, vg) in v.iter().enumerate() {
            _mm512_storeu_si512(p.add(16 * g).cast(), *vg);
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn rows4_vnni(rows: &[&[i16]], table: &[i16], pairs: usize, out: &mut [[i32; K]]) {
    use std::arch::x86_64::*;
    let n = rows.len();
    let mut acc = [[_mm512_setzero_si512(); 4]; 4];
    let empty = [0i16; 2];
    let ptrs: [*const i16; 4] = std::array::from_fn(|r| {
        if r < n {
            rows[r].as_ptr()
        } else {
            empty.as_ptr()
        }
    });
    let step = [
        usize::from(n > 0),
        usize::from(n > 1),
        usize::from(n > 2),
        usize::from(n > 3),
    ];
    for k in 0..pairs {
        let t = table.as_ptr().add(k * 2 * K);
        let tv = [
            _mm512_loadu_si512(t.cast()),
            _mm512_loadu_si512(t.add(32).cast()),
            _mm512_loadu_si512(t.add(64).cast()),
            _mm512_loadu_si512(t.add(96).cast()),
        ];
        for r in 0..4 {
            // rows past `n` read their two zeros again and again
            let word = std::ptr::read_unaligned(ptrs[r].add(2 * k * step[r]).cast::<i32>());
            let b = _mm512_set1_epi32(word);
            for g in 0..4 {
                acc[r][g] = _mm512_dpwssd_epi32(acc[r][g], b, tv[g]);
            }
        }
    }
    for r in 0..n {
        for g in 0..4 {
            _mm512_storeu_si512(out[r][16 * g..].as_mut_ptr().cast(), acc[r][g]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vnni_rows_equal_plain_sums() {
        if !available() {
            println!("no AVX-512 VNNI here: nothing to check");
            return;
        }
        for len in [1usize, 2, 7, 64, 385] {
            let mut probes = ProbeTable::hashed(len);
            probes
                .values
                .iter_mut()
                .enumerate()
                .for_each(|(k, v)| *v = (crate::probe::probe_word(k as u32) % 255) as i8);
            let table = pair_table(&probes);
            let rows: Vec<Vec<i16>> = (0..3)
                .map(|r| {
                    let mut q: Vec<i16> = (0..len)
                        .map(|t| {
                            ((crate::probe::probe_word((r * 1000 + t) as u32) % 4097) as i16) - 2048
                        })
                        .collect();
                    q.resize(len.div_ceil(2) * 2, 0);
                    q
                })
                .collect();
            let refs: Vec<&[i16]> = rows.iter().map(|r| &r[..]).collect();
            let mut out = vec![[0i32; K]; 3];
            rows4(&refs, &table, &mut out);
            for (r, (q, got)) in rows.iter().zip(&out).enumerate() {
                for (p, &got) in got.iter().enumerate() {
                    let want: i32 = (0..len)
                        .map(|t| i32::from(q[t]) * i32::from(probes.values[t * K + p]))
                        .sum();
                    assert_eq!(got, want, "len {len} row {r} probe {p}");
                }
            }
            // The same sums with the rows as columns: three column units over `len` rows.
            let pairs = len.div_ceil(2);
            let mut acc = vec![[0i32; K]; 3];
            for k0 in (0..pairs).step_by(4) {
                let count = (pairs - k0).min(4);
                let words: Vec<Vec<i32>> = (k0..k0 + count)
                    .map(|k| {
                        rows.iter()
                            .map(|q| {
                                i32::from(q[2 * k] as u16) | (i32::from(q[2 * k + 1] as u16) << 16)
                            })
                            .collect()
                    })
                    .collect();
                let refs: Vec<&[i32]> = words.iter().map(|w| &w[..]).collect();
                cols8(&refs, &table[k0 * 2 * K..(k0 + count) * 2 * K], &mut acc);
            }
            assert_eq!(acc, out, "len {len}: columns equal rows");
        }
    }
}
