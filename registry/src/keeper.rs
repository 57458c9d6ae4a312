//! The key keeper: follows purchases of encrypted models whose envelope its identity opens,
//! wraps each model key to its buyer's recipient, stores the wrapped key and calls
//! `deliverKey`, which releases the escrowed price.
//!
//! The chain is the keeper's only state: each pass asks the market which of the purchases it
//! has seen still wait for their key (`pendingDelivery`), so a keeper that is killed and
//! restarted, a reorg that drops a delivery or a purchase, and several keepers running at once
//! all come out the same: each key is delivered once (the contract takes the first delivery
//! and refuses the rest, which a keeper counts as delivered by another).

use std::collections::{BTreeMap, HashMap};

use age::x25519::Identity;
use ethers::types::U256;

use crate::access::envelope_key;
use crate::content::{Store, Version};
use crate::keys;
use crate::market::{KeyRequest, Market};
use crate::provenance::metadata_of;
use crate::sealed::ModelKey;
use crate::{Error, Result};

/// How many blocks before its last scanned block a pass scans again: a reorg shallower than
/// this that adds or moves a purchase is seen.
pub const REORG_MARGIN: u64 = 64;

/// What a pass did with one purchase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered {
        license: U256,
        model: U256,
        wrapped_key_cid: String,
    },
    /// Another keeper (or the owner) delivered first.
    DeliveredByAnother { license: U256 },
    /// This keeper's identity does not open the model's envelope.
    NotAKeeper { license: U256, model: U256 },
    /// Delivery failed (not approved, a bad recipient, a node error): retried next pass.
    Failed { license: U256, reason: String },
}

/// A keeper on one market, with its identity and its content store.
pub struct Keeper<'a> {
    market: &'a Market,
    store: &'a Store,
    identity: Identity,
    version: Version,
    /// Purchases seen and not yet settled, by license.
    waiting: BTreeMap<U256, KeyRequest>,
    /// Purchases settled (delivered, by this keeper or another) with the block of the pass
    /// that saw them settled: re-checked until that is `REORG_MARGIN` blocks deep, since a
    /// reorg can drop a delivery long after the purchase left the rescanned range.
    settled: BTreeMap<U256, (KeyRequest, u64)>,
    /// Model keys opened so far (`None`: the envelope is not ours).
    keys: HashMap<U256, Option<ModelKey>>,
    /// Next block to scan.
    next_block: u64,
}

impl std::fmt::Debug for Keeper<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the identity's secret.
        f.debug_struct("Keeper")
            .field("recipient", &self.identity.to_public().to_string())
            .field("waiting", &self.waiting.len())
            .field("next_block", &self.next_block)
            .finish()
    }
}

impl<'a> Keeper<'a> {
    pub fn new(market: &'a Market, store: &'a Store, identity: Identity) -> Self {
        let next_block = market.deployment().block;
        Keeper {
            market,
            store,
            identity,
            version: Version::V1,
            waiting: BTreeMap::new(),
            settled: BTreeMap::new(),
            keys: HashMap::new(),
            next_block,
        }
    }

    /// One pass: picks up new purchases and delivers every key still awaited that this
    /// keeper can open.
    pub async fn pass(&mut self) -> Result<Vec<Outcome>> {
        let from = self
            .next_block
            .saturating_sub(REORG_MARGIN)
            .max(self.market.deployment().block);
        let latest = self.market.latest_block().await?;
        for request in self.market.key_requests(from, None).await? {
            self.waiting.entry(request.license).or_insert(request);
        }
        self.next_block = latest + 1;
        // A settled purchase that waits again lost its delivery to a reorg.
        let settled: Vec<U256> = self.settled.keys().copied().collect();
        for license in settled {
            let (request, at) = self.settled[&license].clone();
            if self.market.pending_delivery(license).await?.is_some() {
                self.settled.remove(&license);
                self.waiting.insert(license, request);
            } else if at + REORG_MARGIN < latest {
                self.settled.remove(&license);
            }
        }
        let now = self.market.now().await?;
        let mut outcomes = Vec::new();
        let licenses: Vec<U256> = self.waiting.keys().copied().collect();
        for license in licenses {
            // The chain, not this process, says what is still owed.
            let Some(pending) = self.market.pending_delivery(license).await? else {
                // Delivered or refunded (or the purchase was reorged away).
                if let Some(request) = self.waiting.remove(&license) {
                    self.settled.insert(license, (request, latest));
                }
                continue;
            };
            if now >= pending.deadline {
                // Refundable now; a delivery would revert.
                self.waiting.remove(&license);
                continue;
            }
            let request = self.waiting[&license].clone();
            match self.deliver(&request).await {
                Ok(outcome) => {
                    match outcome {
                        Outcome::Delivered { .. } | Outcome::DeliveredByAnother { .. } => {
                            self.waiting.remove(&license);
                            self.settled.insert(license, (request, latest));
                        }
                        Outcome::NotAKeeper { .. } => {
                            self.waiting.remove(&license);
                        }
                        Outcome::Failed { .. } => {}
                    }
                    outcomes.push(outcome);
                }
                Err(e) => outcomes.push(Outcome::Failed {
                    license,
                    reason: e.to_string(),
                }),
            }
        }
        Ok(outcomes)
    }

    async fn deliver(&mut self, request: &KeyRequest) -> Result<Outcome> {
        let Some(key) = self.model_key(request.model).await? else {
            return Ok(Outcome::NotAKeeper {
                license: request.license,
                model: request.model,
            });
        };
        let recipient = keys::recipient_from_bytes(&request.recipient)?;
        let wrapped = key.wrap(&[recipient])?;
        let cid = self.store.store_bytes(&wrapped, self.version).await?;
        crash_point("stored");
        match self
            .market
            .deliver_key(request.license, &cid.to_string())
            .await
        {
            Ok(delivery) => Ok(Outcome::Delivered {
                license: request.license,
                model: request.model,
                wrapped_key_cid: delivery.wrapped_key_cid,
            }),
            // Another keeper's delivery came first: its transaction was mined before ours
            // (a revert at estimation) or in the same block (ours mined and failed).
            Err(e) => match self.market.pending_delivery(request.license).await? {
                None => Ok(Outcome::DeliveredByAnother {
                    license: request.license,
                }),
                Some(_) => Err(e),
            },
        }
    }

    async fn model_key(&mut self, model: U256) -> Result<Option<&ModelKey>> {
        if !self.keys.contains_key(&model) {
            let view = self.market.model(model).await?;
            let metadata = metadata_of(self.store, &view.model).await?;
            let key =
                match envelope_key(self.store, model.as_u64(), &metadata, &self.identity).await {
                    Ok(key) => Some(key),
                    Err(Error::NotARecipient { .. }) => None,
                    Err(e) => return Err(e),
                };
            self.keys.insert(model, key);
        }
        Ok(self.keys[&model].as_ref())
    }
}

/// Test hook: `REGISTRY_KEEPER_CRASH=stored` aborts the process right after a wrapped key is
/// stored and before it is delivered, as a kill at the worst moment would.
fn crash_point(point: &str) {
    if std::env::var("REGISTRY_KEEPER_CRASH").is_ok_and(|p| p == point) {
        eprintln!("keeper: crashing at {point:?} (REGISTRY_KEEPER_CRASH)");
        std::process::abort();
    }
}
