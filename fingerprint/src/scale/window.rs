//! A fast exact path for the scales of 16-bit float units (bf16, f16).
//!
//! A unit's 15/16 exponent quantile almost always lies within a few binades of its largest
//! exponent. So instead of a 256-bin histogram per unit (one scattered increment per element,
//! which was a fifth of a bf16 fingerprint's time), this counts, with compares that vectorise,
//! how many elements lie at or above each of the [`WINDOW`] exponent fields that end at the
//! unit's largest (subnormals count only as elements below it). When the quantile lies below
//! the window, it answers `None` and the caller builds the full histogram: the scale is the
//! same either way (the tests compare both on every kind of unit).

use crate::dtype::Dtype;

/// Exponent fields counted, ending at the unit's largest.
const WINDOW: usize = 8;

/// The bit layout of a 16-bit float type.
#[derive(Debug, Clone, Copy)]
pub(super) struct Half {
    mbits: u32,
    /// The exponent field's mask after shifting (all ones: infinity or NaN).
    mask: u16,
    bias: i32,
}

impl Half {
    pub(super) fn of(dtype: Dtype) -> Option<Self> {
        match dtype {
            Dtype::BF16 => Some(Half {
                mbits: 7,
                mask: 0xff,
                bias: 127,
            }),
            Dtype::F16 => Some(Half {
                mbits: 10,
                mask: 0x1f,
                bias: 15,
            }),
            _ => None,
        }
    }

    /// The exponent field of a normal element (finite, non-zero, not subnormal), else 0; and
    /// whether the element is counted at all (finite and non-zero: subnormals are, below
    /// every field of a window, which is all the window needs to know of them).
    #[inline(always)]
    fn field(self, b: u16) -> (u16, bool) {
        let f = (b >> self.mbits) & self.mask;
        let normal = f != 0 && f != self.mask;
        (
            if normal { f } else { 0 },
            f != self.mask && b & 0x7fff != 0,
        )
    }

    /// The lowest field of the window that ends at `max`.
    fn low(max: u16) -> u16 {
        max.saturating_sub(WINDOW as u16 - 1).max(1)
    }

    /// `rel > k` counts an element at or above field `lo + k`.
    #[inline(always)]
    fn rel(f: u16, lo: u16) -> u16 {
        if f >= lo {
            f - lo + 1
        } else {
            0
        }
    }

    /// The scale from the counts: `n` counted elements, `at_least[k]` of them at or above
    /// field `lo + k`; `None` when the quantile lies below the window.
    fn top(self, n: u32, lo: u16, at_least: &[u32; WINDOW]) -> Option<i32> {
        if n == 0 {
            return Some(0);
        }
        // The quantile field e is the smallest with at most n/16 elements above it.
        let r = n / 16;
        if at_least[0] <= r {
            return None;
        }
        let k = (1..WINDOW).find(|&k| at_least[k] <= r).unwrap_or(WINDOW);
        // e = lo + k − 1; the scale is its exponent plus one.
        Some(i32::from(lo) + k as i32 - self.bias)
    }
}

/// Elements per pass of [`row_top`] (on the stack; counted in u16 lanes).
const CHUNK: usize = 1024;

/// Little-endian 16-bit words of `bytes` into `out`.
#[inline(always)]
fn words(bytes: &[u8], out: &mut [u16]) {
    for (o, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        *o = u16::from_le_bytes([c[0], c[1]]);
    }
}

/// The scale of one contiguous unit (`bytes`: its elements), or `None`: see the module.
#[multiversion::multiversion(targets(
    "x86_64+avx512f+avx512bw+avx512vl",
    "x86_64+avx2",
    "aarch64+neon"
))]
pub(super) fn row_top(h: Half, bytes: &[u8]) -> Option<i32> {
    let mut w = [0u16; CHUNK];
    let (mut max, mut n) = (0u16, 0u32);
    for piece in bytes.chunks(2 * CHUNK) {
        let w = &mut w[..piece.len() / 2];
        words(piece, w);
        let mut count = 0u16;
        for &b in w.iter() {
            let (f, counted) = h.field(b);
            max = max.max(f);
            count += u16::from(counted);
        }
        n += u32::from(count);
    }
    let lo = Half::low(max);
    let mut at_least = [0u32; WINDOW];
    for piece in bytes.chunks(2 * CHUNK) {
        let w = &mut w[..piece.len() / 2];
        words(piece, w);
        for b in w.iter_mut() {
            *b = Half::rel(h.field(*b).0, lo);
        }
        // one plain counting pass per field: each vectorises
        for (k, t) in at_least.iter_mut().enumerate() {
            let c: u16 = w.iter().map(|&r| u16::from(r > k as u16)).sum();
            *t += u32::from(c);
        }
    }
    h.top(n, lo, &at_least)
}

/// The scales of columns `c0..c0 + width` of a row-major `rows × cols` matrix; `None` for
/// a column whose scale the window cannot give.
#[multiversion::multiversion(targets(
    "x86_64+avx512f+avx512bw+avx512vl",
    "x86_64+avx2",
    "aarch64+neon"
))]
pub(super) fn col_tops(
    h: Half,
    bytes: &[u8],
    rows: usize,
    cols: usize,
    c0: usize,
    width: usize,
) -> Vec<Option<i32>> {
    let row = |i: usize| &bytes[(i * cols + c0) * 2..(i * cols + c0 + width) * 2];
    let mut w = vec![0u16; width];
    let mut max = vec![0u16; width];
    let mut n = vec![0u32; width];
    for i in 0..rows {
        words(row(i), &mut w);
        for ((&b, m), n) in w.iter().zip(&mut max).zip(&mut n) {
            let (f, counted) = h.field(b);
            *m = (*m).max(f);
            *n += u32::from(counted);
        }
    }
    let lo: Vec<u16> = max.iter().map(|&m| Half::low(m)).collect();
    // at_least[k][j], and u16 partial counts (a lane holds 2^16 − 1)
    let mut at_least = vec![vec![0u32; width]; WINDOW];
    let mut acc = vec![vec![0u16; width]; WINDOW];
    for start in (0..rows).step_by(65_535) {
        for i in start..(start + 65_535).min(rows) {
            words(row(i), &mut w);
            for (b, &lo) in w.iter_mut().zip(&lo) {
                *b = Half::rel(h.field(*b).0, lo);
            }
            for (k, acc) in acc.iter_mut().enumerate() {
                acc.iter_mut()
                    .zip(&w)
                    .for_each(|(a, &r)| *a += u16::from(r > k as u16));
            }
        }
        for (t, a) in at_least.iter_mut().zip(acc.iter_mut()) {
            t.iter_mut()
                .zip(a.iter())
                .for_each(|(t, &a)| *t += u32::from(a));
            a.fill(0);
        }
    }
    (0..width)
        .map(|j| h.top(n[j], lo[j], &std::array::from_fn(|k| at_least[k][j])))
        .collect()
}
