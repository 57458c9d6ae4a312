//! Encrypted models' keys: `registry identity` prints the signer's age recipient,
//! `registry keeper` runs the key-release service, `registry keeper approve|revoke ADDRESS`
//! names the accounts that may deliver keys of your models, `registry refund LICENSE`
//! reclaims an escrowed price whose key never came.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use ethers::types::{Address, U256};
use registry::keeper::{Keeper, Outcome};

use super::values::{parse_address, parse_id};
use crate::settings::Settings;

#[derive(Debug, clap::Args)]
pub(crate) struct IdentityArgs {
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

impl IdentityArgs {
    pub(crate) async fn run(self, settings: &Settings) -> Result<ExitCode> {
        let market = settings.market().await?;
        let (identity, path) = settings.identity(market.address())?;
        let recipient = identity.to_public();
        if self.json {
            let value = serde_json::json!({
                "account": format!("{:?}", market.address()),
                "recipient": recipient.to_string(),
                "identity_file": path.display().to_string(),
            });
            println!("{value}");
        } else {
            // Only the public half: the identity file itself is never printed.
            println!("{recipient}");
            eprintln!(
                "age recipient of {:?} (identity in {})",
                market.address(),
                path.display()
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct KeeperArgs {
    #[command(subcommand)]
    command: Option<KeeperCommand>,
    /// Deliver the keys awaited now and exit instead of following the chain.
    #[arg(long)]
    once: bool,
    /// Milliseconds between passes when following the chain.
    #[arg(long, default_value_t = 2_000)]
    poll_ms: u64,
    /// Blocks a purchase must be below the head before its key is delivered (a delivered
    /// key cannot be taken back if a reorg undoes the purchase)
    /// [default: 0 on anvil's chain id 31337, else 12]
    #[arg(long)]
    confirmations: Option<u64>,
}

#[derive(Debug, clap::Subcommand)]
enum KeeperCommand {
    /// Let ADDRESS deliver the keys of every model you own (it must also be a --keeper
    /// recipient of their envelopes).
    Approve {
        #[arg(value_parser = parse_address)]
        keeper: Address,
    },
    /// Withdraw a keeper's approval.
    Revoke {
        #[arg(value_parser = parse_address)]
        keeper: Address,
    },
}

impl KeeperArgs {
    pub(crate) async fn run(self, settings: &Settings) -> Result<ExitCode> {
        let market = settings.market().await?;
        if let Some(command) = self.command {
            let (keeper, approved) = match command {
                KeeperCommand::Approve { keeper } => (keeper, true),
                KeeperCommand::Revoke { keeper } => (keeper, false),
            };
            let tx = market.set_keeper(keeper, approved).await?;
            println!(
                "{} {keeper:?} as a keeper of the models of {:?} in {tx:?}",
                if approved { "approved" } else { "revoked" },
                market.address()
            );
            return Ok(ExitCode::SUCCESS);
        }
        let store = settings.store().await?;
        let (identity, path) = settings.identity(market.address())?;
        eprintln!(
            "keeper {:?} with identity {} ({})",
            market.address(),
            identity.to_public(),
            path.display()
        );
        let confirmations = self
            .confirmations
            .unwrap_or(crate::settings::default_confirmations(
                market.deployment().chain_id,
            ));
        let mut keeper = Keeper::new(&market, &store, identity, confirmations);
        let mut failed = false;
        let mut backoff = Duration::from_millis(self.poll_ms);
        loop {
            match keeper.pass().await {
                Ok(outcomes) => {
                    for outcome in outcomes {
                        failed |= report(&outcome);
                    }
                    backoff = Duration::from_millis(self.poll_ms);
                }
                // --once reports a node that fails; a running keeper waits for it to come
                // back (a keeper that stopped would let every pending purchase run out).
                Err(e) if self.once => return Err(e.into()),
                Err(e) => {
                    eprintln!("keeper: pass failed, retrying in {backoff:?}: {e}");
                    backoff = (backoff * 2).min(Duration::from_secs(60));
                }
            }
            if self.once {
                break;
            }
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                _ = tokio::time::sleep(backoff) => {}
            }
        }
        Ok(if self.once && failed {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        })
    }
}

/// Prints one outcome; returns whether it failed.
fn report(outcome: &Outcome) -> bool {
    match outcome {
        Outcome::Delivered {
            license,
            model,
            wrapped_key_cid,
        } => println!("delivered license {license} (model {model}): ipfs://{wrapped_key_cid}"),
        Outcome::SettledByAnother { license } => {
            println!("skipped   license {license}: settled by another keeper (or refunded)")
        }
        Outcome::NotApproved {
            license,
            model,
            owner,
        } => {
            eprintln!("waiting   license {license}: the owner {owner:?} of model {model} has not approved this keeper (`registry keeper approve`)");
            return true;
        }
        Outcome::TooLate { license, deadline } => println!(
            "skipped   license {license}: too close to its deadline {} to deliver; the buyer may refund",
            registry::amount::format_instant(*deadline)
        ),
        Outcome::NotAKeeper { license, model } => {
            println!(
                "skipped   license {license}: this identity does not open model {model}'s envelope"
            )
        }
        Outcome::Failed { license, reason } => {
            eprintln!("failed    license {license}: {reason}");
            return true;
        }
    }
    false
}

#[derive(Debug, clap::Args)]
pub(crate) struct RefundArgs {
    #[arg(value_parser = parse_id)]
    license: U256,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

impl RefundArgs {
    pub(crate) async fn run(self, settings: &Settings) -> Result<ExitCode> {
        let market = settings.market().await?;
        let (payer, amount, tx) = market.refund(self.license).await?;
        if self.json {
            let value = serde_json::json!({
                "license": self.license.to_string(),
                "payer": format!("{payer:?}"),
                "amount": amount.to_string(),
                "tx": format!("{tx:?}"),
            });
            println!("{value}");
        } else {
            println!(
                "refunded license {}: {amount} (smallest units) credited to {payer:?} in {tx:?}; `registry withdraw` sends it",
                self.license
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}
