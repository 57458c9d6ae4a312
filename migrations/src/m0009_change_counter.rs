//! A change counter on the indexer's state row, raised by every write transaction of the
//! indexer and its workers (`store::claim_writes`). With the state row it names
//! the version of the indexed data: the API's response cache keys its answers on it, so no
//! answer outlives the data it was computed from (a worker's write moves neither the cursor
//! nor the head). It is not versioned: a reorg never takes it back.

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
                        ColumnDef::new(Alias::new("changes"))
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
                    .drop_column(Alias::new("changes"))
                    .to_owned(),
            )
            .await
    }
}
