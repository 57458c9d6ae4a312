//! `/models/{id}`: one model: its record, lineage graph, offerings (bought from the page with
//! an injected wallet), licenses sold, similar models, the undeclared-derivative flag with
//! its evidence, and output batches.

use std::collections::BTreeMap;

use actix_web::{web, HttpResponse};
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::json;

use super::catalogue::html_page;
use super::layout::{self, address, hash, pending, time};
use super::lineage::{self, Edge};
use super::query::{self, Refused};
use super::{format, App};

const QUERY: &str = r#"query ModelPage($id: ID!) {
  model(id: $id) {
    id name owner creator minter weightsCid contentRoot fingerprint metadataUri mintedAt depth
    saleRoyaltyBps derivativeRoyaltyBps encrypted block txHash final
    flagged { similarity model { id name } }
    fingerprintSummary { status detail tensors parameters }
    offerings(first: 100) { id kind currency price duration supplyCap sold closed onSale renewalPeriod
      deliveryPeriod transferable commercialUse royaltyBps final }
    similar(minSimilarity: 0.1) { similarity verdict log10FalsePositiveProbability model { id name } }
  }
  ancestors: lineage(model: $id, direction: ANCESTORS) { parentId childId royaltyBps parent { name } child { name } }
  descendants: lineage(model: $id, direction: DESCENDANTS) { parentId childId royaltyBps parent { name } child { name } }
  licenses(where: { model: $id }, first: 50, orderBy: ID_DESC) {
    nodes { id kind holder payer price currency start expiry escrowed pendingDelivery refunded final
      consumedBy { id } }
  }
  outputBatches(where: { model: $id }, first: 20) {
    nodes { root count provider committedAt uri final leafList { status } }
  }
}"#;

#[derive(Debug, Deserialize)]
struct Answer {
    model: Option<Model>,
    ancestors: Vec<LineageEdge>,
    descendants: Vec<LineageEdge>,
    licenses: Nodes<License>,
    #[serde(rename = "outputBatches")]
    batches: Nodes<Batch>,
}

#[derive(Debug, Deserialize)]
struct Nodes<T> {
    nodes: Vec<T>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Model {
    id: String,
    name: Option<String>,
    owner: String,
    creator: String,
    minter: String,
    weights_cid: String,
    content_root: String,
    fingerprint: String,
    metadata_uri: String,
    minted_at: i64,
    depth: i64,
    sale_royalty_bps: i64,
    derivative_royalty_bps: i64,
    encrypted: bool,
    block: i64,
    tx_hash: String,
    #[serde(rename = "final")]
    is_final: bool,
    flagged: Option<Flag>,
    fingerprint_summary: Option<Fingerprint>,
    offerings: Vec<Offering>,
    similar: Vec<Similar>,
}

#[derive(Debug, Deserialize)]
struct Flag {
    similarity: f64,
    model: Option<Named>,
}

#[derive(Debug, Deserialize, Clone)]
struct Named {
    id: String,
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Fingerprint {
    status: String,
    detail: Option<String>,
    tensors: i64,
    parameters: i64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Offering {
    id: String,
    kind: String,
    currency: String,
    price: String,
    duration: i64,
    supply_cap: i64,
    sold: i64,
    closed: bool,
    on_sale: bool,
    renewal_period: i64,
    delivery_period: i64,
    transferable: bool,
    commercial_use: bool,
    royalty_bps: i64,
    #[serde(rename = "final")]
    is_final: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Similar {
    similarity: f64,
    verdict: String,
    log10_false_positive_probability: f64,
    model: Option<Named>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LineageEdge {
    parent_id: String,
    child_id: String,
    royalty_bps: i64,
    parent: Option<OptName>,
    child: Option<OptName>,
}

#[derive(Debug, Deserialize)]
struct OptName {
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct License {
    pub(crate) id: String,
    pub(crate) kind: String,
    pub(crate) holder: String,
    pub(crate) price: String,
    pub(crate) currency: String,
    pub(crate) start: i64,
    pub(crate) expiry: i64,
    pub(crate) pending_delivery: bool,
    pub(crate) refunded: bool,
    #[serde(rename = "final")]
    pub(crate) is_final: bool,
    pub(crate) consumed_by: Option<IdOnly>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct IdOnly {
    pub(crate) id: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Batch {
    root: String,
    count: i64,
    provider: String,
    committed_at: i64,
    uri: Option<String>,
    #[serde(rename = "final")]
    is_final: bool,
    leaf_list: LeafList,
}

#[derive(Debug, Deserialize)]
struct LeafList {
    status: String,
}

pub(crate) async fn page(app: web::Data<App>, id: web::Path<String>) -> HttpResponse {
    match render(&app, &id).await {
        Ok((title, body)) => html_page(&app, &title, body),
        Err(refused) => refused.page(&app),
    }
}

async fn render(app: &App, id: &str) -> Result<(String, Markup), Refused> {
    let id = query::id(id, "model")?;
    let answer: Answer = query::run(app, QUERY, json!({ "id": id })).await?;
    let model = answer.model.ok_or_else(|| {
        Refused::NotFound(format!(
            "there is no model {id} (or the indexer has not reached it yet)"
        ))
    })?;
    let now = format::now();
    let chain = app.chain.as_ref();
    let name = model.name.clone().unwrap_or_else(|| "(unnamed)".into());

    let mut names = BTreeMap::from([(model.id.clone(), name.clone())]);
    let mut edges = |lineage: &[LineageEdge]| -> Vec<Edge> {
        lineage
            .iter()
            .map(|e| {
                for (id, named) in [(&e.parent_id, &e.parent), (&e.child_id, &e.child)] {
                    if let Some(n) = named.as_ref().and_then(|n| n.name.clone()) {
                        names.entry(id.clone()).or_insert(n);
                    }
                }
                Edge {
                    parent: e.parent_id.clone(),
                    child: e.child_id.clone(),
                    royalty_bps: e.royalty_bps,
                }
            })
            .collect()
    };
    let ancestors = edges(&answer.ancestors);
    let descendants = edges(&answer.descendants);
    let drawn = ancestors.len() + descendants.len();
    let evidence = model.flagged.as_ref().and_then(|flag| {
        let flagged = flag.model.as_ref()?;
        model
            .similar
            .iter()
            .find(|s| s.model.as_ref().is_some_and(|m| m.id == flagged.id))
    });

    let body = html! {
        article.model #model data-model=(model.id) {
            h1 { (name) " " small.id { "#" (model.id) } " " (pending(model.is_final)) }
            p.badges {
                @if model.depth == 0 { span.badge { "base model" } } @else { span.badge { "derivative, depth " (model.depth) } }
                @if model.encrypted { span.badge title="the weights are stored only encrypted; a license buys the key" { "encrypted" } }
            }
            @if let Some(flag) = &model.flagged {
                section.flagged #flag role="note" {
                    h2 { "Undeclared derivative" }
                    p {
                        "This model reads as derived from "
                        @if let Some(m) = &flag.model { a href={ "/models/" (m.id) } { "#" (m.id) " " (m.name.as_deref().unwrap_or("")) } }
                        ", which its declared lineage does not explain: fingerprint similarity "
                        strong { (format!("{:.1}%", flag.similarity * 100.0)) } "."
                    }
                    @if let Some(s) = evidence {
                        p { "Verdict " strong { (s.verdict) } "; the chance that unrelated models look this alike is 10"
                            sup { (format!("{:.1}", s.log10_false_positive_probability)) } "." }
                    }
                }
            }
            section #record {
                h2 { "Record" }
                dl.record {
                    dt { "Owner" } dd { (address(&model.owner)) }
                    dt { "Creator" } dd { (address(&model.creator)) }
                    @if model.minter != model.creator { dt { "Minted by" } dd { (address(&model.minter)) } }
                    dt { "Minted" } dd { (time(model.minted_at, now)) " in block " (model.block) ", tx " (hash(&model.tx_hash)) }
                    dt { "Weights" } dd { (hash(&model.weights_cid)) " " a href={ "/ipfs/" (model.weights_cid) } { "download" } }
                    dt { "Content root" } dd { (hash(&model.content_root)) }
                    dt { "Fingerprint" } dd {
                        (hash(&model.fingerprint)) " "
                        @match &model.fingerprint_summary {
                            Some(f) if f.status == "ok" => span.badge.ok { "verified: " (f.tensors) " tensors, " (f.parameters) " parameters" },
                            Some(f) if f.status == "invalid" => span.badge.flag { "invalid: " (f.detail.as_deref().unwrap_or("")) },
                            Some(f) => span.badge { "pending" @if let Some(d) = &f.detail { ": " (d) } },
                            None => span.badge { "pending" },
                        }
                    }
                    dt { "Metadata" } dd { (hash(&model.metadata_uri)) }
                    dt { "Royalties" } dd { (format::bps(model.sale_royalty_bps)) " of token sales; derivatives owe at least " (format::bps(model.derivative_royalty_bps)) }
                }
            }
            section #lineage {
                h2 { "Lineage" }
                @if drawn == 0 {
                    p.muted { "No declared parents or derivatives." }
                } @else {
                    div.graph { (lineage::svg(&model.id, &ancestors, &descendants, &names)) }
                    @if drawn > lineage::MAX_EDGES {
                        p.muted { "The " (lineage::MAX_EDGES) " nearest of " (drawn) " declared edges are drawn; "
                            code { "lineage(model: \"" (model.id) "\", …)" } " in the GraphQL API lists them all." }
                    }
                }
            }
            section #offerings {
                h2 { "Offerings" }
                (offerings(&model.offerings, model.encrypted, chain))
            }
            section #licenses {
                h2 { "Licenses sold" }
                (licenses(&answer.licenses.nodes, now, chain, false))
            }
            section #similar {
                h2 { "Similar models" }
                @if model.similar.is_empty() {
                    p.muted { "No registered model is similar." }
                } @else {
                    table {
                        thead { tr { th { "Model" } th { "Similarity" } th { "Verdict" } th { "Chance if unrelated" } } }
                        tbody {
                            @for s in &model.similar {
                                tr {
                                    td { @if let Some(m) = &s.model { a href={ "/models/" (m.id) } { "#" (m.id) " " (m.name.as_deref().unwrap_or("")) } } }
                                    td { (format!("{:.1}%", s.similarity * 100.0)) }
                                    td { (s.verdict) }
                                    td { "10" sup { (format!("{:.1}", s.log10_false_positive_probability)) } }
                                }
                            }
                        }
                    }
                }
            }
            section #outputs {
                h2 { "Output batches" }
                @if answer.batches.nodes.is_empty() {
                    p.muted { "No outputs committed under this model's licenses." }
                } @else {
                    table {
                        thead { tr { th { "Root" } th { "Outputs" } th { "Provider" } th { "Committed" } th { "Leaf list" } } }
                        tbody {
                            @for b in &answer.batches.nodes {
                                tr {
                                    td { (hash(&b.root)) " " (pending(b.is_final)) }
                                    td { (b.count) }
                                    td { (address(&b.provider)) }
                                    td { (time(b.committed_at, now)) }
                                    td { @if b.uri.is_some() { (b.leaf_list.status.to_lowercase()) } @else { "not published" } }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok((name, body))
}

/// The offerings table, with a buy button on those on sale.
fn offerings(offerings: &[Offering], encrypted: bool, chain: Option<&super::Chain>) -> Markup {
    html! {
        @if offerings.is_empty() {
            p.muted { "Nothing on offer." }
        } @else {
            table.offerings {
                thead { tr { th { "Right" } th { "Price" } th { "Length" } th { "Terms" } th { "Sold" } th {} } }
                tbody {
                    @for o in offerings {
                        tr data-offering=(o.id) {
                            td { (layout::kind(&o.kind)) " " small.id { "#" (o.id) } " " (pending(o.is_final)) }
                            td.price { (format::price(&o.price, &o.currency, chain)) }
                            td { (format::duration(o.duration)) }
                            td {
                                ul.terms {
                                    @if o.transferable { li { "transferable" } }
                                    @if o.commercial_use { li { "commercial use" } }
                                    @if o.royalty_bps > 0 { li { "derivatives pay " (format::bps(o.royalty_bps)) } }
                                    @if o.delivery_period > 0 { li { "key within " (format::duration(o.delivery_period)) ", else refund" } }
                                    @if o.closed && o.renewal_period > 0 { li { "renewable for " (format::duration(o.renewal_period)) " after closing" } }
                                }
                            }
                            td { (o.sold) @if o.supply_cap > 0 { " of " (o.supply_cap) } }
                            td {
                                @if o.on_sale {
                                    @if chain.is_some() {
                                        button.buy type="button" data-offering=(o.id) data-encrypted=(encrypted && o.kind != "OUTPUT") { "Buy" }
                                    }
                                } @else if o.closed {
                                    span.muted { "closed" }
                                } @else {
                                    span.muted { "not on sale" }
                                }
                            }
                        }
                    }
                }
            }
            @if chain.is_some() {
                p.muted { "Buying needs a wallet in this browser (MetaMask or the like) on chain " (chain.map(|c| c.chain_id).unwrap_or_default()) "; it signs and sends the transaction the server prepares." }
            }
        }
    }
}

/// A table of licenses; `renew` adds renew buttons to time-bound ones still renewable.
pub(crate) fn licenses(
    licenses: &[License],
    now: i64,
    chain: Option<&super::Chain>,
    renew: bool,
) -> Markup {
    html! {
        @if licenses.is_empty() {
            p.muted { "None." }
        } @else {
            table.licenses {
                thead { tr { th { "License" } th { "Holder" } th { "Paid" } th { "From" } th { "Until" } th { "State" } @if renew { th {} } } }
                tbody {
                    @for l in licenses {
                        tr data-license=(l.id) {
                            td { (layout::kind(&l.kind)) " " small.id { "#" (l.id) } " " (pending(l.is_final)) }
                            td { (address(&l.holder)) }
                            td { (format::price(&l.price, &l.currency, chain)) }
                            td { (time(l.start, now)) }
                            td { @if l.expiry == 0 { "perpetual" } @else { (time(l.expiry, now)) } }
                            td.state { (state(l, now)) }
                            @if renew {
                                td { @if l.expiry != 0 && l.expiry > now && !l.refunded && chain.is_some() {
                                    button.renew type="button" data-license=(l.id) hidden { "Renew" }
                                } }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn state(l: &License, now: i64) -> Markup {
    html! {
        @if l.refunded {
            "refunded"
        } @else if let Some(child) = &l.consumed_by {
            "used for derivative " a href={ "/models/" (child.id) } { "#" (child.id) }
        } @else if l.pending_delivery {
            "waiting for its key"
        } @else if l.expiry != 0 && l.expiry <= now {
            "expired"
        } @else {
            "active"
        }
    }
}
