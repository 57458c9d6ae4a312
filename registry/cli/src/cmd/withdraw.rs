//! `registry withdraw` sends the signer's credited royalties and sales to it (or `--to`);
//! `registry balance [ACCOUNT]` shows what an account may withdraw.

use std::process::ExitCode;

use anyhow::Result;
use ethers::types::Address;

use super::values::{parse_address, parse_currency, Currency};
use crate::settings::Settings;

#[derive(Debug, clap::Args)]
pub(crate) struct WithdrawArgs {
    /// `native`, or an ERC-20 token address.
    #[arg(long, default_value = "native", value_parser = parse_currency)]
    currency: Address,
    /// Where the funds go [default: the signer]
    #[arg(long, value_parser = parse_address)]
    to: Option<Address>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

impl WithdrawArgs {
    pub(crate) async fn run(self, settings: &Settings) -> Result<ExitCode> {
        let market = settings.market().await?;
        let currency = Currency::of(&market, self.currency).await?;
        let to = self.to.unwrap_or_else(|| market.address());
        let (amount, tx) = market.withdraw(self.currency, to).await?;
        if self.json {
            let value = serde_json::json!({
                "amount": currency.json(amount),
                "to": format!("{to:?}"),
                "tx": format!("{tx:?}"),
            });
            println!("{value}");
        } else {
            println!("withdrew {} to {to:?} in {tx:?}", currency.show(amount));
        }
        Ok(ExitCode::SUCCESS)
    }
}

#[derive(Debug, clap::Args)]
pub(crate) struct BalanceArgs {
    /// The account [default: the signer]
    #[arg(value_parser = parse_address)]
    account: Option<Address>,
    /// `native`, or an ERC-20 token address.
    #[arg(long, default_value = "native", value_parser = parse_currency)]
    currency: Address,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

impl BalanceArgs {
    pub(crate) async fn run(self, settings: &Settings) -> Result<ExitCode> {
        let market = settings.market().await?;
        let currency = Currency::of(&market, self.currency).await?;
        let account = self.account.unwrap_or_else(|| market.address());
        let credits = market.credits(account, self.currency).await?;
        if self.json {
            let value = serde_json::json!({
                "account": format!("{account:?}"),
                "credits": currency.json(credits),
            });
            println!("{value}");
        } else {
            println!("{}", currency.show(credits));
        }
        Ok(ExitCode::SUCCESS)
    }
}
