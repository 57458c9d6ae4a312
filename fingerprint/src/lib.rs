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
//!      `B = min(11, 30 − ceil(log2 max(rows, cols)))`, so every sum below stays under 2^31
//!      and integer sums are exact in any order: this is what makes backends bit-identical.
//!    - Probes are ±1 vectors from a counter-based hash ([`probe::probe_word`]): bit `p` of
//!      `probe_word(t)` is the sign of probe `p` at index `t`, for 32 probes.
//!    - Responses: for each row `i` and probe `p`, `R[i][p] = Σ_j q[i][j]·sign_p(j)` and the
//!      row sum `S[i] = Σ_j q[i][j]`; for each column the same over rows.
//!    - Per-neuron signatures: bit `p` of row `i` is `cols·R[i][p] − S[i]·Σ_j sign_p(j) > 0`
//!      (the response of the row minus its mean), likewise for columns. A transposed matrix
//!      has its row and column signatures swapped.
//!    - Tensor-level sketch: bit `p` is `Σ_i sign_p(i)·R[i][p] > 0`.
//!    - 1-D tensors get one centred 32-bit signature, kept apart from the verdict.
//! 3. **Canonical encoding** ([`encoding`]) and its BLAKE3 commitment, the value that goes
//!    on-chain.
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
