//! The key service behind a keeper's HTTP endpoint (`GET /v1/models/{id}/access`): how an
//! agent with a wallet finds what to buy and gets the model key for the license it holds.
//!
//! - Without a key request it answers *payment required* in the x402 v2 shape: the open
//!   offerings that sell access or fine-tune rights (chain, market, offering, price, currency,
//!   the delivery period as `maxTimeoutSeconds`, and the calldata of `buy`), plus the EIP-712
//!   payload to sign once bought.
//! - With a [`SignedKeyRequest`] from the license's current holder, whose license grants
//!   access or fine-tune rights of this model now, it answers the model key wrapped to the
//!   request's recipient. A request signed for another chain or market, by anyone but the
//!   current holder (a former holder included), past its deadline, or seen before is refused.
//!
//! Replays are remembered in memory until their deadline, and deadlines may be at most
//! [`MAX_HORIZON`] ahead, so a restart forgets nothing that could still be replayed for
//! long; a replay could only ever return the same key to the same recipient anyway.

use std::collections::HashMap;
use std::sync::Mutex;

use age::x25519::Identity;
use contracts::LicenseKind;
use ethers::abi::Token;
use ethers::types::{Address, H256, U256};

use crate::access::envelope_key;
use crate::key_request::{KeyRequest, SignedKeyRequest};
use crate::market::Market;
use crate::provenance::metadata_of;
use crate::{keys, Error};
use content::Store;

/// Farthest a request's deadline may lie ahead, in seconds.
pub const MAX_HORIZON: u64 = 600;
/// The x402 scheme name of a purchase through the license market.
pub const SCHEME: &str = "license-market-buy";

pub use keeper_api::{Refusal, WrappedKey};

fn unavailable(e: Error) -> Refusal {
    tracing::warn!("key service: {e}");
    Refusal::Unavailable(format!("the keeper could not answer: {e}"))
}

/// A keeper's key service.
pub struct KeyService {
    market: Market,
    store: Store,
    identity: Identity,
    /// Blocks below the head at which holders and rights are read.
    confirmations: u64,
    /// Answered requests by digest, with their deadlines.
    seen: Mutex<HashMap<H256, u64>>,
}

impl std::fmt::Debug for KeyService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyService")
            .field("recipient", &self.identity.to_public().to_string())
            .finish_non_exhaustive()
    }
}

impl KeyService {
    /// A key service reading holders and rights `confirmations` blocks below the head.
    pub fn new(market: Market, store: Store, identity: Identity, confirmations: u64) -> Self {
        KeyService {
            market,
            store,
            identity,
            confirmations,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// The x402 v2 `PaymentRequired` object for `model`. `holder` and `recipient` fill the
    /// `buy` calldata when given (zero placeholders otherwise).
    pub async fn payment_required(
        &self,
        model: U256,
        resource: &str,
        holder: Option<Address>,
        recipient: Option<[u8; 32]>,
    ) -> Result<serde_json::Value, Refusal> {
        let header =
            self.market.header(model).await.map_err(|e| {
                not_found_or_unavailable(e, format!("model {model} does not exist"))
            })?;
        let deployment = self.market.deployment();
        let mut accepts = Vec::new();
        for (id, terms) in self.market.offerings_of(model).await.map_err(unavailable)? {
            let Some(kind) = LicenseKind::from_u8(terms.kind) else {
                continue;
            };
            if kind == LicenseKind::Output || !self.market.on_sale(id).await.map_err(unavailable)? {
                continue;
            }
            let offering = self.market.offering(id).await.map_err(unavailable)?;
            let price = U256::from(offering.price);
            let calldata = buy_calldata(
                id,
                holder.unwrap_or_default(),
                price,
                recipient.unwrap_or_default(),
            );
            accepts.push(serde_json::json!({
                "scheme": SCHEME,
                "network": format!("eip155:{}", deployment.chain_id),
                "amount": price.to_string(),
                "asset": format!("{:?}", offering.currency),
                "payTo": format!("{:?}", deployment.market),
                "maxTimeoutSeconds": offering.delivery_period,
                "extra": {
                    "market": format!("{:?}", deployment.market),
                    "offering": id.to_string(),
                    "kind": kind.as_str(),
                    "duration": offering.duration,
                    "transferable": offering.transferable,
                    "escrowed": offering.escrowed,
                    "function": "buy(uint256 offeringId,address holder,uint256 maxPrice,bytes32 recipient)",
                    "value": if offering.currency.is_zero() { price.to_string() } else { "0".into() },
                    "calldata": format!("0x{}", hex::encode(&calldata)),
                    "calldataFilled": holder.is_some() && recipient.is_some(),
                },
            }));
        }
        let example = KeyRequest {
            license: U256::zero(),
            recipient: recipient.unwrap_or_default(),
            deadline: 0,
        };
        Ok(serde_json::json!({
            "x402Version": 2,
            "error": "PAYMENT-SIGNATURE header with a signed KeyRequest of a license holder is required",
            "resource": {
                "url": resource,
                "description": format!(
                    "the model key of model {model}{}",
                    if header.encrypted { " (its weights are encrypted)" } else { " (its weights are not encrypted: /ipfs/<weightsCid> serves them)" }
                ),
                "mimeType": "application/json",
            },
            "accepts": accepts,
            "extensions": {
                "keyRequest": {
                    "description": "after buying, sign this typed data (eth_signTypedData_v4) with the license holder's key, setting license, recipient (your age X25519 public key) and deadline (unix seconds, at most 600 ahead), and send {\"x402Version\":2,\"scheme\":\"license-market-buy\",\"payload\":{\"license\",\"recipient\":\"age1…\",\"deadline\",\"signature\"}} base64-encoded in the PAYMENT-SIGNATURE header",
                    "typedData": example.typed_data_json(deployment.chain_id, deployment.market),
                },
            },
        }))
    }

    /// Answers a signed key request for `model` at unix time `now`.
    pub async fn key(
        &self,
        model: U256,
        signed: &SignedKeyRequest,
        now: u64,
    ) -> Result<WrappedKey, Refusal> {
        let deployment = self.market.deployment();
        let (request, signer) = signed
            .recover(deployment.chain_id, deployment.market)
            .map_err(|e| Refusal::BadRequest(e.to_string()))?;
        if request.deadline < now {
            return Err(Refusal::Expired(format!(
                "the key request expired at {} (now {now}): sign a new one",
                request.deadline
            )));
        }
        if request.deadline > now + MAX_HORIZON {
            return Err(Refusal::BadRequest(format!(
                "the key request's deadline {} is more than {MAX_HORIZON} s ahead",
                request.deadline
            )));
        }
        // Reserved before answering, so that a concurrent replay is refused; released when
        // the answer fails, so that an honest retry after a node's hiccup is not.
        let digest = request.digest(deployment.chain_id, deployment.market);
        {
            let mut seen = self.seen.lock().expect("not poisoned");
            seen.retain(|_, deadline| *deadline >= now);
            if seen.insert(digest, request.deadline).is_some() {
                return Err(Refusal::Replayed(
                    "this key request was answered before: sign a new one".into(),
                ));
            }
        }
        let answer = self.answer(model, &request, signer, signed).await;
        if answer.is_err() {
            self.seen.lock().expect("not poisoned").remove(&digest);
        }
        answer
    }

    async fn answer(
        &self,
        model: U256,
        request: &KeyRequest,
        signer: Address,
        signed: &SignedKeyRequest,
    ) -> Result<WrappedKey, Refusal> {
        let deployment = self.market.deployment();
        let license = request.license;
        // Holder and rights as of a block a reorg is unlikely to undo: a key once sent cannot
        // be taken back.
        let block = self
            .market
            .latest_block()
            .await
            .map_err(unavailable)?
            .saturating_sub(self.confirmations);
        let view = self
            .market
            .license_at(license, Some(block))
            .await
            .map_err(|e| {
                not_found_or_unavailable(e, format!("license {license} does not exist"))
            })?;
        if view.license.model_id != model {
            return Err(Refusal::BadRequest(format!(
                "license {license} is a license of model {}, not of model {model}",
                view.license.model_id
            )));
        }
        if view.holder != signer {
            return Err(Refusal::Forbidden(format!(
                "license {license} is held by {:?}; the request is signed by {signer:?} (for this market on chain {})",
                view.holder, deployment.chain_id
            )));
        }
        let at = self.market.block_time(block).await.map_err(unavailable)?;
        let mut granted = false;
        for kind in [LicenseKind::Access, LicenseKind::FineTune] {
            granted |= self
                .market
                .grants_at(license, signer, model, kind, at, Some(block))
                .await
                .map_err(unavailable)?;
        }
        if !granted {
            return Err(Refusal::Forbidden(format!(
                "license {license} grants no access to model {model} now (lapsed, its key not delivered yet, or too recent: {} confirmations)",
                self.confirmations
            )));
        }
        let model_view = self.market.model(model).await.map_err(unavailable)?;
        if !model_view.header.encrypted {
            return Err(Refusal::NotFound(format!(
                "model {model} is not encrypted: its weights are at ipfs://{}",
                model_view.model.weights_cid
            )));
        }
        let metadata = metadata_of(&self.store, &model_view.model)
            .await
            .map_err(unavailable)?;
        let key = envelope_key(&self.store, model, &metadata, &self.identity)
            .await
            .map_err(|e| match e {
                Error::NotARecipient { .. } => {
                    Refusal::NotFound(format!("this keeper cannot open model {model}'s envelope"))
                }
                e => unavailable(e),
            })?;
        let recipient = keys::recipient_from_bytes(&request.recipient)
            .map_err(|e| Refusal::BadRequest(e.to_string()))?;
        let wrapped = key.wrap(&[recipient]).map_err(unavailable)?;
        Ok(WrappedKey {
            model,
            license,
            recipient: signed.recipient.clone(),
            wrapped,
            weights_cid: model_view.model.weights_cid,
        })
    }
}

/// A revert naming an unknown id is a 404; anything else (a node that failed) a 503.
fn not_found_or_unavailable(e: Error, missing: String) -> Refusal {
    match &e {
        Error::Reverted(revert) if revert.is_unknown_id() => Refusal::NotFound(missing),
        _ => unavailable(e),
    }
}

/// ABI calldata of `buy(offeringId, holder, maxPrice, recipient)`.
fn buy_calldata(offering: U256, holder: Address, price: U256, recipient: [u8; 32]) -> Vec<u8> {
    let selector = &ethers::utils::keccak256("buy(uint256,address,uint256,bytes32)")[..4];
    let mut data = selector.to_vec();
    data.extend(ethers::abi::encode(&[
        Token::Uint(offering),
        Token::Address(holder),
        Token::Uint(price),
        Token::FixedBytes(recipient.to_vec()),
    ]));
    data
}

/// The key endpoint's keeper (see `keeper_api`): the recipient and the payload as the client
/// sent them, checked here.
impl keeper_api::Keeper for KeyService {
    fn payment_required<'a>(
        &'a self,
        model: U256,
        resource: &'a str,
        holder: Option<Address>,
        recipient: Option<&'a str>,
    ) -> futures::future::LocalBoxFuture<'a, Result<serde_json::Value, Refusal>> {
        Box::pin(async move {
            let recipient = match recipient.map(keys::parse_recipient) {
                None => None,
                Some(Ok(r)) => Some(keys::recipient_bytes(&r)),
                Some(Err(e)) => return Err(Refusal::BadRequest(e.to_string())),
            };
            KeyService::payment_required(self, model, resource, holder, recipient).await
        })
    }

    fn key<'a>(
        &'a self,
        model: U256,
        payload: &'a serde_json::Value,
        now: u64,
    ) -> futures::future::LocalBoxFuture<'a, Result<WrappedKey, Refusal>> {
        Box::pin(async move {
            let signed: SignedKeyRequest =
                serde_json::from_value(payload.clone()).map_err(|e| {
                    Refusal::BadRequest(format!(
                        "the payload is not a signed key request {{license, recipient, deadline, signature}}: {e}"
                    ))
                })?;
            KeyService::key(self, model, &signed, now).await
        })
    }
}
