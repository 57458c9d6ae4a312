//! Integration tests of the contracts crate: the committed artifacts and bindings must match the
//! Solidity sources. Chain behaviour is tested against a real anvil in the registry crate.

mod generated;
