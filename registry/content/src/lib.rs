//! The content store: where weights, fingerprints and terms live, addressed by IPFS CIDs.
//!
//! One interface, two backends ([`Store`]):
//! - **embedded** ([`Blockstore`]): a folder of blocks on disk, the zero-set-up default;
//! - **Kubo RPC** ([`Kubo`]): any node speaking Kubo's RPC API (Kubo, IPFS Cluster's proxy,
//!   js-ipfs).
//!
//! Files are imported here, into a UnixFS DAG built exactly as Kubo builds it ([`importer`]),
//! and folders into UnixFS directories as `ipfs add -r` builds them ([`directory`]),
//! so the CIDs equal what `ipfs add` prints for the same bytes and parameters; the blocks then
//! go to the backend. Every block read from either backend is checked against its CID, so
//! corrupt data is an error that names the block (a reader that checks the content itself may
//! skip re-hashing the embedded store's blocks: [`Reading`]). CAR files ([`car`]) move DAGs
//! between stores.

mod blockstore;
pub mod car;
pub mod cids;
mod dagpb;
pub mod directory;
mod error;
mod exporter;
pub mod importer;
mod kubo;

use std::path::{Path, PathBuf};

pub use blockstore::Blockstore;
pub use cid::{Cid, Version};
pub use directory::{
    add_dir, get_dir, is_dir, list, resolve, tree_size, AddedDir, Listed, Written,
};
pub use exporter::{cat, cat_range, cat_with, check_dag, file_size, file_size_with, Parts, Walk};
pub use importer::{add, Added, CHUNK_SIZE};
pub use kubo::Kubo;

pub use error::{Error, Result};

/// Where content is stored, as given on the command line (`--ipfs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// The embedded store in this folder.
    Embedded(PathBuf),
    /// A Kubo RPC endpoint, `http://HOST:PORT`.
    Kubo(String),
}

impl Location {
    /// A URL (`http://…`, `https://…`) names a node; anything else is a folder.
    pub fn parse(text: &str) -> Self {
        if text.starts_with("http://") || text.starts_with("https://") {
            Location::Kubo(text.trim_end_matches('/').to_string())
        } else {
            Location::Embedded(PathBuf::from(text))
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Embedded(path) => write!(f, "embedded store {}", path.display()),
            Location::Kubo(url) => write!(f, "ipfs node {url}"),
        }
    }
}

/// An `AsyncWrite` that only hashes.
#[derive(Default)]
struct HashingSink {
    hasher: blake3::Hasher,
}

impl tokio::io::AsyncWrite for HashingSink {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.hasher.update(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

impl std::fmt::Display for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Store::Embedded(store) => write!(f, "embedded store {}", store.root().display()),
            Store::Kubo(node) => write!(f, "ipfs node {}", node.url()),
        }
    }
}

/// Reads an embedded store's block on a blocking thread: a disk read must not hold up the
/// async threads (a server's workers among them).
async fn off_thread(
    store: &Blockstore,
    cid: Cid,
    read: fn(&Blockstore, Cid) -> Result<Vec<u8>>,
) -> Result<Vec<u8>> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || read(&store, cid))
        .await
        .map_err(|e| Error::ContentWrite(format!("reading block {cid} stopped: {e}")))?
}

/// How blocks are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    /// Every block is checked against its CID.
    Checked,
    /// Checked, and from a node only the blocks it holds: it does not fetch from the network
    /// for this read (a public gateway must not be an open proxy to the IPFS network).
    Held,
    /// A node's blocks are checked; the embedded store's are read as they lie on disk (they
    /// were checked when they were put; Kubo reads its own datastore the same way unless
    /// `Datastore.HashOnRead` is set). Only for readers that check what they read by other
    /// means, as a download checks the content root: hashing every block again costs as much
    /// CPU as decrypting it.
    TrustingLocal,
    /// [`Reading::TrustingLocal`] past the first this many bytes of the file, whose blocks
    /// are checked: for content whose check does not cover its beginning (a safetensors
    /// header's metadata is not in the content root).
    TrustingLocalAfter(u64),
}

/// A content store: the embedded one or a Kubo node.
#[derive(Debug)]
pub enum Store {
    Embedded(Blockstore),
    Kubo(Box<Kubo>),
}

impl Store {
    /// Opens the store at `location` (connecting to a node checks that it answers).
    pub async fn open(location: &Location) -> Result<Self> {
        Ok(match location {
            Location::Embedded(path) => Store::Embedded(Blockstore::open(path)?),
            Location::Kubo(url) => Store::Kubo(Box::new(Kubo::connect(url).await?)),
        })
    }

    /// The embedded store in `path`.
    pub fn embedded(path: &Path) -> Result<Self> {
        Ok(Store::Embedded(Blockstore::open(path)?))
    }

    /// Stores one block under its CID.
    pub async fn put(&self, cid: &Cid, block: Vec<u8>) -> Result<()> {
        match self {
            Store::Embedded(store) => store.put(cid, &block),
            Store::Kubo(node) => node.put(cid, block).await,
        }
    }

    /// Reads one block, checked against its CID.
    pub async fn get(&self, cid: &Cid) -> Result<Vec<u8>> {
        match self {
            Store::Embedded(store) => off_thread(store, *cid, |s, c| s.get(&c)).await,
            Store::Kubo(node) => node.get(cid).await,
        }
    }

    /// Reads one block as [`Reading`] says.
    pub async fn read(&self, cid: &Cid, reading: Reading) -> Result<Vec<u8>> {
        match (self, reading) {
            (Store::Embedded(store), Reading::TrustingLocal) => {
                off_thread(store, *cid, |s, c| s.read(&c)).await
            }
            (Store::Kubo(node), Reading::Held) => node.get_held(cid).await,
            _ => self.get(cid).await,
        }
    }

    /// Whether this store reads blocks without checking them when asked to.
    pub fn trusts_local(&self) -> bool {
        matches!(self, Store::Embedded(_))
    }

    /// Keeps `root` and its DAG from garbage collection (the embedded store never collects).
    pub async fn pin(&self, root: &Cid) -> Result<()> {
        match self {
            Store::Embedded(_) => Ok(()),
            Store::Kubo(node) => node.pin(root).await,
        }
    }

    /// Adds a file, pins it and reads it back through the store, every block checked, so the
    /// returned CID is known to be retrievable.
    pub async fn store_file(
        &self,
        path: &Path,
        version: Version,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<Added> {
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|source| Error::ContentIo {
                path: path.into(),
                cause: source,
            })?;
        let added = add(self, tokio::io::BufReader::new(file), version, progress).await?;
        self.pin(&added.cid).await?;
        self.check_readback(&added).await?;
        Ok(added)
    }

    /// Adds a folder (see [`directory`]), pins it and reads it back through the store: every
    /// block checked, every file's bytes compared with what was imported.
    pub async fn store_dir(
        &self,
        path: &Path,
        version: Version,
        hidden: bool,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<AddedDir> {
        let added = add_dir(self, path, version, hidden, progress).await?;
        self.pin(&added.cid).await?;
        check_dag(self, &added.cid).await?;
        for (_, file) in &added.files {
            self.check_readback(file).await?;
        }
        Ok(added)
    }

    /// Adds bytes held in memory (fingerprints, terms, metadata), pinned and read back.
    pub async fn store_bytes(&self, bytes: &[u8], version: Version) -> Result<Cid> {
        let added = add(self, bytes, version, &|_| {}).await?;
        self.pin(&added.cid).await?;
        self.check_readback(&added).await?;
        Ok(added.cid)
    }

    /// Reads `added` back through the store and checks it is exactly what was imported.
    pub async fn check_readback(&self, added: &Added) -> Result<()> {
        let mut sink = HashingSink::default();
        let read = cat(self, &added.cid, &mut sink, &|_| {}).await?;
        let digest = *sink.hasher.finalize().as_bytes();
        if read != added.size || digest != added.digest {
            return Err(Error::ReadbackMismatch {
                cid: added.cid.to_string(),
                store: self.to_string(),
            });
        }
        Ok(())
    }

    /// Reads a whole file into memory (for small documents: fingerprints, terms, metadata);
    /// a file larger than `max` bytes is an error, not an allocation.
    pub async fn read_bytes(&self, cid: &Cid, max: u64) -> Result<Vec<u8>> {
        let size = file_size(self, cid).await?;
        if size > max {
            return Err(Error::ContentTooLarge {
                cid: cid.to_string(),
                size,
                max,
            });
        }
        let mut out = Vec::with_capacity(size as usize);
        cat(self, cid, &mut out, &|_| {}).await?;
        Ok(out)
    }
}
