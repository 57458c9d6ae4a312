//! `/rights`: may this address use this right of this model now (or at a given time)? The
//! answer and the license that grants it, as the market's `rightsOf` view would say.

use actix_web::{web, HttpResponse};
use maud::html;
use serde::Deserialize;
use serde_json::json;

use super::catalogue::html_page;
use super::layout::{self, address, time};
use super::query::{self, Refused};
use super::{format, App};

#[derive(Debug, Default, Deserialize)]
pub(crate) struct Params {
    #[serde(default)]
    address: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    kind: String,
}

const QUERY: &str = r#"query Rights($address: String!, $model: ID!, $kind: LicenseKind!) {
  model(id: $model) { id name owner }
  rights(address: $address, model: $model, kind: $kind) {
    allowed owner at license { id kind start expiry holder }
  }
}"#;

#[derive(Debug, Deserialize)]
struct Answer {
    model: Option<ModelName>,
    rights: Rights,
}

#[derive(Debug, Deserialize)]
struct ModelName {
    id: String,
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Rights {
    allowed: bool,
    owner: bool,
    at: i64,
    license: Option<Grant>,
}

#[derive(Debug, Deserialize)]
struct Grant {
    id: String,
    kind: String,
    start: i64,
    expiry: i64,
}

pub(crate) async fn page(app: web::Data<App>, params: web::Query<Params>) -> HttpResponse {
    let p = params.into_inner();
    let form = html! {
        h1 { "Rights check" }
        p { "May an address use a right of a model now?" }
        form.filters #rights-form method="get" action="/rights" {
            label { "Address " input name="address" value=(p.address) placeholder="0x…" size="44" required; }
            label { "Model " input name="model" value=(p.model) inputmode="numeric" size="6" required; }
            label { "Right "
                select name="kind" {
                    @for (value, label) in [("access", "access"), ("fine-tune", "fine-tune"), ("output", "output")] {
                        option value=(value) selected[p.kind == value] { (label) }
                    }
                }
            }
            button type="submit" { "Check" }
        }
    };
    if p.address.is_empty() && p.model.is_empty() {
        return html_page(&app, "Rights check", form);
    }
    let answer = async {
        let account = query::address(&p.address)?;
        let model = query::id(&p.model, "model")?;
        let kind = match p.kind.as_str() {
            "" | "access" => "ACCESS",
            "fine-tune" => "FINE_TUNE",
            "output" => "OUTPUT",
            other => {
                return Err(Refused::BadRequest(format!(
                    "unknown right {other:?}: access, fine-tune or output"
                )))
            }
        };
        let answer: Answer = query::run(
            &app,
            QUERY,
            json!({ "address": account, "model": model, "kind": kind }),
        )
        .await?;
        let named = answer
            .model
            .ok_or_else(|| Refused::NotFound(format!("there is no model {model}")))?;
        Ok((account, named, kind, answer.rights))
    };
    let (account, model, kind, rights) = match answer.await {
        Ok(answer) => answer,
        Err(refused) => return refused.page(&app),
    };
    let now = format::now();
    let body = html! {
        (form)
        section.answer #rights-answer data-allowed=(rights.allowed) role="status" {
            @if rights.allowed {
                h2.yes { "Yes" }
            } @else {
                h2.no { "No" }
            }
            p {
                (address(&account))
                @if rights.allowed { " may " } @else { " may not " }
                "use the " (layout::kind(kind)) " right of "
                a href={ "/models/" (model.id) } { (model.name.as_deref().unwrap_or("(unnamed)")) " #" (model.id) }
                " at " (time(rights.at, now)) "."
            }
            @if rights.owner {
                p { "It owns the model, which grants every right." }
            } @else if let Some(l) = &rights.license {
                p #rights-license data-license=(l.id) {
                    "Granted by " (layout::kind(&l.kind)) " license #" (l.id) ", valid from " (time(l.start, now))
                    @if l.expiry == 0 { ", perpetual." } @else { " until " (time(l.expiry, now)) "." }
                }
            } @else if !rights.allowed {
                p { "It holds no license that grants this right now. "
                    a href={ "/models/" (model.id) "#offerings" } { "See the offerings." } }
            }
        }
    };
    html_page(&app, "Rights check", body)
}
