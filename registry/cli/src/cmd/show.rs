//! `registry show MODEL`: the on-chain record of a model, its lineage and its offerings.

use std::process::ExitCode;

use anyhow::Result;
use ethers::types::U256;
use fingerprint::hex;
use registry::amount::format_instant;

use super::offer::describe_duration;
use super::values::{parse_id, Currency};
use crate::settings::Settings;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[arg(value_parser = parse_id)]
    model: U256,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

impl Args {
    pub(crate) async fn run(self, settings: &Settings) -> Result<ExitCode> {
        let market = settings.market().await?;
        let view = market.model(self.model).await?;
        let m = &view.model;
        let mut offerings = Vec::new();
        for (id, terms) in market.offerings_of(self.model).await? {
            let offering = market.offering(id).await?;
            let currency = Currency::of(&market, offering.currency).await?;
            offerings.push((id, offering, terms.terms_uri, currency));
        }
        if self.json {
            let parents: Vec<_> = view
                .parents
                .iter()
                .map(|p| {
                    serde_json::json!({
                        "model": p.model_id.to_string(),
                        "license": p.license_id.to_string(),
                        "royalty_bps": p.royalty_bps,
                    })
                })
                .collect();
            let offerings: Vec<_> = offerings
                .iter()
                .map(|(id, o, terms_uri, currency)| {
                    let kind = contracts::LicenseKind::from_u8(o.kind).map(|k| k.as_str());
                    serde_json::json!({
                        "offering": id.to_string(),
                        "kind": kind,
                        "price": currency.json(o.price.into()),
                        "duration": o.duration,
                        "supply_cap": o.supply_cap,
                        "sold": o.sold,
                        "closed": o.closed,
                        "renewal_period": o.renewal_period,
                        "escrowed": o.escrowed,
                        "delivery_period": o.delivery_period,
                        "publisher": format!("{:?}", o.publisher),
                        "transferable": o.transferable,
                        "commercial_use": o.commercial_use,
                        "royalty_bps": o.royalty_bps,
                        "terms_uri": terms_uri,
                    })
                })
                .collect();
            let value = serde_json::json!({
                "model": self.model.to_string(),
                "owner": format!("{:?}", view.owner),
                "creator": format!("{:?}", m.creator),
                "weights_cid": m.weights_cid,
                "content_root": hex(&m.content_root),
                "fingerprint": hex(&m.fingerprint),
                "metadata_uri": m.metadata_uri,
                "minted_at": m.minted_at,
                "depth": m.depth,
                "derivative_royalty_bps": m.derivative_royalty_bps,
                "sale_royalty_bps": view.header.sale_royalty_bps,
                "encrypted": view.header.encrypted,
                "parents": parents,
                "offerings": offerings,
            });
            println!("{value}");
            return Ok(ExitCode::SUCCESS);
        }
        println!("model         {}", self.model);
        println!("owner         {:?}", view.owner);
        println!("creator       {:?}", m.creator);
        println!("minted        {}", format_instant(m.minted_at));
        if view.header.encrypted {
            println!(
                "weights       ipfs://{} (encrypted: access and fine-tune licenses buy the key)",
                m.weights_cid
            );
        } else {
            println!("weights       ipfs://{}", m.weights_cid);
        }
        println!("content root  {}", hex(&m.content_root));
        println!("fingerprint   {}", hex(&m.fingerprint));
        println!("metadata      {}", m.metadata_uri);
        println!(
            "royalty floor {} bps of every derivative's sales",
            m.derivative_royalty_bps
        );
        if view.parents.is_empty() {
            println!("parents       none (a base model)");
        }
        for p in &view.parents {
            println!(
                "parent        model {} via license {} ({} bps royalty)",
                p.model_id, p.license_id, p.royalty_bps
            );
        }
        for (id, o, _, currency) in &offerings {
            let kind = contracts::LicenseKind::from_u8(o.kind).map_or("?", |k| k.as_str());
            let supply = if o.supply_cap == 0 {
                format!("{} sold", o.sold)
            } else {
                format!("{}/{} sold", o.sold, o.supply_cap)
            };
            println!(
                "offering {id:<4} {kind:<9} {:<16} {:<12} {supply}{}{}{}{}",
                currency.show(o.price.into()),
                describe_duration(o.duration),
                if o.escrowed {
                    format!(
                        ", escrowed: key within {}",
                        describe_duration(o.delivery_period.into())
                    )
                } else {
                    String::new()
                },
                if o.royalty_bps > 0 {
                    format!(", {} bps royalty", o.royalty_bps)
                } else {
                    String::new()
                },
                if o.closed { ", closed" } else { "" },
                if o.publisher != view.owner {
                    ", not on sale (published by a former owner)"
                } else {
                    ""
                },
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}
