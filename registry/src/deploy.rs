//! Deploying the contracts and the record of a deployment (what later commands connect to).

use std::path::Path;
use std::sync::Arc;

use contracts::{LicenseMarket, ModelRegistry};
use ethers::providers::Middleware;
use ethers::signers::Signer as _;
use ethers::types::Address;
use serde::{Deserialize, Serialize};

use crate::chain::{self, Client, Target};
use crate::{Error, Result};

/// Where a deployment's contracts live.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    pub chain_id: u64,
    pub registry: Address,
    pub market: Address,
    /// Block of the first contract, where an indexer starts.
    pub block: u64,
    pub deployer: Address,
    /// The node the contracts were deployed through, so later commands can find a managed
    /// anvil without being told.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpc_url: Option<String>,
}

impl Deployment {
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|source| Error::DeploymentIo {
            path: path.into(),
            cause: source,
        })?;
        serde_json::from_slice(&bytes).map_err(|source| Error::DeploymentFormat {
            path: path.into(),
            cause: source,
        })
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(self).expect("a deployment serializes") + "\n";
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| Error::DeploymentIo {
                path: dir.into(),
                cause: source,
            })?;
        }
        std::fs::write(path, json).map_err(|source| Error::DeploymentIo {
            path: path.into(),
            cause: source,
        })
    }

    /// Bindings of both contracts on `client`.
    pub fn contracts<M: Middleware>(&self, client: Arc<M>) -> (ModelRegistry<M>, LicenseMarket<M>) {
        (
            ModelRegistry::new(self.registry, client.clone()),
            LicenseMarket::new(self.market, client),
        )
    }
}

/// Deploys the registry and the market, and binds the market to the registry. Offerings may be
/// priced in the native currency and in the ERC-20 `currencies` (fixed for ever).
pub async fn deploy(client: Arc<Client>, currencies: &[Address]) -> Result<Deployment> {
    let chain_id = client.signer().chain_id();
    let deployer = client.address();
    let registry = ModelRegistry::deploy(client.clone(), ())
        .map_err(|e| Error::Contract {
            context: "encoding ModelRegistry deployment".into(),
            message: e.to_string(),
        })?
        .send_with_receipt()
        .await
        .map_err(|e| Error::Contract {
            context: "deploying ModelRegistry".into(),
            message: e.to_string(),
        })?;
    let (registry, receipt) = registry;
    let block = receipt.block_number.map(|b| b.as_u64()).unwrap_or_default();
    let market = LicenseMarket::deploy(client.clone(), (registry.address(), currencies.to_vec()))
        .map_err(|e| Error::Contract {
            context: "encoding LicenseMarket deployment".into(),
            message: e.to_string(),
        })?
        .send()
        .await
        .map_err(|e| Error::Contract {
            context: "deploying LicenseMarket".into(),
            message: e.to_string(),
        })?;
    chain::send(
        Target::Registry,
        "binding the market",
        registry.bind_market(market.address()),
    )
    .await?;
    Ok(Deployment {
        chain_id,
        registry: registry.address(),
        market: market.address(),
        block,
        deployer,
        rpc_url: Some(client.provider().url().to_string()),
    })
}
