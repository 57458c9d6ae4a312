//! `/accounts/{address}`: what an account owns, the licenses it holds (with expiry and
//! state, renewable from the page), and the credits it may withdraw.

use actix_web::{web, HttpResponse};
use maud::html;
use serde::Deserialize;
use serde_json::json;

use super::catalogue::html_page;
use super::layout::pending;
use super::model::{licenses, License};

use super::query;
use super::{format, App};

const QUERY: &str = r#"query Account($address: String!) {
  models(where: { owner: $address }, first: 100, orderBy: MINTED_DESC) {
    nodes { id name depth final flagged { similarity } }
  }
  licenses(where: { holder: $address }, first: 100, orderBy: ID_DESC) {
    nodes { id kind holder payer price currency start expiry escrowed pendingDelivery refunded final
      consumedBy { id } model { id name } }
  }
  royalties(where: { account: $address }, first: 20) {
    nodes { currency credited withdrawn balance }
  }
}"#;

#[derive(Debug, Deserialize)]
struct Answer {
    models: Nodes<Owned>,
    licenses: Nodes<Held>,
    royalties: Nodes<Credit>,
}

#[derive(Debug, Deserialize)]
struct Nodes<T> {
    nodes: Vec<T>,
}

#[derive(Debug, Deserialize)]
struct Owned {
    id: String,
    name: Option<String>,
    depth: i64,
    #[serde(rename = "final")]
    is_final: bool,
    flagged: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct Held {
    #[serde(flatten)]
    license: License,
    model: Option<ModelName>,
}

#[derive(Debug, Deserialize)]
struct ModelName {
    id: String,
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Credit {
    currency: String,
    credited: String,
    withdrawn: String,
    balance: String,
}

pub(crate) async fn page(app: web::Data<App>, address: web::Path<String>) -> HttpResponse {
    let address = match query::address(&address) {
        Ok(address) => address,
        Err(refused) => return refused.page(&app),
    };
    let answer: Answer = match query::run(&app, QUERY, json!({ "address": address })).await {
        Ok(answer) => answer,
        Err(refused) => return refused.page(&app),
    };
    let now = format::now();
    let chain = app.chain.as_ref();
    let body = html! {
        article #account data-account=(address) {
            h1 { "Account " code.full { (address) } }
            p { button.copy type="button" data-copy=(address) aria-label={ "copy " (address) } { "copy address" } }
            section #owned {
                h2 { "Models owned" }
                @if answer.models.nodes.is_empty() {
                    p.muted { "None." }
                } @else {
                    ul {
                        @for m in &answer.models.nodes {
                            li {
                                a href={ "/models/" (m.id) } { (m.name.as_deref().unwrap_or("(unnamed)")) } " " small.id { "#" (m.id) }
                                @if m.depth > 0 { " " span.badge { "derivative" } }
                                @if m.flagged.is_some() { " " span.badge.flag { "flagged" } }
                                " " (pending(m.is_final))
                            }
                        }
                    }
                }
            }
            section #held {
                h2 { "Licenses held" }
                @if answer.licenses.nodes.is_empty() {
                    p.muted { "None." }
                }
                @for h in &answer.licenses.nodes {
                    h3 {
                        @if let Some(m) = &h.model {
                            a href={ "/models/" (m.id) } { (m.name.as_deref().unwrap_or("(unnamed)")) } " " small.id { "#" (m.id) }
                        }
                    }
                    (licenses(std::slice::from_ref(&h.license), now, chain, true))
                }
            }
            section #credits {
                h2 { "Credits to withdraw" }
                @if answer.royalties.nodes.is_empty() {
                    p.muted { "None." }
                } @else {
                    table {
                        thead { tr { th { "Currency" } th { "Balance" } th { "Credited" } th { "Withdrawn" } } }
                        tbody {
                            @for c in &answer.royalties.nodes {
                                tr {
                                    td { @if format::is_native(&c.currency) { "ETH" } @else { (chain.and_then(|ch| ch.currency(&c.currency)).map(|t| t.symbol.clone()).unwrap_or_else(|| format::short(&c.currency))) } }
                                    td.balance { (format::price(&c.balance, &c.currency, chain)) }
                                    td { (format::price(&c.credited, &c.currency, chain)) }
                                    td { (format::price(&c.withdrawn, &c.currency, chain)) }
                                }
                            }
                        }
                    }
                    p.muted { code { "registry withdraw" } " sends them." }
                }
            }
        }
    };
    html_page(&app, &format!("Account {}", format::short(&address)), body)
}
