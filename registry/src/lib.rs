//! The model registry's domain: a managed anvil devnet, the chain client that signs and sends
//! transactions through the contract bindings and decodes their reverts, deployments, the
//! author and licensee flows (mint, offer, buy, renew, rights, verify, withdraw), and the
//! indexer.
//!
//! The content store is the `content` crate, the indexer's database the `store` crate; the
//! command-line program is the `registry-cli` crate. The fingerprint's GPU backends are built
//! only where the program enables them (`fingerprint/gpu`).

pub mod access;
pub mod amount;
pub mod arriving;
pub mod chain;
pub mod demo;
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
