//! GPU backend: the responses of one side of a matrix computed by cubecl kernels (wgpu, CUDA).
//!
//! The kernel reproduces [`responses_reference`](crate::sketch::responses_reference) bit for
//! bit: every element is decoded and converted to its fixed-point integer at its unit's scale
//! with integer operations only (the same rule as [`crate::dtype::decode`] +
//! [`crate::dtype::fixed_point`], saturation included), multiplied by the probe values of its
//! index (a table uploaded with the job, four int8 values per word), and all sums are integer
//! sums that cannot overflow (see [`crate::sketch::bits_for`]), so the order in which the GPU
//! adds them does not matter. Products and sums are taken in wrapping u32 arithmetic, which
//! has the bits of the i32 ones, so no signed shift or conversion whose meaning could differ
//! between WGSL and CUDA C++ is needed.
//!
//! Design: each unit of the kernel owns one matrix unit (a row, resp. a column) and one chunk
//! of 32–256 consecutive indices along it: it reads and converts each element of its chunk
//! (8/16-bit elements are shifted out of the u32 words), reads the 64 probe values of the
//! index, and keeps 64 sums in registers, added atomically into the unit's 64 table entries
//! at the end. No shared memory and no barriers (lavapipe runs barriers slowly). Cubes of 256
//! units on a 2-D grid (at most 65 535 cubes per dimension). Large matrices are processed in
//! blocks (each upload and each output table at most 128 MiB and the device's largest
//! buffer), whose partial tables are added on the host.

use std::fmt;

use cubecl::prelude::*;

use crate::backend::{Backend, BackendKind};
use crate::dtype::Dtype;
use crate::probe::{ProbeTable, K};
use crate::scale::Axis;
use crate::sketch::SideJob;
use crate::{Error, Result};

// The kernel hard-codes 64 probes per unit.
const _: () = assert!(K == 64);

/// Units per cube.
const CUBE_UNITS: u32 = 256;
/// Units wanted per kernel launch (enough to fill a large GPU); sets the chunk length.
const TARGET_UNITS: usize = 1 << 16;
/// Bounds on the chunk length: longer chunks mean fewer atomic additions, shorter ones more
/// parallelism.
const MIN_CHUNK: usize = 32;
const MAX_CHUNK: usize = 256;
/// Upper bound on the bytes of one uploaded block and of one output table.
const MAX_BLOCK_BYTES: u64 = 128 << 20;

// ---------------------------------------------------------------------------------------------
// Kernel
// ---------------------------------------------------------------------------------------------

/// `fixed_point` of the finite value `(-1)^negative × mag × 2^exp` (`mag < 2^24`): rounded
/// half away from zero, saturated at `2^bits` when the value is at least `2^(top+1)`.
#[cube]
fn fixed_point_gpu(negative: bool, mag: u32, exp: i32, top: i32, bits: u32) -> i32 {
    let shift = exp - top + i32::cast_from(bits) - 1i32;
    // The value is at least 2^(top+1) exactly when mag >= 2^(bits - shift); with mag < 2^24
    // that cannot happen when bits - shift >= 24.
    let need = i32::cast_from(bits) - shift;
    let need_bits = u32::cast_from(i32::min(i32::max(need, 0i32), 31i32));
    let saturated = mag != 0u32 && (need < 0i32 || (need < 24i32 && mag >= (1u32 << need_bits)));
    // Right shift by k = -shift with rounding half away from zero; k >= 31 gives 0 for
    // mag < 2^24, like the reference's `k > 31 => 0` (and k = 31 rounds to 0 too).
    let k = u32::cast_from(i32::min(i32::max(0i32 - shift, 1i32), 31i32));
    let down = (mag + (1u32 << (k - 1u32))) >> k;
    // Only used unsaturated, where mag << shift < 2^bits.
    let up = mag << u32::cast_from(i32::min(i32::max(shift, 0i32), 31i32));
    let q = select(
        saturated,
        i32::cast_from(1u32 << bits),
        i32::cast_from(select(shift >= 0i32, up, down)),
    );
    select(negative, 0i32 - q, q)
}

/// The fixed-point integer of the raw element bits `raw` of dtype `dtype` (its code).
#[cube]
fn element_q(raw: u32, top: i32, bits: u32, #[comptime] dtype: u32) -> i32 {
    if comptime![dtype == 4u32 || dtype == 5u32] {
        integer_q(raw, top, bits, dtype)
    } else {
        float_q(raw, top, bits, dtype)
    }
}

/// I8 / U8: exact integers, exponent 0.
#[cube]
fn integer_q(raw: u32, top: i32, bits: u32, #[comptime] dtype: u32) -> i32 {
    let negative = if comptime![dtype == 4u32] {
        raw >= 128u32
    } else {
        false.runtime()
    };
    let mag = select(negative, 256u32 - raw, raw);
    fixed_point_gpu(negative, mag, 0i32, top, bits)
}

/// The float dtypes, as `decode` reads them.
#[cube]
fn float_q(raw: u32, top: i32, bits: u32, #[comptime] dtype: u32) -> i32 {
    // (exponent bits, mantissa bits, bias) as in `Dtype::float_layout`.
    let (ebits, mbits, bias) = comptime![match dtype {
        1 => (8u32, 23u32, 127i32),
        2 => (5u32, 10u32, 15i32),
        3 => (8u32, 7u32, 127i32),
        6 => (4u32, 3u32, 7i32),
        _ => (5u32, 2u32, 15i32),
    }];
    let sign_shift = comptime![ebits + mbits];
    let emask = comptime![(1u32 << ebits) - 1];
    let mmask = comptime![(1u32 << mbits) - 1];
    let implicit = comptime![1u32 << mbits];
    let sub_exp = comptime![1i32 - bias - mbits as i32];
    let exp_off = comptime![bias + mbits as i32];

    let negative = ((raw >> sign_shift) & 1u32) == 1u32;
    let e = (raw >> mbits) & emask;
    let m = raw & mmask;
    // E4M3 ("fn"): no infinities, only S.1111.111 is NaN.
    let nan = if comptime![dtype == 6u32] {
        e == emask && m == mmask
    } else {
        e == emask && m != 0u32
    };
    let inf = if comptime![dtype == 6u32] {
        false.runtime()
    } else {
        e == emask && m == 0u32
    };
    let normal = e != 0u32;
    let mag = select(normal, m | implicit, m);
    let exp = select(normal, i32::cast_from(e) - exp_off, sub_exp);
    let finite = fixed_point_gpu(negative, mag, exp, top, bits);
    let sat = i32::cast_from(1u32 << bits);
    let inf_q = select(negative, 0i32 - sat, sat);
    select(nan, 0i32, select(inf, inf_q, finite))
}

/// The raw bits of element `e` of the little-endian words.
#[cube]
fn element_bits(words: &Array<u32>, e: u32, #[comptime] size: u32) -> u32 {
    if comptime![size == 4u32] {
        words[e as usize]
    } else if comptime![size == 2u32] {
        (words[(e >> 1u32) as usize] >> ((e & 1u32) << 4u32)) & 0xffffu32
    } else {
        (words[(e >> 2u32) as usize] >> ((e & 3u32) << 3u32)) & 0xffu32
    }
}

/// Partial responses of unit chunks, added atomically into `out` (units × 64).
///
/// Kernel unit g handles matrix unit `n = g % units` over the indices `t` of chunk
/// `g / units` (`chunk` consecutive indices of the `len` it runs over): element `(n, t)` of
/// the block is at `n * n_stride + t * t_stride`, its scale is `tops[n]`, and its probe values
/// are bytes `64 t .. 64 t + 64` of `table` (four per word, little-endian, two's complement).
/// For row units: t = column (n_stride = block cols, t_stride = 1); for column units: t = row
/// (n_stride = 1, t_stride = block cols).
#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
fn chunk_responses(
    words: &Array<u32>,
    tops: &Array<i32>,
    table: &Array<u32>,
    out: &mut Array<Atomic<i32>>,
    units: u32,
    len: u32,
    n_stride: u32,
    t_stride: u32,
    chunk: u32,
    workers: u32,
    bits: u32,
    #[comptime] dtype: u32,
    #[comptime] size: u32,
) {
    let g = (CUBE_POS_X + CUBE_POS_Y * CUBE_COUNT_X) * CUBE_DIM_X + UNIT_POS_X;
    if g < workers {
        let n = g % units;
        let t0 = (g / units) * chunk;
        let t1 = u32::min(t0 + chunk, len);
        let top = tops[n as usize];
        // Wrapping u32 sums and products: the same bits as the exact i32 ones.
        let mut acc = Array::<u32>::new(64usize);
        #[unroll]
        for p in 0..64u32 {
            acc[p as usize] = 0u32;
        }
        let mut e = n * n_stride + t0 * t_stride;
        for t in t0..t1 {
            let q = u32::cast_from(element_q(element_bits(words, e, size), top, bits, dtype));
            #[unroll]
            for w in 0..16u32 {
                let word = table[(t * 16u32 + w) as usize];
                #[unroll]
                for b in 0..4u32 {
                    let v = (word >> (b * 8u32)) & 0xffu32;
                    // sign-extend the byte: v - 256 when its top bit is set
                    let value = v - ((v & 0x80u32) << 1u32);
                    acc[(w * 4u32 + b) as usize] += q * value;
                }
            }
            e += t_stride;
        }
        let base = n * 64u32;
        #[unroll]
        for p in 0..64u32 {
            out[(base + p) as usize].fetch_add(i32::cast_from(acc[p as usize]));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Host side
// ---------------------------------------------------------------------------------------------

/// A GPU backend on one device of runtime `R`.
pub struct GpuBackend<R: Runtime> {
    client: ComputeClient<R>,
    kind: BackendKind,
    /// Upper bound on the bytes of one uploaded block and of one output table.
    block_bytes: usize,
    /// Fixed indices per unit, or `None` for the automatic choice.
    chunk: Option<usize>,
}

/// The wgpu (Vulkan / Metal / DX12; lavapipe on CPU-only machines) backend.
pub type WgpuBackend = GpuBackend<cubecl::wgpu::WgpuRuntime>;
/// The CUDA backend (needs the NVIDIA driver at run time only).
pub type CudaBackend = GpuBackend<cubecl::cuda::CudaRuntime>;

impl WgpuBackend {
    /// The default wgpu device (the `CUBECL_WGPU_DEFAULT_DEVICE` environment variable can
    /// pick another), or an error when there is no adapter.
    pub fn wgpu() -> Result<Self> {
        Self::try_new(BackendKind::Wgpu, &Default::default())
    }
}

impl CudaBackend {
    /// CUDA device 0, or an error when there is no driver or device.
    pub fn cuda() -> Result<Self> {
        Self::try_new(BackendKind::Cuda, &Default::default())
    }
}

impl<R: Runtime> fmt::Debug for GpuBackend<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GpuBackend")
            .field("kind", &self.kind)
            .field("runtime", &self.name())
            .field("block_bytes", &self.block_bytes)
            .field("chunk", &self.chunk)
            .finish()
    }
}

impl<R: Runtime> Backend for GpuBackend<R> {
    fn kind(&self) -> BackendKind {
        self.kind
    }

    fn side_responses(&self, job: &SideJob<'_>) -> Result<Vec<i32>> {
        GpuBackend::side_responses(self, job)
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

impl<R: Runtime> GpuBackend<R> {
    /// Opens `device` of runtime `R`, reporting a missing device / adapter / driver as an
    /// error. (cubecl panics in that case, in its device thread; the panic is caught here, but
    /// the default panic hook still prints its message to stderr.) `kind` names the backend
    /// in errors and in [`Backend::kind`].
    pub fn try_new(kind: BackendKind, device: &R::Device) -> Result<Self> {
        let client = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| R::client(device)))
            .map_err(|e| Error::Gpu {
                backend: kind.as_str(),
                message: format!(
                    "no usable device (the runtime panicked while opening it; its message is on stderr): {}",
                    panic_message(e)
                ),
            })?;
        let backend = Self {
            client,
            kind,
            block_bytes: MAX_BLOCK_BYTES as usize,
            chunk: None,
        };
        // Run one tiny job: a driver that loads but cannot run kernels fails here, not later.
        let table = ProbeTable::hashed(1);
        let probe = SideJob {
            dtype: Dtype::U8,
            bytes: &[1],
            rows: 1,
            cols: 1,
            axis: Axis::Rows,
            tops: &[0],
            bits: 11,
            probes: &table,
        };
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            backend.side_responses(&probe)
        }))
        .map_err(|e| backend.error(format!("device unusable: {}", panic_message(e))))??;
        Ok(backend)
    }

    /// Fixes the number of indices each GPU unit sums over (default: automatic, 32 to 256 so
    /// that a block has about 65 536 units). For tests and tuning.
    pub fn with_chunk(mut self, chunk: usize) -> Self {
        self.chunk = Some(chunk.max(1));
        self
    }

    /// Caps the bytes of one uploaded block and one output table (the default is 128 MiB,
    /// further capped by the device's largest buffer). Small values only make it slower.
    pub fn with_block_bytes(mut self, bytes: usize) -> Self {
        self.block_bytes = bytes.max(K * 4);
        self
    }

    fn error(&self, message: String) -> Error {
        Error::Gpu {
            backend: self.kind.as_str(),
            message,
        }
    }

    /// The runtime's name for this client (e.g. `"wgpu<wgsl>"`, `"cuda"`).
    pub fn name(&self) -> &'static str {
        R::name(&self.client)
    }

    /// The responses of one side of a matrix, equal to `responses_reference(job)`.
    pub fn side_responses(&self, job: &SideJob<'_>) -> Result<Vec<i32>> {
        if !job.dtype.sketchable() {
            return Err(self.error(format!(
                "{} tensors are hashed, not sketched",
                job.dtype.name()
            )));
        }
        let (rows, cols) = (job.rows as usize, job.cols as usize);
        let size = job.dtype.size();
        let expected = rows
            .checked_mul(cols)
            .and_then(|n| n.checked_mul(size))
            .ok_or_else(|| self.error("matrix too large".into()))?;
        if job.bytes.len() != expected {
            return Err(self.error(format!(
                "{}×{} {} matrix needs {expected} bytes, got {}",
                rows,
                cols,
                job.dtype.name(),
                job.bytes.len()
            )));
        }
        if job.tops.len() != job.units() || job.probes.len() != job.len() {
            return Err(self.error(format!(
                "{} scales and {} probe rows for {} units over {} indices",
                job.tops.len(),
                job.probes.len(),
                job.units(),
                job.len()
            )));
        }
        let mut out = vec![0i32; job.units() * K];
        if rows == 0 || cols == 0 {
            return Ok(out);
        }

        // Block sizes: input block and output table each within `budget` bytes.
        let page = self.client.properties().memory.max_page_size;
        let budget = self
            .block_bytes
            .min(usize::try_from(page).unwrap_or(usize::MAX));
        let out_max = (budget / (K * 4)).max(1);
        let block_cols = cols.min(out_max);
        let block_rows = rows.min(out_max).min((budget / (block_cols * size)).max(1));

        for r0 in (0..rows).step_by(block_rows) {
            let br = block_rows.min(rows - r0);
            for c0 in (0..cols).step_by(block_cols) {
                let bc = block_cols.min(cols - c0);
                let (u0, part) = (
                    if job.axis == Axis::Rows { r0 } else { c0 },
                    self.block(job, r0, br, c0, bc, 1)?,
                );
                for (dst, src) in out[u0 * K..].iter_mut().zip(&part) {
                    *dst = dst.wrapping_add(*src);
                }
            }
        }
        Ok(out)
    }

    /// Seconds per pass of the kernel over `job` (a single block: at most the block budget)
    /// with its data already on the device: uploads once, launches `repeats` times, reads the
    /// result once. For benchmarks of the device-resident rate.
    pub fn time_resident(&self, job: &SideJob<'_>, repeats: usize) -> Result<f64> {
        let (rows, cols) = (job.rows as usize, job.cols as usize);
        if rows * cols * job.dtype.size() > self.block_bytes
            || rows.max(cols) * K * 4 > self.block_bytes
        {
            return Err(self.error("the job is larger than one block".into()));
        }
        self.block(job, 0, rows, 0, cols, 1)?; // compile and warm up
        let started = std::time::Instant::now();
        self.block(job, 0, rows, 0, cols, repeats.max(1))?;
        Ok(started.elapsed().as_secs_f64() / repeats.max(1) as f64)
    }

    /// Responses of the units of the block of rows `r0..r0+br`, columns `c0..c0+bc`,
    /// restricted to it (the kernel launched `launches` times, for timing: the sums then count
    /// every launch).
    // cubecl's launch is `unsafe` (raw buffer lengths, no bounds checks in the kernel): the
    // lengths passed are those of the buffers created here, and the kernel only indexes
    // elements < rows × cols of the block, `units` scales, `len × 16` table words and
    // `units × 64` outputs.
    #[allow(unsafe_code)]
    fn block(
        &self,
        job: &SideJob<'_>,
        r0: usize,
        br: usize,
        c0: usize,
        bc: usize,
        launches: usize,
    ) -> Result<Vec<i32>> {
        let size = job.dtype.size();
        let cols = job.cols as usize;
        // The block row-major as whole little-endian u32 words: whole rows are uploaded in
        // place when their length is a multiple of 4 bytes, anything else is gathered and
        // zero-padded.
        let whole = r0 * cols * size..(r0 + br) * cols * size;
        let gathered;
        let data: &[u8] = if bc == cols && whole.len() % 4 == 0 {
            &job.bytes[whole]
        } else {
            let mut bytes = Vec::with_capacity((br * bc * size).div_ceil(4) * 4);
            for i in r0..r0 + br {
                let start = (i * cols + c0) * size;
                bytes.extend_from_slice(&job.bytes[start..start + bc * size]);
            }
            bytes.resize(bytes.len().div_ceil(4) * 4, 0);
            gathered = bytes;
            &gathered
        };
        let n_words = data.len() / 4;
        // (units, len, n_stride, t_stride, first unit, first index)
        let (units, len, n_stride, t_stride, u0, t0) = match job.axis {
            Axis::Rows => (br, bc, bc, 1usize, r0, c0),
            Axis::Cols => (bc, br, 1usize, bc, c0, r0),
        };
        let tops: Vec<u8> = job.tops[u0..u0 + units]
            .iter()
            .flat_map(|t| t.to_le_bytes())
            .collect();
        let table: Vec<u8> = job.probes.values[t0 * K..(t0 + len) * K]
            .iter()
            .map(|&v| v as u8)
            .collect();

        let client = &self.client;
        let words = client.create_from_slice(data);
        let tops_h = client.create_from_slice(&tops);
        let table_h = client.create_from_slice(&table);
        let out_h = client.create_from_slice(&vec![0u8; units * K * 4]);

        let to_u32 = |v: usize| u32::try_from(v).map_err(|_| self.error("block too large".into()));
        let max_x = (client.properties().hardware.max_cube_count.0 as usize).clamp(1, 65_535);
        let auto = (units * len)
            .div_ceil(TARGET_UNITS)
            .clamp(MIN_CHUNK, MAX_CHUNK);
        let chunk = self.chunk.unwrap_or(auto).min(len);
        let workers = units * len.div_ceil(chunk);
        let cubes = workers.div_ceil(CUBE_UNITS as usize);
        let count_x = cubes.min(max_x);
        let count_y = cubes.div_ceil(count_x);
        for _ in 0..launches {
            unsafe {
                chunk_responses::launch_unchecked::<R>(
                    client,
                    CubeCount::Static(to_u32(count_x)?, to_u32(count_y)?, 1),
                    CubeDim::new_1d(CUBE_UNITS),
                    ArrayArg::from_raw_parts(words.clone(), n_words),
                    ArrayArg::from_raw_parts(tops_h.clone(), units),
                    ArrayArg::from_raw_parts(table_h.clone(), len * K / 4),
                    ArrayArg::from_raw_parts(out_h.clone(), units * K),
                    to_u32(units)?,
                    to_u32(len)?,
                    to_u32(n_stride)?,
                    to_u32(t_stride)?,
                    to_u32(chunk)?,
                    to_u32(workers)?,
                    job.bits,
                    u32::from(job.dtype.code()),
                    size as u32,
                );
            }
        }
        let bytes = client
            .read_one(out_h)
            .map_err(|e| self.error(format!("{e:?}")))?;
        Ok(bytes
            .chunks_exact(4)
            .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }
}

#[cfg(test)]
#[path = "gpu_tests.rs"]
mod gpu_tests;
