//! The indexer's prune horizon: history (closed row versions) at or below it is gone, so a
//! reorg whose common ancestor is below it cannot be undone and stops the indexer.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("indexer_state"))
                    .add_column(
                        ColumnDef::new(Alias::new("pruned_to"))
                            .big_integer()
                            .not_null()
                            .default(0),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("indexer_state"))
                    .drop_column(Alias::new("pruned_to"))
                    .to_owned(),
            )
            .await
    }
}
