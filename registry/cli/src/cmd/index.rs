//! `registry index`: follows the chain into the database (see the `registry::indexer` docs).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use registry::db::Db;
use registry::indexer::{Indexer, Options};

use crate::settings::Settings;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Blocks below the head before a block counts as final.
    #[arg(long, default_value_t = 12)]
    confirmations: u64,
    /// Blocks of history kept for reorgs (a deeper reorg is an error).
    #[arg(long, default_value_t = 256)]
    reorg_window: u64,
    /// Largest eth_getLogs range (halved while the node refuses it).
    #[arg(long, default_value_t = 2_000)]
    max_range: u64,
    /// Milliseconds between polls of the head when caught up.
    #[arg(long, default_value_t = 1_000)]
    poll_ms: u64,
    /// Index up to the current head and exit instead of following it.
    #[arg(long)]
    once: bool,
    /// Do not fetch fingerprints from the content store.
    #[arg(long)]
    no_content: bool,
}

impl Args {
    pub(crate) async fn run(self, settings: &Settings) -> Result<ExitCode> {
        let deployment = settings.deployment()?;
        let url = settings.rpc_url(&deployment)?;
        let db = Db::open(&settings.database_url).await?;
        let content = if self.no_content {
            None
        } else {
            Some(settings.store().await?)
        };
        let options = Options {
            confirmations: self.confirmations,
            reorg_window: self.reorg_window.max(self.confirmations),
            max_range: self.max_range.max(1),
            poll_interval: Duration::from_millis(self.poll_ms),
            ..Options::default()
        };
        let mut indexer = Indexer::open(db, &url, deployment, content, options).await?;
        if self.once {
            let head = indexer.sync().await?;
            println!("indexed to block {head}");
        } else {
            eprintln!("indexing from block {}; Ctrl-C stops", indexer.cursor() + 1);
            indexer
                .run(async {
                    let _ = tokio::signal::ctrl_c().await;
                })
                .await?;
            eprintln!("stopped at block {}", indexer.cursor());
        }
        Ok(ExitCode::SUCCESS)
    }
}
