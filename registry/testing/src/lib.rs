//! Helpers shared by the integration tests and benches of `registry`, `registry-cli` and
//! `web` (a dev-dependency only): a chain with the contracts deployed ([`support`]), a workload
//! of every event kind and an indexer over it ([`world`]), test databases on SQLite and
//! PostgreSQL ([`dbs`]), generated safetensors models ([`models`]) and a js-ipfs daemon
//! ([`jsipfs`]).

pub mod dbs;
pub mod jsipfs;
pub mod models;
pub mod support;
pub mod world;
