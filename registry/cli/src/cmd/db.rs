//! `registry db migrate` applies the schema's migrations; `registry db status` reports them.

use std::process::ExitCode;

use anyhow::Result;
use store::{redact, Db};

use crate::settings::Settings;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Apply pending migrations (creates a SQLite file when needed).
    Migrate,
    /// Whether the schema is up to date.
    Status,
}

impl Command {
    pub(crate) async fn run(self, settings: &Settings) -> Result<ExitCode> {
        let db = Db::connect(&settings.database_url).await?;
        match self {
            Command::Migrate => {
                let applied = db.migrate().await?;
                println!("{} migration(s) applied to {}", applied, redact(db.url()));
                Ok(ExitCode::SUCCESS)
            }
            Command::Status => match Db::open(&settings.database_url).await {
                Ok(_) => {
                    println!("{} is up to date", redact(db.url()));
                    Ok(ExitCode::SUCCESS)
                }
                Err(e @ store::Error::SchemaBehind { .. }) => {
                    println!("{e}");
                    Ok(ExitCode::from(1))
                }
                Err(e) => Err(e.into()),
            },
        }
    }
}
