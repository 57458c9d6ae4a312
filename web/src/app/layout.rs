//! The page shell (header, navigation, footer), the pieces every page writes the same way
//! (addresses, times, prices, the pending mark), and the app's own CSS and JS.

use actix_web::HttpResponse;
use maud::{html, Markup, DOCTYPE};

use super::format;
use super::App;

const CSS: &str = include_str!("assets/app.css");
const JS: &str = include_str!("assets/app.js");

pub(crate) async fn css() -> HttpResponse {
    asset("text/css; charset=utf-8", CSS)
}

pub(crate) async fn js() -> HttpResponse {
    asset("text/javascript; charset=utf-8", JS)
}

fn asset(content_type: &str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header(("Cache-Control", "no-cache"))
        .body(body)
}

/// What a page may load and where it may connect: this server only (its own CSS, script and
/// API; the wallet is the browser's, not the page's), never framed by another site.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// A page answer with `status`, under the app's content security policy.
pub(crate) fn respond(status: actix_web::http::StatusCode, page: Markup) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header(("Content-Security-Policy", POLICY))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .insert_header(("Referrer-Policy", "same-origin"))
        .body(page.into_string())
}

/// A whole page: `title` and `body` in the shell.
pub(crate) fn page(app: &App, title: &str, body: Markup) -> Markup {
    let chain = app.chain.as_ref();
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Model registry" }
                link rel="stylesheet" href="/app/app.css";
                script src="/app/app.js" defer {}
            }
            body data-chain-id=[chain.map(|c| c.chain_id)]
                 data-market=[chain.map(|c| c.market.as_str())]
                 data-rpc-url=[chain.and_then(|c| c.rpc_url.as_deref())] {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/" { "Model registry" }
                    nav aria-label="main" {
                        a href="/" { "Catalogue" }
                        a href="/rights" { "Rights check" }
                        a href="/graphiql" { "GraphiQL" }
                    }
                    div.wallet {
                        button #connect type="button" { "Connect wallet" }
                        span #wallet-account hidden {}
                    }
                }
                main #main { (body) }
                footer {
                    @if let Some(chain) = chain {
                        "Chain " (chain.chain_id) " · market " (address(&chain.market)) " · "
                    }
                    a href="/graphql" { "GraphQL API" } " · " a href="/graphiql" { "GraphiQL" }
                }
                div #toast role="status" aria-live="polite" {}
            }
        }
    }
}

/// An address: shortened, linked to its account page, with a copy button.
pub(crate) fn address(address: &str) -> Markup {
    html! {
        span.addr {
            a href={ "/accounts/" (address) } title=(address) { code { (format::short(address)) } }
            button.copy type="button" data-copy=(address) aria-label={ "copy " (address) } { "copy" }
        }
    }
}

/// A long hash or CID: shortened, with a copy button.
pub(crate) fn hash(text: &str) -> Markup {
    html! {
        span.addr {
            code title=(text) { (format::short(text)) }
            button.copy type="button" data-copy=(text) aria-label={ "copy " (text) } { "copy" }
        }
    }
}

/// A time: relative, with the absolute time beside it.
pub(crate) fn time(unix: i64, now: i64) -> Markup {
    let absolute = format::absolute(unix);
    html! {
        time datetime=(absolute) title=(absolute) data-unix=(unix) { (format::relative(unix, now)) }
        " " small.abs { "(" (absolute.replace('T', " ").replace('Z', " UTC")) ")" }
    }
}

/// The mark of a row a reorg could still change.
pub(crate) fn pending(is_final: bool) -> Markup {
    html! {
        @if !is_final {
            span.pending title="not final yet: a reorg of the chain could still change or remove this" { "pending" }
        }
    }
}

/// A license kind as people say it.
pub(crate) fn kind(kind: &str) -> &'static str {
    match kind {
        "ACCESS" => "access",
        "FINE_TUNE" => "fine-tune",
        "OUTPUT" => "output",
        _ => "unknown",
    }
}
