//! The market as its users see it: a signer connected to one deployment, with one method per
//! action (mint, publish, close, buy, renew, withdraw) and the views behind `show` and
//! `rights`. Every write waits for its receipt and returns what the contracts' events say
//! happened; every revert comes back as the contract's decoded custom error.
//!
//! The contracts store only what other contracts read; a model's record (CID, content root,
//! fingerprint, parents with their licenses) and the licenses an account holds are read from
//! the contracts' events here.

use std::sync::Arc;

use contracts::license_market::{
    self, KeyRequestedFilter, LicensePurchasedFilter, LicenseRenewedFilter,
    OfferingPublishedFilter, Terms, TransferFilter, WithdrawnFilter,
};
use contracts::model_registry::{MintParams, ModelHeader, ModelMintedFilter};
use contracts::{LicenseKind, LicenseMarket, ModelRegistry};
use ethers::contract::EthEvent;
use ethers::providers::Middleware;
use ethers::types::{Address, BlockNumber, Filter, TransactionReceipt, H256, U256};

use crate::chain::{self, Client, Target};
use crate::deploy::Deployment;
use crate::erc20::Erc20;
use crate::{Error, Result};

mod escrow;
mod outputs;

pub use escrow::{Delivery, KeyRequest, Pending};
pub use outputs::{CommittedBatch, StoredBatch};

pub use contracts::license_market::{License, Offering};
pub use contracts::model_registry::{Model, Parent};

/// A signer on one deployment.
#[derive(Debug, Clone)]
pub struct Market {
    client: Arc<Client>,
    deployment: Deployment,
    registry: ModelRegistry<Client>,
    market: LicenseMarket<Client>,
}

/// A model with its current owner and its lineage edges.
#[derive(Debug, Clone)]
pub struct ModelView {
    pub id: U256,
    /// The record as minted (from `ModelMinted`).
    pub model: Model,
    /// What the registry stores.
    pub header: ModelHeader,
    pub owner: Address,
    /// Every parent with the license it was derived under (0: the minter owned it).
    pub parents: Vec<Parent>,
}

/// A license with its current holder.
#[derive(Debug, Clone)]
pub struct LicenseView {
    pub id: U256,
    pub license: License,
    pub holder: Address,
}

/// What a purchase or renewal did.
#[derive(Debug, Clone)]
pub struct Sale {
    pub license: U256,
    pub price: U256,
    pub currency: Address,
    pub start: u64,
    /// 0 = perpetual.
    pub expiry: u64,
    /// For an escrowed purchase (an encrypted model): the key must be delivered before this
    /// time, else the price is refundable. The license's window starts at the delivery.
    pub key_deadline: Option<u64>,
    pub tx: H256,
}

/// The answer of the rights view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rights {
    pub allowed: bool,
    /// The license that grants the right; 0 when the account owns the model (or is not allowed).
    pub license: U256,
}

impl Market {
    /// Connects `client` to `deployment`, checking that the chain ids agree and that the
    /// registry is deployed at its address (so a stale deployment file is a clear error).
    pub async fn new(client: Arc<Client>, deployment: Deployment) -> Result<Self> {
        let chain_id = client
            .get_chainid()
            .await
            .map_err(|e| Error::Rpc {
                url: client.provider().url().to_string(),
                message: e.to_string(),
            })?
            .as_u64();
        if chain_id != deployment.chain_id {
            return Err(Error::ChainIdMismatch {
                url: client.provider().url().to_string(),
                expected: deployment.chain_id,
                actual: chain_id,
            });
        }
        let code = client
            .get_code(deployment.registry, None)
            .await
            .map_err(|e| Error::Rpc {
                url: client.provider().url().to_string(),
                message: e.to_string(),
            })?;
        if code.is_empty() {
            return Err(Error::NotDeployed {
                address: deployment.registry,
                url: client.provider().url().to_string(),
            });
        }
        let (registry, market) = deployment.contracts(client.clone());
        Ok(Self {
            client,
            deployment,
            registry,
            market,
        })
    }

    /// The signer's address.
    pub fn address(&self) -> Address {
        self.client.address()
    }

    pub fn client(&self) -> &Arc<Client> {
        &self.client
    }

    pub fn deployment(&self) -> &Deployment {
        &self.deployment
    }

    /// Timestamp of the latest block: "now" for the contracts.
    pub async fn now(&self) -> Result<u64> {
        self.block_time(BlockNumber::Latest).await
    }

    /// The earliest time the next block can carry, as far as the node tells: its pending
    /// block's (a node building one names the time it will have: anvil, mining on demand,
    /// names the present), else the latest block's.
    pub async fn next_block_time(&self) -> Result<u64> {
        let latest = self.now().await?;
        let pending = match self.client.get_block(BlockNumber::Pending).await {
            Ok(block) => block.map(|b| b.timestamp.as_u64()),
            // A node without a pending block: the latest one's time is the bound.
            Err(_) => None,
        };
        Ok(pending.map_or(latest, |p| p.max(latest)))
    }

    /// Number of the latest block.
    pub async fn latest_block(&self) -> Result<u64> {
        Ok(self
            .client
            .get_block_number()
            .await
            .map_err(|e| self.rpc_error(e))?
            .as_u64())
    }

    fn url(&self) -> String {
        self.client.provider().url().to_string()
    }

    fn rpc_error(&self, e: impl std::fmt::Display) -> Error {
        Error::Rpc {
            url: self.url(),
            message: e.to_string(),
        }
    }

    // ------------------------------------------------------------------ models

    /// Mints a model and returns its id.
    pub async fn mint(&self, params: MintParams) -> Result<(U256, H256)> {
        let receipt = chain::send(Target::Registry, "minting", self.registry.mint(params)).await?;
        let minted: ModelMintedFilter = one_event(&receipt, "ModelMinted")?;
        Ok((minted.model_id, receipt.transaction_hash))
    }

    /// Number of models minted (ids run from 1 to this).
    pub async fn total_models(&self) -> Result<u64> {
        let total = chain::call(
            Target::Registry,
            "totalModels",
            self.registry.total_models(),
        )
        .await?;
        Ok(total.as_u64())
    }

    /// A model, its owner and its parents: the stored header, and the record from the
    /// `ModelMinted` event of the block the header names.
    pub async fn model(&self, id: U256) -> Result<ModelView> {
        let header = self.header(id).await?;
        let owner = self.owner_of(id).await?;
        let minted = self
            .minted_between(Some(id), header.minted_block, Some(header.minted_block))
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| Error::Contract {
                context: format!("model {id}"),
                message: format!(
                    "the node has no ModelMinted event of it in block {}",
                    header.minted_block
                ),
            })?;
        Ok(ModelView {
            id,
            model: minted.model,
            header,
            owner,
            parents: minted.parents,
        })
    }

    /// The current owner of `model`.
    pub async fn owner_of(&self, model: U256) -> Result<Address> {
        chain::call(
            Target::Registry,
            "reading the owner",
            self.registry.owner_of(model),
        )
        .await
    }

    /// The model registered with `content_root`, if any.
    pub async fn model_by_content(&self, content_root: [u8; 32]) -> Result<Option<U256>> {
        let id = chain::call(
            Target::Registry,
            "looking up the content root",
            self.registry.model_by_content(content_root),
        )
        .await?;
        Ok((!id.is_zero()).then_some(id))
    }

    /// What the registry stores of a model (reverts `UnknownModel` for an unknown id).
    pub async fn header(&self, id: U256) -> Result<ModelHeader> {
        chain::call(
            Target::Registry,
            "reading the model",
            self.registry.header_of(id),
        )
        .await
    }

    /// Every model minted so far, as its `ModelMinted` event, in id order.
    pub async fn minted_models(&self) -> Result<Vec<ModelMintedFilter>> {
        let mut minted = self
            .minted_between(None, self.deployment.block, None)
            .await?;
        minted.sort_by_key(|m| m.model_id);
        Ok(minted)
    }

    /// `ModelMinted` events (of model `id`, or all) from block `from` to `to` (the latest
    /// when `None`).
    async fn minted_between(
        &self,
        id: Option<U256>,
        from: u64,
        to: Option<u64>,
    ) -> Result<Vec<ModelMintedFilter>> {
        let mut filter = Filter::new()
            .address(self.deployment.registry)
            .event(&ModelMintedFilter::abi_signature())
            .from_block(from);
        if let Some(to) = to {
            filter = filter.to_block(to);
        }
        if let Some(id) = id {
            filter = filter.topic1(H256(id.into()));
        }
        self.events(&filter, "ModelMinted").await
    }

    /// The logs `filter` matches, decoded as event `E` (named `name` in errors).
    async fn events<E: EthEvent>(&self, filter: &Filter, name: &str) -> Result<Vec<E>> {
        self.logs(filter)
            .await?
            .into_iter()
            .map(|log| decode(log, name))
            .collect()
    }

    /// The logs `filter` matches.
    async fn logs(&self, filter: &Filter) -> Result<Vec<ethers::types::Log>> {
        self.client
            .get_logs(filter)
            .await
            .map_err(|e| self.rpc_error(e))
    }

    /// The ERC-20 tokens the market accepts (fixed at its deployment, each announced by a
    /// `CurrencyAccepted` event), with their symbols and decimals; a token that does not
    /// answer those calls is left out with a warning.
    pub async fn accepted_currencies(&self) -> Result<Vec<(Address, String, u8)>> {
        let filter = Filter::new()
            .address(self.deployment.market)
            .event(&contracts::license_market::CurrencyAcceptedFilter::abi_signature())
            .from_block(self.deployment.block);
        let accepted: Vec<contracts::license_market::CurrencyAcceptedFilter> =
            self.events(&filter, "CurrencyAccepted").await?;
        let mut currencies = Vec::new();
        for event in accepted {
            let token = Erc20::new(event.currency, self.client.clone());
            match (token.symbol().await, token.decimals().await) {
                (Ok(symbol), Ok(decimals)) => currencies.push((event.currency, symbol, decimals)),
                (Err(e), _) | (_, Err(e)) => {
                    tracing::warn!("accepted currency {:?}: {e}", event.currency)
                }
            }
        }
        Ok(currencies)
    }

    // --------------------------------------------------------------- offerings

    /// Publishes an offering and returns its id.
    pub async fn publish(&self, terms: Terms) -> Result<(U256, H256)> {
        let receipt = chain::send(
            Target::Market,
            "publishing the offering",
            self.market.publish_offering(terms),
        )
        .await?;
        let published: OfferingPublishedFilter = one_event(&receipt, "OfferingPublished")?;
        Ok((published.offering_id, receipt.transaction_hash))
    }

    pub async fn close(&self, offering: U256) -> Result<H256> {
        let receipt = chain::send(
            Target::Market,
            "closing the offering",
            self.market.close_offering(offering),
        )
        .await?;
        Ok(receipt.transaction_hash)
    }

    pub async fn offering(&self, id: U256) -> Result<Offering> {
        chain::call(
            Target::Market,
            "reading the offering",
            self.market.offering_of(id),
        )
        .await
    }

    /// Every offering published on `model` with its terms as published (the terms URI and
    /// hash are in the event only), from the market's events.
    pub async fn offerings_of(&self, model: U256) -> Result<Vec<(U256, Terms)>> {
        let filter = Filter::new()
            .address(self.deployment.market)
            .event(&OfferingPublishedFilter::abi_signature())
            .topic2(H256(model.into()))
            .from_block(self.deployment.block);
        let published: Vec<OfferingPublishedFilter> =
            self.events(&filter, "OfferingPublished").await?;
        Ok(published
            .into_iter()
            .map(|e| (e.offering_id, e.terms))
            .collect())
    }

    // ----------------------------------------------------------------- licenses

    /// Buys a license of `offering` for `holder`, paying at most `max_price`. ERC-20 offerings
    /// are approved first (for exactly the price) when the allowance is short.
    ///
    /// An offering on an encrypted model needs the buyer's age `recipient` (its 32 bytes): the
    /// price then waits in escrow until the model key is delivered wrapped to it, or is
    /// refunded after the offering's delivery period.
    pub async fn buy(
        &self,
        offering: U256,
        holder: Address,
        max_price: U256,
        recipient: Option<[u8; 32]>,
    ) -> Result<Sale> {
        let terms = self.offering(offering).await?;
        let call = self
            .market
            .buy(offering, holder, max_price, recipient.unwrap_or_default());
        let call = self.pay(call, terms.currency, terms.price.into()).await?;
        let receipt = chain::send(Target::Market, "buying the license", call).await?;
        let bought: LicensePurchasedFilter = one_event(&receipt, "LicensePurchased")?;
        let escrow: Option<KeyRequestedFilter> = one_event(&receipt, "KeyRequested").ok();
        Ok(Sale {
            license: bought.license_id,
            price: bought.price,
            currency: terms.currency,
            start: bought.start,
            expiry: bought.expiry,
            key_deadline: escrow.map(|e| e.deadline),
            tx: receipt.transaction_hash,
        })
    }

    /// Renews a time-bound license at its snapshotted price (at most `max_price`).
    pub async fn renew(&self, license: U256, max_price: U256) -> Result<Sale> {
        let current = self.license(license).await?.license;
        let call = self.market.renew(license, max_price);
        let call = self.pay(call, current.currency, current.price).await?;
        let receipt = chain::send(Target::Market, "renewing the license", call).await?;
        let renewed: LicenseRenewedFilter = one_event(&receipt, "LicenseRenewed")?;
        Ok(Sale {
            license,
            price: renewed.price,
            currency: current.currency,
            start: renewed.start,
            expiry: renewed.expiry,
            key_deadline: None,
            tx: receipt.transaction_hash,
        })
    }

    /// Attaches the payment: native value, or an ERC-20 approval sent beforehand.
    async fn pay<D: ethers::abi::Detokenize>(
        &self,
        call: ethers::contract::ContractCall<Client, D>,
        currency: Address,
        price: U256,
    ) -> Result<ethers::contract::ContractCall<Client, D>> {
        if currency.is_zero() {
            return Ok(call.value(price));
        }
        let token = Erc20::new(currency, self.client.clone());
        token
            .approve_at_least(self.deployment.market, price)
            .await?;
        Ok(call)
    }

    /// Whether offering `id` sells now: open, its publisher still owning the model, and its
    /// supply not exhausted.
    pub async fn on_sale(&self, id: U256) -> Result<bool> {
        let o = self.offering(id).await?;
        if o.closed || (o.supply_cap != 0 && o.sold >= o.supply_cap) {
            return Ok(false);
        }
        let owner = self.owner_of(o.model_id.into()).await?;
        Ok(owner == o.publisher)
    }

    /// The on-chain rights view for one license (0: as the model's owner).
    pub async fn grants(
        &self,
        license: U256,
        account: Address,
        model: U256,
        kind: LicenseKind,
        at: u64,
    ) -> Result<bool> {
        self.grants_at(license, account, model, kind, at, None)
            .await
    }

    /// The rights view as of block `block` (the latest when `None`).
    pub async fn grants_at(
        &self,
        license: U256,
        account: Address,
        model: U256,
        kind: LicenseKind,
        at: u64,
        block: Option<u64>,
    ) -> Result<bool> {
        let mut call = self.market.grants(license, account, model, kind.into(), at);
        if let Some(block) = block {
            call = call.block(block);
        }
        chain::call(Target::Market, "checking rights", call).await
    }

    /// Timestamp of block `block`.
    pub async fn block_time(&self, block: impl Into<BlockNumber>) -> Result<u64> {
        let block = block.into();
        let found = self
            .client
            .get_block(block)
            .await
            .map_err(|e| self.rpc_error(e))?
            .ok_or_else(|| Error::Rpc {
                url: self.url(),
                message: format!("the node has no block {block}"),
            })?;
        Ok(found.timestamp.as_u64())
    }

    pub async fn license(&self, id: U256) -> Result<LicenseView> {
        self.license_at(id, None).await
    }

    /// A license as of block `block` (the latest when `None`).
    pub async fn license_at(&self, id: U256, block: Option<u64>) -> Result<LicenseView> {
        let mut call = self.market.license_of(id);
        if let Some(block) = block {
            call = call.block(block);
        }
        let (license, holder) = chain::call(Target::Market, "reading the license", call).await?;
        Ok(LicenseView {
            id,
            license,
            holder,
        })
    }

    /// Whether `account` may use right `kind` of `model` at time `at`. The market keeps no
    /// list of an account's licenses (anyone could make it long): the candidates are the
    /// licenses ever transferred to the account, from the market's `Transfer` events, and each
    /// is checked with the on-chain `grants` view. Among several, a perpetual license is named
    /// first, else the one that lasts longest.
    pub async fn rights(
        &self,
        account: Address,
        model: U256,
        kind: LicenseKind,
        at: u64,
    ) -> Result<Rights> {
        let grants = |license: U256| self.grants(license, account, model, kind, at);
        if grants(U256::zero()).await? {
            return Ok(Rights {
                allowed: true,
                license: U256::zero(),
            });
        }
        let filter = Filter::new()
            .address(self.deployment.market)
            .event(&TransferFilter::abi_signature())
            .topic2(H256::from(account))
            .from_block(self.deployment.block);
        let transfers: Vec<TransferFilter> = self.events(&filter, "Transfer").await?;
        let mut candidates: Vec<U256> = transfers.into_iter().map(|t| t.token_id).collect();
        candidates.sort();
        candidates.dedup();
        let mut best: Option<(u64, U256)> = None;
        for license in candidates {
            if !grants(license).await? {
                continue;
            }
            let expiry = self.license(license).await?.license.expiry;
            // 0 is perpetual: it beats any expiry.
            let rank = if expiry == 0 { u64::MAX } else { expiry };
            if best.is_none_or(|(r, _)| rank > r) {
                best = Some((rank, license));
            }
        }
        Ok(match best {
            Some((_, license)) => Rights {
                allowed: true,
                license,
            },
            None => Rights {
                allowed: false,
                license: U256::zero(),
            },
        })
    }

    // -------------------------------------------------------------- royalties

    /// The balance `account` may withdraw in `currency` (address zero: native).
    pub async fn credits(&self, account: Address, currency: Address) -> Result<U256> {
        chain::call(
            Target::Market,
            "reading credits",
            self.market.credits(account, currency),
        )
        .await
    }

    /// Withdraws the signer's whole balance of `currency` to `to`; returns the amount.
    pub async fn withdraw(&self, currency: Address, to: Address) -> Result<(U256, H256)> {
        let receipt = chain::send(
            Target::Market,
            "withdrawing",
            self.market.withdraw(currency, to),
        )
        .await?;
        let withdrawn: WithdrawnFilter = one_event(&receipt, "Withdrawn")?;
        Ok((withdrawn.amount, receipt.transaction_hash))
    }
}

/// A log decoded as event `E` (named `name` in errors).
fn decode<E: EthEvent>(log: ethers::types::Log, name: &str) -> Result<E> {
    E::decode_log(&log.into()).map_err(|e| Error::Contract {
        context: format!("decoding {name}"),
        message: e.to_string(),
    })
}

/// The single event of type `E` a receipt must carry.
fn one_event<E: EthEvent>(receipt: &TransactionReceipt, name: &str) -> Result<E> {
    receipt
        .logs
        .iter()
        .filter(|log| log.topics.first() == Some(&E::signature()))
        .find_map(|log| E::decode_log(&log.clone().into()).ok())
        .ok_or_else(|| Error::Contract {
            context: format!("transaction {:?}", receipt.transaction_hash),
            message: format!("the receipt carries no {name} event"),
        })
}

/// The offering's terms type, re-exported for callers that build offerings.
pub type OfferingTerms = license_market::Terms;
