//! Integration tests of the registry crate, against a real anvil, a real IPFS daemon and real
//! databases (SQLite files and the PostgreSQL server at 127.0.0.1:5432) started or created by
//! each test.

mod content;
mod contracts_flow;
mod devnet;
mod download;
mod flaky;
mod indexer;
mod keeper;
mod output_index;
mod outputs;
mod verify;

use test_support::{dbs, jsipfs, models, support, world};
