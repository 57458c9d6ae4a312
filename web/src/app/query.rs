//! Runs a page's GraphQL query in process and turns its answer into the page's types, or
//! into the page the user should see instead (400 for input the API refused, 404 for what
//! does not exist, 500 for the rest, logged).

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use serde::de::DeserializeOwned;

use super::layout;
use super::App;

/// A page that cannot be shown, and why.
#[derive(Debug)]
pub(crate) enum Refused {
    /// The input is malformed (HTTP 400).
    BadRequest(String),
    /// Nothing has this id or address (HTTP 404).
    NotFound(String),
    /// The server failed (HTTP 500); the message is logged, not shown.
    Internal(String),
}

impl Refused {
    pub(crate) fn page(&self, app: &App) -> HttpResponse {
        let (status, title, text) = match self {
            Refused::BadRequest(text) => (StatusCode::BAD_REQUEST, "Bad request", text.as_str()),
            Refused::NotFound(text) => (StatusCode::NOT_FOUND, "Not found", text.as_str()),
            Refused::Internal(text) => {
                tracing::error!("web app: {text}");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Server error",
                    "the server could not answer; try again",
                )
            }
        };
        let body = maud::html! {
            section.notice role="alert" {
                h1 { (title) }
                p { (text) }
                p { a href="/" { "Back to the catalogue" } }
            }
        };
        layout::respond(status, layout::page(app, title, body))
    }
}

/// Runs `query` with `variables`; its `data` as `T`.
pub(crate) async fn run<T: DeserializeOwned>(
    app: &App,
    query: &str,
    variables: serde_json::Value,
) -> Result<T, Refused> {
    let request = async_graphql::Request::new(query)
        .variables(async_graphql::Variables::from_json(variables));
    let response = app.schema.execute(request).await;
    if let Some(error) = response.errors.first() {
        let code = error
            .extensions
            .as_ref()
            .and_then(|e| e.get("code"))
            .map(|c| c.to_string());
        return Err(match code.as_deref() {
            Some("\"BAD_USER_INPUT\"") => Refused::BadRequest(error.message.clone()),
            _ => Refused::Internal(format!("{query}: {}", error.message)),
        });
    }
    let data = response
        .data
        .into_json()
        .map_err(|e| Refused::Internal(e.to_string()))?;
    serde_json::from_value(data).map_err(|e| Refused::Internal(format!("{query}: {e}")))
}

/// `text` as a model or license id: decimal digits, at most 78 (a uint256).
pub(crate) fn id(text: &str, what: &str) -> Result<String, Refused> {
    let text = text.trim();
    match !text.is_empty() && text.len() <= 78 && text.bytes().all(|b| b.is_ascii_digit()) {
        true => Ok(text.trim_start_matches('0').to_string()).map(|t| match t.is_empty() {
            true => "0".into(),
            false => t,
        }),
        false => Err(Refused::BadRequest(format!(
            "{text:?} is not a {what} id (a whole number)"
        ))),
    }
}

/// `text` as an address: `0x` and 40 hex digits, lowercased.
pub(crate) fn address(text: &str) -> Result<String, Refused> {
    let t = text.trim().to_ascii_lowercase();
    match t.len() == 42 && t.starts_with("0x") && t[2..].bytes().all(|b| b.is_ascii_hexdigit()) {
        true => Ok(t),
        false => Err(Refused::BadRequest(format!(
            "{text:?} is not an address (0x and 40 hexadecimal digits)"
        ))),
    }
}
