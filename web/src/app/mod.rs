//! The web app: server-rendered pages for people, over the same GraphQL schema the API
//! serves (each page runs its queries in process, so it shows exactly what a marketplace
//! querying `/graphql` sees). Assets are compiled in; nothing is loaded from elsewhere.
//!
//! - `/`: the catalogue: search by name, filters (right on offer, price range in a
//!   currency's units, base or derivative, flagged), sort, pagination.
//! - `/models/{id}`: the record, the lineage as an SVG graph, offerings (buy from the page
//!   with an injected wallet), licenses sold, similar models, the flag, output batches.
//! - `/accounts/{address}`: models owned, licenses held, credits to withdraw.
//! - `/rights?address=…&model=…&kind=…`: may this address use this right now?
//! - `/app/tx/buy`, `/app/tx/renew`: the transactions a purchase or renewal takes (`to`,
//!   `data`, `value`; an ERC-20 approval first where needed), for the page's wallet to sign;
//!   `/app/revert`: a contract error decoded from its revert data.
//!
//! An unknown model is a 404 page, a malformed address or id a 400 page.

mod account;
mod catalogue;
mod format;
mod layout;
mod lineage;
mod model;
mod query;
mod rights;
mod tx;

use actix_web::web;

use crate::schema::RegistrySchema;

/// The chain the indexed market lives on, for prices in their units and the wallet's
/// transactions; without it the pages show base units and offer no purchase.
#[derive(Debug, Clone)]
pub struct Chain {
    pub chain_id: u64,
    /// A JSON-RPC URL a wallet may add for this chain (a local anvil, say).
    pub rpc_url: Option<String>,
    /// `0x…` addresses.
    pub registry: String,
    pub market: String,
    /// The ERC-20s the market accepts.
    pub currencies: Vec<Currency>,
}

/// An ERC-20 the market accepts.
#[derive(Debug, Clone)]
pub struct Currency {
    /// `0x…`, any case.
    pub address: String,
    pub symbol: String,
    pub decimals: u8,
}

impl Chain {
    /// The accepted token at `address`.
    pub(crate) fn currency(&self, address: &str) -> Option<&Currency> {
        self.currencies
            .iter()
            .find(|c| c.address.eq_ignore_ascii_case(address))
    }
}

/// What the pages need.
pub(crate) struct App {
    pub(crate) schema: RegistrySchema,
    pub(crate) chain: Option<Chain>,
}

/// The app's routes.
pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(catalogue::page))
        .route("/models/{id}", web::get().to(model::page))
        .route("/accounts/{address}", web::get().to(account::page))
        .route("/rights", web::get().to(rights::page))
        .route("/app/app.css", web::get().to(layout::css))
        .route("/app/app.js", web::get().to(layout::js))
        .route("/app/tx/buy", web::get().to(tx::buy))
        .route("/app/tx/renew", web::get().to(tx::renew))
        .route("/app/revert", web::get().to(tx::revert));
}
