//! Fixed, untrained tensors: an STFT or DCT basis, a sinusoidal position table. Unrelated
//! models hold them alike, bit for bit or to the last bit of rounding, so their matching units
//! prove nothing about descent; compare counts them towards coverage but not towards the
//! false-positive probability.
//!
//! Such tensors are sampled sinusoids along one axis, which trained weights are not: along
//! that axis each value is predicted almost exactly from the two before it
//! (`x[t+1] = 2cos(ω)·x[t] − x[t−1]` for a pure sinusoid; a slowly varying window keeps it close).
//! A tensor is **structured** when the mean coefficient of determination `R²` of a least-squares
//! two-term linear predictor, over the first 512 elements of its first 64 rows or of its
//! first 64 columns of the canonical matrix (whichever is higher), is above 0.9; trained and
//! random weights stay near 0. Computed on the CPU in f64 in a fixed order (the same on every
//! backend).

use crate::dtype::{self, Dtype};

/// Rows (or columns) examined at most, and elements of each.
const SAMPLE: usize = 64;
const LENGTH: usize = 512;
/// Mean `R²` above which a tensor is structured.
pub const THRESHOLD: f64 = 0.9;

/// `R²` of the best predictor `x[t+1] ≈ a·x[t] + b·x[t−1]` (0 for sequences shorter than 8 or
/// without variance).
fn predictability(x: &[f64]) -> f64 {
    if x.len() < 8 {
        return 0.0;
    }
    let (mut s11, mut s22, mut s12, mut s01, mut s02, mut s00) =
        (0f64, 0f64, 0f64, 0f64, 0f64, 0f64);
    let mean = x.iter().sum::<f64>() / x.len() as f64;
    for w in x.windows(3) {
        let (p2, p1, y) = (w[0] - mean, w[1] - mean, w[2] - mean);
        s11 += p1 * p1;
        s22 += p2 * p2;
        s12 += p1 * p2;
        s01 += y * p1;
        s02 += y * p2;
        s00 += y * y;
    }
    let det = s11 * s22 - s12 * s12;
    if s00 <= 0.0 || det <= 1e-300 * s11.max(1.0) * s22.max(1.0) {
        return 0.0;
    }
    let a = (s01 * s22 - s02 * s12) / det;
    let b = (s02 * s11 - s01 * s12) / det;
    let explained = a * s01 + b * s02;
    (explained / s00).clamp(0.0, 1.0)
}

fn value(dtype: Dtype, bytes: &[u8], index: usize) -> f64 {
    let bits = dtype.bits_at(bytes, index);
    let finite = |x: f32| if x.is_finite() { f64::from(x) } else { 0.0 };
    match dtype {
        Dtype::F32 => return finite(f32::from_bits(bits)),
        Dtype::F16 => return finite(half::f16::from_bits(bits as u16).to_f32()),
        Dtype::BF16 => return finite(half::bf16::from_bits(bits as u16).to_f32()),
        _ => {}
    }
    match dtype::decode(dtype, bits) {
        dtype::Value::Finite { negative, mag, exp } => {
            let v = f64::from(mag) * 2f64.powi(exp);
            if negative {
                -v
            } else {
                v
            }
        }
        _ => 0.0,
    }
}

/// Whether the `rows × cols` row-major matrix looks like a fixed, analytic table.
pub fn is_structured(dtype: Dtype, bytes: &[u8], rows: usize, cols: usize) -> bool {
    let mean = |v: Vec<f64>| {
        if v.is_empty() {
            0.0
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    };
    let by_rows = mean(
        (0..rows.min(SAMPLE))
            .map(|i| {
                predictability(
                    &(0..cols.min(LENGTH))
                        .map(|j| value(dtype, bytes, i * cols + j))
                        .collect::<Vec<_>>(),
                )
            })
            .collect(),
    );
    let by_cols = mean(
        (0..cols.min(SAMPLE))
            .map(|j| {
                predictability(
                    &(0..rows.min(LENGTH))
                        .map(|i| value(dtype, bytes, i * cols + j))
                        .collect::<Vec<_>>(),
                )
            })
            .collect(),
    );
    by_rows.max(by_cols) > THRESHOLD
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f32s(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn bases_are_structured_and_weights_are_not() {
        let (n, k) = (256usize, 129usize);
        // A Hann-windowed STFT basis (cos and sin rows), as audio front-ends store it.
        let stft: Vec<f32> = (0..2 * k)
            .flat_map(|r| {
                (0..n).map(move |t| {
                    let w = 0.5 - 0.5 * (2.0 * std::f32::consts::PI * t as f32 / n as f32).cos();
                    let ph = 2.0 * std::f32::consts::PI * (r % k) as f32 * t as f32 / n as f32;
                    w * if r < k { ph.cos() } else { ph.sin() }
                })
            })
            .collect();
        assert!(is_structured(Dtype::F32, &f32s(&stft), 2 * k, n));
        // A sinusoidal position table (512 positions × 64).
        let pos: Vec<f32> = (0..512)
            .flat_map(|p| {
                (0..64).map(move |i| {
                    let f = (p as f32) / 10_000f32.powf((i / 2 * 2) as f32 / 64.0);
                    if i % 2 == 0 {
                        f.sin()
                    } else {
                        f.cos()
                    }
                })
            })
            .collect();
        assert!(is_structured(Dtype::F32, &f32s(&pos), 512, 64));
        // Pseudo-random weights.
        let mut x = 12345u64;
        let w: Vec<f32> = (0..300 * 200)
            .map(|_| {
                x = x
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                ((x >> 40) as f32 / (1u64 << 24) as f32) - 0.5
            })
            .collect();
        assert!(!is_structured(Dtype::F32, &f32s(&w), 300, 200));
    }
}
