//! Throwaway databases for tests: a SQLite file in a temporary folder, or a fresh database on
//! the PostgreSQL server at 127.0.0.1:5432 (`REGISTRY_TEST_POSTGRES` overrides the server URL).

use sea_orm::{ConnectionTrait, Database};
use store::Db;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

#[derive(Debug)]
pub struct TestDb {
    pub url: String,
    kind: Kind,
    name: String,
    _dir: Option<tempfile::TempDir>,
}

fn server() -> String {
    std::env::var("REGISTRY_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

impl TestDb {
    /// A new, empty database, migrated.
    pub async fn new(kind: Kind) -> TestDb {
        let db = Self::empty(kind).await;
        Db::connect(&db.url).await.unwrap().migrate().await.unwrap();
        db
    }

    /// A new database without the schema.
    pub async fn empty(kind: Kind) -> TestDb {
        match kind {
            Kind::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!(
                    "sqlite://{}?mode=rwc",
                    dir.path().join("registry.db").display()
                );
                TestDb {
                    url,
                    kind,
                    name: String::new(),
                    _dir: Some(dir),
                }
            }
            Kind::Postgres => {
                let name = format!(
                    "registry_test_{}_{}",
                    std::process::id(),
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap()
                        .as_nanos()
                );
                let admin = Database::connect(format!("{}/postgres", server()))
                    .await
                    .expect("the PostgreSQL server at 127.0.0.1:5432 answers");
                admin
                    .execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await
                    .unwrap();
                TestDb {
                    url: format!("{}/{name}", server()),
                    kind,
                    name,
                    _dir: None,
                }
            }
        }
    }

    pub async fn open(&self) -> Db {
        Db::open(&self.url).await.unwrap()
    }

    /// Drops a PostgreSQL database (SQLite files go with their folder).
    pub async fn drop_db(self) {
        if self.kind == Kind::Postgres {
            let admin = Database::connect(format!("{}/postgres", server()))
                .await
                .unwrap();
            let _ = admin
                .execute_unprepared(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                ))
                .await;
        }
    }
}
