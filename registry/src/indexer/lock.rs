//! One indexer per database: a PostgreSQL session advisory lock, or an exclusive lock on a file
//! next to the SQLite database. Both are released by the operating system or the server when
//! the process dies, so a killed indexer never leaves a stale lock behind.
//!
//! The PostgreSQL lock lives as long as one session: if the server ends that session (a
//! restart, `pg_terminate_backend`, an idle-session timeout, a network cut) the lock is gone
//! while the indexer, writing through other pooled sessions, goes on; a second indexer could
//! then take the lock and both would write. So every write transaction checks, inside itself,
//! that the lock's session still holds it ([`WriterLock::check`]), and the fenced cursor
//! catches a loss between that check and the commit.

use std::fs::File;
use std::path::PathBuf;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};

use crate::{Error, Result};

/// Key of the advisory lock ("REGISTRY" in ASCII).
const ADVISORY_KEY: i64 = 0x5245_4749_5354_5259;

/// Held while the indexer runs.
#[derive(Debug)]
pub enum WriterLock {
    Postgres {
        session: sea_orm::sqlx::pool::PoolConnection<sea_orm::sqlx::Postgres>,
        /// The server process of that session, as `pg_locks` names it.
        pid: i32,
        /// When that process started (a pid may be reused by a later session).
        started: String,
    },
    File(File, PathBuf),
    /// An in-memory SQLite database is private to its process.
    None,
}

impl WriterLock {
    pub async fn acquire(conn: &DatabaseConnection, url: &str) -> Result<Self> {
        match conn.get_database_backend() {
            DbBackend::Postgres => {
                let failed = |e: sea_orm::sqlx::Error| Error::database(url, e);
                let pool = conn.get_postgres_connection_pool();
                let mut session = pool.acquire().await.map_err(failed)?;
                let (locked,): (bool,) = sea_orm::sqlx::query_as("SELECT pg_try_advisory_lock($1)")
                    .bind(ADVISORY_KEY)
                    .fetch_one(&mut *session)
                    .await
                    .map_err(failed)?;
                if !locked {
                    return Err(Error::IndexerRunning {
                        what: format!("advisory lock {ADVISORY_KEY:#x} on {}", store::redact(url)),
                    });
                }
                let (pid, started): (i32, String) = sea_orm::sqlx::query_as(
                    "SELECT pid, backend_start::text FROM pg_stat_activity WHERE pid = pg_backend_pid()",
                )
                    .fetch_one(&mut *session)
                    .await
                    .map_err(failed)?;
                // Keep this session out of the pool for as long as the lock must hold.
                Ok(WriterLock::Postgres {
                    session,
                    pid,
                    started,
                })
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
                        .map_err(|source| Error::Io {
                            path: path.clone(),
                            cause: source,
                        })?;
                    match file.try_lock() {
                        Ok(()) => Ok(WriterLock::File(file, path)),
                        Err(std::fs::TryLockError::WouldBlock) => Err(Error::IndexerRunning {
                            what: format!("lock file {}", path.display()),
                        }),
                        Err(std::fs::TryLockError::Error(source)) => Err(Error::Io {
                            path,
                            cause: source,
                        }),
                    }
                }
            },
        }
    }
}

impl WriterLock {
    /// Fails with [`Error::WriterLockLost`] when the lock's session no longer holds it; run
    /// inside each write transaction (`c`). A file lock lasts as long as the process.
    pub(crate) async fn check<C: ConnectionTrait>(&self, c: &C, url: &str) -> Result<()> {
        let WriterLock::Postgres { pid, started, .. } = self else {
            return Ok(());
        };
        // A bigint advisory key shows in pg_locks as its high half (classid) and low half
        // (objid), with objsubid 1.
        let held = c
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT count(*) AS n FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
                 WHERE l.locktype = 'advisory' AND l.granted AND l.pid = $1 \
                 AND a.backend_start::text = $4 \
                 AND l.classid::bigint = $2 AND l.objid::bigint = $3 AND l.objsubid = 1",
                [
                    (*pid).into(),
                    (ADVISORY_KEY >> 32).into(),
                    (ADVISORY_KEY & 0xffff_ffff).into(),
                    started.clone().into(),
                ],
            ))
            .await
            .map_err(|e| Error::database(url, e))?
            .map(|row| row.try_get::<i64>("", "n"))
            .transpose()
            .map_err(|e| Error::database(url, e))?;
        if held != Some(1) {
            return Err(Error::WriterLockLost {
                what: format!("advisory lock {ADVISORY_KEY:#x} of session {pid}"),
            });
        }
        Ok(())
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
