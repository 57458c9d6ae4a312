//! A batch of outputs ready to commit: each file hashed (streaming), a leaf per file with a
//! fresh salt, and the tree over them.

use std::io::Read;
use std::path::{Path, PathBuf};

use ethers::types::{Address, H256, U256};
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::{OutputLeaf, Tree};
use crate::{Error, Result};

/// The SHA-256 of the file at `path`, read in pieces; `progress` gets the bytes read.
pub fn sha256_file(path: &Path, progress: &dyn Fn(u64)) -> Result<H256> {
    let io = |source| Error::Io {
        path: path.into(),
        cause: source,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut read = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        read += n as u64;
        progress(read);
    }
    Ok(H256(hasher.finalize().into()))
}

/// Where a batch is committed: the chain, the market, and the license.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scope {
    pub chain_id: u64,
    pub market: Address,
    pub license: U256,
    pub model: U256,
}

/// The outputs of one commitment.
#[derive(Debug, Clone)]
pub struct Batch {
    /// One per output, in the order given.
    pub leaves: Vec<OutputLeaf>,
    pub tree: Tree,
}

impl Batch {
    /// A batch of outputs given as (content SHA-256, produced at), each salted afresh.
    /// `None` for no outputs.
    pub fn new(scope: Scope, outputs: &[(H256, u64)]) -> Option<Self> {
        let mut rng = rand::rngs::OsRng;
        let leaves: Vec<OutputLeaf> = outputs
            .iter()
            .map(|&(content_sha256, produced_at)| {
                let mut salt = H256::zero();
                rng.fill_bytes(salt.as_bytes_mut());
                OutputLeaf {
                    content_sha256,
                    chain_id: scope.chain_id,
                    market: scope.market,
                    license_id: scope.license,
                    model_id: scope.model,
                    produced_at,
                    salt,
                }
            })
            .collect();
        let hashes: Vec<H256> = leaves.iter().map(OutputLeaf::hash).collect();
        let tree = Tree::build(&hashes)?;
        Some(Self { leaves, tree })
    }

    pub fn root(&self) -> H256 {
        self.tree.root()
    }
}

/// Where the receipt of the output at `path` is written: beside it, `FILE.receipt.json`.
pub fn receipt_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".receipt.json");
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaves_are_salted_apart_and_files_hash_as_sha256sum_does() {
        let scope = Scope {
            chain_id: 1,
            market: Address::repeat_byte(1),
            license: 2.into(),
            model: 3.into(),
        };
        let same = [(H256::repeat_byte(9), 5), (H256::repeat_byte(9), 5)];
        let batch = Batch::new(scope, &same).unwrap();
        assert_ne!(batch.leaves[0].salt, batch.leaves[1].salt);
        assert_ne!(batch.leaves[0].hash(), batch.leaves[1].hash());
        assert_eq!(batch.tree.len(), 2);
        assert!(Batch::new(scope, &[]).is_none());

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.txt");
        std::fs::write(&path, b"abc").unwrap();
        // FIPS 180-2's example: SHA-256("abc").
        assert_eq!(
            format!("{:x}", sha256_file(&path, &|_| {}).unwrap()),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(receipt_path(&path), dir.path().join("out.txt.receipt.json"));
    }
}
