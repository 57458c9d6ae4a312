// Tests of the GPU backend against `responses_reference`, on wgpu (lavapipe on CPU-only
// machines: `apt-get install mesa-vulkan-drivers`). Included from backend/gpu.rs as
//     #[cfg(test)]
//     #[path = "gpu_tests.rs"]
//     mod gpu_tests;

use super::*;
use crate::probe::probe_word;
use crate::scale::unit_tops;
use crate::sketch::{bits_for, responses_reference};
use std::sync::OnceLock;
use std::time::Instant;

/// One wgpu backend for all tests (device creation is slow; the client is thread-safe).
fn wgpu() -> &'static WgpuBackend {
    static BACKEND: OnceLock<WgpuBackend> = OnceLock::new();
    BACKEND.get_or_init(|| {
        WgpuBackend::wgpu().expect("a wgpu adapter (install mesa-vulkan-drivers for lavapipe)")
    })
}

/// Reproducible random bytes: the crate's own mixer over a counter.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(1);
        crate::probe::hash64(self.0)
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Elements whose exponent field lies in a window of `width` below the largest finite one, so
/// that (unlike uniform random bits, where a few huge values make everything else round to 0)
/// values of every rounding path appear; one in 16 is special (±0, ±inf, NaN, subnormal).
fn narrow_bytes(dtype: Dtype, n: usize, width: u32, rng: &mut Rng) -> Vec<u8> {
    let (ebits, mbits) = match dtype {
        Dtype::F32 => (8, 23),
        Dtype::F16 => (5, 10),
        Dtype::BF16 => (8, 7),
        Dtype::F8E4M3 => (4, 3),
        Dtype::F8E5M2 => (5, 2),
        _ => return rng.bytes(n),
    };
    let emax = (1u64 << ebits) - 2; // largest exponent field of finite values
    let mut out = Vec::with_capacity(n * dtype.size());
    for _ in 0..n {
        let r = rng.next();
        let sign = (r >> 63) << (ebits + mbits);
        let mant = (r >> 8) & ((1 << mbits) - 1);
        let bits = if r & 15 == 0 {
            let all_ones = ((1u64 << ebits) - 1) << mbits;
            match (r >> 4) & 7 {
                0 => sign,                                 // ±0
                1 => sign | all_ones,                      // ±inf (E4M3: 448-ish / NaN)
                2 => sign | all_ones | ((1 << mbits) - 1), // NaN
                3 => sign | all_ones | 1,                  // NaN (E4M3: finite)
                _ => sign | mant.max(1),                   // subnormal
            }
        } else {
            let e = emax - ((r >> 40) % u64::from(width)).min(emax - 1);
            sign | (e << mbits) | mant
        };
        out.extend_from_slice(&bits.to_le_bytes()[..dtype.size()]);
    }
    out
}

/// A probe table over `len` indices with values over the whole int8 range (like anchors).
fn table(len: usize, seed: u32) -> ProbeTable {
    let values: Vec<i8> = (0..len * K)
        .map(|k| (probe_word(k as u32 ^ seed) % 255) as i8)
        .collect();
    ProbeTable { values, max: 127 }
}

fn job_for<'a>(
    dtype: Dtype,
    rows: u32,
    cols: u32,
    bytes: &'a [u8],
    axis: Axis,
    tops: &'a [i32],
    probes: &'a ProbeTable,
) -> SideJob<'a> {
    let len = if axis == Axis::Rows { cols } else { rows };
    SideJob {
        dtype,
        bytes,
        rows,
        cols,
        axis,
        tops,
        bits: bits_for(u64::from(len), probes.max).unwrap(),
        probes,
    }
}

/// Both sides of a matrix, with each unit's scale, against the reference; then again with
/// every scale lowered by 3 (so that many elements saturate).
fn check_job(backend: &WgpuBackend, dtype: Dtype, rows: u32, cols: u32, bytes: &[u8]) {
    for axis in [Axis::Rows, Axis::Cols] {
        let tops = unit_tops(dtype, bytes, rows as usize, cols as usize, axis);
        let len = if axis == Axis::Rows { cols } else { rows };
        let probes = table(len as usize, rows ^ cols);
        for shift in [0, 3] {
            let tops: Vec<i32> = tops.iter().map(|t| t - shift).collect();
            let job = job_for(dtype, rows, cols, bytes, axis, &tops, &probes);
            let got = backend.side_responses(&job).expect("GPU responses");
            let want = responses_reference(&job);
            if got != want {
                let bad = got.iter().zip(&want).position(|(a, b)| a != b);
                panic!("{dtype:?} {rows}×{cols} {axis:?} top shift {shift}: first bad value at {bad:?}");
            }
        }
    }
}

const SHAPES: [(u32, u32); 8] = [
    (1, 1),
    (3, 5),
    (1, 67),
    (67, 1),
    (17, 257),
    (257, 17),
    (1000, 383),
    (384, 1537),
];

#[test]
fn matches_reference_on_random_bits() {
    let mut rng = Rng(1);
    for dtype in Dtype::ALL {
        for (rows, cols) in SHAPES {
            let bytes = rng.bytes(rows as usize * cols as usize * dtype.size());
            check_job(wgpu(), dtype, rows, cols, &bytes);
        }
    }
}

#[test]
fn matches_reference_on_narrow_exponents_and_specials() {
    let mut rng = Rng(2);
    for dtype in Dtype::ALL {
        for (rows, cols) in SHAPES {
            for width in [4, 40] {
                let bytes = narrow_bytes(dtype, rows as usize * cols as usize, width, &mut rng);
                check_job(wgpu(), dtype, rows, cols, &bytes);
            }
        }
    }
}

#[test]
fn special_matrices() {
    for dtype in Dtype::ALL {
        let n = 37 * 41;
        // All zeros, all 0xff bytes (NaN or -1/255/-tiny), all 0x7f bytes.
        for fill in [0u8, 0xff, 0x7f, 0x80, 0x01] {
            check_job(wgpu(), dtype, 37, 41, &vec![fill; n * dtype.size()]);
        }
    }
    // Half-unit rounding ties (away from zero), both signs: 1.0 sets top = 0; with bits = 11,
    // k × 2^-11 for odd k are exact ties.
    let mut v = vec![1.0f32];
    for k in 1..200 {
        v.push(k as f32 * (0.5f32 / 1024.0));
        v.push(-(k as f32) * (0.5f32 / 1024.0));
    }
    v.truncate(399);
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    check_job(wgpu(), Dtype::F32, 7, 57, &bytes);
    check_job(wgpu(), Dtype::F32, 57, 7, &bytes);
}

#[test]
fn blocked_matches_unblocked() {
    // A tiny block budget forces row and column blocking, and unaligned 1-byte blocks.
    let small = WgpuBackend::wgpu().unwrap().with_block_bytes(4096);
    let mut rng = Rng(3);
    for dtype in [Dtype::F32, Dtype::F16, Dtype::I8, Dtype::F8E4M3] {
        for (rows, cols) in [(1000, 383), (77, 1537), (1537, 5), (3, 5)] {
            let bytes = narrow_bytes(dtype, rows as usize * cols as usize, 20, &mut rng);
            check_job(&small, dtype, rows, cols, &bytes);
        }
    }
}

#[test]
fn chunk_lengths_do_not_matter() {
    let mut rng = Rng(7);
    for chunk in [1, 7, 32, 1000] {
        let backend = WgpuBackend::wgpu().unwrap().with_chunk(chunk);
        for dtype in [Dtype::F32, Dtype::BF16, Dtype::U8, Dtype::F8E5M2] {
            for (rows, cols) in [(1, 1), (3, 5), (17, 257), (257, 17), (100, 1001)] {
                let bytes = narrow_bytes(dtype, rows as usize * cols as usize, 20, &mut rng);
                check_job(&backend, dtype, rows, cols, &bytes);
            }
        }
    }
}

#[test]
fn large_matrices() {
    let mut rng = Rng(4);
    // An embedding-shaped matrix (more rows than a dispatch dimension holds at 1 row/cube).
    let (rows, cols) = (30522u32, 384u32);
    let bytes = narrow_bytes(Dtype::F16, rows as usize * cols as usize, 12, &mut rng);
    check_job(wgpu(), Dtype::F16, rows, cols, &bytes);
    // Long thin matrices (more than 65 535 cubes at one neuron per unit).
    let bytes = narrow_bytes(Dtype::BF16, 70_000 * 33, 12, &mut rng);
    check_job(wgpu(), Dtype::BF16, 70_000, 33, &bytes);
    check_job(wgpu(), Dtype::BF16, 33, 70_000, &bytes);
    check_job(wgpu(), Dtype::U8, 231_000, 1, &bytes[..231_000]);
}

#[test]
fn timing_2048_square_f32() {
    let mut rng = Rng(5);
    let n = 2048u32;
    let bytes = narrow_bytes(Dtype::F32, (n * n) as usize, 16, &mut rng);
    let tops = unit_tops(Dtype::F32, &bytes, n as usize, n as usize, Axis::Rows);
    let probes = table(n as usize, 9);
    let job = job_for(Dtype::F32, n, n, &bytes, Axis::Rows, &tops, &probes);
    let backend = wgpu();
    let t = Instant::now();
    let got = backend.side_responses(&job).unwrap();
    let gpu = t.elapsed();
    let t = Instant::now();
    let want = crate::backend::cpu::side_responses(&job);
    let cpu = t.elapsed();
    println!(
        "2048×2048 F32 rows: {} backend {gpu:?}; CPU backend {cpu:?}",
        backend.name()
    );
    // The CPU backend is checked against `responses_reference` by its own tests.
    assert!(got == want);
}

#[test]
fn backends_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<WgpuBackend>();
    check::<CudaBackend>();
    // Used from several threads at once.
    std::thread::scope(|s| {
        for seed in 0..3 {
            s.spawn(move || {
                let mut rng = Rng(100 + seed);
                let bytes = narrow_bytes(Dtype::F16, 300 * 200, 12, &mut rng);
                check_job(wgpu(), Dtype::F16, 300, 200, &bytes);
            });
        }
    });
}

#[test]
fn missing_cuda_is_an_error() {
    // No NVIDIA driver here: opening it must fail with an error, not abort. (On a machine with
    // CUDA this instead checks that the CUDA backend matches.)
    match CudaBackend::cuda() {
        Err(e) => println!("CUDA unavailable: {e}"),
        Ok(cuda) => {
            let mut rng = Rng(6);
            for dtype in Dtype::ALL {
                let bytes = narrow_bytes(dtype, 1000 * 383, 20, &mut rng);
                for axis in [Axis::Rows, Axis::Cols] {
                    let tops = unit_tops(dtype, &bytes, 1000, 383, axis);
                    let probes = table(if axis == Axis::Rows { 383 } else { 1000 }, 3);
                    let job = job_for(dtype, 1000, 383, &bytes, axis, &tops, &probes);
                    assert_eq!(
                        cuda.side_responses(&job).unwrap(),
                        responses_reference(&job)
                    );
                }
            }
        }
    }
}
