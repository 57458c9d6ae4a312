//! The interface between the web server's key endpoint (`GET /v1/models/{id}/access`) and the
//! keeper that answers it. The `web` crate speaks HTTP and x402 through [`Keeper`];
//! `registry`'s key service implements it with the chain, the content store and the keeper's
//! identity. So the web server serves keys without a chain client or the registry's flows of
//! its own, and the keeper can be tested without HTTP.

use ethers::types::{Address, U256};
use futures::future::LocalBoxFuture;

/// A keeper, as the key endpoint asks it. Its answers are futures of the request's own thread
/// (the web server's workers are single-threaded; the content store's streams are not `Send`).
pub trait Keeper: Send + Sync + std::fmt::Debug + 'static {
    /// The x402 v2 `PaymentRequired` object for `model` at `resource` (the request's path):
    /// the offerings that sell its key and the request to sign once bought. `holder` and
    /// `recipient` (an age recipient, `age1…`, as the client gave it) fill the `buy` calldata
    /// when given.
    fn payment_required<'a>(
        &'a self,
        model: U256,
        resource: &'a str,
        holder: Option<Address>,
        recipient: Option<&'a str>,
    ) -> LocalBoxFuture<'a, Result<serde_json::Value, Refusal>>;

    /// The key of `model` wrapped for a signed key request (the x402 payload, as the client
    /// sent it), at unix time `now`.
    fn key<'a>(
        &'a self,
        model: U256,
        payload: &'a serde_json::Value,
        now: u64,
    ) -> LocalBoxFuture<'a, Result<WrappedKey, Refusal>>;
}

/// Why a request is refused, with the HTTP status it maps to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// 400: malformed, or about another model.
    BadRequest(String),
    /// 401: expired (sign a new one).
    Expired(String),
    /// 403: not the holder, or the license grants nothing now.
    Forbidden(String),
    /// 404: no such model, or not encrypted.
    NotFound(String),
    /// 409: seen before.
    Replayed(String),
    /// 503: the chain or the store failed.
    Unavailable(String),
}

impl Refusal {
    pub fn status(&self) -> u16 {
        match self {
            Refusal::BadRequest(_) => 400,
            Refusal::Expired(_) => 401,
            Refusal::Forbidden(_) => 403,
            Refusal::NotFound(_) => 404,
            Refusal::Replayed(_) => 409,
            Refusal::Unavailable(_) => 503,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Refusal::BadRequest(m)
            | Refusal::Expired(m)
            | Refusal::Forbidden(m)
            | Refusal::NotFound(m)
            | Refusal::Replayed(m)
            | Refusal::Unavailable(m) => m,
        }
    }
}

/// The model key wrapped for a holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKey {
    pub model: U256,
    pub license: U256,
    pub recipient: String,
    /// An age file only the recipient opens.
    pub wrapped: Vec<u8>,
    pub weights_cid: String,
}
