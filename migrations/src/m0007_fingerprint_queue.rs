//! Fingerprints are fetched off the chain path: a minted model's row starts `pending` and a
//! worker beside the indexer fetches it, retrying with a backoff. `attempts` and `retry_at`
//! (unix seconds) are the retry queue; rows an older indexer left `unavailable` are queued
//! again.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per statement.
        for column in ["attempts", "retry_at"] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Alias::new("fingerprints"))
                        .add_column(
                            ColumnDef::new(Alias::new(column))
                                .big_integer()
                                .not_null()
                                .default(0),
                        )
                        .to_owned(),
                )
                .await?;
        }
        manager
            .get_connection()
            .execute_unprepared(
                "UPDATE fingerprints SET status = 'pending' WHERE status = 'unavailable'",
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("fingerprints_due")
                    .table(Alias::new("fingerprints"))
                    .col(Alias::new("status"))
                    .col(Alias::new("retry_at"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("fingerprints_due")
                    .table(Alias::new("fingerprints"))
                    .to_owned(),
            )
            .await?;
        manager
            .get_connection()
            .execute_unprepared(
                "UPDATE fingerprints SET status = 'unavailable' WHERE status = 'pending'",
            )
            .await?;
        for column in ["retry_at", "attempts"] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Alias::new("fingerprints"))
                        .drop_column(Alias::new(column))
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
