//! `registry deploy`: deploys the contracts to `--rpc-url`, or without it to a managed anvil
//! that keeps running until Ctrl-C (so the deployment can be used meanwhile: the deployment
//! file records its URL, and later commands find it there).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use ethers::types::Address;
use registry::deploy::{deploy, Deployment};
use registry::devnet::{Devnet, DevnetOptions};
use registry::{chain, Error};

use super::values::parse_address;
use crate::settings::Settings;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Where to save the deployment's addresses [default: --deployment, deployment.json]
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print the deployment as one JSON object.
    #[arg(long)]
    json: bool,
    /// With a managed anvil: stop it and exit right after deploying instead of waiting for Ctrl-C.
    #[arg(long)]
    exit: bool,
    /// An ERC-20 token offerings may be priced in (repeat for several; the native currency is
    /// always accepted). Fixed for ever: a derivative's owner cannot pay its parents' royalties
    /// in a token of his own. Rebasing and fee-on-transfer tokens are not supported.
    #[arg(long = "currency", value_name = "TOKEN", value_parser = parse_address)]
    currencies: Vec<Address>,
}

impl Args {
    pub(crate) async fn run(self, settings: &Settings) -> Result<ExitCode> {
        let out = self
            .out
            .clone()
            .unwrap_or_else(|| settings.deployment_path.clone());
        let (devnet, url) = match &settings.rpc_url {
            Some(url) => {
                if !settings.has_signer() {
                    anyhow::bail!(
                        "a signer is required with --rpc-url: pass --private-key, --private-key-file or --dev-account"
                    );
                }
                (None, url.clone())
            }
            None => {
                let options = DevnetOptions {
                    chain_id: settings.chain_id.unwrap_or(31337),
                    ..DevnetOptions::default()
                };
                let devnet = Devnet::start(&options).await?;
                let url = devnet.endpoint().to_string();
                (Some(devnet), url)
            }
        };
        let wallet = match &devnet {
            // The managed anvil funds its own dev keys; use its first unless told otherwise.
            Some(devnet) if !settings.has_signer() => chain::wallet_from_key(
                devnet
                    .private_keys()
                    .first()
                    .context("anvil printed no dev keys")?,
            )?,
            _ => {
                let probe = chain::provider(&url)?;
                let chain_id = ethers::providers::Middleware::get_chainid(&probe)
                    .await
                    .map_err(|e| Error::Rpc {
                        url: url.clone(),
                        message: e.to_string(),
                    })?;
                settings.wallet(chain_id.as_u64())?
            }
        };
        let client = chain::connect(&url, wallet, settings.chain_id).await?;
        let deployment = deploy(client, &self.currencies).await?;
        deployment.save(&out)?;
        print(&deployment, &url, self.json);
        eprintln!("saved the deployment to {}", out.display());

        if let Some(devnet) = devnet {
            if !self.exit {
                eprintln!("anvil is serving at {url}; press Ctrl-C to stop it");
                tokio::signal::ctrl_c().await.map_err(|e| Error::Contract {
                    context: "waiting for Ctrl-C".into(),
                    message: e.to_string(),
                })?;
            }
            devnet.stop().await;
        }
        Ok(ExitCode::SUCCESS)
    }
}

fn print(d: &Deployment, url: &str, json: bool) {
    if json {
        let mut value = serde_json::to_value(d).expect("a deployment serializes");
        value["rpc_url"] = url.into();
        println!("{value}");
    } else {
        println!("chain id  {}", d.chain_id);
        println!("rpc url   {url}");
        println!("registry  {:?}", d.registry);
        println!("market    {:?}", d.market);
        println!("block     {}", d.block);
        println!("deployer  {:?}", d.deployer);
    }
}
