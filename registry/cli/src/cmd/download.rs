//! `registry download MODEL --out PATH`: the weights of a model you may use, decrypted when it
//! is encrypted, checked against the chain before they are written.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use ethers::types::U256;
use registry::access::{download, DownloadRequest};

use super::values::parse_id;
use crate::progress::Bars;
use crate::settings::Settings;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[arg(value_parser = parse_id)]
    model: U256,
    /// Where to write the weights (written only once they match the chain).
    #[arg(long)]
    out: PathBuf,
    /// The access or fine-tune license to download under [default: the best one you hold]
    #[arg(long, value_parser = parse_id)]
    license: Option<U256>,
    /// A keeper's endpoint (http://HOST:PORT of `registry serve --keeper`) to ask for a fresh
    /// key when the delivered one was wrapped to another identity (a license bought
    /// second-hand).
    #[arg(long, value_name = "URL")]
    key_endpoint: Option<String>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

impl Args {
    pub(crate) async fn run(self, settings: &Settings) -> Result<ExitCode> {
        let market = settings.market().await?;
        let store = settings.store().await?;
        let (identity, _) = settings.identity(market.address())?;
        let request = DownloadRequest {
            model: self.model,
            out: self.out.clone(),
            license: self.license,
            backend: settings.backend,
            key_endpoint: self.key_endpoint.clone(),
        };
        let done = download(&market, &store, &identity, &request, &Bars::new()).await?;
        if self.json {
            let value = serde_json::json!({
                "model": done.model.to_string(),
                "license": done.license.to_string(),
                "encrypted": done.encrypted,
                "bytes": done.bytes,
                "out": self.out.display().to_string(),
                "checks": done.verification.checks,
            });
            println!("{value}");
        } else {
            let by = if done.license.is_zero() {
                "as its owner".to_string()
            } else {
                format!("under license {}", done.license)
            };
            println!(
                "model {} ({} bytes{}) written to {} {by}; content root and fingerprint match the chain",
                done.model,
                done.bytes,
                if done.encrypted { ", decrypted" } else { "" },
                self.out.display()
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}
