/// Errors of the database. Messages name the database (its password redacted).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database {url}: {message}")]
    Database { url: String, message: String },
    #[error("the schema of {url} is behind: {pending} migration(s) pending")]
    SchemaBehind { url: String, pending: usize },
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
