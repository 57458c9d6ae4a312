use std::path::PathBuf;

/// Errors of the registry crate. Messages are lowercase and name the value that was wrong.
///
/// A wrapped I/O or parse error is a `cause` printed in the message, not a `source`: the
/// program prints an error with its chain of sources (`{:#}`), and a cause that was both would
/// be printed twice. The errors of the `content`, `store` and `fingerprint` crates are wrapped
/// whole (transparent), so their variants can be matched.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("anvil binary not found (looked at {looked}); run `npm ci` at the repository root or set REGISTRY_ANVIL")]
    AnvilNotFound { looked: String },
    #[error("could not start anvil at {path}: {cause}")]
    AnvilSpawn {
        path: PathBuf,
        cause: std::io::Error,
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
    #[error("no contract at {address:?} on {url}: the deployment file belongs to another chain or an anvil that was restarted")]
    NotDeployed {
        address: ethers::types::Address,
        url: String,
    },
    #[error("invalid private key: {0}")]
    PrivateKey(String),
    /// A transaction or call reverted with one of the contracts' custom errors (typed: match
    /// on the bindings' variants, not on the message).
    #[error("{} reverted: {}", .0.contract(), .0.describe())]
    Reverted(Box<crate::chain::Revert>),
    #[error("transaction {tx} was mined but failed (status 0)")]
    TxFailed { tx: String },
    #[error("transaction was dropped from the mempool before it was mined")]
    TxDropped,
    #[error("transaction {tx} was not mined within {seconds} s; it may still be: look it up before sending it again (--tx-timeout waits longer)")]
    TxTimeout { tx: String, seconds: u64 },
    #[error("the signer {account:?} holds {have} of token {token:?}, the price is {need}")]
    InsufficientTokens {
        token: ethers::types::Address,
        account: ethers::types::Address,
        /// Both amounts in whole units of the token (`2.5`).
        have: String,
        need: String,
    },
    #[error("{context}: {message}")]
    Contract { context: String, message: String },
    /// The content store's errors (a missing or corrupt block, an unreachable node).
    #[error(transparent)]
    Content(#[from] content::Error),
    #[error("{path}: {cause}")]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("writing the content out failed: {0}")]
    Write(String),
    // ---- flows
    #[error(transparent)]
    Fingerprint(#[from] fingerprint::Error),
    #[error("invalid amount {amount:?}: {reason}")]
    InvalidAmount { amount: String, reason: String },
    #[error("invalid time {time:?}: {reason}")]
    InvalidTime { time: String, reason: String },
    #[error("metadata {source_uri}: {reason}")]
    Metadata { source_uri: String, reason: String },
    #[error("the weights read as {verdict} from model {model} (similarity {similarity:.3}, false-positive probability {fpp:.1e}), which is not declared as a parent")]
    UndeclaredParent {
        model: u64,
        verdict: &'static str,
        similarity: f64,
        fpp: f64,
    },
    #[error("content root {content_root} is already registered as model {model}")]
    DuplicateContent { model: u64, content_root: String },
    #[error("{what} must be a .safetensors file or a model folder: {path}")]
    NotAFile { what: &'static str, path: PathBuf },
    #[error("{path} is {what}: encrypted models are one safetensors file")]
    EncryptedFormat { path: PathBuf, what: &'static str },
    #[error("{file} holds weights the fingerprint does not cover (only {covered} is read as the model): remove it from the folder, or mint it as a model of its own")]
    UncoveredWeights { file: PathBuf, covered: String },
    // ---- keys and encryption
    #[error("no age identity at {path}")]
    IdentityMissing { path: PathBuf },
    #[error("age identity file {path}: {reason}")]
    IdentityFile { path: PathBuf, reason: String },
    #[error("invalid age recipient {recipient:?}: {reason}")]
    InvalidRecipient { recipient: String, reason: String },
    #[error("encrypting failed: {0}")]
    Encrypt(String),
    #[error("{what} cannot be decrypted: {reason}")]
    Decrypt { what: String, reason: String },
    #[error("{what} is not wrapped to this identity ({recipient})")]
    NotARecipient { what: String, recipient: String },
    #[error("key endpoint {url}: {message}")]
    KeyEndpoint { url: String, message: String },
    #[error("bad key request: {0}")]
    BadKeyRequest(String),
    #[error("the metadata of model {model} names no key envelope, though the chain says its weights are encrypted")]
    NoEnvelope { model: ethers::types::U256 },
    #[error("{account:?} holds no valid access or fine-tune license of model {model}{}; {offerings}", license.map(|l| format!(" (license {l} grants neither)")).unwrap_or_default())]
    NoLicense {
        model: ethers::types::U256,
        account: ethers::types::Address,
        license: Option<ethers::types::U256>,
        offerings: String,
    },
    #[error(
        "license {license} of model {model} is waiting for its key (escrowed until {deadline})"
    )]
    KeyPending {
        model: ethers::types::U256,
        license: ethers::types::U256,
        deadline: String,
    },
    #[error("license {license} of model {model} has no delivered key")]
    KeyNotDelivered {
        model: ethers::types::U256,
        license: ethers::types::U256,
    },
    #[error("the downloaded weights of model {model} do not match the chain: {differ} differ")]
    DownloadMismatch {
        model: ethers::types::U256,
        differ: String,
    },
    #[error("the weights of model {model} are {found} bytes long, but {declared} were declared")]
    DownloadSize {
        model: ethers::types::U256,
        declared: u64,
        found: String,
    },
    #[error("{account:?} may not commit outputs under license {license}: {reason}")]
    NoOutputLicense {
        license: ethers::types::U256,
        account: ethers::types::Address,
        reason: String,
    },
    #[error(
        "{path} exists: a receipt is never overwritten (move it away to commit the output again)"
    )]
    ReceiptExists { path: std::path::PathBuf },
    #[error("no outputs to commit")]
    NoOutputs,
    #[error("no offline proof of block {block:?}: {reason}")]
    Inclusion {
        block: ethers::types::H256,
        reason: String,
    },
    #[error("{path} is dated {produced_at}, after the chain's time {now} (unix seconds): its receipt could never verify")]
    ProducedInFuture {
        path: std::path::PathBuf,
        produced_at: u64,
        now: u64,
    },
    #[error("batch {root} was committed (tx {tx}) but only {written} of {count} receipts were written: {reason}")]
    ReceiptsLost {
        root: String,
        tx: String,
        written: usize,
        count: usize,
        reason: String,
    },
    #[error("{path}: {reason}")]
    Receipt {
        path: std::path::PathBuf,
        reason: String,
    },
    #[error("model {model} is encrypted: `registry download {model}` decrypts and verifies it, or pass --weights FILE")]
    VerifyEncrypted { model: ethers::types::U256 },
    // ---- database and indexer
    /// The database's errors (unreachable, a failed statement, a schema that is behind).
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error("another indexer is writing to this database (it holds the {what})")]
    IndexerRunning { what: String },
    #[error("the indexer lost its writer lock ({what}): the database ended the session that held it; stopping, so that two writers never race (start the indexer again)")]
    WriterLockLost { what: String },
    #[error("database {url} indexes another deployment ({indexed})")]
    WrongDeployment { url: String, indexed: String },
    #[error("reorg deeper than the kept history: no stored block hash from {oldest} to {cursor} is on the chain any more")]
    ReorgTooDeep { cursor: u64, oldest: u64 },
    #[error("the indexer's cursor moved from block {cursor} under it (another writer, or a commit that failed and was retried?); stopping")]
    CursorMoved { cursor: u64 },
    #[error("block {number} is not on the node (the chain is shorter, or the node lags)")]
    BlockMissing { number: u64 },
    #[error("log {log_index} of block {block} does not decode: {message}")]
    Decode {
        block: u64,
        log_index: u64,
        message: String,
    },
    #[error("deployment file {path}: {cause}")]
    DeploymentIo {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("deployment file {path} is malformed: {cause}")]
    DeploymentFormat {
        path: PathBuf,
        cause: serde_json::Error,
    },
}

impl Error {
    /// A database error on `url` (its password redacted in the message).
    pub(crate) fn database(url: &str, message: impl std::fmt::Display) -> Error {
        Error::Store(store::Error::Database {
            url: store::redact(url),
            message: message.to_string(),
        })
    }
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    /// The program prints an error with its chain of sources (`error: {:#}`): every cause
    /// appears once.
    #[test]
    fn no_cause_is_printed_twice() {
        let io = || std::io::Error::other("disk on fire");
        let json = || serde_json::from_str::<u8>("{").unwrap_err();
        let errors = [
            Error::Io {
                path: "weights".into(),
                cause: io(),
            },
            Error::AnvilSpawn {
                path: "anvil".into(),
                cause: io(),
            },
            Error::DeploymentIo {
                path: "deployment.json".into(),
                cause: io(),
            },
            Error::DeploymentFormat {
                path: "deployment.json".into(),
                cause: json(),
            },
            Error::Content(content::Error::ContentIo {
                path: "blocks".into(),
                cause: io(),
            }),
            Error::Fingerprint(fingerprint::Error::Io {
                path: "model".into(),
                cause: io(),
            }),
        ];
        for error in errors {
            let cause = match &error {
                Error::DeploymentFormat { cause, .. } => cause.to_string(),
                _ => io().to_string(),
            };
            let line = format!("{:#}", anyhow::Error::new(error));
            assert_eq!(line.matches(&cause).count(), 1, "{line}");
        }
    }
}
