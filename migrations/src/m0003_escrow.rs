//! Encrypted models and escrowed sales: a model's `encrypted` flag, an offering's delivery
//! period (0: not escrowed), and per license the key's deadline (0: not escrowed), the
//! buyer's recipient, the delivery (when, where the wrapped key is, by which keeper) and
//! whether it was refunded. Rows indexed before are plaintext, unescrowed sales.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

enum Kind {
    Bool,
    Big,
    Text,
}

const COLUMNS: [(&str, &str, Kind); 8] = [
    ("models", "encrypted", Kind::Bool),
    ("offerings", "delivery_period", Kind::Big),
    ("licenses", "key_deadline", Kind::Big),
    ("licenses", "recipient", Kind::Text),
    ("licenses", "key_delivered_at", Kind::Big),
    ("licenses", "key_cid", Kind::Text),
    ("licenses", "keeper", Kind::Text),
    ("licenses", "refunded", Kind::Bool),
];

fn add(table: &str, column: &str, kind: &Kind) -> TableAlterStatement {
    let mut c = ColumnDef::new(Alias::new(column));
    match kind {
        Kind::Bool => c.boolean().not_null().default(false),
        Kind::Big => c.big_integer().not_null().default(0),
        // NULL until known.
        Kind::Text => c.text().null(),
    };
    Table::alter()
        .table(Alias::new(table))
        .add_column(&mut c)
        .to_owned()
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one column at a time.
        for (table, column, kind) in &COLUMNS {
            manager.alter_table(add(table, column, kind)).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (table, column, _) in COLUMNS.iter().rev() {
            manager
                .alter_table(
                    Table::alter()
                        .table(Alias::new(*table))
                        .drop_column(Alias::new(*column))
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
