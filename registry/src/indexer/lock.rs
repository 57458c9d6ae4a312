//! One indexer per database: a PostgreSQL session advisory lock, or an exclusive lock on a file
//! next to the SQLite database. Both are released by the operating system or the server when
//! the process dies, so a killed indexer never leaves a stale lock behind.

use std::fs::File;
use std::path::PathBuf;

use sea_orm::{DatabaseConnection, DbBackend};

use crate::{Error, Result};

/// Key of the advisory lock ("REGISTRY" in ASCII).
const ADVISORY_KEY: i64 = 0x5245_4749_5354_5259;

/// Held while the indexer runs.
#[derive(Debug)]
pub enum WriterLock {
    Postgres(sea_orm::sqlx::pool::PoolConnection<sea_orm::sqlx::Postgres>),
    File(File, PathBuf),
    /// An in-memory SQLite database is private to its process.
    None,
}

impl WriterLock {
    pub async fn acquire(conn: &DatabaseConnection, url: &str) -> Result<Self> {
        match conn.get_database_backend() {
            DbBackend::Postgres => {
                let pool = conn.get_postgres_connection_pool();
                let mut session = pool.acquire().await.map_err(|e| Error::Database {
                    url: crate::db::redact(url),
                    message: e.to_string(),
                })?;
                let (locked,): (bool,) = sea_orm::sqlx::query_as("SELECT pg_try_advisory_lock($1)")
                    .bind(ADVISORY_KEY)
                    .fetch_one(&mut *session)
                    .await
                    .map_err(|e| Error::Database {
                        url: crate::db::redact(url),
                        message: e.to_string(),
                    })?;
                if !locked {
                    return Err(Error::IndexerRunning {
                        what: format!(
                            "advisory lock {ADVISORY_KEY:#x} on {}",
                            crate::db::redact(url)
                        ),
                    });
                }
                // Keep this session out of the pool for as long as the lock must hold.
                Ok(WriterLock::Postgres(session))
            }
            _ => match sqlite_path(url) {
                None => Ok(WriterLock::None),
                Some(db) => {
                    let path = PathBuf::from(format!("{}.indexer-lock", db.display()));
                    let file = File::options()
                        .create(true)
                        .truncate(false)
                        .write(true)
                        .open(&path)
                        .map_err(|source| Error::ContentIo {
                            path: path.clone(),
                            source,
                        })?;
                    match file.try_lock() {
                        Ok(()) => Ok(WriterLock::File(file, path)),
                        Err(std::fs::TryLockError::WouldBlock) => Err(Error::IndexerRunning {
                            what: format!("lock file {}", path.display()),
                        }),
                        Err(std::fs::TryLockError::Error(source)) => {
                            Err(Error::ContentIo { path, source })
                        }
                    }
                }
            },
        }
    }
}

/// The file of a `sqlite:` URL (`None` for an in-memory database).
fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" || url.contains("mode=memory") {
        None
    } else {
        Some(PathBuf::from(path))
    }
}

#[cfg(test)]
mod tests {
    use super::sqlite_path;

    #[test]
    fn sqlite_urls() {
        assert_eq!(
            sqlite_path("sqlite://registry.db?mode=rwc")
                .unwrap()
                .to_str(),
            Some("registry.db")
        );
        assert_eq!(
            sqlite_path("sqlite:///tmp/x.db").unwrap().to_str(),
            Some("/tmp/x.db")
        );
        assert!(sqlite_path("sqlite::memory:").is_none());
        assert!(sqlite_path("postgres://localhost/test").is_none());
    }
}
