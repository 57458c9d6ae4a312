//! Amounts and times as people type them: prices in whole units of a currency (`0.05` ether,
//! `12.5` of a token with its decimals) or in base units with `wei`; durations like `30d`;
//! instants as unix seconds or RFC 3339.

use ethers::types::U256;
use ethers::utils::{format_units, parse_units, ParseUnits};

use crate::{Error, Result};

/// Parses a price: `1.5` (whole units, `decimals` places), `1.5ether`/`1.5eth`, `20gwei`
/// (native only, 9 places) or `123wei` (base units).
pub fn parse_amount(text: &str, decimals: u8) -> Result<U256> {
    let bad = |reason: &str| Error::InvalidAmount {
        amount: text.into(),
        reason: reason.into(),
    };
    let t = text.trim().to_ascii_lowercase().replace('_', "");
    let (number, places) = if let Some(n) = t.strip_suffix("gwei") {
        (n, 9)
    } else if let Some(n) = t.strip_suffix("wei") {
        (n, 0)
    } else if let Some(n) = t.strip_suffix("ether").or_else(|| t.strip_suffix("eth")) {
        (n, 18)
    } else {
        (t.as_str(), u32::from(decimals))
    };
    let number = number.trim();
    if number.is_empty() || !number.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(bad("expected a non-negative decimal number"));
    }
    if let Some((_, fraction)) = number.split_once('.') {
        // parse_units would silently drop the digits beyond the currency's precision.
        if fraction.len() > places as usize {
            return Err(bad(&format!("more than {places} decimal places")));
        }
    }
    match parse_units(number, places).map_err(|e| bad(&e.to_string()))? {
        ParseUnits::U256(v) => Ok(v),
        ParseUnits::I256(_) => Err(bad("expected a non-negative number")),
    }
}

/// Formats base units as a decimal of whole units without trailing zeros.
pub fn format_amount(amount: U256, decimals: u8) -> String {
    let text = format_units(amount, u32::from(decimals)).unwrap_or_else(|_| amount.to_string());
    if text.contains('.') {
        let trimmed = text.trim_end_matches('0').trim_end_matches('.');
        trimmed.to_string()
    } else {
        text
    }
}

/// Parses a duration: seconds (`3600`), or humantime (`30d`, `1h 30m`, `52weeks`); `0` or
/// `perpetual` is 0.
pub fn parse_duration(text: &str) -> Result<u64> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("perpetual") {
        return Ok(0);
    }
    if let Ok(seconds) = t.parse::<u64>() {
        return Ok(seconds);
    }
    humantime::parse_duration(t)
        .map(|d| d.as_secs())
        .map_err(|e| Error::InvalidTime {
            time: text.into(),
            reason: e.to_string(),
        })
}

/// Parses an instant: unix seconds, RFC 3339 (`2027-01-31T12:00:00Z`), or `+DURATION` after
/// `now` (the chain's latest block time).
pub fn parse_instant(text: &str, now: u64) -> Result<u64> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("now") {
        return Ok(now);
    }
    if let Some(rest) = t.strip_prefix('+') {
        return Ok(now.saturating_add(parse_duration(rest)?));
    }
    if let Ok(seconds) = t.parse::<u64>() {
        return Ok(seconds);
    }
    humantime::parse_rfc3339_weak(t)
        .map_err(|e| Error::InvalidTime {
            time: text.into(),
            reason: format!("expected unix seconds, RFC 3339, `now` or `+30d`: {e}"),
        })?
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .map_err(|_| Error::InvalidTime {
            time: text.into(),
            reason: "before 1970".into(),
        })
}

/// An instant for people: RFC 3339 in UTC.
pub fn format_instant(seconds: u64) -> String {
    humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(seconds),
    )
    .to_string()
}

/// The system clock in unix seconds (0 before 1970): for deadlines of off-chain requests; the
/// chain's own time is `Market::now`.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts() {
        let ether = U256::exp10(18);
        assert_eq!(parse_amount("1", 18).unwrap(), ether);
        assert_eq!(parse_amount("0.5", 18).unwrap(), ether / 2);
        assert_eq!(parse_amount("0.5eth", 6).unwrap(), ether / 2);
        assert_eq!(
            parse_amount("20gwei", 18).unwrap(),
            U256::from(20_000_000_000u64)
        );
        assert_eq!(parse_amount("123wei", 18).unwrap(), U256::from(123));
        assert_eq!(parse_amount("2.5", 6).unwrap(), U256::from(2_500_000));
        for bad in ["", "-1", "abc", "1.2.3", "0.0000001", "1e5x"] {
            let err = parse_amount(bad, 6).unwrap_err().to_string();
            assert!(err.contains(&format!("{bad:?}")), "{bad}: {err}");
        }
        assert_eq!(format_amount(ether / 20, 18), "0.05");
        assert_eq!(format_amount(ether * 3, 18), "3");
        assert_eq!(format_amount(U256::zero(), 18), "0");
    }

    #[test]
    fn durations_and_instants() {
        assert_eq!(parse_duration("3600").unwrap(), 3600);
        assert_eq!(parse_duration("30d").unwrap(), 30 * 86_400);
        assert_eq!(parse_duration("perpetual").unwrap(), 0);
        assert!(parse_duration("soon").is_err());
        assert_eq!(parse_instant("now", 1000).unwrap(), 1000);
        assert_eq!(parse_instant("+1h", 1000).unwrap(), 4600);
        assert_eq!(parse_instant("1700000000", 0).unwrap(), 1_700_000_000);
        assert_eq!(
            parse_instant("2023-11-14T22:13:20Z", 0).unwrap(),
            1_700_000_000
        );
        assert_eq!(format_instant(1_700_000_000), "2023-11-14T22:13:20Z");
        assert!(parse_instant("yesterday", 0).is_err());
    }
}
