//! `registry verify MODEL`: fetch the weights by their CID (or take `--weights FILE`),
//! recompute content root and fingerprint and compare with the chain. Exit code 0 when all
//! match, 1 naming what differs.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use ethers::types::U256;

use super::values::parse_id;
use crate::progress::Bars;
use crate::settings::Settings;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[arg(value_parser = parse_id)]
    model: U256,
    /// Check this local copy of the weights instead of fetching them.
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

impl Args {
    pub(crate) async fn run(self, settings: &Settings) -> Result<ExitCode> {
        let market = settings.market().await?;
        let store = settings.store().await?;
        let verification = registry::verify::verify(
            &market,
            &store,
            self.model,
            self.weights.as_deref(),
            settings.backend,
            &Bars::new(),
        )
        .await?;
        if self.json {
            let mut value = serde_json::to_value(&verification)?;
            value["ok"] = verification.ok().into();
            println!("{value}");
        } else {
            for check in &verification.checks {
                if check.ok {
                    println!("ok        {:<20} {}", check.name, check.actual);
                } else {
                    println!(
                        "MISMATCH  {:<20} chain {} / found {}",
                        check.name, check.expected, check.actual
                    );
                }
            }
        }
        if verification.ok() {
            eprintln!(
                "model {} verified: {} matches the chain",
                self.model, verification.source
            );
            Ok(ExitCode::SUCCESS)
        } else {
            let names: Vec<&str> = verification.differences().map(|c| c.name).collect();
            eprintln!(
                "error: model {} does not verify: {} of {} differ{}",
                self.model,
                names.join(", "),
                verification.source,
                if names.len() == 1 { "s" } else { "" }
            );
            Ok(ExitCode::from(1))
        }
    }
}
