//! Model fingerprints: exact identity and behaviour of model weights, computed bit-identically
//! on the CPU and on GPUs (cubecl), and compared with a verdict.
//!
//! This crate reads safetensors (one file, a directory of shards or an index) and knows
//! nothing of chains or databases.
//!
//! # The format (version 1)
//!
//! A fingerprint has two parts, both specified exactly so others can reimplement them:
//!
//! 1. **Content root** ([`content`]): BLAKE3 over per-tensor hashes of (name, dtype, shape,
//!    bytes), independent of sharding, file layout and tensor order.
//! 2. **Behavioural sketch** ([`sketch`]): every tensor of two or more dimensions is viewed as
//!    a matrix `W` of `rows = shape[0]` by `cols = product(shape[1..])`.
//!    - Each element is read exactly as `±mag·2^exp` ([`dtype::decode`]) and converted to a
//!      fixed-point integer `q = round(w · 2^(B−1−top))` (half away from zero; NaN → 0,
//!      ±∞ → ±2^B), where `top = floor(log2 max|w|)` over finite elements and
//!      `B = min(11, 30 − ceil(log2 max(rows, cols)))`, so every response and sum `R`, `S`
//!      below stays under 2^31 and integer sums are exact in any order: this is what makes
//!      backends bit-identical. (The centring below needs 64- and 128-bit integers.)
//!    - Probes are ±1 vectors from a counter-based hash ([`probe::probe_word`]): bit `p` of
//!      `probe_word(t)` is the sign of probe `p` at index `t`, for 32 probes.
//!    - Responses: for each row `i` and probe `p`, `R[i][p] = Σ_j q[i][j]·sign_p(j)` and the
//!      row sum `S[i] = Σ_j q[i][j]`; for each column the same over rows.
//!    - Per-neuron signatures: row `i` is centred on its mean, `c[i][p] = cols·R[i][p] −
//!      S[i]·Σ_j sign_p(j)` (exact in i64), then on the mean over the rows,
//!      `d[i][p] = rows·c[i][p] − Σ_k c[k][p]` (exact in i128); bit `p` is `d[i][p] > 0`.
//!      Likewise for columns. A transposed matrix has its row and column signatures swapped.
//!    - Which tensors are sketched: of the types F32, F16, BF16, I8, U8, F8_E4M3 (OCP "fn": no
//!      infinities, only S.1111.111 is NaN), F8_E5M2 (IEEE-like), as matrices when both sides
//!      are between 16 and 2^24, as vectors (one `1 × len` row, centred on its mean only) when
//!      1-D of length at most 2^24; anything else (and F64, I16–U64, BOOL) is hashed only.
//!      I8/U8 are read as integers (exponent 0). `top = 0` when no element is finite and
//!      non-zero.
//!    - Tensor-level sketch: bit `p` is `Σ_i sign_p(i)·R[i][p] > 0`.
//!    - 1-D tensors get one centred 32-bit signature; the verdict uses only their data hashes.
//! 3. **Canonical encoding** ([`encoding`]) and its BLAKE3 commitment, the value that goes
//!    on-chain.
//!
//! # Speed and scaling
//!
//! Per element the sketch costs one decode, one fixed-point conversion and 64 integer
//! additions (32 probes for its row, 32 for its column); the content root adds one BLAKE3 pass.
//! The CPU backend runs both on all cores with the widest vector unit present (AVX-512, AVX2,
//! NEON); `scripts/bench-fingerprint.sh` measures it against `sha256sum` and `b3sum`.
//!
//! On a GPU each element is read once by the row kernel and once by the column kernel, and its
//! 64 additions run in registers with no shared memory or barriers, so the kernels are bound by
//! memory bandwidth: about `2 × bytes / bandwidth` on the device (roughly 2 ms per GB on a
//! 1.5 TB/s HBM part, where 64 int32 operations per 4-byte element stay below the ALU limit).
//! Weights that start in host memory must cross PCIe first (about 25 GB/s on PCIe 4.0 x16),
//! which then dominates: expect the upload bound, ~25 GB/s, unless the weights are already on
//! the device. Large matrices are processed in blocks of at most 128 MiB. On lavapipe (Vulkan on
//! the CPU) the same kernels run, correctly but at CPU speed.
//!
//! [`compare()`] matches tensors by shape (surviving renames and transposed storage) and gives
//! a verdict with a false-positive bound; see [`compare`](mod@compare) for the statistics.

pub mod backend;
pub mod compare;
pub mod content;
pub mod dtype;
pub mod encoding;
mod error;
mod fingerprint;
pub mod probe;
pub mod sketch;
pub mod source;

pub use backend::{Backend, BackendKind};
pub use compare::{compare, Comparison, Verdict};
pub use dtype::Dtype;
pub use error::{Error, Result};
pub use fingerprint::{fingerprint, Fingerprint, TensorFingerprint, TensorSketch};
pub use source::Model;

/// Lowercase hex with 0x.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(2 + bytes.len() * 2);
    s.push_str("0x");
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}
