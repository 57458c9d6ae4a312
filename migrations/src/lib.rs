//! The database schema of the read side (indexer and GraphQL), as sea-orm migrations that run
//! unchanged on SQLite and PostgreSQL.
//!
//! # Versioned rows
//!
//! Every table the indexer writes from chain events keeps row *versions*: `valid_from` is the
//! block that wrote the version and `valid_to` the block that replaced it (NULL while current),
//! the scheme graph-node uses. An update closes the current version and inserts a new one, so a
//! reorg back to block `n` is two statements per table, whatever the events were:
//! `DELETE … WHERE valid_from > n` and `UPDATE … SET valid_to = NULL WHERE valid_to > n`.
//! Versions closed at or below the finalized block are pruned.
//!
//! # Encodings
//!
//! Addresses and hashes are lowercase `0x` hex text. 256-bit amounts are decimal text, with a
//! `…_key` column holding the same number zero-padded to 78 digits, so that ordering and range
//! filters compare correctly as text on both databases.

use sea_orm_migration::prelude::*;

mod m0001_initial;
mod m0002_contracts_v2;
mod m0003_escrow;
mod m0004_outputs;
mod m0005_unique_current;
mod m0006_pruned_to;
mod m0007_fingerprint_queue;
mod m0008_current_row_indexes;
mod m0009_change_counter;

/// Applies the schema's migrations in order.
#[derive(Debug)]
pub struct Migrator;

#[sea_orm_migration::async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m0001_initial::Migration),
            Box::new(m0002_contracts_v2::Migration),
            Box::new(m0003_escrow::Migration),
            Box::new(m0004_outputs::Migration),
            Box::new(m0005_unique_current::Migration),
            Box::new(m0006_pruned_to::Migration),
            Box::new(m0007_fingerprint_queue::Migration),
            Box::new(m0008_current_row_indexes::Migration),
            Box::new(m0009_change_counter::Migration),
        ]
    }
}

/// The tables that hold versioned rows (see the crate docs). A table whose rows another
/// writer adds under a row of an earlier one (outputs under their batch) comes after it: a
/// reorg deletes the batch first, waiting for such a writer, and then sees its rows.
pub const VERSIONED_TABLES: [&str; 12] = [
    "models",
    "lineage",
    "offerings",
    "licenses",
    "credits",
    "withdrawals",
    "balances",
    "transfers",
    "fingerprints",
    "similarities",
    "output_batches",
    "outputs",
];

pub use sea_orm_migration;
