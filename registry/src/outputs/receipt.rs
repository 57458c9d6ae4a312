//! A receipt: everything needed to show, later and to anyone, that one output was committed
//! under a license: its leaf, the proof to the batch's root, and where the root was committed.
//! Written beside the output as `FILE.receipt.json`.

use std::path::Path;

use ethers::types::{Address, H256};
use serde::{Deserialize, Serialize};

use super::OutputLeaf;
use crate::{Error, Result};

/// The value of `format` in receipts of this version.
pub const FORMAT: &str = "model-registry/output-receipt/v1";

/// A receipt is a few kilobytes (a proof of a million leaves is 20 hashes): anything much
/// larger is not one.
const MAX_RECEIPT: u64 = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Receipt {
    pub format: String,
    /// The output's file name when it was committed (for people; not checked).
    pub file: String,
    pub leaf: OutputLeaf,
    /// `leaf`'s hash (see [`OutputLeaf::hash`]).
    pub leaf_hash: H256,
    /// Sibling hashes from the leaf up to the root (OpenZeppelin `MerkleProof` order).
    pub proof: Vec<H256>,
    pub root: H256,
    /// Outputs in the batch.
    pub count: u64,
    /// The license holder that committed the batch.
    pub provider: Address,
    /// Where the batch's leaf list was published, if it was.
    pub uri: Option<String>,
    pub tx: H256,
    pub block: u64,
    pub block_hash: H256,
    /// The block's time (unix seconds).
    pub committed_at: u64,
    pub contracts: Contracts,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contracts {
    pub registry: Address,
    pub market: Address,
}

impl Receipt {
    /// Writes the receipt to `path` whole or not at all (a temporary file renamed into place).
    pub fn write(&self, path: &Path) -> Result<()> {
        let io = |source| Error::ContentIo {
            path: path.into(),
            source,
        };
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
        let json = serde_json::to_vec_pretty(self).expect("a receipt serialises");
        std::io::Write::write_all(&mut tmp, &json).map_err(io)?;
        tmp.persist(path).map_err(|e| io(e.error))?;
        Ok(())
    }

    /// Reads the receipt at `path`; a file that is not one is an error naming it and why.
    pub fn read(path: &Path) -> Result<Self> {
        let io = |source| Error::ContentIo {
            path: path.into(),
            source,
        };
        let bad = |reason: String| Error::Receipt {
            path: path.into(),
            reason,
        };
        let len = std::fs::metadata(path).map_err(io)?.len();
        if len > MAX_RECEIPT {
            return Err(bad(format!(
                "{len} bytes: too large for a receipt (at most {MAX_RECEIPT})"
            )));
        }
        let bytes = std::fs::read(path).map_err(io)?;
        let receipt: Receipt =
            serde_json::from_slice(&bytes).map_err(|e| bad(format!("not a receipt: {e}")))?;
        if receipt.format != FORMAT {
            return Err(bad(format!(
                "format {:?}, expected {FORMAT:?}",
                receipt.format
            )));
        }
        Ok(receipt)
    }
}
