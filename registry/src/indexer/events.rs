//! Decoding the contracts' logs into the events the indexer applies, in chain order.

use contracts::license_market::{
    KeyDeliveredFilter, KeyRequestedFilter, LicensePurchasedFilter, LicenseRefundedFilter,
    LicenseRenewedFilter, OfferingClosedFilter, OfferingPublishedFilter, OutputsCommittedFilter,
    PaymentCreditedFilter, WithdrawnFilter,
};
use contracts::model_registry::ModelMintedFilter;
use contracts::{LicenseMarketEvents, ModelRegistryEvents};
use ethers::contract::EthLogDecode;
use ethers::types::{Address, Log, H256};

use crate::{Error, Result};

/// Where an event happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub block: u64,
    pub block_hash: H256,
    pub log_index: u64,
    pub tx: H256,
}

/// The events the read side is built from.
#[derive(Debug, Clone)]
pub enum Event {
    ModelMinted(Box<ModelMintedFilter>),
    ModelTransfer { from: Address, to: Address, id: u64 },
    OfferingPublished(Box<Published>),
    OfferingClosed(OfferingClosedFilter),
    LicensePurchased(LicensePurchasedFilter),
    LicenseRenewed(LicenseRenewedFilter),
    LicenseTransfer { from: Address, to: Address, id: u64 },
    PaymentCredited(PaymentCreditedFilter),
    Withdrawn(WithdrawnFilter),
    KeyRequested(KeyRequestedFilter),
    KeyDelivered(KeyDeliveredFilter),
    LicenseRefunded(LicenseRefundedFilter),
    OutputsCommitted(OutputsCommittedFilter),
}

/// `OfferingPublished`. abigen derives no `Debug` for events whose tuples have more than 12
/// fields (as `Terms` has), so this wrapper supplies one.
#[derive(Clone)]
pub struct Published(pub OfferingPublishedFilter);

impl std::fmt::Debug for Published {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OfferingPublished")
            .field("offering_id", &self.0.offering_id)
            .field("model_id", &self.0.model_id)
            .field("publisher", &self.0.publisher)
            .field("terms", &self.0.terms)
            .finish()
    }
}

impl std::ops::Deref for Published {
    type Target = OfferingPublishedFilter;
    fn deref(&self) -> &OfferingPublishedFilter {
        &self.0
    }
}

/// Decodes one log of the registry or the market; `None` for events the read side ignores
/// (approvals, the market binding, keeper approvals).
pub fn decode(log: &Log, registry: Address, market: Address) -> Result<Option<(Position, Event)>> {
    let position = Position {
        block: log.block_number.ok_or_else(|| pending(log))?.as_u64(),
        block_hash: log.block_hash.ok_or_else(|| pending(log))?,
        log_index: log.log_index.ok_or_else(|| pending(log))?.as_u64(),
        tx: log.transaction_hash.ok_or_else(|| pending(log))?,
    };
    let raw = ethers::abi::RawLog {
        topics: log.topics.clone(),
        data: log.data.to_vec(),
    };
    let undecodable = |e: ethers::abi::Error| Error::Decode {
        block: position.block,
        log_index: position.log_index,
        message: e.to_string(),
    };
    let event = if log.address == registry {
        match ModelRegistryEvents::decode_log(&raw).map_err(undecodable)? {
            ModelRegistryEvents::ModelMintedFilter(e) => Event::ModelMinted(Box::new(e)),
            ModelRegistryEvents::TransferFilter(e) => Event::ModelTransfer {
                from: e.from,
                to: e.to,
                id: e.token_id.as_u64(),
            },
            _ => return Ok(None),
        }
    } else if log.address == market {
        match LicenseMarketEvents::decode_log(&raw).map_err(undecodable)? {
            LicenseMarketEvents::OfferingPublishedFilter(e) => {
                Event::OfferingPublished(Box::new(Published(e)))
            }
            LicenseMarketEvents::OfferingClosedFilter(e) => Event::OfferingClosed(e),
            LicenseMarketEvents::LicensePurchasedFilter(e) => Event::LicensePurchased(e),
            LicenseMarketEvents::LicenseRenewedFilter(e) => Event::LicenseRenewed(e),
            LicenseMarketEvents::TransferFilter(e) => Event::LicenseTransfer {
                from: e.from,
                to: e.to,
                id: e.token_id.as_u64(),
            },
            LicenseMarketEvents::PaymentCreditedFilter(e) => Event::PaymentCredited(e),
            LicenseMarketEvents::WithdrawnFilter(e) => Event::Withdrawn(e),
            LicenseMarketEvents::KeyRequestedFilter(e) => Event::KeyRequested(e),
            LicenseMarketEvents::KeyDeliveredFilter(e) => Event::KeyDelivered(e),
            LicenseMarketEvents::LicenseRefundedFilter(e) => Event::LicenseRefunded(e),
            LicenseMarketEvents::OutputsCommittedFilter(e) => Event::OutputsCommitted(e),
            _ => return Ok(None),
        }
    } else {
        return Ok(None);
    };
    Ok(Some((position, event)))
}

fn pending(log: &Log) -> Error {
    Error::Decode {
        block: 0,
        log_index: 0,
        message: format!(
            "log of tx {:?} has no block position (pending?)",
            log.transaction_hash
        ),
    }
}

/// Lowercase 0x hex of an address.
pub fn address(a: Address) -> String {
    format!("{a:?}")
}

/// Lowercase 0x hex of a hash.
pub fn hash(h: H256) -> String {
    format!("{h:?}")
}
