use std::path::PathBuf;

/// Errors of the fingerprint crate. Each names the file (and tensor) that was wrong; a wrapped
/// I/O error is a `cause` printed in the message (not also a `source`, which a printer of the
/// chain would print again).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {cause}")]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{path}: no *.safetensors files in the directory")]
    EmptyDirectory { path: PathBuf },
    #[error("{file}: {problem}")]
    Header { file: PathBuf, problem: String },
    #[error("{file}: tensor {tensor:?} has unsupported dtype {dtype}")]
    UnsupportedDtype {
        file: PathBuf,
        tensor: String,
        dtype: String,
    },
    #[error("tensor {tensor:?} appears in both {first} and {second}")]
    DuplicateTensor {
        tensor: String,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("{file}: packed tensor {tensor:?}: {problem}")]
    Packed {
        file: PathBuf,
        tensor: String,
        problem: String,
    },
    #[error("{index}: {problem}")]
    Index { index: PathBuf, problem: String },
    #[error("{file}: tensor {tensor:?} has a dimension too large to sketch ({rows} x {cols})")]
    TooLarge {
        file: PathBuf,
        tensor: String,
        rows: u64,
        cols: u64,
    },
    #[error("{path}: {problem}")]
    Tokenizer { path: PathBuf, problem: String },
    #[error("fingerprint encoding: {0}")]
    Encoding(String),
    #[error("gpu backend {backend}: {message}")]
    Gpu {
        backend: &'static str,
        message: String,
    },
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
