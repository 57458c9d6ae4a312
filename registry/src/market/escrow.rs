//! Escrowed sales of encrypted models: the key requests purchases make, their delivery by the
//! model's owner or a keeper, refunds, and keeper approvals.

use contracts::license_market::{
    KeeperSetFilter, KeyDeliveredFilter, KeyRequestedFilter, LicenseRefundedFilter,
};
use ethers::contract::EthEvent;
use ethers::types::{Address, Filter, H256, U256};

use super::{one_event, Market};
use crate::chain::{self, Target};
use crate::Result;

/// A purchase waiting for its key, as `KeyRequested` recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRequest {
    pub license: U256,
    pub model: U256,
    pub holder: Address,
    /// The buyer's X25519 public key (an age recipient's bytes).
    pub recipient: [u8; 32],
    pub deadline: u64,
    /// Block of the purchase.
    pub block: u64,
}

/// The escrow of a license still waiting for its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    pub payer: Address,
    pub deadline: u64,
}

/// A delivered key, as `KeyDelivered` recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub license: U256,
    pub model: U256,
    pub keeper: Address,
    /// CID of the model key wrapped to the buyer's recipient.
    pub wrapped_key_cid: String,
    pub start: u64,
    pub expiry: u64,
    pub tx: H256,
}

impl KeyRequest {
    fn from_log(log: ethers::types::Log) -> Result<Self> {
        let block = log.block_number.map(|b| b.as_u64()).unwrap_or_default();
        let e: KeyRequestedFilter = super::decode(log, "KeyRequested")?;
        Ok(KeyRequest {
            license: e.license_id,
            model: e.model_id,
            holder: e.holder,
            recipient: e.recipient,
            deadline: e.deadline,
            block,
        })
    }
}

impl Delivery {
    fn from_event(e: KeyDeliveredFilter, tx: H256) -> Self {
        Delivery {
            license: e.license_id,
            model: e.model_id,
            keeper: e.keeper,
            wrapped_key_cid: e.wrapped_key_cid,
            start: e.start,
            expiry: e.expiry,
            tx,
        }
    }
}

impl Market {
    /// Key requests of purchases from block `from` on (all models, or `model`'s).
    pub async fn key_requests(&self, from: u64, model: Option<U256>) -> Result<Vec<KeyRequest>> {
        let mut filter = Filter::new()
            .address(self.deployment.market)
            .event(&KeyRequestedFilter::abi_signature())
            .from_block(from);
        if let Some(model) = model {
            filter = filter.topic2(H256(model.into()));
        }
        self.logs(&filter)
            .await?
            .into_iter()
            .map(KeyRequest::from_log)
            .collect()
    }

    /// The purchase that made `license`, as the canonical chain's `KeyRequested` has it now
    /// (`None`: not an escrowed purchase, or reorged away).
    pub async fn key_request(&self, license: U256) -> Result<Option<KeyRequest>> {
        let filter = Filter::new()
            .address(self.deployment.market)
            .event(&KeyRequestedFilter::abi_signature())
            .topic1(H256(license.into()))
            .from_block(self.deployment.block);
        self.logs(&filter)
            .await?
            .into_iter()
            .last()
            .map(KeyRequest::from_log)
            .transpose()
    }

    /// Whether `owner` approved `keeper` to deliver the keys of its models.
    pub async fn is_keeper(&self, owner: Address, keeper: Address) -> Result<bool> {
        chain::call(
            Target::Market,
            "reading keeper approvals",
            self.market.is_keeper(owner, keeper),
        )
        .await
    }

    /// The escrow of `license` if its key is still awaited.
    pub async fn pending_delivery(&self, license: U256) -> Result<Option<Pending>> {
        let (payer, deadline) = chain::call(
            Target::Market,
            "reading the escrow",
            self.market.pending_delivery(license),
        )
        .await?;
        Ok((!payer.is_zero()).then_some(Pending { payer, deadline }))
    }

    /// The delivery of `license`'s key, if it was delivered.
    pub async fn delivery(&self, license: U256) -> Result<Option<Delivery>> {
        let filter = Filter::new()
            .address(self.deployment.market)
            .event(&KeyDeliveredFilter::abi_signature())
            .topic1(H256(license.into()))
            .from_block(self.deployment.block);
        let logs = self.logs(&filter).await?;
        // A license is delivered once; the latest log is the one on the canonical chain.
        let Some(log) = logs.into_iter().last() else {
            return Ok(None);
        };
        let tx = log.transaction_hash.unwrap_or_default();
        let e: KeyDeliveredFilter = super::decode(log, "KeyDelivered")?;
        Ok(Some(Delivery::from_event(e, tx)))
    }

    /// Delivers `license`'s key (wrapped, stored at `wrapped_key_cid`) for the purchase of
    /// `model` by `holder` to `recipient` (the contract refuses a delivery for another purchase
    /// of the same license id, as a reorg could make it), which releases the escrowed price to
    /// the model's owner and its lineage.
    pub async fn deliver_key(
        &self,
        license: U256,
        model: U256,
        holder: Address,
        recipient: [u8; 32],
        wrapped_key_cid: &str,
    ) -> Result<Delivery> {
        let receipt = chain::send(
            Target::Market,
            "delivering the key",
            self.market.deliver_key(
                license,
                model,
                holder,
                recipient,
                wrapped_key_cid.to_string(),
            ),
        )
        .await?;
        let e: KeyDeliveredFilter = one_event(&receipt, "KeyDelivered")?;
        Ok(Delivery::from_event(e, receipt.transaction_hash))
    }

    /// Refunds an overdue purchase: the license is burnt and its price credited to the payer
    /// (withdrawn with `withdraw`). Returns the payer and the amount.
    pub async fn refund(&self, license: U256) -> Result<(Address, U256, H256)> {
        let receipt = chain::send(
            Target::Market,
            "refunding the license",
            self.market.refund(license),
        )
        .await?;
        let e: LicenseRefundedFilter = one_event(&receipt, "LicenseRefunded")?;
        Ok((e.payer, e.amount, receipt.transaction_hash))
    }

    /// Approves (or revokes) `keeper` to deliver keys of every model the signer owns.
    pub async fn set_keeper(&self, keeper: Address, approved: bool) -> Result<H256> {
        let receipt = chain::send(
            Target::Market,
            "setting the keeper",
            self.market.set_keeper(keeper, approved),
        )
        .await?;
        let _: KeeperSetFilter = one_event(&receipt, "KeeperSet")?;
        Ok(receipt.transaction_hash)
    }
}
