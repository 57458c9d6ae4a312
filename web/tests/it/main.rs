//! Integration tests of the web crate: the committed SDL, and the API over a database that the
//! indexer filled from a real anvil (SQLite and PostgreSQL).

mod abuse;
mod api;
mod app;
mod cache;
mod cors;
mod finality;
mod gateway;
mod graphiql;
mod keys;
mod metrics;
mod outputs;
mod ready;
mod sdl;
mod sockets;
mod subscriptions;

use test_support::{dbs, models, world};
