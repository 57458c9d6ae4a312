//! `registry index`: follows the chain into the database (see the `registry::indexer` docs),
//! and beside it fetches the leaf lists of published output batches
//! (`registry::indexer::leaves`).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use registry::indexer::leaves::{self, Fetched, LeafLists};
use registry::indexer::{Finality, Indexer, Options};
use store::Db;

use crate::settings::Settings;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Where the finalized block comes from: the node's `finalized` tag (counting
    /// confirmations while the node names none), or confirmations only.
    #[arg(long, value_enum, default_value_t = FinalityArg::Tag)]
    finality: FinalityArg,
    /// Blocks below the head before a block counts as final, where the node names no
    /// finalized block (or with `--finality confirmations`).
    #[arg(long, default_value_t = 12)]
    confirmations: u64,
    /// Blocks of history kept for reorgs (a deeper reorg is an error).
    #[arg(long, default_value_t = 256)]
    reorg_window: u64,
    /// Largest eth_getLogs range (halved while the node refuses it).
    #[arg(long, default_value_t = 2_000)]
    max_range: u64,
    /// Calls to the node at once where a range needs one per block (headers and logs near
    /// the head); raise it for a distant node, lower it for a rate-limited one.
    #[arg(long, default_value_t = 32)]
    parallel_calls: usize,
    /// Milliseconds between polls of the head when caught up.
    #[arg(long, default_value_t = 1_000)]
    poll_ms: u64,
    /// Index up to the current head and exit instead of following it.
    #[arg(long)]
    once: bool,
    /// Do not fetch fingerprints or leaf lists from the content store.
    #[arg(long)]
    no_content: bool,
    /// Seconds before the first retry of a leaf list the store could not give (doubles per
    /// attempt, up to an hour; at least 1).
    #[arg(long, default_value_t = 10)]
    leaf_retry_secs: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum FinalityArg {
    Tag,
    Confirmations,
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
            finality: match self.finality {
                FinalityArg::Tag => Finality::Tag,
                FinalityArg::Confirmations => Finality::Confirmations,
            },
            confirmations: self.confirmations,
            reorg_window: self.reorg_window.max(self.confirmations),
            max_range: self.max_range.max(1),
            parallel_calls: self.parallel_calls.max(1),
            poll_interval: Duration::from_millis(self.poll_ms),
            ..Options::default()
        };
        let lists = match self.no_content {
            true => None,
            false => Some(LeafLists::new(
                db.clone(),
                settings.store().await?,
                &deployment,
                leaves::Options {
                    // At least a second: a list that fails at once is not retried in a loop.
                    retry_base: Duration::from_secs(self.leaf_retry_secs.max(1)),
                    poll_interval: options.poll_interval.max(Duration::from_millis(100)),
                    ..leaves::Options::default()
                },
            )),
        };
        let mut indexer = Indexer::open(db, &url, deployment, content, options).await?;
        if self.once {
            indexer.sync().await?;
            println!("indexed to block {}", indexer.cursor());
            if let Some(lists) = &lists {
                for fetched in lists.drain().await? {
                    println!("{}", describe(&fetched));
                }
            }
        } else {
            eprintln!("indexing from block {}; Ctrl-C stops", indexer.cursor() + 1);
            let (stop, stopped) = tokio::sync::watch::channel(false);
            let stop = std::sync::Arc::new(stop);
            let on_signal = stop.clone();
            tokio::spawn(async move {
                let _ = tokio::signal::ctrl_c().await;
                let _ = on_signal.send(true);
            });
            let until_stopped = || {
                let mut stopped = stopped.clone();
                async move {
                    let _ = stopped.wait_for(|s| *s).await;
                }
            };
            // The worker logs its own failures and goes on; the indexer's end stops it.
            let follow = async {
                let followed = indexer.run(until_stopped()).await;
                let _ = stop.send(true);
                followed
            };
            match &lists {
                Some(lists) => tokio::join!(follow, lists.run(until_stopped())).0?,
                None => follow.await?,
            }
            eprintln!("stopped at block {}", indexer.cursor());
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// One line on a leaf list.
fn describe(fetched: &Fetched) -> String {
    match fetched {
        Fetched::Indexed { root, outputs } => {
            format!("outputs of batch {root}: {outputs} indexed")
        }
        Fetched::Invalid { root, reason } => format!("outputs of batch {root}: invalid: {reason}"),
        Fetched::Failed {
            root,
            reason,
            retry_at,
        } => format!(
            "outputs of batch {root}: not fetched ({reason}); retried after {}",
            registry::amount::format_instant(*retry_at as u64)
        ),
        Fetched::Gone { root } => {
            format!("outputs of batch {root}: the batch left the chain or was recorded already")
        }
    }
}
