//! `registry deploy`: deploys the contracts to `--rpc-url`, or without it to a managed anvil
//! that keeps running until Ctrl-C (so the deployment can be used meanwhile).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use registry::deploy::{deploy, Deployment};
use registry::devnet::{Devnet, DevnetOptions};
use registry::{chain, Error};

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// JSON-RPC endpoint of the chain. Without it a managed anvil is started.
    #[arg(long, env = "REGISTRY_RPC_URL")]
    rpc_url: Option<String>,
    /// Private key of the deployer (hex). Defaults to anvil's first dev account with a managed
    /// anvil; required with --rpc-url.
    #[arg(long, env = "REGISTRY_PRIVATE_KEY", hide_env_values = true)]
    private_key: Option<String>,
    /// Fail unless the node's chain id is this one.
    #[arg(long, env = "REGISTRY_CHAIN_ID")]
    chain_id: Option<u64>,
    /// Where to save the deployment's addresses.
    #[arg(long, default_value = "deployment.json", env = "REGISTRY_DEPLOYMENT")]
    out: PathBuf,
    /// Print the deployment as one JSON object.
    #[arg(long)]
    json: bool,
    /// With a managed anvil: stop it and exit right after deploying instead of waiting for Ctrl-C.
    #[arg(long)]
    exit: bool,
}

impl Args {
    pub(crate) async fn run(self) -> Result<ExitCode> {
        let (devnet, url, key) = match &self.rpc_url {
            Some(url) => {
                let key = self.private_key.clone().context(
                    "--private-key (or REGISTRY_PRIVATE_KEY) is required with --rpc-url",
                )?;
                (None, url.clone(), key)
            }
            None => {
                let options = DevnetOptions {
                    chain_id: self.chain_id.unwrap_or(31337),
                    ..DevnetOptions::default()
                };
                let devnet = Devnet::start(&options).await?;
                let key = match &self.private_key {
                    Some(key) => key.clone(),
                    None => devnet
                        .private_keys()
                        .first()
                        .cloned()
                        .context("anvil printed no dev keys")?,
                };
                let url = devnet.endpoint().to_string();
                (Some(devnet), url, key)
            }
        };
        let wallet = chain::wallet_from_key(&key)?;
        let client = chain::connect(&url, wallet, self.chain_id).await?;
        let deployment = deploy(client).await?;
        deployment.save(&self.out)?;
        print(&deployment, &url, self.json);
        eprintln!("saved the deployment to {}", self.out.display());

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
