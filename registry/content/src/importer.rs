//! Importing a file as a UnixFS DAG, exactly as Kubo's `ipfs add` does with its defaults:
//! fixed-size chunks of 256 KiB and the balanced layout with at most 174 links per node.
//!
//! - CIDv0 (plain `ipfs add`): every leaf is a DAG-PB node holding UnixFS `File` data.
//! - CIDv1 (`ipfs add --cid-version=1`, which implies `--raw-leaves`): leaves are raw blocks;
//!   inner nodes are DAG-PB with CIDv1.
//!
//! A file of one chunk is its leaf (so an empty file is the empty leaf). Otherwise leaves are
//! grouped 174 at a time into parents, level by level, which gives the balanced layout's shape:
//! every leaf at the same depth, every node full except the last on each level. Inner nodes
//! carry `filesize` and one `blocksizes` entry per child; links carry an empty name and the
//! child's cumulative DAG size.
//!
//! The import streams: it holds one chunk, the links of the unfinished nodes (a few KiB per
//! level) and the blocks still being stored, so a 10 GB file never sits in memory. Blocks are
//! stored up to [`PUTS_IN_FLIGHT`] at a time (a Kubo node answers `block/put` calls
//! concurrently; one at a time, each waited a round trip); the import returns once every one
//! is stored.

use std::future::Future;
use std::pin::Pin;

use cid::{Cid, Version};
use futures::stream::{FuturesUnordered, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::cids::{self, DAG_PB, RAW};
use super::dagpb::{self, Link};
use super::Store;
use crate::{Error, Result};

/// Kubo's default chunk size (`size-262144`).
pub const CHUNK_SIZE: usize = 256 * 1024;
/// Links per node in Kubo's balanced layout (`helpers.DefaultLinksPerBlock`).
pub const LINKS_PER_NODE: usize = 174;
/// Blocks being stored at once (16 chunks: 4 MiB).
pub const PUTS_IN_FLIGHT: usize = 16;

/// The result of an import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Added {
    pub cid: Cid,
    /// Bytes of file data.
    pub size: u64,
    /// Blocks written (repeated identical chunks count once per occurrence).
    pub blocks: u64,
    /// Cumulative size of the DAG's encoded blocks (the root link's `Tsize`).
    pub dag_size: u64,
    /// BLAKE3 of the bytes imported, to check a read-back against.
    pub digest: [u8; 32],
}

/// A finished node, as its parent links to it.
#[derive(Debug, Clone)]
struct Child {
    cid: Cid,
    tsize: u64,
    filesize: u64,
}

/// Imports everything `reader` yields into `store` and returns the root. `progress` is called
/// with the number of file bytes imported so far.
pub async fn add<R: AsyncRead + Unpin>(
    store: &Store,
    reader: R,
    version: Version,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Added> {
    add_with(store, reader, version, progress, PUTS_IN_FLIGHT).await
}

/// [`add`], storing at most `puts_in_flight` blocks at once (1: one at a time).
pub async fn add_with<R: AsyncRead + Unpin>(
    store: &Store,
    mut reader: R,
    version: Version,
    progress: &(dyn Fn(u64) + Sync),
    puts_in_flight: usize,
) -> Result<Added> {
    let mut builder = Builder {
        store,
        version,
        levels: Vec::new(),
        blocks: 0,
        in_flight: FuturesUnordered::new(),
        puts_in_flight: puts_in_flight.max(1),
    };
    let mut chunk = vec![0u8; CHUNK_SIZE];
    let mut size = 0u64;
    let mut hasher = blake3::Hasher::new();
    loop {
        let len = fill(&mut reader, &mut chunk).await?;
        // An empty input still gets its one (empty) leaf.
        if len == 0 && size > 0 {
            break;
        }
        hasher.update(&chunk[..len]);
        let leaf = builder.leaf(&chunk[..len]).await?;
        builder.push(0, leaf).await?;
        size += len as u64;
        progress(size);
        if len < CHUNK_SIZE {
            break;
        }
    }
    let root = builder.finish().await?;
    builder.drain().await?;
    Ok(Added {
        cid: root.cid,
        size,
        blocks: builder.blocks,
        dag_size: root.tsize,
        digest: *hasher.finalize().as_bytes(),
    })
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
async fn fill<R: AsyncRead + Unpin>(reader: &mut R, buf: &mut [u8]) -> Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        let n = reader
            .read(&mut buf[filled..])
            .await
            .map_err(|e| Error::ContentRead(e.to_string()))?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(filled)
}

/// A block being stored.
type Put<'a> = Pin<Box<dyn Future<Output = Result<()>> + 'a>>;

struct Builder<'a> {
    store: &'a Store,
    version: Version,
    /// `levels[0]` holds leaves not yet under a parent, `levels[1]` their finished parents, …
    levels: Vec<Vec<Child>>,
    blocks: u64,
    in_flight: FuturesUnordered<Put<'a>>,
    puts_in_flight: usize,
}

impl<'a> Builder<'a> {
    /// Starts storing `block`; waits while the most allowed are being stored (the first
    /// that failed is the error).
    async fn put(&mut self, cid: Cid, block: Vec<u8>) -> Result<()> {
        let store = self.store;
        self.in_flight
            .push(Box::pin(async move { store.put(&cid, block).await }));
        while self.in_flight.len() >= self.puts_in_flight {
            if let Some(stored) = self.in_flight.next().await {
                stored?;
            }
        }
        Ok(())
    }

    /// Waits until every block is stored.
    async fn drain(&mut self) -> Result<()> {
        while let Some(stored) = self.in_flight.next().await {
            stored?;
        }
        Ok(())
    }

    async fn leaf(&mut self, chunk: &[u8]) -> Result<Child> {
        let (codec, block) = match self.version {
            Version::V1 => (RAW, chunk.to_vec()),
            Version::V0 => (
                DAG_PB,
                dagpb::encode_node(&[], &dagpb::file_data(chunk, vec![])),
            ),
        };
        let cid = cids::cid_of(self.version, codec, &block);
        let tsize = block.len() as u64;
        self.put(cid, block).await?;
        self.blocks += 1;
        Ok(Child {
            cid,
            tsize,
            filesize: chunk.len() as u64,
        })
    }

    /// Adds `child` at `level`; a level that reaches a full node is closed into its parent.
    async fn push(&mut self, mut level: usize, mut child: Child) -> Result<()> {
        loop {
            if self.levels.len() <= level {
                self.levels.push(Vec::with_capacity(LINKS_PER_NODE));
            }
            self.levels[level].push(child);
            if self.levels[level].len() < LINKS_PER_NODE {
                return Ok(());
            }
            let children = std::mem::take(&mut self.levels[level]);
            child = self.node(&children).await?;
            level += 1;
        }
    }

    async fn node(&mut self, children: &[Child]) -> Result<Child> {
        let links: Vec<Link> = children
            .iter()
            .map(|c| Link {
                cid: c.cid,
                tsize: c.tsize,
            })
            .collect();
        let blocksizes: Vec<u64> = children.iter().map(|c| c.filesize).collect();
        let filesize = blocksizes.iter().sum();
        let block = dagpb::encode_node(&links, &dagpb::file_data(&[], blocksizes));
        let cid = cids::cid_of(self.version, DAG_PB, &block);
        let tsize = block.len() as u64 + children.iter().map(|c| c.tsize).sum::<u64>();
        self.put(cid, block).await?;
        self.blocks += 1;
        Ok(Child {
            cid,
            tsize,
            filesize,
        })
    }

    /// Closes the unfinished nodes bottom up. A level keeps its single node as the root only
    /// when nothing is above it; otherwise even one child gets a parent, so that every leaf
    /// ends at the same depth.
    async fn finish(&mut self) -> Result<Child> {
        let mut level = 0;
        loop {
            let top = level + 1 >= self.levels.len();
            let pending = std::mem::take(&mut self.levels[level]);
            if top && pending.len() == 1 {
                return Ok(pending.into_iter().next().expect("one child"));
            }
            if !pending.is_empty() {
                let parent = self.node(&pending).await?;
                if top {
                    self.levels.push(Vec::new());
                }
                self.levels[level + 1].push(parent);
            }
            level += 1;
        }
    }
}
