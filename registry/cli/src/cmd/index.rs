//! `registry index`: follows the chain into the database (see the `registry::indexer` docs),
//! and beside it fetches the leaf lists of published output batches
//! (`registry::indexer::leaves`).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use registry::indexer::leaves::{self, Fetched, LeafLists};
use registry::indexer::metrics::Metrics;
use registry::indexer::{Finality, Indexer, Options};
use std::sync::Arc;
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
    /// Serve the indexer's metrics at http://ADDR/metrics (Prometheus, OpenMetrics text):
    /// failed calls to the node by method and kind, disagreements, steps, blocks, events,
    /// reorgs, head, cursor and finalized block.
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<std::net::SocketAddr>,
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
        if let Some(listen) = self.metrics_listen {
            let bound = serve_metrics(listen, indexer.metrics())?;
            eprintln!("metrics at http://{bound}/metrics");
        }
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

/// Serves `metrics` at `/metrics` from a thread of its own (a small server beside the
/// indexer: one worker, no signal handling of its own); returns the bound address.
fn serve_metrics(
    listen: std::net::SocketAddr,
    metrics: Arc<Metrics>,
) -> Result<std::net::SocketAddr> {
    use actix_web::{web, App, HttpResponse, HttpServer};
    let (bound_tx, bound_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the metrics server");
        runtime.block_on(async move {
            let server = HttpServer::new(move || {
                let metrics = metrics.clone();
                App::new().route(
                    "/metrics",
                    web::get().to(move || {
                        let text = metrics.render();
                        async move {
                            HttpResponse::Ok()
                                .content_type(
                                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                                )
                                .body(text)
                        }
                    }),
                )
            })
            .workers(1)
            .disable_signals()
            .bind(listen);
            match server {
                Ok(server) => {
                    let _ = bound_tx.send(Ok(server.addrs()[0]));
                    if let Err(e) = server.run().await {
                        tracing::error!("the metrics server stopped: {e}");
                    }
                }
                Err(e) => {
                    let _ = bound_tx.send(Err(e));
                }
            }
        })
    });
    bound_rx
        .recv()
        .map_err(|_| anyhow::anyhow!("the metrics server did not start"))?
        .map_err(|e| anyhow::anyhow!("metrics address {listen}: {e}"))
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
