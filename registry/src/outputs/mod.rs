//! Output receipts: an output license's holder commits the Merkle root of a batch of outputs
//! on-chain, and each output gets a receipt (its leaf, its proof, the transaction) that proves
//! to anyone, later, that the holder of license L committed the output's hash by the block's
//! time.

pub mod batch;
pub mod check;
pub mod commit;
pub mod inclusion;
pub mod leaf;
pub mod receipt;
pub mod tree;

pub use batch::{Batch, Scope};
pub use check::{check, check_offline, Valid, Verdict};
pub use commit::{commit, CommitRequest, Committed};
pub use leaf::OutputLeaf;
pub use receipt::Receipt;
pub use tree::Tree;
