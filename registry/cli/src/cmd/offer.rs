//! `registry offer MODEL …` publishes a license offering; `registry close-offer OFFERING`
//! closes one for new sales (licenses already sold stay valid).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use content::Version;
use contracts::license_market::Terms;
use contracts::LicenseKind;
use ethers::types::{Address, U256};
use registry::amount::parse_duration;
use registry::metadata::ipfs_uri;

use super::values::{parse_currency, parse_id, parse_kind, Currency};
use crate::settings::Settings;

/// A day: time for a keeper that was down to come back, short enough to tie no buyer's money
/// up for long.
const DEFAULT_DELIVERY_PERIOD: u64 = 24 * 3600;

#[derive(Debug, clap::Args)]
pub(crate) struct OfferArgs {
    /// The model (you must own it).
    #[arg(value_parser = parse_id)]
    model: U256,
    /// What the license grants: access, fine-tune or output.
    #[arg(long, value_parser = parse_kind)]
    kind: LicenseKind,
    /// Price per purchase and per renewal, in whole units of the currency (`0.05`), or with a
    /// unit: `0.05eth`, `20gwei`, `1000wei`.
    #[arg(long)]
    price: String,
    /// `native`, or an ERC-20 token address.
    #[arg(long, default_value = "native", value_parser = parse_currency)]
    currency: Address,
    /// How long a purchase lasts: seconds or `30d`, `12h`, `1y`; 0 or `perpetual` for ever.
    #[arg(long, default_value = "perpetual")]
    duration: String,
    /// Most licenses that may be sold; 0 for unlimited.
    #[arg(long, default_value_t = 0)]
    supply: u64,
    /// Fine-tune only: the share of each sale of a derivative owed to this model (basis
    /// points); at least the model's derivative royalty floor [default: that floor]
    #[arg(long, value_parser = clap::value_parser!(u16).range(0..=10_000))]
    royalty_bps: Option<u16>,
    /// How long after the offering is closed its licenses can still be renewed (at its
    /// price): seconds or `30d`, `12h`, `1y`; 0 to end renewals with the offering.
    #[arg(long, default_value = "0")]
    renewal_period: String,
    /// Encrypted models, access and fine-tune offerings: how long the owner or a keeper has to
    /// deliver the model key after a purchase before the buyer may take a refund (at most
    /// 90d) [default: 1d; not applicable to other offerings]
    #[arg(long)]
    delivery_period: Option<String>,
    /// Licenses may be transferred by their holders.
    #[arg(long)]
    transferable: bool,
    /// Commercial use allowed [default: yes for output licenses, no otherwise]
    #[arg(long)]
    commercial: Option<bool>,
    /// A terms document: stored in the content store; its URI and keccak-256 go on-chain.
    #[arg(long)]
    terms: Option<PathBuf>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

impl OfferArgs {
    pub(crate) async fn run(self, settings: &Settings) -> Result<ExitCode> {
        let market = settings.market().await?;
        let currency = Currency::of(&market, self.currency).await?;
        let price = currency.parse(&self.price)?;
        let duration = parse_duration(&self.duration)?;
        let renewal_period = parse_duration(&self.renewal_period)?;
        let header = market.header(self.model).await?;
        let royalty_bps = match (self.royalty_bps, self.kind) {
            (Some(bps), _) => bps,
            (None, LicenseKind::FineTune) => header.derivative_royalty_bps,
            (None, _) => 0,
        };
        let escrowed = header.encrypted && self.kind != LicenseKind::Output;
        let delivery_period = match (&self.delivery_period, escrowed) {
            (Some(text), _) => parse_duration(text)?,
            (None, true) => DEFAULT_DELIVERY_PERIOD,
            (None, false) => 0,
        };
        let (terms_uri, terms_hash) = match &self.terms {
            Some(path) => {
                let bytes = std::fs::read(path)
                    .with_context(|| format!("reading terms {}", path.display()))?;
                let store = settings.store().await?;
                let cid = store.store_bytes(&bytes, Version::V1).await?;
                (ipfs_uri(&cid), ethers::utils::keccak256(&bytes))
            }
            None => (String::new(), [0u8; 32]),
        };
        let terms = Terms {
            model_id: self.model,
            kind: self.kind.into(),
            currency: self.currency,
            price,
            duration,
            supply_cap: self.supply,
            transferable: self.transferable,
            commercial_use: self.commercial.unwrap_or(self.kind == LicenseKind::Output),
            royalty_bps,
            renewal_period,
            delivery_period,
            terms_uri: terms_uri.clone(),
            terms_hash,
        };
        let (offering, tx) = market.publish(terms).await?;
        if self.json {
            let value = serde_json::json!({
                "offering": offering.to_string(),
                "model": self.model.to_string(),
                "kind": self.kind.as_str(),
                "price": currency.json(price),
                "duration": duration,
                "supply": self.supply,
                "royalty_bps": royalty_bps,
                "delivery_period": delivery_period,
                "terms_uri": terms_uri,
                "tx": format!("{tx:?}"),
            });
            println!("{value}");
        } else {
            println!("offering  {offering}");
            println!("model     {}", self.model);
            println!("kind      {}", self.kind.as_str());
            println!("price     {}", currency.show(price));
            println!("duration  {}", describe_duration(duration));
            if escrowed {
                println!(
                    "escrow    the price waits until the key is delivered, at most {} after a purchase",
                    describe_duration(delivery_period)
                );
            }
            if !terms_uri.is_empty() {
                println!("terms     {terms_uri}");
            }
            println!("tx        {tx:?}");
        }
        Ok(ExitCode::SUCCESS)
    }
}

#[derive(Debug, clap::Args)]
pub(crate) struct CloseArgs {
    #[arg(value_parser = parse_id)]
    offering: U256,
}

impl CloseArgs {
    pub(crate) async fn run(self, settings: &Settings) -> Result<ExitCode> {
        let market = settings.market().await?;
        let tx = market.close(self.offering).await?;
        println!("closed offering {} in {tx:?}", self.offering);
        Ok(ExitCode::SUCCESS)
    }
}

/// Used by `show` to describe an offering's validity.
pub(crate) fn describe_duration(duration: u64) -> String {
    if duration == 0 {
        "perpetual".into()
    } else {
        humantime::format_duration(std::time::Duration::from_secs(duration)).to_string()
    }
}
