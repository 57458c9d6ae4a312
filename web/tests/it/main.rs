//! Integration tests of the web crate: the committed SDL, and the API over a database that the
//! indexer filled from a real anvil (SQLite and PostgreSQL).

mod abuse;
mod api;
mod cors;
#[path = "../../../registry/tests/it/dbs.rs"]
#[allow(dead_code)] // shared with other test binaries
mod dbs;
mod finality;
mod gateway;
mod keys;
mod metrics;
#[path = "../../../registry/tests/it/models.rs"]
#[allow(dead_code)] // shared with other test binaries
mod models;
mod outputs;
mod ready;
mod sdl;
mod sockets;
#[path = "../../../registry/tests/it/support.rs"]
#[allow(dead_code)] // shared with other test binaries
mod support;
#[path = "../../../registry/tests/it/world.rs"]
#[allow(dead_code)] // shared with other test binaries
mod world;
