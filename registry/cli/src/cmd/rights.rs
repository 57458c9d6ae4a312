//! `registry rights ADDRESS MODEL`: may this address use this right of this model now (or at
//! `--at`)? Exit code 0 for yes, 1 for no.

use std::process::ExitCode;

use anyhow::Result;
use contracts::LicenseKind;
use ethers::types::{Address, U256};
use registry::amount::{format_instant, parse_instant};

use super::values::{parse_address, parse_id, parse_kind, show_expiry};
use crate::settings::Settings;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[arg(value_parser = parse_address)]
    address: Address,
    #[arg(value_parser = parse_id)]
    model: U256,
    /// The right: access, fine-tune or output.
    #[arg(long, default_value = "access", value_parser = parse_kind)]
    kind: LicenseKind,
    /// When: unix seconds, RFC 3339, `now` (the chain's latest block) or `+30d`.
    #[arg(long, default_value = "now")]
    at: String,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

impl Args {
    pub(crate) async fn run(self, settings: &Settings) -> Result<ExitCode> {
        let market = settings.market().await?;
        let at = parse_instant(&self.at, market.now().await?)?;
        let rights = market
            .rights(self.address, self.model, self.kind, at)
            .await?;
        let expiry = if rights.allowed && !rights.license.is_zero() {
            Some(market.license(rights.license).await?.license.expiry)
        } else {
            None
        };
        if self.json {
            let value = serde_json::json!({
                "allowed": rights.allowed,
                "license": (!rights.license.is_zero()).then(|| rights.license.to_string()),
                "owner": rights.allowed && rights.license.is_zero(),
                "expiry": expiry,
                "address": format!("{:?}", self.address),
                "model": self.model.to_string(),
                "kind": self.kind.as_str(),
                "at": at,
            });
            println!("{value}");
        } else if !rights.allowed {
            println!(
                "no: {:?} may not use {} of model {} at {}",
                self.address,
                self.kind.as_str(),
                self.model,
                format_instant(at)
            );
        } else if rights.license.is_zero() {
            println!("yes: {:?} owns model {}", self.address, self.model);
        } else {
            println!(
                "yes: license {} ({} of model {}, valid until {})",
                rights.license,
                self.kind.as_str(),
                self.model,
                show_expiry(expiry.unwrap_or_default())
            );
        }
        Ok(if rights.allowed {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    }
}
