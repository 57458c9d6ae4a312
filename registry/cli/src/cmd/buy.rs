//! `registry buy OFFERING` buys a license; `registry renew LICENSE` extends one.

use std::process::ExitCode;

use anyhow::Result;
use ethers::types::{Address, U256};
use registry::market::{Market, Sale};

use super::values::{parse_address, parse_id, parse_recipient, show_expiry, Currency};
use crate::settings::Settings;

#[derive(Debug, clap::Args)]
pub(crate) struct BuyArgs {
    #[arg(value_parser = parse_id)]
    offering: U256,
    /// Pay at most this (same forms as `offer --price`) [default: the offering's price]
    #[arg(long)]
    max_price: Option<String>,
    /// Who receives the license [default: the signer]
    #[arg(long = "for", value_name = "ADDRESS", value_parser = parse_address)]
    holder: Option<Address>,
    /// For an encrypted model: the age recipient the model key is delivered to
    /// [default: the signer's identity (--identity)]
    #[arg(long, value_name = "RECIPIENT", value_parser = parse_recipient)]
    recipient: Option<age::x25519::Recipient>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

impl BuyArgs {
    pub(crate) async fn run(self, settings: &Settings) -> Result<ExitCode> {
        let market = settings.market().await?;
        let offering = market.offering(self.offering).await?;
        let currency = Currency::of(&market, offering.currency).await?;
        let max_price = match &self.max_price {
            Some(text) => currency.parse(text)?,
            None => offering.price.into(),
        };
        let holder = self.holder.unwrap_or_else(|| market.address());
        let recipient = if offering.escrowed {
            let recipient = match self.recipient {
                Some(r) => r,
                // The signer's identity opens a key only the signer can use.
                None if holder != market.address() => anyhow::bail!(
                    "offering {} sells the key of an encrypted model: buying for {holder:?} needs --recipient (the holder's age recipient, `registry identity` prints it)",
                    self.offering
                ),
                None => settings.identity(market.address())?.0.to_public(),
            };
            Some(registry::keys::recipient_bytes(&recipient))
        } else {
            None
        };
        let sale = market
            .buy(self.offering, holder, max_price, recipient)
            .await?;
        print_sale(&market, &sale, &currency, "bought", self.json).await
    }
}

#[derive(Debug, clap::Args)]
pub(crate) struct RenewArgs {
    #[arg(value_parser = parse_id)]
    license: U256,
    /// Pay at most this [default: the license's snapshotted price]
    #[arg(long)]
    max_price: Option<String>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

impl RenewArgs {
    pub(crate) async fn run(self, settings: &Settings) -> Result<ExitCode> {
        let market = settings.market().await?;
        let license = market.license(self.license).await?.license;
        let currency = Currency::of(&market, license.currency).await?;
        let max_price = match &self.max_price {
            Some(text) => currency.parse(text)?,
            None => license.price,
        };
        let sale = market.renew(self.license, max_price).await?;
        print_sale(&market, &sale, &currency, "renewed", self.json).await
    }
}

async fn print_sale(
    market: &Market,
    sale: &Sale,
    currency: &Currency,
    verb: &str,
    json: bool,
) -> Result<ExitCode> {
    let view = market.license(sale.license).await?;
    if json {
        let value = serde_json::json!({
            "license": sale.license.to_string(),
            "model": view.license.model_id.to_string(),
            "offering": view.license.offering_id.to_string(),
            "kind": contracts::LicenseKind::from_u8(view.license.kind).map(|k| k.as_str()),
            "holder": format!("{:?}", view.holder),
            "price": currency.json(sale.price),
            "start": sale.start,
            "expiry": sale.expiry,
            "key_deadline": sale.key_deadline,
            "tx": format!("{:?}", sale.tx),
        });
        println!("{value}");
    } else {
        println!("license   {} ({verb})", sale.license);
        println!("model     {}", view.license.model_id);
        println!("holder    {:?}", view.holder);
        match sale.key_deadline {
            Some(deadline) => {
                println!("paid      {} (in escrow)", currency.show(sale.price));
                println!(
                    "key       awaited until {}; then `registry download {}`, or if it never came `registry refund {}`",
                    registry::amount::format_instant(deadline),
                    view.license.model_id,
                    sale.license
                );
            }
            None => {
                println!("paid      {}", currency.show(sale.price));
                println!(
                    "valid     {} until {}",
                    registry::amount::format_instant(sale.start),
                    show_expiry(sale.expiry)
                );
            }
        }
        println!("tx        {:?}", sale.tx);
    }
    Ok(ExitCode::SUCCESS)
}
