//! Partial indexes over current rows (`valid_to IS NULL`) for the API's common reads: a
//! holder's licenses in id order and a holder's licenses of one model and kind (`rights`), the
//! open offerings of a model by kind (the catalogue's filter and a model's offerings), and
//! lineage both ways. The full-table indexes of m0001 also hold closed versions, and an index
//! on one column leaves the rest to a sort or a filter.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

/// (name, table, columns, extra condition)
const INDEXES: [(&str, &str, &str, &str); 5] = [
    ("ix_licenses_holder_current", "licenses", "holder, id", ""),
    (
        "ix_licenses_rights_current",
        "licenses",
        "holder, model_id, kind",
        "",
    ),
    (
        "ix_offerings_open_current",
        "offerings",
        "model_id, kind",
        " AND closed = false",
    ),
    (
        "ix_lineage_child_current",
        "lineage",
        "child_id, position",
        "",
    ),
    (
        "ix_lineage_parent_current",
        "lineage",
        "parent_id, child_id",
        "",
    ),
];

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        // SQLite and PostgreSQL both take partial indexes in this form (sea-query builds none).
        for (name, table, columns, extra) in INDEXES {
            db.execute_unprepared(&format!(
                "CREATE INDEX IF NOT EXISTS {name} ON {table} ({columns}) WHERE valid_to IS NULL{extra}"
            ))
            .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for (name, ..) in INDEXES {
            db.execute_unprepared(&format!("DROP INDEX IF EXISTS {name}"))
                .await?;
        }
        Ok(())
    }
}
