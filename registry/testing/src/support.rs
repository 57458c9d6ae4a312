//! Shared set-up: a fresh anvil with the contracts deployed, and clients for its dev accounts.

use std::sync::Arc;

use contracts::{LicenseMarket, ModelRegistry};
use ethers::contract::EthEvent;
use ethers::providers::Middleware;
use ethers::types::{TransactionReceipt, U256};
use registry::chain::{self, Client};
use registry::deploy::{deploy, Deployment};
use registry::devnet::{Devnet, DevnetOptions};

#[derive(Debug)]
pub struct Chain {
    pub devnet: Devnet,
    pub deployment: Deployment,
}

impl Chain {
    pub async fn start() -> anyhow::Result<Self> {
        // Finalized two blocks below the head, as the tests' indexer options count.
        let devnet = Devnet::start(&DevnetOptions {
            slots_in_an_epoch: Some(1),
            ..DevnetOptions::default()
        })
        .await?;
        let deployer =
            chain::connect(devnet.endpoint(), devnet.wallet(0), Some(devnet.chain_id())).await?;
        let deployment = deploy(deployer, &[]).await?;
        Ok(Self { devnet, deployment })
    }

    /// A signing client of dev account `index`.
    pub async fn client(&self, index: usize) -> anyhow::Result<Arc<Client>> {
        Ok(chain::connect(self.devnet.endpoint(), self.devnet.wallet(index), None).await?)
    }

    /// The registry and market bound to dev account `index`.
    pub async fn contracts(
        &self,
        index: usize,
    ) -> anyhow::Result<(ModelRegistry<Client>, LicenseMarket<Client>)> {
        Ok(self.deployment.contracts(self.client(index).await?))
    }

    /// Moves the chain's clock forward by `seconds` and mines a block.
    pub async fn advance(&self, seconds: u64) -> anyhow::Result<u64> {
        let provider = chain::provider(self.devnet.endpoint())?;
        let _: i64 = provider.request("evm_increaseTime", [seconds]).await?;
        let _: String = provider.request("evm_mine", ()).await?;
        self.now().await
    }

    /// The latest block's number.
    pub async fn head(&self) -> anyhow::Result<u64> {
        let provider = chain::provider(self.devnet.endpoint())?;
        Ok(provider.get_block_number().await?.as_u64())
    }

    /// Timestamp of the latest block.
    pub async fn now(&self) -> anyhow::Result<u64> {
        let provider = chain::provider(self.devnet.endpoint())?;
        let block = provider
            .get_block(ethers::types::BlockNumber::Latest)
            .await?
            .expect("latest block");
        Ok(block.timestamp.as_u64())
    }
}

/// The one event of type `E` in a receipt.
pub fn event<E: EthEvent>(receipt: &TransactionReceipt) -> E {
    let mut found = events::<E>(receipt);
    assert_eq!(found.len(), 1, "expected exactly one {} event", E::name());
    found.remove(0)
}

/// All events of type `E` in a receipt, in log order.
pub fn events<E: EthEvent>(receipt: &TransactionReceipt) -> Vec<E> {
    receipt
        .logs
        .iter()
        .filter(|log| log.topics.first() == Some(&E::signature()))
        .map(|log| <E as EthEvent>::decode_log(&log.clone().into()).expect("event decodes"))
        .collect()
}

pub fn ether(n: u64) -> U256 {
    U256::exp10(18) * n
}

/// Ether in thousandths, for exact royalty figures.
pub fn milli_ether(n: u64) -> U256 {
    U256::exp10(15) * n
}
