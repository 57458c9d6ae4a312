//! The read side's database (sea-orm on SQLite or PostgreSQL): connecting, migrating, the
//! versioned-row operations the indexer writes with (new version, update, rollback, prune),
//! snapshots of the current state for comparisons, and the encodings of what the indexer writes
//! and the API reads ([`status`], [`amount_key`]). The indexer (in `registry`) writes through it;
//! the web server reads through it alone.

pub mod entity;
mod error;
pub mod status;

use std::collections::BTreeMap;
use std::time::Duration;

use migrations::Migrator;
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, EntityTrait,
    QueryFilter, QueryOrder,
};
use sea_orm_migration::MigratorTrait;

pub use entity::Versioned;
pub use error::{Error, Result};

/// Where the database lives unless told otherwise: a SQLite file in the working folder.
pub const DEFAULT_URL: &str = "sqlite://registry.db?mode=rwc";

/// How long a SQLite writer waits for another to finish.
const SQLITE_BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// A connection pool to the read side's database.
#[derive(Debug, Clone)]
pub struct Db {
    conn: DatabaseConnection,
    url: String,
}

fn db_error(url: &str) -> impl Fn(sea_orm::DbErr) -> Error + '_ {
    move |e| Error::Database {
        url: redact(url),
        message: e.to_string(),
    }
}

/// A 256-bit amount (or any decimal integer) as zero-padded decimal, so that text order is
/// numeric order: how balances and prices are stored and compared.
pub fn amount_key(value: impl std::fmt::Display) -> String {
    format!("{:0>78}", value.to_string())
}

/// The URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_string(),
    }
}

impl Db {
    /// Connects without touching the schema.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(url, None).await
    }

    /// Connects for serving queries, refusing a schema that is behind like [`Db::open`]; on
    /// PostgreSQL every statement is cancelled after `statement_timeout`, so a query the
    /// API's time budget gave up on stops using the database too. (SQLite has no such limit;
    /// its queries end with the request's budget.)
    pub async fn open_for_queries(url: &str, statement_timeout: Duration) -> Result<Self> {
        let db = Self::connect_with(url, Some(statement_timeout)).await?;
        db.refuse_behind().await?;
        Ok(db)
    }

    async fn connect_with(url: &str, statement_timeout: Option<Duration>) -> Result<Self> {
        let mut options = ConnectOptions::new(url.to_string());
        if let Some(timeout) = statement_timeout {
            let millis = timeout.as_millis().max(1);
            options.map_sqlx_postgres_opts(move |o| {
                o.options([("statement_timeout", format!("{millis}ms"))])
            });
        }
        options
            .sqlx_logging(false)
            .max_connections(16)
            .connect_timeout(std::time::Duration::from_secs(10))
            // On every pooled connection (a PRAGMA would set only the one it ran on): a
            // writer waits this long for another (the indexer and the leaf-list worker)
            // instead of failing; in WAL mode a commit need not reach the disk before the
            // next (a crash may lose the last ranges, which the indexer reads again from its
            // cursor, never a consistent state); reads go through a memory map and a larger
            // page cache.
            .map_sqlx_sqlite_opts(|o| {
                o.busy_timeout(SQLITE_BUSY_TIMEOUT)
                    .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                    .pragma("mmap_size", "268435456")
                    .pragma("cache_size", "-32768")
            });
        let conn = Database::connect(options).await.map_err(db_error(url))?;
        if conn.get_database_backend() == DbBackend::Sqlite {
            // WAL lets readers (the GraphQL server) run while the indexer writes.
            conn.execute_unprepared("PRAGMA journal_mode=WAL;")
                .await
                .map_err(db_error(url))?;
        }
        Ok(Self {
            conn,
            url: url.to_string(),
        })
    }

    /// Connects and refuses a schema that is behind the migrations.
    pub async fn open(url: &str) -> Result<Self> {
        let db = Self::connect(url).await?;
        db.refuse_behind().await?;
        Ok(db)
    }

    async fn refuse_behind(&self) -> Result<()> {
        let pending = Migrator::get_pending_migrations(&self.conn)
            .await
            .map_err(db_error(&self.url))?;
        if !pending.is_empty() {
            return Err(Error::SchemaBehind {
                url: redact(&self.url),
                pending: pending.len(),
            });
        }
        Ok(())
    }

    /// Applies pending migrations; returns how many were applied.
    pub async fn migrate(&self) -> Result<usize> {
        let pending = Migrator::get_pending_migrations(&self.conn)
            .await
            .map_err(db_error(&self.url))?
            .len();
        Migrator::up(&self.conn, None)
            .await
            .map_err(db_error(&self.url))?;
        Ok(pending)
    }

    pub fn conn(&self) -> &DatabaseConnection {
        &self.conn
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn backend(&self) -> DbBackend {
        self.conn.get_database_backend()
    }

    /// A database error from this connection, naming the database (password redacted).
    pub fn error(&self, e: sea_orm::DbErr) -> Error {
        db_error(&self.url)(e)
    }

    /// The current rows of every versioned table (without `vid`), sorted: two databases that
    /// went through different histories but hold the same state give equal snapshots.
    pub async fn snapshot(&self) -> Result<BTreeMap<&'static str, Vec<String>>> {
        self.rows(true).await
    }

    /// Every row version of every versioned table (without `vid`), sorted: what a database
    /// indexed through failures and reorgs must share with a clean replay, the versions the
    /// reorg window keeps included.
    pub async fn history(&self) -> Result<BTreeMap<&'static str, Vec<String>>> {
        self.rows(false).await
    }

    async fn rows(&self, current_only: bool) -> Result<BTreeMap<&'static str, Vec<String>>> {
        async fn rows<E>(db: &Db, current_only: bool) -> Result<Vec<String>>
        where
            E: EntityTrait,
            E::Model: serde::Serialize,
        {
            let mut query = E::find();
            if current_only {
                query = query.filter(Expr::col(Alias::new("valid_to")).is_null());
            }
            let rows = query.all(db.conn()).await.map_err(|e| db.error(e))?;
            let mut out: Vec<String> = rows
                .iter()
                .map(|r| serde_json::to_string(r).expect("rows serialize"))
                .collect();
            out.sort();
            Ok(out)
        }
        use entity::*;
        let c = current_only;
        let mut map = BTreeMap::new();
        map.insert("models", rows::<models::Entity>(self, c).await?);
        map.insert("lineage", rows::<lineage::Entity>(self, c).await?);
        map.insert("offerings", rows::<offerings::Entity>(self, c).await?);
        map.insert("licenses", rows::<licenses::Entity>(self, c).await?);
        map.insert("credits", rows::<credits::Entity>(self, c).await?);
        map.insert("withdrawals", rows::<withdrawals::Entity>(self, c).await?);
        map.insert("balances", rows::<balances::Entity>(self, c).await?);
        map.insert("transfers", rows::<transfers::Entity>(self, c).await?);
        map.insert("fingerprints", rows::<fingerprints::Entity>(self, c).await?);
        map.insert("similarities", rows::<similarities::Entity>(self, c).await?);
        map.insert(
            "output_batches",
            rows::<output_batches::Entity>(self, c).await?,
        );
        map.insert("outputs", rows::<outputs::Entity>(self, c).await?);
        Ok(map)
    }

    /// The indexer's cursor row, if it has run.
    pub async fn state(&self) -> Result<Option<entity::indexer_state::Model>> {
        entity::indexer_state::Entity::find_by_id(1)
            .one(&self.conn)
            .await
            .map_err(|e| self.error(e))
    }

    /// Recent block hashes, newest first.
    pub async fn recent_blocks(&self, limit: u64) -> Result<Vec<entity::blocks::Model>> {
        use sea_orm::QuerySelect;
        entity::blocks::Entity::find()
            .order_by_desc(entity::blocks::Column::Number)
            .limit(limit)
            .all(&self.conn)
            .await
            .map_err(|e| self.error(e))
    }
}

/// Opens every write transaction of indexed data (the indexer's steps and reorgs, the
/// fingerprint and leaf-list workers), first thing:
/// - it raises the change counter (`indexer_state.changes`), with the change: the API's
///   response cache keys its answers on [`DataVersion`], so an answer computed before a write
///   is never served after it commits;
/// - it takes the write lock, on the state row before any other, so every writer locks in
///   one order (a reorg deleting a batch and the leaf-list worker never wait for each other),
///   and SQLite (WAL) makes a transaction that reads before it writes wait its turn instead of
///   failing at its first write (SQLITE_BUSY_SNAPSHOT).
pub async fn claim_writes<C: ConnectionTrait>(c: &C) -> std::result::Result<(), sea_orm::DbErr> {
    c.execute_unprepared("UPDATE indexer_state SET changes = changes + 1 WHERE id = 1")
        .await?;
    Ok(())
}

/// The version of the indexed data: the indexer's state row (cursor, head, finalized block,
/// prune horizon, last write) and its change counter. Equal versions hold equal data; the
/// counter never goes back, so a version once left never returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DataVersion(Option<[i64; 6]>);

impl DataVersion {
    /// The version of these state values (cursor, head, finalized, pruned to, updated at,
    /// changes), for tests of what keys on versions.
    pub fn from_values(values: [i64; 6]) -> Self {
        DataVersion(Some(values))
    }

    /// Reads the current version (one primary-key read).
    pub async fn read<C: ConnectionTrait>(c: &C) -> std::result::Result<Self, sea_orm::DbErr> {
        let row = c
            .query_one_raw(sea_orm::Statement::from_string(
                c.get_database_backend(),
                "SELECT cursor_block, head_block, finalized_block, pruned_to, updated_at, changes \
                 FROM indexer_state WHERE id = 1",
            ))
            .await?;
        let Some(row) = row else {
            return Ok(DataVersion(None));
        };
        let mut values = [0i64; 6];
        for (i, value) in values.iter_mut().enumerate() {
            *value = row.try_get_by_index::<i64>(i)?;
        }
        Ok(DataVersion(Some(values)))
    }
}

/// Undoes every change above block `to`: versions written after it disappear, versions it
/// closed become current again, and its block hashes are forgotten.
pub async fn rollback<C: ConnectionTrait>(
    c: &C,
    to: i64,
) -> std::result::Result<(), sea_orm::DbErr> {
    for table in migrations::VERSIONED_TABLES {
        let delete = Query::delete()
            .from_table(Alias::new(table))
            .and_where(Expr::col(Alias::new("valid_from")).gt(to))
            .to_owned();
        c.execute(&delete).await?;
        let reopen = Query::update()
            .table(Alias::new(table))
            .value(Alias::new("valid_to"), Expr::null())
            .and_where(Expr::col(Alias::new("valid_to")).gt(to))
            .to_owned();
        c.execute(&reopen).await?;
    }
    let blocks = Query::delete()
        .from_table(Alias::new("blocks"))
        .and_where(Expr::col(Alias::new("number")).gt(to))
        .to_owned();
    c.execute(&blocks).await?;
    Ok(())
}

/// Forgets history at or below `finalized`: closed versions no reorg can reopen, and block
/// hashes below it (the newest one at or below it is kept as the anchor of later checks).
pub async fn prune<C: ConnectionTrait>(
    c: &C,
    finalized: i64,
) -> std::result::Result<(), sea_orm::DbErr> {
    for table in migrations::VERSIONED_TABLES {
        let delete = Query::delete()
            .from_table(Alias::new(table))
            .and_where(Expr::col(Alias::new("valid_to")).is_not_null())
            .and_where(Expr::col(Alias::new("valid_to")).lte(finalized))
            .to_owned();
        c.execute(&delete).await?;
    }
    let anchor = entity::blocks::Entity::find()
        .filter(Expr::col(Alias::new("number")).lte(finalized))
        .order_by_desc(entity::blocks::Column::Number)
        .one(c)
        .await?;
    if let Some(anchor) = anchor {
        let blocks = Query::delete()
            .from_table(Alias::new("blocks"))
            .and_where(Expr::col(Alias::new("number")).lt(anchor.number))
            .to_owned();
        c.execute(&blocks).await?;
    }
    Ok(())
}
