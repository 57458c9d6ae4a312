//! Integration tests of the registry crate, against a real anvil started by each test.

mod contracts_flow;
mod devnet;
mod support;
