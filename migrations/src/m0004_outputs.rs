//! Output receipts: the batches committed under output licenses (`OutputsCommitted`), and the
//! outputs of published batches, read from their leaf lists in the content store.
//!
//! A batch's `leaves_*` columns say where fetching its leaf list stands. They are written in
//! place, not as new versions: the list is a function of the batch (its root is committed
//! on-chain and the list is content-addressed), so it lives and dies with the batch's version,
//! and the outputs read from it take the batch's `valid_from`, so that a reorg that drops the
//! batch drops them too.

use sea_orm_migration::prelude::*;

use crate::m0001_initial::{
    big, create_versioned, drop_tables, text, text_null, versioned, Versioned,
};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

fn tables() -> Vec<Versioned> {
    vec![
        (
            "output_batches",
            versioned(
                "output_batches",
                vec![
                    text("root"),
                    big("license_id"),
                    big("model_id"),
                    text("provider"),
                    big("count"),
                    // NULL when the batch was not published.
                    text_null("uri"),
                    big("committed_at"),
                    big("block_number"),
                    big("log_index"),
                    text("tx_hash"),
                    // unpublished, pending, indexing, indexed or invalid.
                    text("leaves_status"),
                    text_null("leaves_detail"),
                    big("leaves_attempts"),
                    // Unix time of the next attempt while pending.
                    big("leaves_retry_at"),
                ],
            ),
            vec![
                vec!["root"],
                vec!["license_id"],
                vec!["model_id"],
                vec!["provider"],
                vec!["block_number"],
                vec!["leaves_status", "leaves_retry_at"],
            ],
        ),
        (
            "outputs",
            versioned(
                "outputs",
                vec![
                    // The batch's block, log index and the output's place in its list,
                    // zero-padded: unique, and in the order outputs were committed.
                    text("id"),
                    text("content_hash"),
                    text("root"),
                    // The leaf's place in the published list.
                    big("position"),
                    text("leaf_hash"),
                    big("license_id"),
                    big("model_id"),
                    big("produced_at"),
                    text("salt"),
                    big("block_number"),
                ],
            ),
            vec![
                vec!["content_hash"],
                vec!["id"],
                vec!["root", "id"],
                vec!["license_id"],
                vec!["model_id"],
            ],
        ),
    ]
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        create_versioned(manager, tables()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_tables(manager, &["outputs", "output_batches"]).await
    }
}
