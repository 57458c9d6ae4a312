//! `registry mint WEIGHTS --name …`: fingerprint, store and mint a model.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Result};
use content::Version;
use contracts::LicenseKind;
use ethers::types::{Address, U256};
use fingerprint::hex;
use registry::mint::{mint, MintRequest};

use super::values::{parse_address, parse_id, parse_recipient};
use crate::progress::Bars;
use crate::settings::Settings;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The weights: one .safetensors file.
    weights: PathBuf,
    /// The model's name (ERC-721 metadata).
    #[arg(long)]
    name: String,
    /// A description (ERC-721 metadata).
    #[arg(long)]
    description: Option<String>,
    /// A parent model this one was derived from (repeat for several).
    #[arg(long = "parent", value_name = "MODEL", value_parser = parse_id)]
    parents: Vec<U256>,
    /// The fine-tune license held for each --parent, in the same order (0: you own that
    /// parent). When left out, the longest-lasting valid one you hold is used.
    #[arg(long = "license", value_name = "LICENSE", value_parser = parse_id)]
    licenses: Vec<U256>,
    /// Receiver of the model token [default: the signer]
    #[arg(long, value_parser = parse_address)]
    to: Option<Address>,
    /// ERC-2981 royalty on sales of the model token, in basis points.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u16).range(0..=10_000))]
    sale_royalty_bps: u16,
    /// Share of every sale of every derivative of this model owed to it, in basis points: the
    /// floor of its fine-tune offerings' royalty, owed by derivatives its owner makes too.
    /// Fixed for ever at mint.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u16).range(0..=10_000))]
    derivative_royalty_bps: u16,
    /// Mint even if the weights read as derived from a registered model that is not declared
    /// as a parent. Never mints a content root that is already registered.
    #[arg(long)]
    force: bool,
    /// Store the weights only encrypted (an age file). A fresh key per model is wrapped to
    /// your identity (--identity) and to each --keeper, so the keepers can deliver it to buyers
    /// while you are offline. Buyers of access and fine-tune licenses pay into escrow until the
    /// key reaches them.
    #[arg(long)]
    encrypt: bool,
    /// A key keeper's age recipient (age1…), which may open the model key to deliver it to
    /// buyers (repeat for several; approve its account with `registry keeper approve`).
    #[arg(long = "keeper", value_name = "RECIPIENT", requires = "encrypt", value_parser = parse_recipient)]
    keepers: Vec<age::x25519::Recipient>,
    /// CID version of the stored weights (1: raw leaves; 0: like a plain `ipfs add`).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=1))]
    cid_version: u8,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

impl Args {
    pub(crate) async fn run(self, settings: &Settings) -> Result<ExitCode> {
        let market = settings.market().await?;
        let store = settings.store().await?;
        let licenses = if self.licenses.is_empty() {
            // Find the license for each parent, as the registry will check it.
            let now = market.now().await?;
            let mut found = Vec::new();
            for parent in &self.parents {
                let rights = market
                    .rights(market.address(), *parent, LicenseKind::FineTune, now)
                    .await?;
                if !rights.allowed {
                    bail!(NoFineTuneLicense(*parent));
                }
                found.push(rights.license);
            }
            found
        } else if self.licenses.len() == self.parents.len() {
            self.licenses.clone()
        } else {
            bail!(
                "{} --parent but {} --license: give one license per parent, or none to pick them automatically",
                self.parents.len(),
                self.licenses.len()
            );
        };
        let encrypt_to = if self.encrypt {
            let (identity, _) = settings.identity(market.address())?;
            let mut recipients = vec![identity.to_public()];
            recipients.extend(self.keepers.iter().cloned());
            Some(recipients)
        } else {
            None
        };
        let request = MintRequest {
            weights: self.weights.clone(),
            name: self.name.clone(),
            description: self.description.clone(),
            parents: self.parents.iter().copied().zip(licenses).collect(),
            to: self.to,
            sale_royalty_bps: self.sale_royalty_bps,
            derivative_royalty_bps: self.derivative_royalty_bps,
            force: self.force,
            backend: settings.backend,
            cid_version: if self.cid_version == 0 {
                Version::V0
            } else {
                Version::V1
            },
            encrypt_to,
        };
        let minted = mint(&market, &store, &request, &Bars::new()).await?;
        for s in &minted.skipped {
            eprintln!("warning: not compared with model {}: {}", s.model, s.reason);
        }
        if self.json {
            let related: Vec<_> = minted
                .related
                .iter()
                .map(|r| {
                    serde_json::json!({
                        "model": r.model,
                        "verdict": r.comparison.verdict.as_str(),
                        "similarity": r.comparison.similarity,
                    })
                })
                .collect();
            let value = serde_json::json!({
                "model": minted.model.to_string(),
                "tx": format!("{:?}", minted.tx),
                "weights_cid": minted.weights.to_string(),
                "fingerprint_cid": minted.fingerprint.to_string(),
                "metadata_cid": minted.metadata.to_string(),
                "content_root": hex(&minted.content_root),
                "fingerprint": hex(&minted.fingerprint_hash),
                "bytes": minted.bytes,
                "parents": request.parents.iter().map(|(m, l)| serde_json::json!({"model": m.to_string(), "license": l.to_string()})).collect::<Vec<_>>(),
                "related": related,
                "encrypted": minted.envelope.is_some(),
                "envelope_cid": minted.envelope.map(|c| c.to_string()),
            });
            println!("{value}");
        } else {
            println!("model         {}", minted.model);
            println!("tx            {:?}", minted.tx);
            println!("weights       ipfs://{}", minted.weights);
            println!(
                "fingerprint   {} (ipfs://{})",
                hex(&minted.fingerprint_hash),
                minted.fingerprint
            );
            println!("content root  {}", hex(&minted.content_root));
            println!("metadata      ipfs://{}", minted.metadata);
            if let Some(envelope) = &minted.envelope {
                println!("encrypted     key envelope ipfs://{envelope}");
            }
            for r in &minted.related {
                println!(
                    "related       model {} ({}, similarity {:.3}), explained by the declared lineage",
                    r.model,
                    r.comparison.verdict.as_str(),
                    r.comparison.similarity
                );
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// The signer holds no valid fine-tune license of a declared parent.
#[derive(Debug, thiserror::Error)]
#[error("you hold no valid fine-tune license of parent model {0}")]
pub(crate) struct NoFineTuneLicense(pub(crate) U256);
