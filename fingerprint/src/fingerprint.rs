//! Computing a model's fingerprint.

use crate::backend::Backend;
use crate::content;
use crate::dtype::Dtype;
use crate::sketch::{self, MatrixJob, MatrixSketch, MAX_SIDE, MIN_SIDE};
use crate::source::{Model, TensorRef};
use crate::Result;

/// The fingerprint of a model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    pub content_root: [u8; 32],
    /// Sorted by name.
    pub tensors: Vec<TensorFingerprint>,
}

/// One tensor's part of the fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorFingerprint {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<u64>,
    pub data_hash: [u8; 32],
    pub sketch: TensorSketch,
}

/// The behavioural part of a tensor's fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TensorSketch {
    /// Scalars, tensors with a matrix side below 16 or above 2^24, 1-D tensors longer than
    /// 2^24, and tensors of hash-only types (F64, wide integers, BOOL): identified by hash only.
    None,
    /// A 1-D tensor: one 32-bit signature.
    Vector { top: i32, bits: u32, signature: u32 },
    /// A tensor of 2 or more dimensions, as a `shape[0] × product(shape[1..])` matrix.
    Matrix(MatrixSketch),
}

impl Fingerprint {
    /// Number of elements over all tensors.
    pub fn parameters(&self) -> u64 {
        self.tensors
            .iter()
            .map(|t| t.shape.iter().fold(1u64, |a, &d| a.saturating_mul(d)))
            .fold(0u64, u64::saturating_add)
    }
}

/// How a tensor is viewed for sketching.
pub(crate) fn matrix_dims(shape: &[u64]) -> Option<(u32, u32)> {
    if shape.len() < 2 {
        return None;
    }
    let rows = shape[0];
    let cols = shape[1..].iter().try_fold(1u64, |a, &d| a.checked_mul(d))?;
    (rows >= MIN_SIDE && cols >= MIN_SIDE && rows <= MAX_SIDE && cols <= MAX_SIDE)
        .then_some((rows as u32, cols as u32))
}

/// Computes the fingerprint of `model` with `backend`; `progress` gets the bytes done so far.
pub fn fingerprint(
    model: &Model,
    backend: &dyn Backend,
    mut progress: impl FnMut(u64),
) -> Result<Fingerprint> {
    let mut done = 0u64;
    let mut tensors = Vec::with_capacity(model.tensors().len());
    for t in model.tensors() {
        tensors.push(tensor_fingerprint(model, t, backend)?);
        done += t.byte_len() as u64;
        progress(done);
    }
    let content_root =
        content::content_root(tensors.iter().map(|t| (t.name.as_str(), &t.data_hash)));
    Ok(Fingerprint {
        content_root,
        tensors,
    })
}

fn tensor_fingerprint(
    model: &Model,
    t: &TensorRef,
    backend: &dyn Backend,
) -> Result<TensorFingerprint> {
    let bytes = model.data(t);
    let data_hash = content::data_hash(t.dtype, &t.shape, bytes);
    let sketch = if !t.dtype.sketchable() {
        TensorSketch::None
    } else if let Some((rows, cols)) = matrix_dims(&t.shape) {
        let top = crate::backend::cpu::top_exponent(t.dtype, bytes);
        let bits = sketch::bits_for(u64::from(rows.max(cols)));
        let job = MatrixJob {
            dtype: t.dtype,
            bytes,
            rows,
            cols,
            top,
            bits,
        };
        let responses = backend.responses(&job)?;
        TensorSketch::Matrix(sketch::reduce(&job, &responses))
    } else if t.shape.len() == 1 && t.shape[0] >= 1 && t.shape[0] <= MAX_SIDE {
        let (top, bits, signature) = sketch::vector_signature(t.dtype, bytes, t.shape[0] as u32);
        TensorSketch::Vector {
            top,
            bits,
            signature,
        }
    } else {
        TensorSketch::None
    };
    Ok(TensorFingerprint {
        name: t.name.clone(),
        dtype: t.dtype,
        shape: t.shape.clone(),
        data_hash,
        sketch,
    })
}
