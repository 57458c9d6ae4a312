//! DAG-PB nodes carrying UnixFS file data: the two protobuf messages Kubo writes for files.
//!
//! Decoding goes through prost. Encoding writes the fields in DAG-PB's canonical order, which is
//! *not* field-number order: `Links` (field 2) come before `Data` (field 1). go-merkledag,
//! js-ipfs and the DAG-PB spec all do this, so a node that prost wrote in tag order would hash
//! to a different CID than Kubo's.

use cid::Cid;
use prost::Message;

/// `PBLink` of the DAG-PB spec.
#[derive(Clone, PartialEq, Message)]
pub(crate) struct PbLink {
    /// The child's CID in binary form (a bare multihash for CIDv0).
    #[prost(bytes = "vec", optional, tag = "1")]
    pub hash: Option<Vec<u8>>,
    #[prost(string, optional, tag = "2")]
    pub name: Option<String>,
    /// Cumulative size of the child's DAG in bytes of encoded blocks.
    #[prost(uint64, optional, tag = "3")]
    pub tsize: Option<u64>,
}

/// `PBNode` of the DAG-PB spec (used for decoding; see [`encode_node`] for writing).
#[derive(Clone, PartialEq, Message)]
pub(crate) struct PbNode {
    #[prost(bytes = "vec", optional, tag = "1")]
    pub data: Option<Vec<u8>>,
    #[prost(message, repeated, tag = "2")]
    pub links: Vec<PbLink>,
}

/// UnixFS `Data.DataType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, prost::Enumeration)]
#[repr(i32)]
pub(crate) enum DataType {
    Raw = 0,
    Directory = 1,
    File = 2,
    Metadata = 3,
    Symlink = 4,
    HamtShard = 5,
}

/// The UnixFS `Data` message (fields 1–6; mode and mtime are never written by this importer).
#[derive(Clone, PartialEq, Message)]
pub(crate) struct UnixFsData {
    #[prost(enumeration = "DataType", required, tag = "1")]
    pub kind: i32,
    #[prost(bytes = "vec", optional, tag = "2")]
    pub data: Option<Vec<u8>>,
    #[prost(uint64, optional, tag = "3")]
    pub filesize: Option<u64>,
    /// proto2 `repeated uint64` without `[packed=true]`: one tag per value, as Kubo writes it.
    #[prost(uint64, repeated, packed = "false", tag = "4")]
    pub blocksizes: Vec<u64>,
    /// A HAMT shard's hash function (multicodec; murmur3-x64-64 is 0x22).
    #[prost(uint64, optional, tag = "5")]
    pub hash_type: Option<u64>,
    /// A HAMT shard's width.
    #[prost(uint64, optional, tag = "6")]
    pub fanout: Option<u64>,
}

/// A link to write: the child's CID and the size of its whole DAG.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Link {
    pub cid: Cid,
    pub tsize: u64,
}

/// Encodes a DAG-PB node canonically: every link (with an empty name, as Kubo writes file
/// links), then the data.
pub(crate) fn encode_node(links: &[Link], data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + links.len() * 48 + 8);
    for link in links {
        let pb = PbLink {
            hash: Some(link.cid.to_bytes()),
            name: Some(String::new()),
            tsize: Some(link.tsize),
        };
        prost::encoding::message::encode(2, &pb, &mut out);
    }
    prost::encoding::bytes::encode(1, &data.to_vec(), &mut out);
    out
}

/// The UnixFS data of a file node: a leaf holding `chunk`, or an inner node over children
/// holding `blocksizes` bytes of file each. An empty chunk is left out, as Kubo does.
pub(crate) fn file_data(chunk: &[u8], blocksizes: Vec<u64>) -> Vec<u8> {
    let filesize = chunk.len() as u64 + blocksizes.iter().sum::<u64>();
    UnixFsData {
        kind: DataType::File as i32,
        data: (!chunk.is_empty()).then(|| chunk.to_vec()),
        filesize: Some(filesize),
        blocksizes,
        hash_type: None,
        fanout: None,
    }
    .encode_to_vec()
}

/// A named link of a directory node: the entry's name, CID and cumulative DAG size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub name: String,
    pub cid: Cid,
    pub tsize: u64,
}

/// Encodes a UnixFS directory node as Kubo does: its links named and sorted by name (byte
/// order, as go-merkledag and js-dag-pb sort them), then `Data` of type Directory alone.
pub(crate) fn encode_dir_node(entries: &[Entry]) -> Vec<u8> {
    let data = UnixFsData {
        kind: DataType::Directory as i32,
        data: None,
        filesize: None,
        blocksizes: Vec::new(),
        hash_type: None,
        fanout: None,
    };
    encode_named(entries, &data.encode_to_vec())
}

/// The multicodec of the hash HAMT shards use: the first 64 bits of murmur3-x64-128.
pub(crate) const MURMUR3_X64_64: u64 = 0x22;

/// Encodes a HAMT shard node as boxo's `Shard.Node` does: `links` named by their slot (two
/// upper-case hex digits, then the entry's name for an entry, nothing more for a sub-shard),
/// then `Data` of type HAMTShard carrying the occupied slots as a big-endian bitfield with its
/// leading zero bytes dropped, the hash function and the width.
pub(crate) fn encode_shard_node(links: &[Entry], bitfield: &[u8], fanout: u64) -> Vec<u8> {
    let start = bitfield
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(bitfield.len());
    let data = UnixFsData {
        kind: DataType::HamtShard as i32,
        data: Some(bitfield[start..].to_vec()),
        filesize: None,
        blocksizes: Vec::new(),
        hash_type: Some(MURMUR3_X64_64),
        fanout: Some(fanout),
    };
    encode_named(links, &data.encode_to_vec())
}

fn encode_named(entries: &[Entry], data: &[u8]) -> Vec<u8> {
    let mut sorted: Vec<&Entry> = entries.iter().collect();
    sorted.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    let mut out = Vec::with_capacity(entries.len() * 64 + 8);
    for entry in sorted {
        let pb = PbLink {
            hash: Some(entry.cid.to_bytes()),
            name: Some(entry.name.clone()),
            tsize: Some(entry.tsize),
        };
        prost::encoding::message::encode(2, &pb, &mut out);
    }
    prost::encoding::bytes::encode(1, &data.to_vec(), &mut out);
    out
}

/// What a DAG-PB node is, as far as reading a tree needs: a directory's named entries, or the
/// kind of anything else.
#[derive(Debug)]
pub(crate) enum Kind {
    Directory(Vec<(String, Cid)>),
    /// A node of a HAMT-sharded directory: its links as named (slot prefix first), and the
    /// length of that prefix.
    Shard {
        links: Vec<(String, Cid)>,
        prefix: usize,
        fanout: u64,
    },
    File,
    Other(String),
}

/// A DAG-PB block's node, its UnixFS data and type.
fn decode_unixfs(block: &[u8]) -> Result<(PbNode, UnixFsData, DataType), String> {
    let node = PbNode::decode(block).map_err(|e| format!("not a dag-pb node: {e}"))?;
    let unixfs = UnixFsData::decode(node.data.as_deref().unwrap_or_default())
        .map_err(|e| format!("not unixfs data: {e}"))?;
    let kind = DataType::try_from(unixfs.kind)
        .map_err(|_| format!("unknown unixfs type {}", unixfs.kind))?;
    Ok((node, unixfs, kind))
}

/// The CID link `i` points at.
fn link_cid(i: usize, link: &PbLink) -> Result<Cid, String> {
    let hash = link
        .hash
        .as_deref()
        .ok_or(format!("link {i} has no hash"))?;
    Cid::try_from(hash).map_err(|e| format!("link {i} has an invalid cid: {e}"))
}

/// Decodes a DAG-PB block's UnixFS kind (a directory with its entries); the error says what
/// is wrong.
pub(crate) fn decode_kind(block: &[u8]) -> Result<Kind, String> {
    let (node, unixfs, kind) = decode_unixfs(block)?;
    match kind {
        DataType::File | DataType::Raw => Ok(Kind::File),
        DataType::Directory => named_links(&node).map(Kind::Directory),
        DataType::HamtShard => {
            if unixfs.hash_type != Some(MURMUR3_X64_64) {
                return Err(format!(
                    "HAMT shard hashed with {:?}, not murmur3-x64-64 (0x22)",
                    unixfs.hash_type
                ));
            }
            // boxo's limits: a power of two, a multiple of 8 (whole bitfield bytes), at most
            // 1024.
            let fanout = unixfs.fanout.unwrap_or(0);
            if !(fanout.is_power_of_two() && fanout % 8 == 0 && fanout <= 1024) {
                return Err(format!("HAMT shard of width {fanout}"));
            }
            let links = named_links(&node)?;
            if links.len() as u64 > fanout {
                return Err(format!(
                    "HAMT shard of width {fanout} with {} links",
                    links.len()
                ));
            }
            Ok(Kind::Shard {
                links,
                prefix: format!("{:X}", fanout - 1).len(),
                fanout,
            })
        }
        other => Ok(Kind::Other(format!("{other:?}"))),
    }
}

fn named_links(node: &PbNode) -> Result<Vec<(String, Cid)>, String> {
    node.links
        .iter()
        .enumerate()
        .map(|(i, link)| Ok((link.name.clone().unwrap_or_default(), link_cid(i, link)?)))
        .collect()
}

/// A decoded file node: its own bytes of file data and its children in order.
#[derive(Debug)]
pub(crate) struct FileNode {
    pub data: Vec<u8>,
    pub filesize: Option<u64>,
    pub blocksizes: Vec<u64>,
    pub links: Vec<Cid>,
}

/// Decodes a DAG-PB block as a UnixFS file (or raw) node; the error says what is wrong.
pub(crate) fn decode_file_node(block: &[u8]) -> Result<FileNode, String> {
    let (node, unixfs, kind) = decode_unixfs(block)?;
    if !matches!(kind, DataType::File | DataType::Raw) {
        return Err(format!("unixfs {kind:?} node where a file was expected"));
    }
    let links = node
        .links
        .iter()
        .enumerate()
        .map(|(i, link)| link_cid(i, link))
        .collect::<Result<Vec<_>, String>>()?;
    if !unixfs.blocksizes.is_empty() && unixfs.blocksizes.len() != links.len() {
        return Err(format!(
            "{} blocksizes for {} links",
            unixfs.blocksizes.len(),
            links.len()
        ));
    }
    Ok(FileNode {
        data: unixfs.data.unwrap_or_default(),
        filesize: unixfs.filesize,
        blocksizes: unixfs.blocksizes,
        links,
    })
}

/// The children of any DAG-PB node (for walking a DAG without interpreting it).
pub(crate) fn links_of(block: &[u8]) -> Result<Vec<Cid>, String> {
    let node = PbNode::decode(block).map_err(|e| format!("not a dag-pb node: {e}"))?;
    node.links
        .iter()
        .enumerate()
        .map(|(i, link)| link_cid(i, link))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_node_matches_kubo_bytes() {
        // The block behind QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH, Kubo's empty file.
        let block = encode_node(&[], &file_data(b"", vec![]));
        assert_eq!(block, [0x0a, 0x04, 0x08, 0x02, 0x18, 0x00]);
    }

    #[test]
    fn links_come_before_data() {
        let cid: Cid = "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"
            .parse()
            .unwrap();
        let block = encode_node(&[Link { cid, tsize: 6 }], &file_data(b"", vec![0]));
        assert_eq!(block[0], 0x12, "field 2 (Links) first");
        let node = decode_file_node(&block).unwrap();
        assert_eq!(node.links, vec![cid]);
        assert_eq!(node.blocksizes, vec![0]);
        assert_eq!(node.filesize, Some(0));
    }

    #[test]
    fn empty_directory_matches_kubo_bytes() {
        // The block behind QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn, `ipfs add -r` of an
        // empty folder (and the CID every IPFS implementation knows as the empty directory).
        let block = encode_dir_node(&[]);
        assert_eq!(block, [0x0a, 0x02, 0x08, 0x01]);
        let cid = crate::cids::cid_of(cid::Version::V0, crate::cids::DAG_PB, &block);
        assert_eq!(
            cid.to_string(),
            "QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn"
        );
        assert!(matches!(decode_kind(&block), Ok(Kind::Directory(e)) if e.is_empty()));
    }

    #[test]
    fn directory_links_are_named_and_sorted_by_bytes() {
        let cid: Cid = "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"
            .parse()
            .unwrap();
        let entry = |name: &str| Entry {
            name: name.into(),
            cid,
            tsize: 6,
        };
        // Upper case sorts before lower case; "a.b" before "a_b" ('.' < '_').
        let block = encode_dir_node(&[entry("b"), entry("a_b"), entry("B"), entry("a.b")]);
        let Ok(Kind::Directory(entries)) = decode_kind(&block) else {
            panic!("not a directory");
        };
        let names: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["B", "a.b", "a_b", "b"]);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bytes in [&b"\xff\xff\xff"[..], b"\x0a\x10abc", b"\x12\x02\x0a\x05"] {
            assert!(decode_file_node(bytes).is_err(), "{bytes:?}");
        }
    }
}
