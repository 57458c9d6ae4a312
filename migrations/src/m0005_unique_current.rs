//! One current row per key: partial unique indexes over the rows whose `valid_to` is NULL,
//! so that an event applied twice (a node that repeats a log, a bug) fails its step loudly
//! instead of doubling a balance or a license. Closed versions are not constrained: a key has
//! many of those.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

/// (table, key columns): at most one current row per key.
const KEYS: [(&str, &str); 12] = [
    ("models", "id"),
    ("offerings", "id"),
    ("licenses", "id"),
    ("balances", "account, currency"),
    ("lineage", "child_id, position"),
    // One row per event: a log is at one (block, log index).
    ("credits", "block_number, log_index"),
    ("withdrawals", "block_number, log_index"),
    ("transfers", "block_number, log_index"),
    ("fingerprints", "model_id"),
    ("similarities", "model_id, other_id"),
    ("output_batches", "root"),
    ("outputs", "id"),
];

fn name(table: &str) -> String {
    format!("ux_{table}_current")
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        // SQLite and PostgreSQL both take partial indexes in this form (sea-query builds none).
        for (table, columns) in KEYS {
            // A database indexed before this version may hold an event applied twice: say
            // which table and how many keys, not a bare unique violation.
            let duplicated = format!(
                "SELECT COUNT(*) AS n FROM (SELECT 1 AS one FROM {table} WHERE valid_to IS NULL \
                 GROUP BY {columns} HAVING COUNT(*) > 1) AS d"
            );
            let found = db
                .query_one_raw(sea_orm::Statement::from_string(
                    db.get_database_backend(),
                    duplicated,
                ))
                .await?
                .map(|row| row.try_get::<i64>("", "n"))
                .transpose()?
                .unwrap_or(0);
            if found > 0 {
                return Err(DbErr::Migration(format!(
                    "{table} holds {found} keys ({columns}) with more than one current row: \
                     events were applied twice by an earlier version (a node that repeated \
                     logs?); index into a fresh database"
                )));
            }
            manager
                .get_connection()
                .execute_unprepared(&format!(
                    "CREATE UNIQUE INDEX IF NOT EXISTS {} ON {table} ({columns}) WHERE valid_to IS NULL",
                    name(table)
                ))
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (table, _) in KEYS {
            manager
                .get_connection()
                .execute_unprepared(&format!("DROP INDEX IF EXISTS {}", name(table)))
                .await?;
        }
        Ok(())
    }
}
