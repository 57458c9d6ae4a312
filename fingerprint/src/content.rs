//! Exact identity: the content root over per-tensor hashes, independent of file layout,
//! sharding and tensor order.
//!
//! - `data_hash = BLAKE3-derive("model-registry tensor-data v1")(dtype u8 ‖ ndim u8 ‖ dims u64le… ‖ bytes)`
//! - `tensor_hash = BLAKE3-derive("model-registry tensor v1")(name_len u32le ‖ name ‖ data_hash)`
//! - `content_root = BLAKE3-derive("model-registry content-root v1")(count u64le ‖ tensor_hash…)`
//!   with tensors sorted by name (bytewise).

use crate::dtype::Dtype;

const DATA_CONTEXT: &str = "model-registry tensor-data v1";
const TENSOR_CONTEXT: &str = "model-registry tensor v1";
const ROOT_CONTEXT: &str = "model-registry content-root v1";

/// Tensors at least this large are hashed on several threads.
const PARALLEL_BYTES: usize = 1 << 20;

/// Hash of a tensor's dtype, shape and bytes (not its name).
pub fn data_hash(dtype: Dtype, shape: &[u64], bytes: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key(DATA_CONTEXT);
    h.update(&[dtype.code(), shape.len() as u8]);
    for d in shape {
        h.update(&d.to_le_bytes());
    }
    if bytes.len() >= PARALLEL_BYTES {
        h.update_rayon(bytes);
    } else {
        h.update(bytes);
    }
    *h.finalize().as_bytes()
}

/// Hash binding a tensor's name to its data hash.
pub fn tensor_hash(name: &str, data_hash: &[u8; 32]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key(TENSOR_CONTEXT);
    h.update(&(name.len() as u32).to_le_bytes());
    h.update(name.as_bytes());
    h.update(data_hash);
    *h.finalize().as_bytes()
}

/// The content root of tensors given as (name, data hash), in any order.
pub fn content_root<'a>(tensors: impl IntoIterator<Item = (&'a str, &'a [u8; 32])>) -> [u8; 32] {
    let mut entries: Vec<(&str, [u8; 32])> = tensors
        .into_iter()
        .map(|(n, d)| (n, tensor_hash(n, d)))
        .collect();
    entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut h = blake3::Hasher::new_derive_key(ROOT_CONTEXT);
    h.update(&(entries.len() as u64).to_le_bytes());
    for (_, th) in &entries {
        h.update(th);
    }
    *h.finalize().as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_ignores_order_and_binds_names_dtype_shape_and_bytes() {
        let a = data_hash(Dtype::F32, &[2], &[0, 0, 128, 63, 0, 0, 0, 64]);
        let b = data_hash(Dtype::F32, &[1, 2], &[0, 0, 128, 63, 0, 0, 0, 64]);
        let c = data_hash(Dtype::I8, &[8], &[0, 0, 128, 63, 0, 0, 0, 64]);
        assert_ne!(a, b, "shape is bound");
        assert_ne!(a, c, "dtype is bound");
        let r1 = content_root([("x", &a), ("y", &b)]);
        let r2 = content_root([("y", &b), ("x", &a)]);
        assert_eq!(r1, r2, "order does not matter");
        assert_ne!(r1, content_root([("x", &b), ("y", &a)]), "names are bound");
        assert_ne!(r1, content_root([("x", &a)]), "every tensor counts");
    }
}
