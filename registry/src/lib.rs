//! The model registry's domain: a managed anvil devnet, the chain client that signs and sends
//! transactions through the contract bindings, deployments of the contracts, and decoding of
//! their reverts into readable errors.
//!
//! Later parts (content store, flows, indexer, store) join here; the command-line program is
//! the `registry-cli` crate.

pub mod chain;
pub mod deploy;
pub mod devnet;
mod error;

pub use error::{Error, Result};
