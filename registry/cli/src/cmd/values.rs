//! Parsing and printing of the values commands share: ids, kinds, currencies and amounts.

use anyhow::Result;
use contracts::LicenseKind;
use ethers::types::{Address, U256};
use registry::amount;
use registry::erc20::Erc20;
use registry::market::Market;

/// A model, offering or license id (decimal).
pub(crate) fn parse_id(text: &str) -> Result<U256, String> {
    U256::from_dec_str(text.trim()).map_err(|_| format!("{text:?} is not an id (a decimal number)"))
}

pub(crate) fn parse_kind(text: &str) -> Result<LicenseKind, String> {
    LicenseKind::ALL
        .into_iter()
        .find(|k| k.as_str() == text || (text == "finetune" && *k == LicenseKind::FineTune))
        .ok_or_else(|| format!("{text:?} is not a kind: use access, fine-tune or output"))
}

/// `native` (or `eth`, `0x0`) for the chain's currency, else an ERC-20 address.
pub(crate) fn parse_currency(text: &str) -> Result<Address, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "native" | "eth" | "ether" | "0x0" => Ok(Address::zero()),
        other => other
            .parse::<Address>()
            .map_err(|_| format!("{text:?} is not a currency: use native or an ERC-20 address")),
    }
}

pub(crate) fn parse_address(text: &str) -> Result<Address, String> {
    text.trim()
        .parse::<Address>()
        .map_err(|_| format!("{text:?} is not an address (0x and 40 hex digits)"))
}

/// A currency's decimals and symbol (`ETH` for the native one).
#[derive(Debug, Clone)]
pub(crate) struct Currency {
    pub(crate) address: Address,
    pub(crate) decimals: u8,
    pub(crate) symbol: String,
}

impl Currency {
    pub(crate) async fn of(market: &Market, address: Address) -> Result<Self> {
        if address.is_zero() {
            return Ok(Self {
                address,
                decimals: 18,
                symbol: "ETH".into(),
            });
        }
        let token = Erc20::new(address, market.client().clone());
        Ok(Self {
            address,
            decimals: token.decimals().await?,
            symbol: token
                .symbol()
                .await
                .unwrap_or_else(|_| format!("{address:?}")),
        })
    }

    pub(crate) fn parse(&self, text: &str) -> Result<U256> {
        Ok(amount::parse_amount(text, self.decimals)?)
    }

    /// `0.05 ETH`
    pub(crate) fn show(&self, value: U256) -> String {
        format!(
            "{} {}",
            amount::format_amount(value, self.decimals),
            self.symbol
        )
    }

    /// The JSON form: base units as a decimal string, and the currency.
    pub(crate) fn json(&self, value: U256) -> serde_json::Value {
        serde_json::json!({
            "wei": value.to_string(),
            "amount": amount::format_amount(value, self.decimals),
            "currency": if self.address.is_zero() { "native".to_string() } else { format!("{:?}", self.address) },
            "symbol": self.symbol,
        })
    }
}

/// An expiry for people: `perpetual` or the instant.
pub(crate) fn show_expiry(expiry: u64) -> String {
    if expiry == 0 {
        "perpetual".into()
    } else {
        amount::format_instant(expiry)
    }
}

/// An age X25519 recipient (`age1…`).
pub(crate) fn parse_recipient(text: &str) -> Result<age::x25519::Recipient, String> {
    registry::keys::parse_recipient(text).map_err(|e| e.to_string())
}
