//! The key keeper: follows purchases of encrypted models whose envelope its identity opens,
//! wraps each model key to its buyer's recipient, stores the wrapped key and calls
//! `deliverKey`, which releases the escrowed price.
//!
//! The chain is the keeper's only state: each pass asks the market which of the purchases it
//! has seen still wait for their key (`pendingDelivery`), so a keeper that is killed and
//! restarted, a reorg that drops a delivery or a purchase, and several keepers running at once
//! all come out the same: each key is delivered once (the contract takes the first delivery
//! and refuses the rest, which a keeper counts as delivered by another).

use std::collections::{BTreeMap, HashMap, HashSet};

use age::x25519::Identity;
use ethers::types::U256;

use crate::access::envelope_key;
use crate::keys;
use crate::market::{KeyRequest, Market};
use crate::provenance::metadata_of;
use crate::sealed::ModelKey;
use crate::{Error, Result};
use content::{Store, Version};

/// How many blocks before its last scanned block a pass scans again: a reorg shallower than
/// this that adds or moves a purchase is seen.
pub const REORG_MARGIN: u64 = 64;
/// A key is not delivered this close to its deadline (seconds): a delivery mined after the
/// deadline reverts, but its wrapped key would be public already (in the store and in the
/// reverted transaction), and the buyer could take the key and the refund.
pub const DEADLINE_MARGIN: u64 = 300;

/// What a pass did with one purchase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered {
        license: U256,
        model: U256,
        wrapped_key_cid: String,
    },
    /// Settled without this keeper: another keeper (or the owner) delivered first, or the
    /// buyer took a refund.
    SettledByAnother { license: U256 },
    /// This keeper's identity does not open the model's envelope.
    NotAKeeper { license: U256, model: U256 },
    /// The model's owner has not approved this keeper's account (reported once per license;
    /// retried every pass, as the owner may approve it).
    NotApproved {
        license: U256,
        model: U256,
        owner: ethers::types::Address,
    },
    /// Too close to (or past) its deadline to deliver safely; the buyer may refund.
    TooLate { license: U256, deadline: u64 },
    /// Delivery failed (a bad recipient, a node error): retried next pass.
    Failed { license: U256, reason: String },
}

/// A keeper on one market, with its identity and its content store.
pub struct Keeper<'a> {
    market: &'a Market,
    store: &'a Store,
    identity: Identity,
    version: Version,
    /// Blocks a purchase must be below the head before its key is delivered: a key once
    /// delivered cannot be taken back, so a purchase a reorg could still undo is not answered.
    confirmations: u64,
    /// Purchases seen and not yet settled, by license.
    waiting: BTreeMap<U256, KeyRequest>,
    /// Purchases settled (delivered, by this keeper or another) with the block of the pass
    /// that saw them settled: re-checked until that is `REORG_MARGIN` blocks deep, since a
    /// reorg can drop a delivery long after the purchase left the rescanned range.
    settled: BTreeMap<U256, (KeyRequest, u64)>,
    /// Model keys opened so far (`None`: the envelope is not ours).
    keys: HashMap<U256, Option<ModelKey>>,
    /// Wrapped keys stored so far, by (license, model, recipient): a retried delivery reuses
    /// its stored key instead of storing a new one every pass. The model is part of the key:
    /// a reorg can give a license id to the same buyer's purchase of another model, and that
    /// purchase must get its own model's key (the contract cannot tell one wrapped key from
    /// another).
    wrapped: HashMap<(U256, U256, [u8; 32]), String>,
    /// Licenses already reported as not approved.
    reported: HashSet<U256>,
    /// Next block to scan.
    next_block: u64,
}

impl std::fmt::Debug for Keeper<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the identity's secret.
        f.debug_struct("Keeper")
            .field("recipient", &self.identity.to_public().to_string())
            .field("confirmations", &self.confirmations)
            .field("waiting", &self.waiting.len())
            .field("next_block", &self.next_block)
            .finish()
    }
}

impl<'a> Keeper<'a> {
    /// A keeper that delivers for purchases `confirmations` blocks deep.
    pub fn new(
        market: &'a Market,
        store: &'a Store,
        identity: Identity,
        confirmations: u64,
    ) -> Self {
        let next_block = market.deployment().block;
        Keeper {
            market,
            store,
            identity,
            version: Version::V1,
            confirmations,
            waiting: BTreeMap::new(),
            settled: BTreeMap::new(),
            keys: HashMap::new(),
            wrapped: HashMap::new(),
            reported: HashSet::new(),
            next_block,
        }
    }

    /// One pass: picks up new purchases and delivers every key still awaited that this
    /// keeper can open. An error here (the node failed) leaves the keeper's state as it was:
    /// the next pass picks up from the same place.
    pub async fn pass(&mut self) -> Result<Vec<Outcome>> {
        let from = self
            .next_block
            .saturating_sub(REORG_MARGIN)
            .max(self.market.deployment().block);
        let latest = self.market.latest_block().await?;
        // The rescan replaces what was seen: after a reorg a license may name another
        // purchase.
        for request in self.market.key_requests(from, None).await? {
            if !self.settled.contains_key(&request.license) {
                self.waiting.insert(request.license, request);
            }
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
        let mut outcomes = Vec::new();
        let licenses: Vec<U256> = self.waiting.keys().copied().collect();
        for license in licenses {
            let request = self.waiting[&license].clone();
            if request.block + self.confirmations > latest {
                continue;
            }
            match self.settle(&request, latest).await {
                Ok(Some(outcome)) => outcomes.push(outcome),
                Ok(None) => {}
                // One purchase's failure is reported and retried; the others go on.
                Err(e) => outcomes.push(Outcome::Failed {
                    license,
                    reason: e.to_string(),
                }),
            }
        }
        Ok(outcomes)
    }

    /// Delivers one purchase if it still waits; `None` when there is nothing to report.
    async fn settle(&mut self, seen: &KeyRequest, latest: u64) -> Result<Option<Outcome>> {
        let license = seen.license;
        // The chain, not this process, says what is still owed.
        if self.market.pending_delivery(license).await?.is_none() {
            // Delivered or refunded (or the purchase was reorged away).
            self.waiting.remove(&license);
            self.settled.insert(license, (seen.clone(), latest));
            return Ok(None);
        }
        // The purchase as the canonical chain has it now, not as an earlier pass saw it.
        let Some(request) = self.market.key_request(license).await? else {
            self.waiting.remove(&license);
            return Ok(None);
        };
        if request.block + self.confirmations > latest {
            self.waiting.insert(license, request);
            return Ok(None);
        }
        // The chain's time now, not at the start of the pass: each delivery before this one
        // waited for its receipt, and a queue of them (a buyer can make many) would otherwise
        // push this one past its deadline after the margin was checked.
        let now = self.market.now().await?;
        if now + DEADLINE_MARGIN >= request.deadline {
            self.waiting.remove(&license);
            return Ok(Some(Outcome::TooLate {
                license,
                deadline: request.deadline,
            }));
        }
        let outcome = self.deliver(&request).await?;
        match &outcome {
            Outcome::Delivered { .. } | Outcome::SettledByAnother { .. } => {
                self.waiting.remove(&license);
                self.settled.insert(license, (request, latest));
            }
            Outcome::NotAKeeper { .. } => {
                self.waiting.remove(&license);
            }
            Outcome::NotApproved { .. } if !self.reported.insert(license) => return Ok(None),
            _ => {}
        }
        Ok(Some(outcome))
    }

    async fn deliver(&mut self, request: &KeyRequest) -> Result<Outcome> {
        let (license, model) = (request.license, request.model);
        // Check the right to deliver before storing anything.
        let owner = self.market.owner_of(model).await?;
        let me = self.market.address();
        if owner != me && !self.market.is_keeper(owner, me).await? {
            return Ok(Outcome::NotApproved {
                license,
                model,
                owner,
            });
        }
        let slot = (license, model, request.recipient);
        let cid = match self.wrapped.get(&slot) {
            Some(cid) => cid.clone(),
            None => {
                let Some(key) = self.model_key(model).await? else {
                    return Ok(Outcome::NotAKeeper { license, model });
                };
                let recipient = keys::recipient_from_bytes(&request.recipient)?;
                let wrapped = key.wrap(&[recipient])?;
                let cid = self
                    .store
                    .store_bytes(&wrapped, self.version)
                    .await?
                    .to_string();
                self.wrapped.insert(slot, cid.clone());
                cid
            }
        };
        crash_point("stored");
        match self
            .market
            .deliver_key(license, model, request.holder, request.recipient, &cid)
            .await
        {
            Ok(delivery) => Ok(Outcome::Delivered {
                license,
                model,
                wrapped_key_cid: delivery.wrapped_key_cid,
            }),
            // Another keeper's delivery came first: its transaction was mined before ours
            // (a revert at estimation) or in the same block (ours mined and failed).
            Err(e) => match self.market.pending_delivery(license).await? {
                None => Ok(Outcome::SettledByAnother { license }),
                Some(_) => Err(e),
            },
        }
    }

    async fn model_key(&mut self, model: U256) -> Result<Option<&ModelKey>> {
        if !self.keys.contains_key(&model) {
            let view = self.market.model(model).await?;
            let metadata = metadata_of(self.store, &view.model).await?;
            let key = match envelope_key(self.store, view.id, &metadata, &self.identity).await {
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
