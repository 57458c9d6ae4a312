//! The model registry's domain: the content store (embedded blockstore or a Kubo node, with
//! Kubo-identical CIDs), a managed anvil devnet, the chain client that signs and sends
//! transactions through the contract bindings and decodes their reverts, deployments, and the
//! author and licensee flows (mint, offer, buy, renew, rights, verify, withdraw).
//!
//! The indexer and the store join here later; the command-line program is the `registry-cli`
//! crate.

pub mod access;
pub mod amount;
pub mod arriving;
pub mod chain;
pub mod content;
pub mod db;
pub mod deploy;
pub mod devnet;
pub mod erc20;
mod error;
pub mod indexer;
pub mod keeper;
pub mod key_request;
pub mod key_service;
pub mod keys;
pub mod market;
pub mod metadata;
pub mod mint;
pub mod outputs;
pub mod progress;
pub mod provenance;
pub mod sealed;
pub mod verify;

pub use error::{Error, Result};
