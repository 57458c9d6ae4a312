//! What the status columns hold: where the off-chain fetches the indexer's workers do stand.

/// Where fetching a minted model's fingerprint stands (`fingerprints.status`; the indexer's
/// fingerprint worker moves it).
pub mod fingerprint {
    /// Not fetched yet, or the content store could not give it and it will be retried
    /// (`detail` says why).
    pub const PENDING: &str = "pending";
    /// Fetched, checked against the on-chain commitment, compared with the others.
    pub const OK: &str = "ok";
    /// Not what the chain committed to, or not a fingerprint; never retried.
    pub const INVALID: &str = "invalid";
}

/// Where fetching a batch's leaf list stands (`output_batches.leaves_status`).
pub mod leaves {
    /// The batch names no leaf list.
    pub const UNPUBLISHED: &str = "unpublished";
    /// Not fetched yet, or fetching failed and will be retried.
    pub const PENDING: &str = "pending";
    /// Checked; its outputs are being written (in chunks, so the indexer is not held up).
    pub const INDEXING: &str = "indexing";
    /// Fetched, checked against the root, and its outputs indexed.
    pub const INDEXED: &str = "indexed";
    /// Fetched (or named) but not the batch's leaves; never retried.
    pub const INVALID: &str = "invalid";
}
