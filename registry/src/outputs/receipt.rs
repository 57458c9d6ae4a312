//! A receipt: everything needed to show, later and to anyone, that one output was committed
//! under a license: its leaf, the proof to the batch's root, and where the root was committed.
//! Written beside the output as `FILE.receipt.json`.

use std::path::Path;

use ethers::types::{Address, H256};
use serde::{Deserialize, Serialize};

use super::inclusion::Inclusion;
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
    /// The block's header and the proof of the commitment's transaction receipt in it, for
    /// checks without a node against a trusted block hash (absent when the node could not
    /// give them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inclusion: Option<Inclusion>,
}

/// Where a receipt will be written: a temporary file beside it, opened before anything is
/// committed, so that a folder that cannot take the receipt refuses the batch instead of
/// losing its proofs after the transaction.
#[derive(Debug)]
pub struct Slot {
    path: std::path::PathBuf,
    tmp: tempfile::NamedTempFile,
}

impl Slot {
    /// Opens the slot for `path`; refused when a receipt is there already.
    pub fn open(path: &Path) -> Result<Self> {
        if path.exists() {
            return Err(Error::ReceiptExists { path: path.into() });
        }
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let tmp = tempfile::Builder::new()
            .prefix(".receipt-")
            .tempfile_in(dir)
            .map_err(|source| Error::Io {
                path: path.into(),
                cause: source,
            })?;
        Ok(Self {
            path: path.into(),
            tmp,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contracts {
    pub registry: Address,
    pub market: Address,
}

impl Receipt {
    /// Writes the receipt into its slot (opened before the batch was committed), whole or
    /// not at all, never over an existing file.
    pub fn write_into(&self, slot: Slot) -> Result<()> {
        let Slot { path, mut tmp } = slot;
        let io = |source| Error::Io {
            path: path.clone(),
            cause: source,
        };
        let json = serde_json::to_vec_pretty(self).expect("a receipt serialises");
        std::io::Write::write_all(&mut tmp, &json).map_err(io)?;
        tmp.persist_noclobber(&path)
            .map_err(|e| match e.error.kind() {
                std::io::ErrorKind::AlreadyExists => Error::ReceiptExists { path: path.clone() },
                _ => io(e.error),
            })?;
        Ok(())
    }

    /// Reads the receipt at `path`; a file that is not one is an error naming it and why.
    pub fn read(path: &Path) -> Result<Self> {
        let io = |source| Error::Io {
            path: path.into(),
            cause: source,
        };
        let bad = |reason: String| Error::Receipt {
            path: path.into(),
            reason,
        };
        // Read through a bound, not by the size the file reports: a pipe or a device reports
        // none, and a file may grow meanwhile.
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(
            &mut std::io::Read::take(std::fs::File::open(path).map_err(io)?, MAX_RECEIPT + 1),
            &mut bytes,
        )
        .map_err(io)?;
        if bytes.len() as u64 > MAX_RECEIPT {
            return Err(bad(format!(
                "more than {MAX_RECEIPT} bytes: too large for a receipt"
            )));
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A receipt named by a pipe (which reports no size) is read only up to the bound.
    #[test]
    fn a_receipt_is_read_only_up_to_its_bound() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("receipt.json");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let writer = {
            let fifo = fifo.clone();
            std::thread::spawn(move || {
                use std::io::Write;
                let mut pipe = std::fs::OpenOptions::new().write(true).open(fifo).unwrap();
                let chunk = vec![b' '; 1 << 16];
                // Far more than a receipt may be; stops when the reader hangs up.
                let mut written = 0u64;
                for _ in 0..(64 * MAX_RECEIPT / chunk.len() as u64) {
                    if pipe.write_all(&chunk).is_err() {
                        break;
                    }
                    written += chunk.len() as u64;
                }
                written
            })
        };
        let err = Receipt::read(&fifo).unwrap_err().to_string();
        assert!(err.contains("too large for a receipt"), "{err}");
        let written = writer.join().unwrap();
        assert!(
            written < 8 * MAX_RECEIPT,
            "the reader stopped at its bound, not after {written} bytes"
        );
    }
}
