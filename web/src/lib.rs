//! The read side over HTTP, for marketplaces and inference providers: an async-graphql API on
//! actix-web over the indexer's database (SQLite or PostgreSQL).
//!
//! - `/graphql`: queries over POST and GET, subscriptions over WebSocket
//!   (`graphql-transport-ws`, or the older `graphql-ws`) on the same path, with limits on
//!   connections, message size and rate, and subscriptions per connection (see `ws`).
//! - `/graphiql`: GraphiQL, its assets served by this server (no CDN; see `graphiql`); `/health`: database and indexer status; `/ready`: whether to send
//!   traffic here; `/metrics`: Prometheus metrics (see `metrics`); `/`, `/models/{id}`, `/accounts/{address}`,
//!   `/rights`: the web app (see [`app`]);
//!   `/ipfs/<cid>`: the content store, read-only (every block checked).
//! - `/v1/models/{id}/access` (with a keeper identity): x402 `402 Payment Required` with the
//!   offerings that sell a model's key, and the key wrapped for a license holder's signed
//!   request (see `registry::key_service`).
//!
//! Lists use keyset (cursor) pagination: `first` defaults to [`schema::DEFAULT_PAGE`] and may
//! not exceed [`schema::MAX_PAGE`]; cursors are opaque and stable under inserts. Nested lists go
//! through DataLoaders, so a query costs one database query per level, not per row.
//!
//! Abusive queries are refused before they run, each with a machine code in
//! `extensions.code`: `DEPTH_LIMIT`, `COMPLEXITY_LIMIT` (list fields count their page size),
//! `ALIAS_LIMIT`, `PAGE_SIZE_LIMIT`, `BODY_TOO_LARGE`, `BODY_TIMEOUT` (a body sent too
//! slowly), `TIMEOUT` (per-query time budget), and over WebSocket `TOO_MANY_CONNECTIONS` and
//! `TOO_MANY_SUBSCRIPTIONS`.
//! Internal errors are logged once and answered as `internal error` (`INTERNAL`).
//! See [`Limits`] for the figures.
//!
//! The SDL is committed as `web/schema.graphql`; a test fails when it drifts.

mod access;
pub mod app;
mod cache;
mod error;
mod gateway;
mod graphiql;
mod limits;
mod metrics;
pub mod schema;
pub mod server;
mod ws;

pub use limits::Limits;
pub use schema::{build_schema, RegistrySchema};
pub use server::{serve, serve_until, ServerConfig};
