//! `/`: the catalogue. Search by name; filter by the right on offer, a price range in a
//! currency's units, base or derivative, flagged; sort; a page at a time (keyset cursors).

use actix_web::{web, HttpResponse};
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::json;

use super::layout::{self, address};
use super::query::{self, Refused};
use super::{format, App};

/// Cards per page.
const PAGE: i64 = 24;

/// The form's fields, as the query string carries them.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Params {
    #[serde(default)]
    q: String,
    /// `access`, `fine-tune`, `output` or empty.
    #[serde(default)]
    kind: String,
    /// `native`, a token address, or empty (any currency; a price range needs one).
    #[serde(default)]
    currency: String,
    #[serde(default)]
    min: String,
    #[serde(default)]
    max: String,
    /// `base`, `derivative` or empty.
    #[serde(default)]
    lineage: String,
    /// `yes`, `no` or empty.
    #[serde(default)]
    flagged: String,
    /// `newest`, `oldest`, `id`.
    #[serde(default)]
    sort: String,
    #[serde(default)]
    after: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    models: Connection,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Connection {
    page_info: PageInfo,
    nodes: Vec<Card>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PageInfo {
    has_next_page: bool,
    end_cursor: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Card {
    id: String,
    name: Option<String>,
    owner: String,
    depth: i64,
    encrypted: bool,
    #[serde(rename = "final")]
    is_final: bool,
    flagged: Option<Flag>,
    fingerprint_summary: Option<FingerprintStatus>,
    offerings: Vec<Offer>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Flag {
    similarity: f64,
    model: Option<Named>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Named {
    id: String,
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct FingerprintStatus {
    status: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Offer {
    kind: String,
    currency: String,
    price: String,
    duration: i64,
}

const QUERY: &str = r#"query Catalogue($where: ModelFilter, $order: ModelOrder, $first: Int, $after: String) {
  models(where: $where, orderBy: $order, first: $first, after: $after) {
    pageInfo { hasNextPage endCursor }
    nodes {
      id name owner depth encrypted final
      flagged { similarity model { id name } }
      fingerprintSummary { status }
      offerings(open: true) { kind currency price duration }
    }
  }
}"#;

pub(crate) async fn page(app: web::Data<App>, params: web::Query<Params>) -> HttpResponse {
    match render(&app, &params).await {
        Ok(body) => html_page(&app, "Catalogue", body),
        Err(refused) => refused.page(&app),
    }
}

pub(crate) fn html_page(app: &App, title: &str, body: Markup) -> HttpResponse {
    layout::respond(
        actix_web::http::StatusCode::OK,
        layout::page(app, title, body),
    )
}

async fn render(app: &App, p: &Params) -> Result<Markup, Refused> {
    let filter = filter(app, p)?;
    let order = match p.sort.as_str() {
        "" | "newest" => "MINTED_DESC",
        "oldest" => "MINTED_ASC",
        "id" => "ID_ASC",
        other => {
            return Err(Refused::BadRequest(format!(
                "unknown sort {other:?}: newest, oldest or id"
            )))
        }
    };
    let answer: Answer = query::run(
        app,
        QUERY,
        json!({ "where": filter, "order": order, "first": PAGE, "after": p.after }),
    )
    .await?;
    let chain = app.chain.as_ref();
    let next = answer
        .models
        .page_info
        .has_next_page
        .then_some(answer.models.page_info.end_cursor)
        .flatten();
    Ok(html! {
        h1 { "Models" }
        (form(app, p))
        @if answer.models.nodes.is_empty() {
            p.empty #no-models { "No model matches these filters." }
        }
        ul.cards #models {
            @for card in &answer.models.nodes {
                li.card data-model=(card.id) {
                    h2 {
                        a href={ "/models/" (card.id) } { (card.name.as_deref().unwrap_or("(unnamed)")) }
                        " " small.id { "#" (card.id) }
                        " " (layout::pending(card.is_final))
                    }
                    p.badges {
                        @if card.depth == 0 { span.badge { "base" } } @else { span.badge { "derivative" } }
                        @if card.encrypted { span.badge { "encrypted" } }
                        (provenance(card))
                    }
                    p { "Owner " (address(&card.owner)) }
                    @if card.offerings.is_empty() {
                        p.muted { "Nothing on offer" }
                    } @else {
                        ul.offers {
                            @for offer in &card.offerings {
                                li {
                                    span.kind { (layout::kind(&offer.kind)) } " "
                                    span.price { (format::price(&offer.price, &offer.currency, chain)) }
                                    " · " (format::duration(offer.duration))
                                }
                            }
                        }
                    }
                }
            }
        }
        @if let Some(cursor) = next {
            p { a.button #next rel="next" href=(next_link(p, &cursor)) { "Next page" } }
        }
    })
}

/// The provenance badge of a card: flagged, fingerprint verified or pending.
fn provenance(card: &Card) -> Markup {
    html! {
        @if let Some(flag) = &card.flagged {
            span.badge.flag title="reads as derived from a model its lineage does not declare" {
                "flagged: " (format!("{:.0}%", flag.similarity * 100.0)) " like "
                @if let Some(model) = &flag.model { "#" (model.id) " " (model.name.as_deref().unwrap_or("")) }
            }
        } @else {
            @match card.fingerprint_summary.as_ref().map(|f| f.status.as_str()) {
                Some("ok") => span.badge.ok title="fingerprint fetched and checked against the chain" { "fingerprint verified" },
                Some("invalid") => span.badge.flag { "fingerprint invalid" },
                _ => span.badge title="the indexer has not checked the fingerprint yet" { "fingerprint pending" },
            }
        }
    }
}

/// The GraphQL filter the form asks for; prices converted to base units of the currency.
fn filter(app: &App, p: &Params) -> Result<serde_json::Value, Refused> {
    let mut f = serde_json::Map::new();
    if !p.q.trim().is_empty() {
        f.insert("nameContains".into(), p.q.trim().into());
    }
    let kind = match p.kind.as_str() {
        "" => None,
        "access" => Some("ACCESS"),
        "fine-tune" => Some("FINE_TUNE"),
        "output" => Some("OUTPUT"),
        other => {
            return Err(Refused::BadRequest(format!(
                "unknown right {other:?}: access, fine-tune or output"
            )))
        }
    };
    if let Some(kind) = kind {
        f.insert("hasOfferingKind".into(), kind.into());
    }
    let priced = !p.min.trim().is_empty() || !p.max.trim().is_empty();
    let (currency, decimals) = match p.currency.as_str() {
        "" if priced => {
            return Err(Refused::BadRequest(
                "a price range needs a currency: choose ETH or a token".into(),
            ))
        }
        "" | "native" => (format!("0x{}", "0".repeat(40)), 18),
        token => {
            let token = query::address(token)?;
            let decimals = app
                .chain
                .as_ref()
                .and_then(|c| c.currency(&token))
                .map(|c| c.decimals)
                .ok_or_else(|| {
                    Refused::BadRequest(format!("{token} is not a currency this market accepts"))
                })?;
            (token, decimals)
        }
    };
    let bound = |text: &str, name: &str| -> Result<Option<String>, Refused> {
        match text.trim() {
            "" => Ok(None),
            t => format::to_base(t, decimals).map(Some).ok_or_else(|| {
                Refused::BadRequest(format!(
                    "{name} price {t:?} is not an amount (a non-negative number with at most {decimals} decimals)"
                ))
            }),
        }
    };
    let min = bound(&p.min, "minimum")?;
    let max = bound(&p.max, "maximum")?;
    if !p.currency.is_empty() || min.is_some() || max.is_some() {
        f.insert("currency".into(), currency.into());
    }
    if let Some(min) = min {
        f.insert("priceMin".into(), min.into());
    }
    if let Some(max) = max {
        f.insert("priceMax".into(), max.into());
    }
    match p.lineage.as_str() {
        "" => {}
        "base" => {
            f.insert("derivative".into(), false.into());
        }
        "derivative" => {
            f.insert("derivative".into(), true.into());
        }
        other => {
            return Err(Refused::BadRequest(format!(
                "unknown lineage {other:?}: base or derivative"
            )))
        }
    }
    match p.flagged.as_str() {
        "" => {}
        "yes" => {
            f.insert("flagged".into(), true.into());
        }
        "no" => {
            f.insert("flagged".into(), false.into());
        }
        other => {
            return Err(Refused::BadRequest(format!(
                "unknown flagged {other:?}: yes or no"
            )))
        }
    }
    Ok(serde_json::Value::Object(f))
}

fn form(app: &App, p: &Params) -> Markup {
    let option = |value: &str, label: &str, current: &str| {
        html! { option value=(value) selected[value == current] { (label) } }
    };
    html! {
        form.filters #filters method="get" action="/" role="search" {
            label { "Name " input type="search" name="q" value=(p.q) placeholder="name contains…"; }
            label { "Right on offer "
                select name="kind" {
                    (option("", "any", &p.kind)) (option("access", "access", &p.kind))
                    (option("fine-tune", "fine-tune", &p.kind)) (option("output", "output", &p.kind))
                }
            }
            label { "Currency "
                select name="currency" {
                    (option("", "any", &p.currency))
                    (option("native", "ETH", &p.currency))
                    @if let Some(chain) = &app.chain {
                        @for c in &chain.currencies {
                            (option(&c.address.to_ascii_lowercase(), &c.symbol, &p.currency.to_ascii_lowercase()))
                        }
                    }
                }
            }
            label { "Price from " input name="min" inputmode="decimal" size="8" value=(p.min); }
            label { "to " input name="max" inputmode="decimal" size="8" value=(p.max); }
            label { "Lineage "
                select name="lineage" {
                    (option("", "any", &p.lineage)) (option("base", "base models", &p.lineage))
                    (option("derivative", "derivatives", &p.lineage))
                }
            }
            label { "Flagged "
                select name="flagged" {
                    (option("", "any", &p.flagged)) (option("yes", "flagged only", &p.flagged))
                    (option("no", "not flagged", &p.flagged))
                }
            }
            label { "Sort "
                select name="sort" {
                    (option("newest", "newest first", &p.sort)) (option("oldest", "oldest first", &p.sort))
                    (option("id", "by id", &p.sort))
                }
            }
            button type="submit" { "Search" }
        }
    }
}

/// The link to the page after `cursor`, with the same filters.
fn next_link(p: &Params, cursor: &str) -> String {
    let mut url = url_encoded(&[
        ("q", &p.q),
        ("kind", &p.kind),
        ("currency", &p.currency),
        ("min", &p.min),
        ("max", &p.max),
        ("lineage", &p.lineage),
        ("flagged", &p.flagged),
        ("sort", &p.sort),
        ("after", cursor),
    ]);
    url.insert(0, '?');
    url.insert(0, '/');
    url
}

/// `pairs` as a query string (empty values left out).
pub(crate) fn url_encoded(pairs: &[(&str, &str)]) -> String {
    let pairs: Vec<_> = pairs.iter().filter(|(_, v)| !v.is_empty()).collect();
    serde_urlencoded::to_string(pairs).expect("string pairs encode")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_page_keeps_every_filter_and_encodes_them() {
        let p = Params {
            q: "a&b c".into(),
            kind: "fine-tune".into(),
            min: "0.5".into(),
            lineage: "derivative".into(),
            sort: "oldest".into(),
            ..Params::default()
        };
        let link = next_link(&p, "Y3Vyc29y+/=");
        assert_eq!(
            link,
            "/?q=a%26b+c&kind=fine-tune&min=0.5&lineage=derivative&sort=oldest&after=Y3Vyc29y%2B%2F%3D"
        );
    }
}
