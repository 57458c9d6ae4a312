//! `GET /v1/models/{id}/access`: a keeper's key endpoint for agents, over a [`Keeper`] (the
//! program passes `registry::key_service::KeyService`). Without a `PAYMENT-SIGNATURE` header: `402 Payment Required` with
//! the x402 v2 `PaymentRequired` object in the `PAYMENT-REQUIRED` header (base64) and the body
//! (JSON). With one: the model key wrapped to the request's recipient, or an error that says
//! why not (`{"error": …}` with 400, 401, 403, 404, 409 or 503).

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine;
use ethers::types::{Address, U256};
use keeper_api::{Keeper, Refusal};
use serde::Deserialize;

/// The header an x402 client sends its payment payload in.
const PAYMENT_SIGNATURE: &str = "PAYMENT-SIGNATURE";
const PAYMENT_REQUIRED: &str = "PAYMENT-REQUIRED";
/// Largest accepted PAYMENT-SIGNATURE header.
const MAX_HEADER: usize = 4096;

#[derive(Debug, Deserialize)]
struct Payment {
    #[serde(rename = "x402Version")]
    version: u32,
    /// The signed key request, checked by the keeper.
    payload: serde_json::Value,
}

#[derive(Debug, Deserialize)]
pub(crate) struct AccessQuery {
    /// Fills the `buy` calldata.
    holder: Option<Address>,
    /// `age1…`; fills the `buy` calldata.
    recipient: Option<String>,
}

fn refusal(r: &Refusal) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(r.status()).expect("valid status"))
        .json(serde_json::json!({ "error": r.message() }))
}

pub(crate) async fn access(
    keys: Option<web::Data<Arc<dyn Keeper>>>,
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<AccessQuery>,
) -> HttpResponse {
    let Some(keys) = keys else {
        return HttpResponse::NotFound()
            .json(serde_json::json!({ "error": "this server holds no keeper identity (registry serve --keeper)" }));
    };
    let Ok(model) = U256::from_dec_str(path.as_str()) else {
        return refusal(&Refusal::BadRequest(format!(
            "{:?} is not a model id",
            path.as_str()
        )));
    };
    let Some(header) = req.headers().get(PAYMENT_SIGNATURE) else {
        return match keys
            .payment_required(model, req.path(), query.holder, query.recipient.as_deref())
            .await
        {
            Ok(required) => {
                let encoded =
                    base64::engine::general_purpose::STANDARD.encode(required.to_string());
                HttpResponse::PaymentRequired()
                    .insert_header((PAYMENT_REQUIRED, encoded))
                    .json(required)
            }
            Err(r) => refusal(&r),
        };
    };
    if header.len() > MAX_HEADER {
        return refusal(&Refusal::BadRequest(format!(
            "{PAYMENT_SIGNATURE} is longer than {MAX_HEADER} bytes"
        )));
    }
    let payment: Payment = match base64::engine::general_purpose::STANDARD
        .decode(header.as_bytes())
        .map_err(|e| e.to_string())
        .and_then(|json| serde_json::from_slice(&json).map_err(|e| e.to_string()))
    {
        Ok(p) => p,
        Err(e) => {
            return refusal(&Refusal::BadRequest(format!(
                "{PAYMENT_SIGNATURE} is not base64 JSON of {{x402Version, payload: {{license, recipient, deadline, signature}}}}: {e}"
            )))
        }
    };
    if payment.version != 2 {
        return refusal(&Refusal::BadRequest(format!(
            "x402Version {} is not supported (2 is)",
            payment.version
        )));
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    match keys.key(model, &payment.payload, now).await {
        Ok(key) => HttpResponse::Ok().json(serde_json::json!({
            "model": key.model.to_string(),
            "license": key.license.to_string(),
            "recipient": key.recipient,
            "weightsCid": key.weights_cid,
            "wrappedKey": base64::engine::general_purpose::STANDARD.encode(&key.wrapped),
        })),
        Err(r) => refusal(&r),
    }
}
