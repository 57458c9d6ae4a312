//! `migrate [DATABASE_URL] [up|status|fresh]`: applies (or reports) the schema's migrations.
//! The `registry db migrate` command does the same; this binary needs nothing else.

use migrations::Migrator;
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::Database;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .or_else(|| std::env::var("DATABASE_URL").ok())
        .unwrap_or_else(|| "sqlite://registry.db?mode=rwc".into());
    let action = args.next().unwrap_or_else(|| "up".into());
    let result = async {
        let db = Database::connect(&url).await?;
        match action.as_str() {
            "up" => Migrator::up(&db, None).await,
            "status" => Migrator::status(&db).await,
            "fresh" => Migrator::fresh(&db).await,
            other => Err(DbErr::Custom(format!(
                "unknown action {other:?}: use up, status or fresh"
            ))),
        }
    }
    .await;
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::from(2)
        }
    }
}
