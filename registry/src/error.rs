use std::path::PathBuf;

/// Errors of the registry crate. Messages are lowercase and name the value that was wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("anvil binary not found (looked at {looked}); run `npm ci` at the repository root or set REGISTRY_ANVIL")]
    AnvilNotFound { looked: String },
    #[error("could not start anvil at {path}: {source}")]
    AnvilSpawn {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("anvil exited before it was ready: {output}")]
    AnvilExited { output: String },
    #[error("anvil did not report its address within {seconds} s")]
    AnvilTimeout { seconds: u64 },
    #[error("invalid rpc url {url:?}: {reason}")]
    RpcUrl { url: String, reason: String },
    #[error("rpc request to {url} failed: {message}")]
    Rpc { url: String, message: String },
    #[error("chain id mismatch: the node at {url} reports {actual}, expected {expected}")]
    ChainIdMismatch {
        url: String,
        expected: u64,
        actual: u64,
    },
    #[error("invalid private key: {0}")]
    PrivateKey(String),
    /// A transaction or call reverted with one of the contracts' custom errors.
    #[error("{contract} reverted: {reason}")]
    Reverted {
        contract: &'static str,
        reason: String,
    },
    #[error("transaction {tx} was mined but failed (status 0)")]
    TxFailed { tx: String },
    #[error("transaction was dropped from the mempool before it was mined")]
    TxDropped,
    #[error("{context}: {message}")]
    Contract { context: String, message: String },
    #[error("deployment file {path}: {source}")]
    DeploymentIo {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("deployment file {path} is malformed: {source}")]
    DeploymentFormat {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
