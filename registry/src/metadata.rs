//! The model's metadata document: ERC-721 metadata JSON (what `tokenURI` points at, stored on
//! IPFS next to the weights) extended with where the fingerprint's canonical encoding lives,
//! so anyone can fetch and compare it.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Identifies documents of this shape.
pub const SCHEMA: &str = "model-registry/metadata/v1";
/// Metadata documents are small; a larger one is refused rather than loaded.
pub const MAX_BYTES: u64 = 1 << 20;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelMetadata {
    pub schema: String,
    /// ERC-721 metadata `name`.
    pub name: String,
    /// ERC-721 metadata `description`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `ipfs://` URI of the weights (a safetensors file).
    pub weights: String,
    /// `ipfs://` URI of the fingerprint's canonical encoding.
    pub fingerprint: String,
    /// The on-chain fingerprint commitment, 0x-hex.
    pub fingerprint_hash: String,
    /// The content root of the weights, 0x-hex.
    pub content_root: String,
    pub parameters: u64,
    pub tensors: u64,
    /// Bytes of tensor data.
    pub bytes: u64,
    /// Present when `weights` is an age file rather than the plaintext.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<Encryption>,
}

/// How an encrypted model's weights are sealed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Encryption {
    /// [`AGE_X25519`].
    pub scheme: String,
    /// `ipfs://` URI of the envelope: the model key wrapped to the author and the keepers.
    pub envelope: String,
    /// Size of the plaintext weights file.
    pub plaintext_bytes: u64,
}

/// Weights in the age format, encrypted to the model key (an X25519 identity).
pub const AGE_X25519: &str = "age-x25519";

impl ModelMetadata {
    pub fn to_json(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).expect("metadata serializes");
        bytes.push(b'\n');
        bytes
    }

    pub fn from_json(bytes: &[u8], source: &str) -> Result<Self> {
        let metadata: Self = serde_json::from_slice(bytes).map_err(|e| Error::Metadata {
            source_uri: source.into(),
            reason: e.to_string(),
        })?;
        if metadata.schema != SCHEMA {
            return Err(Error::Metadata {
                source_uri: source.into(),
                reason: format!("schema {:?}, expected {SCHEMA:?}", metadata.schema),
            });
        }
        Ok(metadata)
    }
}

/// `ipfs://<cid>` for a CID.
pub fn ipfs_uri(cid: &cid::Cid) -> String {
    format!("ipfs://{cid}")
}
