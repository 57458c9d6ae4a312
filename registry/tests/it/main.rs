//! Integration tests of the registry crate, against a real anvil and a real IPFS daemon
//! started by each test.

mod content;
mod contracts_flow;
mod devnet;
mod jsipfs;
mod support;
