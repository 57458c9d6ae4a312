//! The embedded content store: blocks as files in a folder, keyed by their SHA-256 digest (as
//! Kubo's flatfs keys by multihash, so a CIDv0 and a CIDv1 DAG-PB of the same node share one
//! file). Writes are atomic (temporary file, then rename) so a killed process never leaves a
//! half-written block under a valid name; every read is checked against its CID.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use cid::Cid;

use super::cids;
use crate::{Error, Result};

/// A folder of blocks.
#[derive(Debug, Clone)]
pub struct Blockstore {
    root: PathBuf,
}

impl Blockstore {
    /// Opens (creating if needed) the store in `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        let blocks = root.join("blocks");
        std::fs::create_dir_all(&blocks).map_err(|source| Error::ContentIo {
            path: blocks.clone(),
            cause: source,
        })?;
        Ok(Self { root })
    }

    /// The folder the store lives in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the block of `cid` is kept: `blocks/<first two hex digits>/<digest hex>`.
    pub fn path_of(&self, cid: &Cid) -> PathBuf {
        let digest = hex::encode(cid.hash().digest());
        let shard = digest.get(..2).unwrap_or("00").to_string();
        self.root.join("blocks").join(shard).join(digest)
    }

    pub fn has(&self, cid: &Cid) -> bool {
        self.path_of(cid).is_file()
    }

    /// Stores `block` under `cid` (which the caller computed from it; checked here anyway, so
    /// a wrong CID can never enter the store).
    pub fn put(&self, cid: &Cid, block: &[u8]) -> Result<()> {
        cids::verify(cid, block)?;
        let path = self.path_of(cid);
        if path.is_file() {
            return Ok(());
        }
        let dir = path.parent().expect("block paths have a shard folder");
        let io = |source| Error::ContentIo {
            path: path.clone(),
            cause: source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
        tmp.write_all(block).map_err(io)?;
        tmp.persist(&path).map_err(|e| io(e.error))?;
        Ok(())
    }

    /// Reads the block of `cid` as it lies on disk, not checked against it (it was when it was
    /// put): for readers that check what they read by other means.
    pub fn read(&self, cid: &Cid) -> Result<Vec<u8>> {
        // Blocks are filed by digest alone: a CID of another hash function whose digest
        // equals a stored block's SHA-256 must not read as that block.
        if cid.hash().code() != cids::SHA2_256 {
            return Err(Error::UnsupportedHash {
                cid: cid.to_string(),
                code: cid.hash().code(),
            });
        }
        let path = self.path_of(cid);
        match std::fs::read(&path) {
            Ok(block) => Ok(block),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::BlockNotFound {
                cid: cid.to_string(),
                store: self.root.display().to_string(),
            }),
            Err(source) => Err(Error::ContentIo {
                path,
                cause: source,
            }),
        }
    }

    /// Reads the block of `cid`, checked against it.
    pub fn get(&self, cid: &Cid) -> Result<Vec<u8>> {
        let block = self.read(cid)?;
        let path = self.path_of(cid);
        cids::verify(cid, &block).map_err(|e| match e {
            Error::CorruptBlock { cid, actual } => Error::CorruptStoredBlock {
                cid,
                actual,
                path: path.clone(),
            },
            other => other,
        })?;
        Ok(block)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cid::Version;

    #[test]
    fn put_get_and_detect_a_flipped_byte() {
        let dir = tempfile::tempdir().unwrap();
        let store = Blockstore::open(dir.path()).unwrap();
        let cid = cids::cid_of(Version::V1, cids::RAW, b"some block");
        store.put(&cid, b"some block").unwrap();
        assert_eq!(store.get(&cid).unwrap(), b"some block");

        let path = store.path_of(&cid);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[3] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        let err = store.get(&cid).unwrap_err().to_string();
        assert!(
            err.contains(&cid.to_string()) && err.contains("corrupt"),
            "{err}"
        );
    }

    #[test]
    fn a_wrong_cid_never_enters_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = Blockstore::open(dir.path()).unwrap();
        let cid = cids::cid_of(Version::V1, cids::RAW, b"a");
        assert!(store.put(&cid, b"b").is_err());
        assert!(!store.has(&cid));
        let missing = store.get(&cid).unwrap_err().to_string();
        assert!(missing.contains("not in the content store"), "{missing}");
    }
}
