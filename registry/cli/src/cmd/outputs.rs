//! `registry outputs commit|verify`: receipts that prove an output was committed under an
//! output license.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use content::Version;
use ethers::types::{H256, U256};
use registry::outputs::batch::receipt_path;
use registry::outputs::{self, CommitRequest, Receipt, Verdict};

use super::values::parse_id;
use crate::progress::Bars;
use crate::settings::Settings;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum Command {
    /// Hash output files (a folder: every file in it), commit their batch's Merkle root under
    /// an output license you hold, and write a receipt beside each (`FILE.receipt.json`).
    Commit(CommitArgs),
    /// Check an output against its receipt and the chain (or, with --trusted-block, without a
    /// node). Exit code 0 when valid, 1 when not (naming why), 2 on an error.
    Verify(VerifyArgs),
}

#[derive(Debug, clap::Args)]
pub(crate) struct CommitArgs {
    /// Output files, or folders of them (receipts in them are skipped).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// The output license to commit under.
    #[arg(long, value_parser = parse_id)]
    license: U256,
    /// Store the batch's leaf list in the content store and name it in the event, so that
    /// indexers can answer lookups by content hash.
    #[arg(long)]
    publish: bool,
    /// When the outputs were produced, unix seconds [default: each file's modification time]
    #[arg(long, value_name = "UNIX")]
    produced_at: Option<u64>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
pub(crate) struct VerifyArgs {
    file: PathBuf,
    /// The receipt [default: FILE.receipt.json]
    #[arg(long)]
    receipt: Option<PathBuf>,
    /// Check without a node, against this block hash (one you trust, from your own node or an
    /// explorer): the receipt's bundled header must hash to it and prove the commitment's
    /// transaction receipt. The deployment file names the market.
    #[arg(long, value_name = "HASH", value_parser = parse_hash)]
    trusted_block: Option<H256>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

fn parse_hash(text: &str) -> Result<H256, String> {
    let digits = text.strip_prefix("0x").unwrap_or(text);
    if digits.len() != 64 {
        return Err(format!("{text:?} is not a block hash (64 hex digits)"));
    }
    digits
        .parse::<H256>()
        .map_err(|e| format!("{text:?} is not a block hash: {e}"))
}

impl Command {
    pub(crate) async fn run(self, settings: &Settings) -> Result<ExitCode> {
        match self {
            Command::Commit(args) => args.run(settings).await,
            Command::Verify(args) => args.run(settings).await,
        }
    }
}

/// The files named, folders expanded (recursively, in name order; links and anything but
/// regular files in them left out, so a folder cannot lead elsewhere or to a device), receipts
/// left out.
fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for path in entries {
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                walk(&path, out)?;
            } else if meta.is_file() && !path.to_string_lossy().ends_with(".receipt.json") {
                out.push(path);
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            walk(path, &mut files)?;
        } else if path.is_file() {
            files.push(path.clone());
        } else {
            anyhow::bail!("{} is not a file or a folder", path.display());
        }
    }
    Ok(files)
}

impl CommitArgs {
    async fn run(self, settings: &Settings) -> Result<ExitCode> {
        let market = settings.market().await?;
        let store = settings.store().await?;
        let request = CommitRequest {
            files: expand(&self.files)?,
            license: self.license,
            publish: self.publish,
            produced_at: self.produced_at,
            cid_version: Version::V1,
        };
        let done = outputs::commit(&market, &store, &request, &Bars::new()).await?;
        if self.json {
            let value = serde_json::json!({
                "model": done.model.to_string(),
                "license": done.license.to_string(),
                "root": format!("{:?}", done.root),
                "count": done.count,
                "uri": done.uri,
                "tx": format!("{:?}", done.tx),
                "block": done.block,
                "committed_at": done.committed_at,
                "receipts": done.receipts.iter().map(|r| r.display().to_string()).collect::<Vec<_>>(),
            });
            println!("{value}");
        } else {
            println!(
                "{} output(s) committed under license {} of model {}: root {:?} in block {} (tx {:?}){}",
                done.count,
                done.license,
                done.model,
                done.root,
                done.block,
                done.tx,
                done.uri
                    .as_ref()
                    .map(|u| format!(", leaf list at {u}"))
                    .unwrap_or_default()
            );
            println!("receipts written beside each output (FILE.receipt.json)");
        }
        Ok(ExitCode::SUCCESS)
    }
}

impl VerifyArgs {
    async fn run(self, settings: &Settings) -> Result<ExitCode> {
        let receipt_file = self
            .receipt
            .clone()
            .unwrap_or_else(|| receipt_path(&self.file));
        let receipt = Receipt::read(&receipt_file)?;
        let verdict = match self.trusted_block {
            Some(trusted) => {
                let deployment = settings.deployment()?;
                if deployment.chain_id == 0 {
                    anyhow::bail!(
                        "--trusted-block checks without a node, so it needs the chain id: \
                         --chain-id N (or a deployment file)"
                    );
                }
                outputs::check_offline(&self.file, &receipt, &deployment, trusted)?
            }
            None => outputs::check(&settings.market().await?, &self.file, &receipt).await?,
        };
        match verdict {
            Verdict::Valid(valid) => {
                if self.json {
                    let value = serde_json::json!({
                        "valid": true,
                        "model": valid.model.to_string(),
                        "license": valid.license.to_string(),
                        "provider": valid.provider.map(|p| format!("{p:?}")),
                        "root": format!("{:?}", valid.root),
                        "block": valid.block,
                        "block_hash": valid.block_hash.map(|h| format!("{h:?}")),
                        "committed_at": valid.committed_at,
                        "produced_at": valid.produced_at,
                    });
                    println!("{value}");
                } else {
                    println!(
                        "valid: {} was committed under output license {} of model {} by {} in block {}, at {} (stated as produced at {})",
                        self.file.display(),
                        valid.license,
                        valid.model,
                        valid
                            .provider
                            .map_or("its holder (the node keeps no log of it)".into(), |p| format!("{p:?}")),
                        match valid.block_hash {
                            Some(hash) => format!("{} ({hash:?})", valid.block),
                            None => valid.block.to_string(),
                        },
                        registry::amount::format_instant(valid.committed_at),
                        registry::amount::format_instant(valid.produced_at),
                    );
                    if self.trusted_block.is_some() {
                        println!(
                            "the block's hash is the one you gave: it proves this only if you took it for block {} from a source you trust, not from the receipt",
                            valid.block
                        );
                    }
                }
                Ok(ExitCode::SUCCESS)
            }
            Verdict::Invalid(reason) => {
                if self.json {
                    println!(
                        "{}",
                        serde_json::json!({ "valid": false, "reason": reason })
                    );
                } else {
                    eprintln!("not valid: {reason}");
                }
                Ok(ExitCode::from(1))
            }
        }
    }
}
