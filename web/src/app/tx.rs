//! The transactions a purchase or a renewal takes, built by the server for the page's
//! wallet to sign and send (EIP-1193: `eth_sendTransaction` with `to`, `data`, `value`), and
//! contract errors decoded from revert data so the page can say why a transaction failed.
//!
//! The price, currency and terms come from the index (the offering as it was published;
//! terms never change), and the purchase passes the price as its `maxPrice`, so a wallet
//! never pays more than the page showed. An ERC-20 offering first needs the market approved
//! for the price: the answer carries the approval and the `allowance` call that tells the
//! page whether it is still needed.

use actix_web::{web, HttpResponse};
use contracts::license_market::{BuyCall, RenewCall};
use ethers::abi::{AbiDecode, AbiEncode};
use ethers::types::{Address, U256};
use serde::Deserialize;
use serde_json::json;

use super::query::{self, Refused};
use super::{format, App};

#[derive(Debug, Deserialize)]
pub(crate) struct BuyParams {
    offering: String,
    buyer: String,
    /// The buyer's age recipient (`age1…`), for an encrypted model's key.
    #[serde(default)]
    recipient: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct RenewParams {
    license: String,
    payer: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct RevertParams {
    data: String,
}

const OFFERING: &str = r#"query Offering($id: ID!) {
  offering(id: $id) { id kind currency price duration onSale model { id name encrypted } }
}"#;

#[derive(Debug, Deserialize)]
struct OneOffering {
    offering: Option<Offering>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Offering {
    id: String,
    kind: String,
    currency: String,
    price: String,
    duration: i64,
    on_sale: bool,
    model: Option<ModelRef>,
}

#[derive(Debug, Deserialize)]
struct ModelRef {
    id: String,
    name: Option<String>,
    encrypted: bool,
}

/// A JSON answer, or a JSON error naming what is wrong.
fn reply(result: Result<serde_json::Value, Refused>) -> HttpResponse {
    match result {
        Ok(value) => HttpResponse::Ok().json(value),
        Err(Refused::BadRequest(message)) => {
            HttpResponse::BadRequest().json(json!({ "error": message }))
        }
        Err(Refused::NotFound(message)) => {
            HttpResponse::NotFound().json(json!({ "error": message }))
        }
        Err(Refused::Internal(message)) => {
            tracing::error!("web app: {message}");
            HttpResponse::InternalServerError()
                .json(json!({ "error": "the server could not answer; try again" }))
        }
    }
}

fn chain(app: &App) -> Result<&super::Chain, Refused> {
    app.chain.as_ref().ok_or_else(|| {
        Refused::NotFound(
            "this server does not know the market's chain: purchases are made with `registry buy`"
                .into(),
        )
    })
}

fn h160(text: &str) -> Result<Address, Refused> {
    query::address(text)?
        .parse()
        .map_err(|_| Refused::BadRequest(format!("{text:?} is not an address")))
}

fn u256(text: &str) -> Result<U256, Refused> {
    U256::from_dec_str(text).map_err(|_| Refused::Internal(format!("{text:?} is not an amount")))
}

fn hex_data(bytes: &[u8]) -> String {
    format!("0x{}", hex::encode(bytes))
}

/// The steps of paying `price` in `currency` to the market with `call`: an approval first
/// for an ERC-20 (with the allowance call that says whether it is needed), then the call.
fn steps(
    chain: &super::Chain,
    payer: Address,
    currency: &str,
    price: U256,
    call: Vec<u8>,
    label: String,
) -> Result<serde_json::Value, Refused> {
    let market = h160(&chain.market)?;
    let mut steps = Vec::new();
    let native = format::is_native(currency);
    if !native {
        let token = h160(currency)?;
        let erc20 = erc20();
        let approve = erc20
            .encode("approve", (market, price))
            .map_err(|e| Refused::Internal(e.to_string()))?;
        let allowance = erc20
            .encode("allowance", (payer, market))
            .map_err(|e| Refused::Internal(e.to_string()))?;
        steps.push(json!({
            "label": format!("approve the market to take {}", format::price(&price.to_string(), currency, Some(chain))),
            "to": format!("{token:?}"),
            "data": hex_data(&approve),
            "value": "0x0",
            // Skip the approval when `allowance` already answers at least this.
            "unlessAllowance": { "to": format!("{token:?}"), "data": hex_data(&allowance), "atLeast": price.to_string() },
        }));
    }
    steps.push(json!({
        "label": label,
        "to": format!("{market:?}"),
        "data": hex_data(&call),
        "value": if native { format!("{price:#x}") } else { "0x0".to_string() },
    }));
    Ok(json!({
        "chainId": chain.chain_id,
        "chainIdHex": format!("{:#x}", chain.chain_id),
        "rpcUrl": chain.rpc_url,
        "steps": steps,
    }))
}

fn erc20() -> ethers::contract::BaseContract {
    ethers::abi::parse_abi(&[
        "function approve(address spender, uint256 amount) external returns (bool)",
        "function allowance(address owner, address spender) external view returns (uint256)",
    ])
    .expect("the ERC-20 fragment parses")
    .into()
}

/// `GET /app/tx/buy?offering=ID&buyer=0x…[&recipient=age1…]`.
pub(crate) async fn buy(app: web::Data<App>, params: web::Query<BuyParams>) -> HttpResponse {
    reply(build_buy(&app, &params).await)
}

async fn build_buy(app: &App, p: &BuyParams) -> Result<serde_json::Value, Refused> {
    let chain = chain(app)?;
    let offering_id = query::id(&p.offering, "offering")?;
    let buyer = h160(&p.buyer)?;
    let answer: OneOffering = query::run(app, OFFERING, json!({ "id": offering_id })).await?;
    let offering = answer
        .offering
        .ok_or_else(|| Refused::NotFound(format!("there is no offering {offering_id}")))?;
    if !offering.on_sale {
        return Err(Refused::BadRequest(format!(
            "offering {offering_id} is not on sale (closed, sold out, or published by a former owner)"
        )));
    }
    let model = offering
        .model
        .ok_or_else(|| Refused::Internal(format!("offering {offering_id} has no model")))?;
    // Only access and fine-tune licenses of an encrypted model buy its key (in escrow); an
    // output license of it does not.
    let escrowed = model.encrypted && offering.kind != "OUTPUT";
    let recipient = match (escrowed, p.recipient.trim()) {
        (false, _) => [0; 32],
        (true, "") => {
            return Err(Refused::BadRequest(format!(
                "model {} is encrypted: give the age recipient (age1…) its key is to be wrapped to (`registry identity` prints yours)",
                model.id
            )))
        }
        (true, text) => age_recipient(text)?,
    };
    let price = u256(&offering.price)?;
    let call = BuyCall {
        offering_id: u256(&offering.id)?,
        holder: buyer,
        max_price: price,
        recipient,
    }
    .encode();
    let label = format!(
        "buy the {} license of {} for {}{}",
        super::layout::kind(&offering.kind),
        model.name.as_deref().unwrap_or("the model"),
        format::price(&offering.price, &offering.currency, Some(chain)),
        match offering.duration {
            0 => String::new(),
            d => format!(", {}", format::duration(d)),
        }
    );
    let mut answer = steps(chain, buyer, &offering.currency, price, call, label)?;
    answer["model"] = model.id.into();
    answer["offering"] = offering.id.into();
    Ok(answer)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LicenseRow {
    id: String,
    currency: String,
    price: String,
    duration: i64,
    expiry: i64,
    model: Option<ModelRef>,
}

/// `GET /app/tx/renew?license=ID&payer=0x…`.
pub(crate) async fn renew(app: web::Data<App>, params: web::Query<RenewParams>) -> HttpResponse {
    reply(build_renew(&app, &params).await)
}

async fn build_renew(app: &App, p: &RenewParams) -> Result<serde_json::Value, Refused> {
    let chain = chain(app)?;
    let id = query::id(&p.license, "license")?;
    let payer = h160(&p.payer)?;
    let license: Option<LicenseRow> = license_by_id(app, &id).await?;
    let license = license.ok_or_else(|| Refused::NotFound(format!("there is no license {id}")))?;
    if license.duration == 0 || license.expiry == 0 {
        return Err(Refused::BadRequest(format!(
            "license {id} is perpetual: nothing to renew"
        )));
    }
    let price = u256(&license.price)?;
    let call = RenewCall {
        license_id: u256(&license.id)?,
        max_price: price,
    }
    .encode();
    let label = format!(
        "renew license #{} of {} for {} more, for {}",
        license.id,
        license
            .model
            .as_ref()
            .and_then(|m| m.name.as_deref())
            .unwrap_or("the model"),
        format::duration(license.duration),
        format::price(&license.price, &license.currency, Some(chain)),
    );
    steps(chain, payer, &license.currency, price, call, label)
}

async fn license_by_id(app: &App, id: &str) -> Result<Option<LicenseRow>, Refused> {
    #[derive(Debug, Deserialize)]
    struct One {
        license: Option<LicenseRow>,
    }
    let one: One = query::run(
        app,
        r#"query License($id: ID!) { license(id: $id) { id currency price duration expiry model { id name encrypted } } }"#,
        json!({ "id": id }),
    )
    .await?;
    Ok(one.license)
}

/// The 32 bytes of an age X25519 recipient (`age1…`).
fn age_recipient(text: &str) -> Result<[u8; 32], Refused> {
    use bech32::FromBase32;
    let bad = |why: &str| Refused::BadRequest(format!("{text:?} is not an age recipient: {why}"));
    let (hrp, data, _) = bech32::decode(text).map_err(|e| bad(&e.to_string()))?;
    if hrp != "age" {
        return Err(bad("it must start with age1"));
    }
    let bytes = Vec::<u8>::from_base32(&data).map_err(|e| bad(&e.to_string()))?;
    bytes
        .try_into()
        .map_err(|_| bad("an X25519 key is 32 bytes"))
}

/// `GET /app/revert?data=0x…`: the contracts' error that revert data encodes.
pub(crate) async fn revert(params: web::Query<RevertParams>) -> HttpResponse {
    reply(decode_revert(&params.data))
}

fn decode_revert(data: &str) -> Result<serde_json::Value, Refused> {
    let bytes = hex::decode(data.trim().trim_start_matches("0x"))
        .map_err(|_| Refused::BadRequest(format!("{data:?} is not hexadecimal revert data")))?;
    let error = if let Ok(e) = contracts::LicenseMarketErrors::decode(&bytes) {
        inner(&e)
    } else if let Ok(e) = contracts::ModelRegistryErrors::decode(&bytes) {
        inner(&e)
    } else if let Some(e) = token_error(&bytes) {
        e
    } else {
        return Err(Refused::NotFound(format!(
            "revert data {data:?} is no error of the market, the registry or an ERC-20"
        )));
    };
    let name = error
        .split([' ', '('])
        .next()
        .unwrap_or_default()
        .to_string();
    Ok(json!({ "error": name, "message": error }))
}

/// `Name { field: value, … }` from the enum's `Variant(Name { … })`.
fn inner(e: &impl std::fmt::Debug) -> String {
    let text = format!("{e:?}");
    match text.split_once('(') {
        Some((_, rest)) => rest.strip_suffix(')').unwrap_or(rest).to_string(),
        None => text,
    }
}

/// OpenZeppelin's ERC-20 errors (a token's revert bubbles up through the market).
fn token_error(bytes: &[u8]) -> Option<String> {
    let abi = ethers::abi::parse_abi(&[
        "error ERC20InsufficientBalance(address sender, uint256 balance, uint256 needed)",
        "error ERC20InsufficientAllowance(address spender, uint256 allowance, uint256 needed)",
    ])
    .ok()?;
    let selector = bytes.get(..4)?;
    abi.errors().find_map(|error| {
        (error.signature().as_bytes()[..4] == *selector).then(|| {
            let values = error
                .decode(&bytes[4..])
                .map(|tokens| {
                    tokens
                        .iter()
                        .map(|t| t.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            format!("{} {{ {values} }}", error.name)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ethers::abi::AbiEncode;

    #[test]
    fn reverts_decode_to_the_contracts_error() {
        let data = contracts::LicenseMarketErrors::PriceAboveMax(
            contracts::license_market::PriceAboveMax {
                price: 10.into(),
                max_price: 5.into(),
            },
        )
        .encode();
        let answer = decode_revert(&hex_data(&data)).unwrap();
        assert_eq!(answer["error"], "PriceAboveMax");
        assert!(
            answer["message"].as_str().unwrap().contains("max_price: 5"),
            "{answer}"
        );
        assert!(matches!(
            decode_revert("0x12345678"),
            Err(Refused::NotFound(_))
        ));
        assert!(matches!(
            decode_revert("nothex"),
            Err(Refused::BadRequest(_))
        ));
    }

    #[test]
    fn age_recipients_are_checked() {
        // A valid recipient (bech32 of 32 bytes under "age").
        use bech32::ToBase32;
        let text = bech32::encode("age", [7u8; 32].to_base32(), bech32::Variant::Bech32).unwrap();
        assert_eq!(age_recipient(&text).unwrap(), [7; 32]);
        assert!(age_recipient("age1notreally").is_err());
        let other = bech32::encode("abc", [7u8; 32].to_base32(), bech32::Variant::Bech32).unwrap();
        assert!(age_recipient(&other).is_err());
    }
}
