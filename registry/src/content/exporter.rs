//! Reading a UnixFS file back out of a store, and walking a DAG's blocks. Every block comes
//! through [`Store::get`], which checks it against its CID; the sizes the nodes declare are
//! checked against the data found, so a DAG that does not add up is an error, not a short file.

use std::collections::HashSet;

use cid::Cid;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::cids::{DAG_PB, RAW};
use super::dagpb;
use super::Store;
use crate::{Error, Result};

fn malformed(cid: &Cid, reason: impl Into<String>) -> Error {
    Error::MalformedNode {
        cid: cid.to_string(),
        reason: reason.into(),
    }
}

/// The file size the root of a UnixFS file declares (a raw block's own length).
pub async fn file_size(store: &Store, root: &Cid) -> Result<u64> {
    let block = store.get(root).await?;
    match root.codec() {
        RAW => Ok(block.len() as u64),
        DAG_PB => {
            let node = dagpb::decode_file_node(&block).map_err(|r| malformed(root, r))?;
            Ok(node
                .filesize
                .unwrap_or(node.data.len() as u64 + node.blocksizes.iter().sum::<u64>()))
        }
        codec => Err(malformed(
            root,
            format!("codec {codec:#x} is not a unixfs file"),
        )),
    }
}

/// Writes the file under `root` to `out` and returns its length. `progress` gets the bytes
/// written so far.
pub async fn cat<W: AsyncWrite + Unpin>(
    store: &Store,
    root: &Cid,
    mut out: W,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<u64> {
    // Depth-first, children in order; each entry carries the size its parent declared.
    let mut stack: Vec<(Cid, Option<u64>)> = vec![(*root, None)];
    let mut written = 0u64;
    let mut declared_total = None;
    while let Some((cid, expected)) = stack.pop() {
        let block = store.get(&cid).await?;
        // `size`: the bytes under this node; `own`: those it holds itself (its children follow).
        let (size, own) = match cid.codec() {
            RAW => {
                write(&mut out, &block).await?;
                (block.len() as u64, block.len() as u64)
            }
            DAG_PB => {
                let node = dagpb::decode_file_node(&block).map_err(|r| malformed(&cid, r))?;
                let size = node.data.len() as u64 + node.blocksizes.iter().sum::<u64>();
                if let Some(filesize) = node.filesize {
                    if filesize != size {
                        return Err(malformed(
                            &cid,
                            format!("declares {filesize} bytes but its parts hold {size}"),
                        ));
                    }
                }
                if node.blocksizes.is_empty() && !node.links.is_empty() {
                    return Err(malformed(&cid, "links without blocksizes"));
                }
                write(&mut out, &node.data).await?;
                for (link, blocksize) in node.links.iter().zip(&node.blocksizes).rev() {
                    stack.push((*link, Some(*blocksize)));
                }
                (size, node.data.len() as u64)
            }
            codec => {
                return Err(malformed(
                    &cid,
                    format!("codec {codec:#x} is not a unixfs file"),
                ))
            }
        };
        if let Some(expected) = expected {
            // Raw leaves are checked here; a DAG-PB child's own size was checked above and
            // its parent's claim is checked now.
            if expected != size {
                return Err(malformed(
                    &cid,
                    format!("its parent says {expected} bytes, it holds {size}"),
                ));
            }
        } else {
            declared_total = Some(size);
        }
        written += own;
        progress(written);
    }
    out.flush()
        .await
        .map_err(|e| Error::ContentWrite(e.to_string()))?;
    if declared_total != Some(written) {
        return Err(malformed(
            root,
            format!("declares {declared_total:?} bytes but {written} were found"),
        ));
    }
    Ok(written)
}

async fn write<W: AsyncWrite + Unpin>(out: &mut W, bytes: &[u8]) -> Result<()> {
    out.write_all(bytes)
        .await
        .map_err(|e| Error::ContentWrite(e.to_string()))
}

/// The blocks of the DAG under a root, each once (depth first, parents before children), read
/// and checked one at a time.
#[derive(Debug)]
pub struct Walk {
    seen: HashSet<Cid>,
    stack: Vec<Cid>,
}

impl Walk {
    pub fn new(root: Cid) -> Self {
        Self {
            seen: HashSet::new(),
            stack: vec![root],
        }
    }

    /// The next block, or `None` when the DAG is exhausted.
    pub async fn next(&mut self, store: &Store) -> Result<Option<(Cid, Vec<u8>)>> {
        while let Some(cid) = self.stack.pop() {
            if !self.seen.insert(cid) {
                continue;
            }
            let block = store.get(&cid).await?;
            match cid.codec() {
                RAW => {}
                DAG_PB => {
                    let links = dagpb::links_of(&block).map_err(|r| malformed(&cid, r))?;
                    self.stack.extend(links.into_iter().rev());
                }
                codec => {
                    return Err(malformed(
                        &cid,
                        format!("codec {codec:#x} cannot be walked"),
                    ))
                }
            }
            return Ok(Some((cid, block)));
        }
        Ok(None)
    }
}
