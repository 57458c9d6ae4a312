//! `registry up`: the whole market in one process. Starts (or reuses) the managed anvil, its
//! chain kept in the state folder; deploys when there is no deployment there; opens the
//! embedded content store and the SQLite database (migrating it); runs the indexer, the
//! leaf-list worker and the keeper; serves the web app, the API and the gateway. Ctrl-C stops
//! everything, and a second start resumes where the first stopped.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use ethers::providers::Middleware;
use ethers::types::Address;
use registry::chain;
use registry::demo::{self, Seeded};
use registry::deploy::{deploy, Deployment};
use registry::devnet::{Devnet, DevnetOptions};
use registry::indexer::leaves::{self, LeafLists};
use registry::indexer::{Indexer, Options};
use registry::keeper::Keeper;
use registry::market::Market;
use store::Db;
use web::{Limits, ServerConfig};

use crate::settings::Settings;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Seed a small market on first start: generated models (bases, a declared fine-tune, an
    /// undeclared copy), offerings of every kind in ether and in a demo dollar token, licenses
    /// held by several dev accounts and an output batch.
    #[arg(long)]
    demo: bool,
    /// Address the web app, the API and the gateway listen on.
    #[arg(long, default_value = "127.0.0.1:8080", env = "REGISTRY_LISTEN")]
    listen: SocketAddr,
    /// Where the chain, deployment, database, content store and keys are kept.
    #[arg(long, default_value = ".registry", env = "REGISTRY_STATE")]
    state: PathBuf,
    /// Port of the managed anvil on 127.0.0.1 (a wallet adds the chain at this URL); when
    /// taken, a free one is used. 0: any free port.
    #[arg(long, default_value_t = 8545)]
    anvil_port: u16,
    /// Do not run the keeper (it delivers the keys of encrypted models its identity opens).
    #[arg(long)]
    no_keeper: bool,
}

/// Ctrl-C, or the end of any part: every part stops when it is set.
#[derive(Clone)]
struct Stop {
    send: Arc<tokio::sync::watch::Sender<bool>>,
    receive: tokio::sync::watch::Receiver<bool>,
}

impl Stop {
    /// Set on Ctrl-C (this program's handler: the default one would kill it at once).
    fn on_ctrl_c() -> Self {
        let (send, receive) = tokio::sync::watch::channel(false);
        let stop = Self {
            send: Arc::new(send),
            receive,
        };
        let on_signal = stop.clone();
        tokio::spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            eprintln!("stopping…");
            on_signal.set();
        });
        stop
    }

    fn set(&self) {
        let _ = self.send.send(true);
    }

    /// Completes once set.
    fn wait(&self) -> impl std::future::Future<Output = ()> + use<> {
        let mut receive = self.receive.clone();
        async move {
            let _ = receive.wait_for(|s| *s).await;
        }
    }
}

impl Args {
    pub(crate) async fn run(self, settings: &Settings) -> Result<ExitCode> {
        std::fs::create_dir_all(&self.state)
            .with_context(|| format!("creating the state folder {}", self.state.display()))?;
        // One `registry up` per state folder: a second would stop the first one's anvil.
        let lock_path = self.state.join("up.lock");
        let lock = std::fs::File::create(&lock_path)
            .with_context(|| format!("creating {}", lock_path.display()))?;
        if lock.try_lock().is_err() {
            anyhow::bail!(
                "another `registry up` runs on {} (stop it, or pass another --state folder)",
                self.state.display()
            );
        }
        let stop = Stop::on_ctrl_c();

        // The chain: the given node, or the managed anvil with its state kept here. Whatever
        // happens next, the managed anvil is stopped gracefully (its chain written) at the end.
        let devnet = match &settings.rpc_url {
            Some(_) => None,
            None => Some(self.start_anvil(settings).await?),
        };
        let url = match &devnet {
            Some(devnet) => devnet.endpoint().to_string(),
            None => settings.rpc_url.clone().expect("given"),
        };
        let result = self.market(settings, &url, devnet.as_ref(), &stop).await;
        if let Some(devnet) = devnet {
            devnet.stop().await;
        }
        drop(lock);
        result
    }

    /// Everything on the chain at `url`, until stopped.
    async fn market(
        &self,
        settings: &Settings,
        url: &str,
        devnet: Option<&Devnet>,
        stop: &Stop,
    ) -> Result<ExitCode> {
        let state = &self.state;
        let client = settings.client_at(url).await?;
        let chain_id = ethers::signers::Signer::chain_id(client.signer());
        let probe = chain::provider(url)?;

        // The deployment: reused while its contracts are on this chain, else made anew (and
        // the index of the old one, which no longer exists, is set aside).
        let deployment_path = settings
            .deployment_given()
            .unwrap_or_else(|| state.join("deployment.json"));
        let database_url = settings.database_given().unwrap_or_else(|| {
            format!("sqlite://{}?mode=rwc", state.join("registry.db").display())
        });
        let seeded_path = state.join("demo.json");
        let reused = match Deployment::load(&deployment_path) {
            Ok(d) if d.chain_id == chain_id && has_code(&probe, d.registry).await? => Some(d),
            _ => None,
        };
        let mut deployment = match reused {
            Some(deployment) => {
                eprintln!("resuming the deployment in {}", deployment_path.display());
                deployment
            }
            None => {
                if settings.database_given().is_none() {
                    set_aside(&state.join("registry.db"))?;
                }
                // A new deployment has no demo yet (a lost chain redeploys at the same
                // addresses: the old record must not say it is seeded).
                let _ = std::fs::remove_file(&seeded_path);
                let currencies = if self.demo {
                    let holders: Vec<Address> = (0..10)
                        .map(|i| chain::dev_wallet(i).map(|w| ethers::signers::Signer::address(&w)))
                        .collect::<Result<_, _>>()?;
                    vec![demo::deploy_token(client.clone(), &holders).await?]
                } else {
                    Vec::new()
                };
                let deployment = deploy(client.clone(), &currencies).await?;
                eprintln!(
                    "deployed the registry at {:?} and the market at {:?}",
                    deployment.registry, deployment.market
                );
                deployment
            }
        };
        // Later commands (`registry buy …` in another terminal) find the node here.
        deployment.rpc_url = Some(url.to_string());
        deployment.save(&deployment_path)?;

        // The content store: handles are not shared, each worker opens its own.
        let store_dir = state.join("ipfs");
        let open_store = || async {
            anyhow::Ok(match settings.ipfs_given() {
                true => settings.store().await?,
                false => content::Store::embedded(&store_dir)?,
            })
        };
        let store = open_store().await?;
        let db = Db::connect(&database_url).await?;
        let applied = db.migrate().await?;
        if applied > 0 {
            eprintln!("applied {applied} migrations to {}", redact(&database_url));
        }

        let market = Market::new(client.clone(), deployment.clone()).await?;
        if self.demo {
            match Seeded::load(&seeded_path) {
                Some(seeded) if seeded.registry == deployment.registry => {
                    eprintln!(
                        "the demo market is already seeded ({} models)",
                        seeded.models.len()
                    );
                }
                _ => {
                    let seeding = self.seed(url, &deployment, &market, &store, devnet, stop);
                    match seeding.await? {
                        Some(seeded) => seeded.save(&seeded_path)?,
                        None => return Ok(ExitCode::SUCCESS),
                    }
                }
            }
        }

        let chain_info = web::app::Chain {
            chain_id,
            rpc_url: Some(url.to_string()),
            registry: format!("{:?}", deployment.registry),
            market: format!("{:?}", deployment.market),
            currencies: currencies(&market).await,
        };
        let options = Options {
            poll_interval: Duration::from_millis(500),
            // The managed anvil mines only what this process and its users send, and never
            // reorganizes on its own: its blocks are final once mined (anvil's own
            // `finalized` tag lags 64 blocks, which would mark a whole demo as pending).
            // Any other node keeps the indexer's finality from the node.
            ..match devnet {
                Some(_) => Options {
                    finality: registry::indexer::Finality::Confirmations,
                    confirmations: 0,
                    ..Options::default()
                },
                None => Options::default(),
            }
        };
        let mut indexer = Indexer::open(
            db.clone(),
            url,
            deployment.clone(),
            Some(open_store().await?),
            options,
        )
        .await?;
        let lists = LeafLists::new(
            db.clone(),
            open_store().await?,
            &deployment,
            leaves::Options {
                poll_interval: Duration::from_millis(500),
                ..leaves::Options::default()
            },
        );
        let queries = Db::open_for_queries(
            &database_url,
            Limits::default().time_budget + Duration::from_secs(1),
        )
        .await?;
        let config = ServerConfig {
            listen: self.listen,
            limits: Limits::default(),
            content: Some(open_store().await?),
            workers: 2,
            keys: None,
            cors_origins: Vec::new(),
            ready_lag: 64,
            chain: Some(chain_info),
        };

        let listen = self.listen;
        let server = async {
            let served = web::serve_until(
                queries,
                config,
                |address| {
                    println!("market    http://{address}/");
                    println!("graphql   http://{address}/graphql");
                    println!("graphiql  http://{address}/graphiql");
                    println!("chain     {url} (chain id {chain_id})");
                    println!(
                        "state     {}",
                        std::path::absolute(state)
                            .unwrap_or(state.clone())
                            .display()
                    );
                    eprintln!("Ctrl-C stops everything; `registry up` again resumes");
                },
                stop.wait(),
            )
            .await
            .with_context(|| format!("serving on {listen}"));
            if let Err(e) = &served {
                eprintln!("error: the server stopped: {e:#}");
            }
            stop.set();
            served
        };
        let follow = async {
            let followed = indexer.run(stop.wait()).await;
            // The index would stand still under the pages: stop them too, and say why now.
            if let Err(e) = &followed {
                eprintln!("error: the indexer stopped: {e:#}");
            }
            stop.set();
            followed
        };
        let keeper = async {
            if self.no_keeper {
                return;
            }
            self.keep(&market, &store, settings, stop.wait()).await
        };
        let (served, followed, _, _) = tokio::join!(server, follow, lists.run(stop.wait()), keeper);
        eprintln!("stopped: indexed to block {}", indexer.cursor());
        served?;
        followed?;
        Ok(ExitCode::SUCCESS)
    }

    /// Seeds the demo market, or `None` when stopped first. On the managed anvil a seeding
    /// that fails or is interrupted is rolled back (the chain returns to its snapshot from
    /// before), so the next start seeds from scratch; a seeding cut short some other way
    /// (the process killed) is resumed by the next start (models already minted are reused).
    async fn seed(
        &self,
        url: &str,
        deployment: &Deployment,
        market: &Market,
        store: &content::Store,
        devnet: Option<&Devnet>,
        stop: &Stop,
    ) -> Result<Option<Seeded>> {
        let token = market
            .accepted_currencies()
            .await?
            .first()
            .map(|c| c.0)
            .context(
                "this deployment accepts no ERC-20 for the demo: start with a fresh --state folder",
            )?;
        let snapshot = match devnet {
            Some(devnet) => Some(devnet.snapshot().await?),
            None => None,
        };
        eprintln!("seeding the demo market…");
        let work = self.state.join("demo");
        // A pause after each step, for tests that interrupt the seeding halfway.
        let pause = std::env::var("REGISTRY_DEMO_PAUSE_MS")
            .ok()
            .and_then(|ms| ms.parse().ok())
            .map(Duration::from_millis);
        let report = |line: &str| {
            eprintln!("  {line}");
            if let Some(pause) = pause {
                std::thread::sleep(pause);
            }
        };
        let seeding = demo::seed(url, deployment, token, store, &work, &report);
        let outcome = tokio::select! {
            seeded = seeding => Some(seeded),
            () = stop.wait() => None,
        };
        match outcome {
            Some(Ok(seeded)) => Ok(Some(seeded)),
            failed => {
                if let (Some(devnet), Some(snapshot)) = (devnet, snapshot) {
                    devnet.revert(snapshot).await?;
                    eprintln!("the partial demo was rolled back; the next start seeds it again");
                }
                match failed {
                    Some(Err(e)) => Err(e.into()),
                    _ => Ok(None),
                }
            }
        }
    }

    /// The managed anvil on `--anvil-port` (a free port when that one is taken), its chain
    /// kept in the state folder. An anvil a killed `registry up` left running on this state
    /// is stopped first (it then writes its chain, which is newer than the file), so the
    /// chain resumes with every block the index has seen.
    async fn start_anvil(&self, settings: &Settings) -> Result<Devnet> {
        // Absolute, so an anvil left running is recognised by its command line.
        let state = std::path::absolute(self.state.join("anvil.json"))
            .context("the state folder's absolute path")?;
        let pid_file = self.state.join("anvil.pid");
        stop_orphan(&pid_file, &state).await;
        let options = DevnetOptions {
            chain_id: settings.chain_id.unwrap_or(31337),
            port: self.anvil_port,
            state: Some(state),
            own_process_group: true,
            ..DevnetOptions::default()
        };
        let devnet = self.start_devnet(options).await?;
        if let Some(pid) = devnet.pid() {
            std::fs::write(&pid_file, pid.to_string())
                .with_context(|| format!("writing {}", pid_file.display()))?;
        }
        Ok(devnet)
    }

    async fn start_devnet(&self, options: DevnetOptions) -> Result<Devnet> {
        match Devnet::start(&options).await {
            Err(registry::Error::AnvilExited { output })
                if self.anvil_port != 0 && output.contains("in use") =>
            {
                eprintln!(
                    "port {} is taken: anvil listens on a free port instead",
                    self.anvil_port
                );
                Ok(Devnet::start(&DevnetOptions { port: 0, ..options }).await?)
            }
            started => Ok(started?),
        }
    }

    /// The keeper: delivers the keys of encrypted models whose envelope the signer's identity
    /// opens, every two seconds, until stopped; a failed pass is logged and retried.
    async fn keep(
        &self,
        market: &Market,
        store: &content::Store,
        settings: &Settings,
        stopped: impl std::future::Future<Output = ()>,
    ) {
        let identity = match settings.identity(market.address()) {
            Ok((identity, _)) => identity,
            Err(e) => {
                tracing::warn!("the keeper does not run: {e:#}");
                return;
            }
        };
        let mut keeper = Keeper::new(market, store, identity, 0);
        tokio::pin!(stopped);
        loop {
            match keeper.pass().await {
                Ok(outcomes) => {
                    for outcome in outcomes {
                        tracing::info!("keeper: {outcome:?}");
                    }
                }
                Err(e) => tracing::warn!("keeper: pass failed, retrying: {e}"),
            }
            tokio::select! {
                _ = &mut stopped => return,
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            }
        }
    }
}

/// The currencies the market accepts, as the web app shows prices in them (none, with a
/// warning, when the node cannot say: prices then show in base units).
pub(crate) async fn currencies(market: &Market) -> Vec<web::app::Currency> {
    match market.accepted_currencies().await {
        Ok(currencies) => currencies
            .into_iter()
            .map(|(address, symbol, decimals)| web::app::Currency {
                address: format!("{address:?}"),
                symbol,
                decimals,
            })
            .collect(),
        Err(e) => {
            tracing::warn!("reading the market's currencies: {e}");
            Vec::new()
        }
    }
}

/// Stops the anvil recorded in `pid_file` if it still runs on `state` (its command line names
/// the file: a reused pid of another program is left alone), and waits for it to write its
/// chain and exit.
async fn stop_orphan(pid_file: &Path, state: &Path) {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let Some(pid) = std::fs::read_to_string(pid_file)
        .ok()
        .and_then(|text| text.trim().parse::<i32>().ok())
    else {
        return;
    };
    let runs_on_state = || {
        std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| {
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            cmdline.contains("anvil") && cmdline.contains(&*state.to_string_lossy())
        })
    };
    if !runs_on_state() {
        return;
    }
    eprintln!("stopping the anvil (pid {pid}) a previous `registry up` left running, so its chain is saved");
    if kill(Pid::from_raw(pid), Signal::SIGINT).is_err() {
        return;
    }
    for _ in 0..100 {
        if !runs_on_state() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tracing::warn!("anvil (pid {pid}) did not stop within 10 s: killing it");
    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
}

async fn has_code(
    provider: &ethers::providers::Provider<ethers::providers::Http>,
    address: Address,
) -> Result<bool> {
    let code = provider
        .get_code(address, None)
        .await
        .with_context(|| format!("reading the code at {address:?}"))?;
    Ok(!code.is_empty())
}

/// Moves an index whose deployment is gone out of the way (kept, renamed, not deleted).
fn set_aside(database: &Path) -> Result<()> {
    if !database.exists() {
        return Ok(());
    }
    let aside = database.with_extension(format!(
        "db.{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default()
    ));
    std::fs::rename(database, &aside)
        .with_context(|| format!("setting aside {}", database.display()))?;
    // SQLite's write-ahead log holds the latest writes: it goes with the file.
    for suffix in ["-wal", "-shm"] {
        let side = PathBuf::from(format!("{}{suffix}", database.display()));
        if side.exists() {
            let moved = PathBuf::from(format!("{}{suffix}", aside.display()));
            std::fs::rename(&side, &moved)
                .with_context(|| format!("setting aside {}", side.display()))?;
        }
    }
    eprintln!(
        "the chain has no deployment of this folder any more: its index was set aside as {}",
        aside.display()
    );
    Ok(())
}

fn redact(url: &str) -> String {
    match url.split_once('@') {
        Some((_, host)) if url.starts_with("postgres") => format!("postgres://…@{host}"),
        _ => url.to_string(),
    }
}
