//! `registry serve`: the GraphQL API, GraphiQL, health, explorer and IPFS gateway over the
//! indexer's database (see the `web` crate docs).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use registry::key_service::KeyService;
use store::Db;
use web::{Limits, ServerConfig};

use crate::settings::Settings;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080", env = "REGISTRY_LISTEN")]
    listen: SocketAddr,
    /// HTTP worker threads.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Deepest query nesting.
    #[arg(long, default_value_t = Limits::default().depth)]
    max_depth: usize,
    /// Largest query complexity (list fields count their page size).
    #[arg(long, default_value_t = Limits::default().complexity)]
    max_complexity: usize,
    /// Most aliases per query.
    #[arg(long, default_value_t = Limits::default().aliases)]
    max_aliases: usize,
    /// Most fields per query once its fragments are expanded.
    #[arg(long, default_value_t = Limits::default().fields)]
    max_fields: usize,
    /// Most operations in one batched request.
    #[arg(long, default_value_t = Limits::default().batch)]
    max_batch: usize,
    /// An origin (`https://app.example`) whose browser pages may call the API; repeat for
    /// more [default: any origin: the API is read-only and takes no cookies]
    #[arg(long, value_name = "ORIGIN")]
    cors_origin: Vec<String>,
    /// `/ready` answers 200 once the indexer is within this many blocks of the head.
    #[arg(long, default_value_t = 64, value_name = "BLOCKS")]
    ready_lag: u64,
    /// Largest request body in bytes.
    #[arg(long, default_value_t = Limits::default().body_bytes)]
    max_body: usize,
    /// Longest a query may run, in milliseconds.
    #[arg(long, default_value_t = Limits::default().time_budget.as_millis() as u64)]
    time_budget_ms: u64,
    /// Seconds a client may take to send a request body.
    #[arg(long, default_value_t = Limits::default().body_timeout.as_secs())]
    body_timeout_secs: u64,
    /// Open WebSocket connections at once.
    #[arg(long, default_value_t = Limits::default().ws_connections)]
    max_ws_connections: usize,
    /// Open WebSocket connections at once from one client address.
    #[arg(long, default_value_t = Limits::default().ws_connections_per_client)]
    max_ws_connections_per_client: usize,
    /// Live subscriptions on one WebSocket connection.
    #[arg(long, default_value_t = Limits::default().ws_subscriptions)]
    max_ws_subscriptions: usize,
    /// Largest WebSocket message in bytes.
    #[arg(long, default_value_t = Limits::default().ws_message_bytes)]
    max_ws_message: usize,
    /// Most messages a WebSocket client may send in a second.
    #[arg(long, default_value_t = Limits::default().ws_messages_per_second)]
    max_ws_rate: u32,
    /// Seconds after which a silent WebSocket (or one without a handshake) is closed.
    #[arg(long, default_value_t = Limits::default().ws_idle.as_secs())]
    ws_idle_secs: u64,
    /// Gateway downloads at once (/ipfs/<cid>).
    #[arg(long, default_value_t = Limits::default().gateway_streams)]
    max_gateway_streams: usize,
    /// Seconds a gateway download may go without its client reading before it ends (and
    /// gives its place back).
    #[arg(long, default_value_t = Limits::default().gateway_stall.as_secs())]
    gateway_stall_secs: u64,
    /// MiB of GraphQL answers kept for repeated queries until the indexed data changes (0:
    /// no cache).
    #[arg(long, default_value_t = Limits::default().response_cache_bytes >> 20)]
    response_cache_mib: usize,
    /// Do not serve the content store at /ipfs/<cid>.
    #[arg(long)]
    no_gateway: bool,
    /// Serve encrypted models' keys to license holders at /v1/models/{id}/access (x402), as
    /// a keeper: the signer's identity (--identity) must open the models' envelopes.
    #[arg(long)]
    keeper: bool,
    /// With --keeper: blocks below the head at which license holders and rights are read
    /// [default: 0 on anvil's chain id 31337, else 12]
    #[arg(long)]
    confirmations: Option<u64>,
}

impl Args {
    pub(crate) async fn run(self, settings: &Settings) -> Result<ExitCode> {
        // A statement outlives its query's budget by at most a second (PostgreSQL).
        let statement_timeout = Duration::from_millis(self.time_budget_ms) + Duration::from_secs(1);
        let db = Db::open_for_queries(&settings.database_url, statement_timeout).await?;
        let content = if self.no_gateway {
            None
        } else {
            Some(settings.store().await?)
        };
        let keys = if self.keeper {
            let market = settings.market().await?;
            let (identity, path) = settings.identity(market.address())?;
            eprintln!(
                "serving model keys as keeper {:?} (identity {})",
                market.address(),
                path.display()
            );
            let confirmations =
                self.confirmations
                    .unwrap_or(crate::settings::default_confirmations(
                        market.deployment().chain_id,
                    ));
            let keeper: std::sync::Arc<dyn keeper_api::Keeper> = std::sync::Arc::new(
                KeyService::new(market, settings.store().await?, identity, confirmations),
            );
            Some(keeper)
        } else {
            None
        };
        // The market's chain, for the web app's prices and purchases: read from the node
        // when there is a deployment, else the pages show base units and sell nothing.
        let chain = match settings.market().await {
            Ok(market) => Some(web::app::Chain {
                chain_id: market.deployment().chain_id,
                rpc_url: settings
                    .rpc_url
                    .clone()
                    .or_else(|| market.deployment().rpc_url.clone()),
                registry: format!("{:?}", market.deployment().registry),
                market: format!("{:?}", market.deployment().market),
                currencies: super::up::currencies(&market).await,
            }),
            Err(e) => {
                eprintln!("the web app sells nothing: no market ({e:#})");
                None
            }
        };
        let config = ServerConfig {
            listen: self.listen,
            limits: Limits {
                depth: self.max_depth,
                complexity: self.max_complexity,
                aliases: self.max_aliases,
                fields: self.max_fields,
                batch: self.max_batch,
                body_bytes: self.max_body,
                time_budget: Duration::from_millis(self.time_budget_ms),
                body_timeout: Duration::from_secs(self.body_timeout_secs.max(1)),
                ws_connections: self.max_ws_connections,
                ws_connections_per_client: self.max_ws_connections_per_client.max(1),
                ws_subscriptions: self.max_ws_subscriptions,
                ws_message_bytes: self.max_ws_message,
                ws_messages_per_second: self.max_ws_rate,
                ws_idle: Duration::from_secs(self.ws_idle_secs.max(1)),
                gateway_streams: self.max_gateway_streams.max(1),
                gateway_stall: Duration::from_secs(self.gateway_stall_secs.max(1)),
                response_cache_bytes: self.response_cache_mib << 20,
            },
            content,
            workers: self.workers,
            keys,
            cors_origins: self.cors_origin,
            ready_lag: self.ready_lag,
            chain,
        };
        web::serve(db, config, |address| {
            // The only line on stdout: where to connect (useful with port 0).
            println!("http://{address}/graphql");
            eprintln!(
                "serving GraphQL at http://{address}/graphql, GraphiQL at /graphiql; Ctrl-C stops"
            );
        })
        .await
        .with_context(|| format!("serving on {}", self.listen))?;
        Ok(ExitCode::SUCCESS)
    }
}
