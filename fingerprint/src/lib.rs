//! Model fingerprints: exact identity and behaviour of model weights, computed bit-identically
//! on the CPU and on GPUs (cubecl), and compared with a verdict.
//!
//! This crate reads safetensors (one file, a directory of shards or an index) and the
//! tokenizer beside them, and knows nothing of chains or databases.
//!
//! # The format (version 2)
//!
//! A fingerprint has three parts, each specified exactly so others can reimplement them:
//!
//! 1. **Content root** ([`content`]): BLAKE3 over per-tensor hashes of (name, dtype, shape,
//!    bytes), independent of sharding, file layout and tensor order.
//! 2. **Behavioural sketch**: per tensor, unit sets: every row and/or column of its canonical
//!    matrix ([`layout`]) gets a 64-bit signature ([`sketch`]) from its exact integer
//!    responses to 64 probes. Elements are read exactly ([`dtype::decode`]) and converted to
//!    fixed point at the unit's own scale, a quantile of its exponents ([`scale`]), so
//!    outliers saturate and power-of-two rescaling changes nothing. The probes of an axis that
//!    is the residual stream are the model's own **anchors** ([`anchor`]): mixtures of token
//!    embedding rows keyed by token string ([`tokens`]), which move with any permutation,
//!    signed permutation or rotation of the residual stream, so responses do not change; a
//!    matrix that reads a norm's output is probed with the norm's gain folded in ([`norms`]),
//!    so folding gains (the first step of a rotation) changes nothing either. Other
//!    axes get hashed ±1 probes ([`probe`]). Signatures are sign-canonical and centred across
//!    the side's units. All sums are exact integers below 2^31, in any order: this is what
//!    makes the backends bit-identical.
//! 3. **Canonical encoding** ([`encoding`]) and its BLAKE3 commitment, the value that goes
//!    on-chain.
//!
//! [`compare()`] looks units up as multisets (multi-index hashing), which makes permutations,
//! padding, pruning, fused or split tensors, renames and layer reordering irrelevant, and
//! gives a verdict with a union-bound false-positive probability and an explanation; see
//! [`compare`](mod@compare). Version 1 fingerprints are still read and compared ([`v1`]).
//!
//! # Speed
//!
//! Per element a side costs one decode, one fixed-point conversion and 64 integer
//! multiply-adds; the content root adds one BLAKE3 pass. The CPU backend runs on all cores
//! with the widest vector unit present; on a GPU each unit of a kernel sums a chunk of one
//! row or column against a probe table uploaded with the job. `scripts/bench-fingerprint.sh`
//! measures the CPU against `sha256sum` and `b3sum`, and `scripts/bench-gpu.sh` a CUDA GPU.

pub mod anchor;
pub mod backend;
pub mod compare;
pub mod content;
pub mod dtype;
pub mod encoding;
mod error;
mod fingerprint;
mod gguf;
pub mod layout;
pub mod norms;
pub mod packed;
pub mod probe;
pub mod scale;
pub mod sketch;
pub mod source;
pub mod structure;
pub mod tokens;
pub mod v1;

pub use backend::{Backend, BackendKind};
pub use compare::{compare, Comparison, Verdict};
pub use dtype::Dtype;
pub use error::{Error, Result};
pub use fingerprint::{fingerprint, AnchorInfo, Fingerprint, TensorFingerprint, TensorSketch};
pub use source::{Model, TensorData};
pub use tokens::Tokens;
/// Lowercase hex with 0x.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(2 + bytes.len() * 2);
    s.push_str("0x");
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}
