//! Progress of long work (fingerprinting, uploads, downloads), reported by the flows and drawn
//! by the command line; the library itself never prints.

/// Receives progress of one stage at a time.
pub trait Progress: Sync {
    /// A new stage begins; `total` is its size in bytes when known.
    fn stage(&self, name: &str, total: Option<u64>);
    /// Bytes done so far in the current stage.
    fn set(&self, done: u64);
    /// The current stage is over.
    fn done(&self);
}

/// Progress that goes nowhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Progress for Silent {
    fn stage(&self, _: &str, _: Option<u64>) {}
    fn set(&self, _: u64) {}
    fn done(&self) {}
}
