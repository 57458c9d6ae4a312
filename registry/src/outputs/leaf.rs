//! One committed output: what a leaf of a batch's Merkle tree holds, and its hash.
//!
//! The encoding, for reimplementations:
//!
//! ```text
//! leaf = keccak256(keccak256(abi.encode(
//!     bytes32 TAG,              // keccak256("ModelRegistry.OutputLeaf.v1")
//!     bytes32 contentSha256,    // SHA-256 of the output's bytes
//!     uint256 chainId,
//!     address market,           // the LicenseMarket contract
//!     uint256 licenseId,        // the output license it was committed under
//!     uint256 modelId,          // the licensed model
//!     uint64  producedAt,       // unix seconds, as the provider states it
//!     bytes32 salt)))           // random per leaf: a leaf reveals nothing of an unpublished output
//! ```
//!
//! This is OpenZeppelin `StandardMerkleTree`'s leaf hash of that tuple: hashed twice, so a
//! leaf (a hash of 256 bytes) can never be taken for an inner node (a hash of 64), and the tag
//! keeps it apart from any other tree's leaves. `LicenseMarket.outputLeaf` computes the same.

use ethers::abi::Token;
use ethers::types::{Address, H256, U256};
use ethers::utils::keccak256;
use serde::{Deserialize, Serialize};

/// The tag's preimage.
pub const TAG: &str = "ModelRegistry.OutputLeaf.v1";

/// The fields of a leaf.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutputLeaf {
    pub content_sha256: H256,
    pub chain_id: u64,
    pub market: Address,
    #[serde(with = "decimal")]
    pub license_id: U256,
    #[serde(with = "decimal")]
    pub model_id: U256,
    pub produced_at: u64,
    pub salt: H256,
}

impl OutputLeaf {
    /// The leaf's hash in the tree.
    pub fn hash(&self) -> H256 {
        let encoded = ethers::abi::encode(&[
            Token::FixedBytes(keccak256(TAG).to_vec()),
            Token::FixedBytes(self.content_sha256.as_bytes().to_vec()),
            Token::Uint(self.chain_id.into()),
            Token::Address(self.market),
            Token::Uint(self.license_id),
            Token::Uint(self.model_id),
            Token::Uint(self.produced_at.into()),
            Token::FixedBytes(self.salt.as_bytes().to_vec()),
        ]);
        H256(keccak256(keccak256(encoded)))
    }
}

/// A `U256` as a decimal string (JSON numbers cannot hold it).
pub(crate) mod decimal {
    use ethers::types::U256;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(v: &U256, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<U256, D::Error> {
        let text = String::deserialize(d)?;
        U256::from_dec_str(&text).map_err(|e| serde::de::Error::custom(format!("{text:?}: {e}")))
    }
}
