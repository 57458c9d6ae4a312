//! Contracts v2: a model's derivative royalty floor, and an offering's renewal period (how long
//! its licenses stay renewable after it closes). Rows indexed before have neither: 0.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

fn add(table: &str, column: &str, big: bool) -> TableAlterStatement {
    let mut c = ColumnDef::new(Alias::new(column));
    if big {
        c.big_integer();
    } else {
        c.integer();
    }
    c.not_null().default(0);
    Table::alter()
        .table(Alias::new(table))
        .add_column(&mut c)
        .to_owned()
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(add("models", "derivative_royalty_bps", false))
            .await?;
        manager
            .alter_table(add("offerings", "renewal_period", true))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (table, column) in [
            ("models", "derivative_royalty_bps"),
            ("offerings", "renewal_period"),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Alias::new(table))
                        .drop_column(Alias::new(column))
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
