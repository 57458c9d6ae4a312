//! Settings shared by every command, resolved once in `main` from, in rising order: defaults,
//! a TOML config file, `REGISTRY_*` environment variables and flags. clap merges the last two
//! (a flag wins over its variable); the file fills only what neither set.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use content::{Location, Store};
use ethers::signers::LocalWallet;
use ethers::types::Address;
use fingerprint::BackendKind;
use registry::chain::{self, Client};
use registry::deploy::Deployment;
use registry::market::Market;
use serde::Deserialize;

/// anvil's default chain id: the only chain where a dev account is used without being asked.
const ANVIL_CHAIN_ID: u64 = 31337;
/// Where the embedded content store lives unless told otherwise.
pub(crate) const DEFAULT_IPFS: &str = ".registry/ipfs";
pub(crate) const DEFAULT_DEPLOYMENT: &str = "deployment.json";
/// The deployment `registry up` keeps in its default state folder.
const UP_DEPLOYMENT: &str = ".registry/deployment.json";
pub(crate) const DEFAULT_CONFIG: &str = "registry.toml";
/// Blocks below the head at which a keeper acts unless told: none on anvil's instant,
/// unforked chain; 12 elsewhere (as the indexer's finality).
pub(crate) fn default_confirmations(chain_id: u64) -> u64 {
    if chain_id == ANVIL_CHAIN_ID {
        0
    } else {
        12
    }
}

/// Where each signer's age identity is created unless --identity names one.
pub(crate) const DEFAULT_KEYS: &str = ".registry/keys";

#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct GlobalArgs {
    /// Config file (TOML) with defaults for these options [default: ./registry.toml if present]
    #[arg(long, global = true, env = "REGISTRY_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// JSON-RPC endpoint of the chain [default: the one saved in the deployment file]
    #[arg(long, global = true, env = "REGISTRY_RPC_URL", value_name = "URL")]
    rpc_url: Option<String>,
    /// Refuse a node whose chain id is not this one
    #[arg(long, global = true, env = "REGISTRY_CHAIN_ID", value_name = "ID")]
    chain_id: Option<u64>,
    /// Signer: a private key (hex)
    #[arg(
        long,
        global = true,
        env = "REGISTRY_PRIVATE_KEY",
        hide_env_values = true,
        value_name = "HEX"
    )]
    private_key: Option<String>,
    /// Signer: a file holding a private key (hex)
    #[arg(
        long,
        global = true,
        env = "REGISTRY_PRIVATE_KEY_FILE",
        value_name = "FILE"
    )]
    private_key_file: Option<PathBuf>,
    /// Signer: dev account N of anvil's test mnemonic [default on anvil's chain id 31337: 0]
    #[arg(long, global = true, env = "REGISTRY_DEV_ACCOUNT", value_name = "N")]
    dev_account: Option<u32>,
    /// Content store: a folder (embedded blockstore) or a Kubo RPC URL (http://HOST:PORT)
    /// [default: .registry/ipfs]
    #[arg(long, global = true, env = "REGISTRY_IPFS", value_name = "DIR|URL")]
    ipfs: Option<String>,
    /// The deployment file written by `registry deploy` [default: deployment.json]
    #[arg(long, global = true, env = "REGISTRY_DEPLOYMENT", value_name = "FILE")]
    deployment: Option<PathBuf>,
    /// ModelRegistry address (with --market-address, instead of a deployment file)
    #[arg(
        long,
        global = true,
        env = "REGISTRY_REGISTRY_ADDRESS",
        value_name = "ADDRESS"
    )]
    registry_address: Option<Address>,
    /// LicenseMarket address (with --registry-address, instead of a deployment file)
    #[arg(
        long,
        global = true,
        env = "REGISTRY_MARKET_ADDRESS",
        value_name = "ADDRESS"
    )]
    market_address: Option<Address>,
    /// Database of the read side: sqlite://FILE?mode=rwc or postgres://… [default: sqlite://registry.db?mode=rwc]
    #[arg(
        long,
        global = true,
        env = "DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    database_url: Option<String>,
    /// The signer's age identity (encrypted models' keys are wrapped to it)
    /// [default: .registry/keys/ADDRESS.txt, created on first use]
    #[arg(long, global = true, env = "REGISTRY_IDENTITY", value_name = "FILE")]
    identity: Option<PathBuf>,
    /// Where fingerprints are computed: cpu, wgpu or cuda [default: cpu]
    #[arg(long, global = true, env = "REGISTRY_BACKEND", value_name = "BACKEND",
          value_parser = clap::builder::PossibleValuesParser::new(["cpu", "wgpu", "cuda"]))]
    backend: Option<String>,
    /// How long to wait for a sent transaction to be mined, in seconds [default: 600]
    #[arg(
        long,
        global = true,
        env = "REGISTRY_TX_TIMEOUT",
        value_name = "SECONDS"
    )]
    tx_timeout: Option<u64>,
}

/// The config file's keys: the global options' long names with `_` for `-`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    rpc_url: Option<String>,
    chain_id: Option<u64>,
    private_key: Option<String>,
    private_key_file: Option<PathBuf>,
    dev_account: Option<u32>,
    ipfs: Option<String>,
    deployment: Option<PathBuf>,
    registry_address: Option<Address>,
    market_address: Option<Address>,
    database_url: Option<String>,
    identity: Option<PathBuf>,
    backend: Option<String>,
    tx_timeout: Option<u64>,
}

/// The resolved settings.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) rpc_url: Option<String>,
    pub(crate) chain_id: Option<u64>,
    /// The signer given (parsed up front, so a bad key is reported before any network call).
    signer: Option<LocalWallet>,
    pub(crate) ipfs: Location,
    pub(crate) deployment_path: PathBuf,
    registry_address: Option<Address>,
    market_address: Option<Address>,
    pub(crate) database_url: String,
    identity: Option<PathBuf>,
    pub(crate) backend: BackendKind,
    /// What was given explicitly (flag, variable or config file), so `registry up` keeps its
    /// own state folder for the rest.
    given: Given,
}

#[derive(Debug, Clone, Default)]
struct Given {
    deployment: Option<PathBuf>,
    database_url: Option<String>,
    ipfs: bool,
}

impl Settings {
    pub(crate) fn resolve(args: GlobalArgs) -> Result<Self> {
        let file = match &args.config {
            Some(path) => read_config(path)?,
            None if Path::new(DEFAULT_CONFIG).is_file() => read_config(Path::new(DEFAULT_CONFIG))?,
            None => FileConfig::default(),
        };
        let private_key = args.private_key.or(file.private_key);
        let private_key_file = args.private_key_file.or(file.private_key_file);
        let dev_account = args.dev_account.or(file.dev_account);
        let signer = match (private_key, private_key_file, dev_account) {
            (Some(key), None, None) => Some(chain::wallet_from_key(&key)?),
            (None, Some(path), None) => Some(chain::wallet_from_file(&path)?),
            (None, None, Some(n)) => Some(chain::dev_wallet(n)?),
            (None, None, None) => None,
            _ => bail!(
                "more than one signer given: use one of --private-key, --private-key-file, --dev-account"
            ),
        };
        let backend = args
            .backend
            .or(file.backend)
            .unwrap_or_else(|| "cpu".into())
            .parse::<BackendKind>()
            .map_err(anyhow::Error::msg)?;
        if let Some(seconds) = args.tx_timeout.or(file.tx_timeout) {
            chain::set_tx_timeout(std::time::Duration::from_secs(seconds));
        }
        let deployment = args.deployment.or(file.deployment);
        let database_url = args.database_url.or(file.database_url);
        let ipfs = args.ipfs.or(file.ipfs);
        let given = Given {
            deployment: deployment.clone(),
            database_url: database_url.clone(),
            ipfs: ipfs.is_some(),
        };
        Ok(Self {
            given,
            rpc_url: args.rpc_url.or(file.rpc_url),
            chain_id: args.chain_id.or(file.chain_id),
            signer,
            ipfs: Location::parse(&ipfs.unwrap_or_else(|| DEFAULT_IPFS.into())),
            deployment_path: deployment.unwrap_or_else(default_deployment),
            registry_address: args.registry_address.or(file.registry_address),
            market_address: args.market_address.or(file.market_address),
            database_url: database_url.unwrap_or_else(|| store::DEFAULT_URL.into()),
            identity: args.identity.or(file.identity),
            backend,
        })
    }

    /// The deployment file, when one was given explicitly.
    pub(crate) fn deployment_given(&self) -> Option<PathBuf> {
        self.given.deployment.clone()
    }

    /// The database URL, when one was given explicitly.
    pub(crate) fn database_given(&self) -> Option<String> {
        self.given.database_url.clone()
    }

    /// Whether a content store was given explicitly.
    pub(crate) fn ipfs_given(&self) -> bool {
        self.given.ipfs
    }

    /// Whether a signer was given explicitly.
    pub(crate) fn has_signer(&self) -> bool {
        self.signer.is_some()
    }

    /// The signer's wallet: the one given, else dev account 0 on anvil's chain id.
    pub(crate) fn wallet(&self, chain_id: u64) -> Result<LocalWallet> {
        Ok(match &self.signer {
            Some(wallet) => wallet.clone(),
            None if chain_id == ANVIL_CHAIN_ID => {
                tracing::info!("no signer given: using anvil dev account 0");
                chain::dev_wallet(0)?
            }
            None => bail!(NoSigner(chain_id)),
        })
    }

    /// The age identity of `account`: the --identity file (which must exist), else the
    /// account's own file, created (mode 0600) on first use. Returns it with its path.
    pub(crate) fn identity(&self, account: Address) -> Result<(age::x25519::Identity, PathBuf)> {
        if let Some(path) = &self.identity {
            return Ok((registry::keys::load(path)?, path.clone()));
        }
        let path = registry::keys::identity_path(Path::new(DEFAULT_KEYS), account);
        let (identity, created) = registry::keys::load_or_create(&path)?;
        if created {
            eprintln!(
                "created the age identity of {account:?} at {} (keep it: it opens the models you buy)",
                path.display()
            );
        }
        Ok((identity, path))
    }

    /// Opens the content store.
    pub(crate) async fn store(&self) -> Result<Store> {
        Store::open(&self.ipfs)
            .await
            .with_context(|| format!("opening the {}", self.ipfs))
    }

    /// The RPC URL: the option, else the deployment file's.
    pub(crate) fn rpc_url(&self, deployment: &Deployment) -> Result<String> {
        self.rpc_url
            .clone()
            .or_else(|| deployment.rpc_url.clone())
            .context(NoRpcUrl)
    }

    /// The deployment: the addresses given as options, else the deployment file.
    pub(crate) fn deployment(&self) -> Result<Deployment> {
        match (self.registry_address, self.market_address) {
            (Some(registry), Some(market)) => Ok(Deployment {
                chain_id: self.chain_id.unwrap_or_default(),
                registry,
                market,
                block: 0,
                deployer: Address::zero(),
                rpc_url: None,
            }),
            (None, None) => Deployment::load(&self.deployment_path).map_err(|e| {
                anyhow::Error::new(e).context(NoDeployment(self.deployment_path.clone()))
            }),
            _ => bail!("--registry-address and --market-address go together"),
        }
    }

    /// A signing client on the deployment's chain.
    pub(crate) async fn client(&self, deployment: &Deployment) -> Result<Arc<Client>> {
        let url = self
            .rpc_url
            .clone()
            .or_else(|| deployment.rpc_url.clone())
            .context(NoRpcUrl)?;
        self.client_at(&url).await
    }

    /// A signing client on the node at `url` (the signer: the one given, else dev account 0
    /// on anvil's chain id).
    pub(crate) async fn client_at(&self, url: &str) -> Result<Arc<Client>> {
        let probe = chain::provider(url)?;
        let chain_id = ethers::providers::Middleware::get_chainid(&probe)
            .await
            .map_err(|e| registry::Error::Rpc {
                url: url.to_string(),
                message: e.to_string(),
            })?
            .as_u64();
        let wallet = self.wallet(chain_id)?;
        Ok(chain::connect(url, wallet, self.chain_id).await?)
    }

    /// The market on the deployment, as the signer.
    pub(crate) async fn market(&self) -> Result<Market> {
        let mut deployment = self.deployment()?;
        let client = self.client(&deployment).await?;
        if deployment.chain_id == 0 {
            // Addresses given as options: the chain is whatever the node is.
            deployment.chain_id = ethers::signers::Signer::chain_id(client.signer());
        }
        Ok(Market::new(client, deployment).await?)
    }
}

/// `deployment.json` (`registry deploy`'s), else the one `registry up` keeps in `.registry/`
/// when only that exists, so commands run beside `registry up` find its market.
fn default_deployment() -> PathBuf {
    let up = Path::new(UP_DEPLOYMENT);
    match Path::new(DEFAULT_DEPLOYMENT).exists() || !up.exists() {
        true => DEFAULT_DEPLOYMENT.into(),
        false => up.into(),
    }
}

fn read_config(path: &Path) -> Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("config file {} is malformed", path.display()))
}

/// No signer on a chain other than anvil's.
#[derive(Debug, thiserror::Error)]
#[error("no signer given for chain {0}")]
pub(crate) struct NoSigner(pub(crate) u64);

/// No deployment file.
#[derive(Debug, thiserror::Error)]
#[error("no deployment at {}", .0.display())]
pub(crate) struct NoDeployment(pub(crate) PathBuf);

/// Neither --rpc-url nor a saved one.
#[derive(Debug, thiserror::Error)]
#[error("no rpc url: the deployment file names none and --rpc-url is not set")]
pub(crate) struct NoRpcUrl;
