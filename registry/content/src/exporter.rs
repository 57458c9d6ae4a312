//! Reading a UnixFS file back out of a store, and walking a DAG's blocks. Every block comes
//! through [`Store::get`], which checks it against its CID (unless the reader checks the
//! content itself: [`Reading`]); the sizes the nodes declare are
//! checked against the data found, so a DAG that does not add up is an error, not a short file.

use std::collections::HashSet;

use cid::Cid;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::cids::{DAG_PB, RAW};
use super::dagpb;
use super::{Reading, Store};
use crate::{Error, Result};

fn malformed(cid: &Cid, reason: impl Into<String>) -> Error {
    Error::MalformedNode {
        cid: cid.to_string(),
        reason: reason.into(),
    }
}

/// The bytes under a file node: its own data and its children's declared sizes. A sum past
/// `u64` is malformed: wrapped, a node over children of 2^64 − 1 MiB and 1 MiB declares 0
/// bytes, passes every size check, and lets a tiny declared file write without end.
fn node_size(cid: &Cid, node: &dagpb::FileNode) -> Result<u64> {
    node.blocksizes
        .iter()
        .try_fold(node.data.len() as u64, |sum, &b| sum.checked_add(b))
        .ok_or_else(|| malformed(cid, "its parts' sizes add up past 2^64 bytes"))
}

/// The file size the root of a UnixFS file declares (a raw block's own length).
pub async fn file_size(store: &Store, root: &Cid) -> Result<u64> {
    file_size_with(store, root, Reading::Checked).await
}

/// [`file_size`], reading the root as `reading` says.
pub async fn file_size_with(store: &Store, root: &Cid, reading: Reading) -> Result<u64> {
    let block = match reading {
        Reading::Held => store.read(root, reading).await?,
        _ => store.get(root).await?,
    };
    declared_size(root, &block)
}

/// The file size the block `block` of the UnixFS file root `root` declares.
pub(crate) fn declared_size(root: &Cid, block: &[u8]) -> Result<u64> {
    match root.codec() {
        RAW => Ok(block.len() as u64),
        DAG_PB => {
            let node = dagpb::decode_file_node(block).map_err(|r| malformed(root, r))?;
            let size = node_size(root, &node)?;
            Ok(node.filesize.unwrap_or(size))
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
    out: W,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<u64> {
    cat_with(store, root, out, progress, Reading::Checked).await
}

/// [`cat`], reading the blocks as `reading` says.
pub async fn cat_with<W: AsyncWrite + Unpin>(
    store: &Store,
    root: &Cid,
    mut out: W,
    progress: &(dyn Fn(u64) + Sync),
    reading: Reading,
) -> Result<u64> {
    let mut parts = Parts::new(*root, reading);
    while let Some(part) = parts.next(store).await? {
        write(&mut out, &part).await?;
        progress(parts.read());
    }
    out.flush()
        .await
        .map_err(|e| Error::ContentWrite(e.to_string()))?;
    Ok(parts.read())
}

/// Writes bytes `start..end` of the file under `root` to `out` (for HTTP range requests) and
/// returns how many: subtrees wholly before `start` are skipped by the sizes their parents
/// declare (not read), and reading stops at `end`. Only the blocks read are checked, so a DAG
/// whose skipped parts do not add up is not noticed here, as with any gateway's ranges.
pub async fn cat_range<W: AsyncWrite + Unpin>(
    store: &Store,
    root: &Cid,
    reading: Reading,
    start: u64,
    end: u64,
    mut out: W,
) -> Result<u64> {
    let mut parts = Parts::new(*root, reading);
    parts.skip_to = start;
    let mut written = 0;
    while parts.read() < end {
        let Some(part) = parts.next(store).await? else {
            break;
        };
        let after = parts.read();
        let from = after - part.len() as u64;
        let (lo, hi) = (start.max(from), end.min(after));
        if lo < hi {
            write(&mut out, &part[(lo - from) as usize..(hi - from) as usize]).await?;
            written += hi - lo;
        }
    }
    out.flush()
        .await
        .map_err(|e| Error::ContentWrite(e.to_string()))?;
    Ok(written)
}

/// The data of the UnixFS file under a root, part by part in order (a raw leaf's block is
/// handed on as it was read, not copied), every size the nodes declare checked against the
/// data found: a DAG that does not add up is an error, not a short file.
#[derive(Debug)]
pub struct Parts {
    root: Cid,
    reading: Reading,
    /// Depth-first, children in order; each entry carries the size its parent declared.
    stack: Vec<(Cid, Option<u64>)>,
    read: u64,
    declared_total: Option<u64>,
    /// Subtrees wholly before this offset are passed over unread.
    skip_to: u64,
}

impl Parts {
    pub fn new(root: Cid, reading: Reading) -> Self {
        Self {
            root,
            reading,
            stack: vec![(root, None)],
            read: 0,
            declared_total: None,
            skip_to: 0,
        }
    }

    /// Bytes of data handed out so far.
    pub fn read(&self) -> u64 {
        self.read
    }

    /// The next part (empty for a node that holds no data itself), or `None` at the end,
    /// once the total is checked.
    pub async fn next(&mut self, store: &Store) -> Result<Option<Vec<u8>>> {
        let Some((cid, expected)) = self.stack.pop() else {
            if self.declared_total != Some(self.read) {
                let (declared, read) = (self.declared_total, self.read);
                return Err(malformed(
                    &self.root,
                    format!("declares {declared:?} bytes but {read} were found"),
                ));
            }
            return Ok(None);
        };
        if let Some(size) = expected.filter(|&size| {
            self.read
                .checked_add(size)
                .is_some_and(|end| end <= self.skip_to)
        }) {
            self.read += size;
            return Ok(Some(Vec::new()));
        }
        let reading = match self.reading {
            Reading::TrustingLocalAfter(prefix) if self.read < prefix => Reading::Checked,
            Reading::TrustingLocalAfter(_) => Reading::TrustingLocal,
            other => other,
        };
        let block = store.read(&cid, reading).await?;
        // `size`: the bytes under this node; `own`: those it holds itself (its children
        // follow).
        let (size, own) = match cid.codec() {
            RAW => (block.len() as u64, block),
            DAG_PB => {
                let node = dagpb::decode_file_node(&block).map_err(|r| malformed(&cid, r))?;
                let size = node_size(&cid, &node)?;
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
                for (link, blocksize) in node.links.iter().zip(&node.blocksizes).rev() {
                    self.stack.push((*link, Some(*blocksize)));
                }
                (size, node.data)
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
            self.declared_total = Some(size);
        }
        self.read += own.len() as u64;
        Ok(Some(own))
    }
}

async fn write<W: AsyncWrite + Unpin>(out: &mut W, bytes: &[u8]) -> Result<()> {
    out.write_all(bytes)
        .await
        .map_err(|e| Error::ContentWrite(e.to_string()))
}

/// Reads every block of the DAG under `root`, checked: the first one missing or corrupt is
/// the error.
pub async fn check_dag(store: &Store, root: &Cid) -> Result<()> {
    let mut walk = Walk::new(*root);
    while walk.next(store).await?.is_some() {}
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cids;
    use cid::Version;

    /// A file node over `links` declaring `blocksizes` for them and `filesize` in all.
    async fn file_node(store: &Store, links: &[Cid], blocksizes: &[u64], filesize: u64) -> Cid {
        use prost::Message;
        let data = dagpb::UnixFsData {
            kind: dagpb::DataType::File as i32,
            data: None,
            filesize: Some(filesize),
            blocksizes: blocksizes.to_vec(),
            hash_type: None,
            fanout: None,
        }
        .encode_to_vec();
        let links: Vec<dagpb::Link> = links
            .iter()
            .map(|&cid| dagpb::Link { cid, tsize: 0 })
            .collect();
        let block = dagpb::encode_node(&links, &data);
        let cid = cids::cid_of(Version::V1, DAG_PB, &block);
        store.put(&cid, block).await.unwrap();
        cid
    }

    /// A seller's file whose children's sizes wrap around 2^64 to the 1 MiB it declares:
    /// the unread child is "skipped" by its huge size, and the real leaf is written again
    /// and again under a declared 1 MiB (a nest of such nodes grows it exponentially).
    #[tokio::test]
    async fn sizes_that_wrap_past_2_to_the_64_are_malformed_not_a_small_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::embedded(&dir.path().join("blocks")).unwrap();
        let mib = 1u64 << 20;
        let leaf_bytes = vec![7u8; mib as usize];
        let leaf = cids::cid_of(Version::V1, RAW, &leaf_bytes);
        store.put(&leaf, leaf_bytes).await.unwrap();
        let never_read = cids::cid_of(Version::V1, RAW, b"never read");
        let huge = u64::MAX - mib + 1;
        let root = file_node(
            &store,
            &[leaf, never_read, leaf, never_read, leaf],
            &[mib, huge, mib, huge, mib],
            mib,
        )
        .await;
        let err = file_size(&store, &root).await.unwrap_err();
        assert!(err.to_string().contains("past 2^64"), "{err}");
        let err = store.read_bytes(&root, 4 * mib).await.unwrap_err();
        assert!(err.to_string().contains("past 2^64"), "{err}");
        let mut out = Vec::new();
        let err = cat(&store, &root, &mut out, &|_| {}).await.unwrap_err();
        assert!(err.to_string().contains("past 2^64"), "{err}");
        assert!(out.is_empty(), "nothing written");
        // A range request that skips by the declared sizes.
        let err = cat_range(&store, &root, Reading::Checked, mib, 3 * mib, Vec::new())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("past 2^64"), "{err}");
    }
}
