use std::path::PathBuf;

/// Errors of the content store. Messages are lowercase and name the block, file or node; a
/// wrapped I/O error is a `cause` printed in the message (not also a `source`, which a
/// printer of the chain would print again).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid cid {cid:?}: {reason}")]
    InvalidCid { cid: String, reason: String },
    #[error("block {cid} uses hash function {code:#x}; only sha2-256 is supported")]
    UnsupportedHash { cid: String, code: u64 },
    #[error("block {cid} is corrupt: its bytes hash to sha2-256 {actual}")]
    CorruptBlock { cid: String, actual: String },
    #[error("block {cid} in {path} is corrupt: its bytes hash to sha2-256 {actual}")]
    CorruptStoredBlock {
        cid: String,
        actual: String,
        path: PathBuf,
    },
    #[error("block {cid} is not in the content store at {store}")]
    BlockNotFound { cid: String, store: String },
    #[error("block {cid} is not a valid unixfs file node: {reason}")]
    MalformedNode { cid: String, reason: String },
    #[error("{cid} holds {size} bytes, more than the {max} expected here")]
    ContentTooLarge { cid: String, size: u64, max: u64 },
    #[error("{path}: {cause}")]
    ContentIo {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("reading the content to add failed: {0}")]
    ContentRead(String),
    #[error("writing the content out failed: {0}")]
    ContentWrite(String),
    #[error("ipfs node {url}: {message}")]
    Ipfs { url: String, message: String },
    #[error("ipfs node {url} stored a block as {answered}, expected {expected}")]
    IpfsCidMismatch {
        url: String,
        expected: String,
        answered: String,
    },
    #[error("{cid} read back from the {store} differs from what was added")]
    ReadbackMismatch { cid: String, store: String },
    #[error("{root} has nothing at {path:?}")]
    PathNotFound { root: String, path: String },
    #[error("{path}: {reason}")]
    UnsupportedEntry { path: PathBuf, reason: String },
    #[error("car file {path}: {reason}")]
    Car { path: PathBuf, reason: String },
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
