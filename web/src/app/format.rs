//! How the pages write values: amounts in their currency's units, durations and times in
//! words, addresses shortened.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::Chain;

/// `base` units with `decimals` decimals as a decimal number, trailing zeros dropped:
/// ("10000000000000000", 18) → "0.01". Text that is not a whole number is returned as is.
pub(crate) fn units(base: &str, decimals: u8) -> String {
    if base.is_empty() || !base.bytes().all(|b| b.is_ascii_digit()) {
        return base.to_string();
    }
    let digits = base.trim_start_matches('0');
    let decimals = usize::from(decimals);
    let padded = format!("{digits:0>width$}", width = decimals + 1);
    let (whole, fraction) = padded.split_at(padded.len() - decimals);
    let fraction = fraction.trim_end_matches('0');
    match fraction.is_empty() {
        true => whole.to_string(),
        false => format!("{whole}.{fraction}"),
    }
}

/// A price in its currency: "0.01 ETH", "25 DUSD", or base units of an unknown token.
pub(crate) fn price(base: &str, currency: &str, chain: Option<&Chain>) -> String {
    if is_native(currency) {
        if base == "0" {
            return "free".into();
        }
        return format!("{} ETH", units(base, 18));
    }
    match chain.and_then(|c| c.currency(currency)) {
        Some(token) => format!("{} {}", units(base, token.decimals), token.symbol),
        None => format!("{base} base units of token {}", short(currency)),
    }
}

pub(crate) fn is_native(currency: &str) -> bool {
    currency.trim_start_matches("0x").bytes().all(|b| b == b'0')
}

/// A license's length in words: "30 days", "12 hours", "perpetual" for 0.
pub(crate) fn duration(seconds: i64) -> String {
    if seconds <= 0 {
        return "perpetual".into();
    }
    let seconds = seconds as u64;
    let units = [
        (365 * 86_400, "year"),
        (30 * 86_400, "month"),
        (7 * 86_400, "week"),
        (86_400, "day"),
        (3_600, "hour"),
        (60, "minute"),
        (1, "second"),
    ];
    // The largest unit that divides it, else the largest that fits, rounded.
    let (size, name) = units
        .iter()
        .find(|(size, _)| seconds.is_multiple_of(*size) && seconds / size < 1_000)
        .or_else(|| units.iter().find(|(size, _)| seconds >= *size))
        .copied()
        .unwrap_or((1, "second"));
    let n = (seconds + size / 2) / size;
    format!("{n} {name}{}", if n == 1 { "" } else { "s" })
}

/// `0xf39f…2266`: the first six and last four characters of anything longer than twelve
/// (by characters: CIDs and URIs come from the chain as any text).
pub(crate) fn short(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() > 12 {
        let head: String = chars[..6].iter().collect();
        let tail: String = chars[chars.len() - 4..].iter().collect();
        format!("{head}…{tail}")
    } else {
        text.to_string()
    }
}

/// The first second of the year 10000, which RFC 3339 cannot write: a license may last that
/// long (renewed often enough), and its page must still show.
const YEAR_10000: i64 = 253_402_300_800;

/// Unix time as RFC 3339 (UTC, seconds).
pub(crate) fn absolute(unix: i64) -> String {
    if unix >= YEAR_10000 {
        return "after 9999-12-31T23:59:59Z".into();
    }
    let at = UNIX_EPOCH + Duration::from_secs(unix.max(0) as u64);
    humantime::format_rfc3339_seconds(at).to_string()
}

/// Unix time relative to `now`: "3 hours ago", "in 29 days", "now".
pub(crate) fn relative(unix: i64, now: i64) -> String {
    let delta = unix - now;
    if delta.abs() < 5 {
        return "now".into();
    }
    let span = duration(delta.abs());
    let span = round_span(delta.unsigned_abs()).unwrap_or(span);
    match delta > 0 {
        true => format!("in {span}"),
        false => format!("{span} ago"),
    }
}

/// A span rounded to its largest unit ("2 days", not "49 hours").
fn round_span(seconds: u64) -> Option<String> {
    let units = [
        (365 * 86_400, "year"),
        (30 * 86_400, "month"),
        (86_400, "day"),
        (3_600, "hour"),
        (60, "minute"),
        (1, "second"),
    ];
    let (size, name) = units.iter().find(|(size, _)| seconds >= *size)?;
    let n = seconds / size;
    Some(format!("{n} {name}{}", if n == 1 { "" } else { "s" }))
}

pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// Basis points as a percentage: 1000 → "10%", 250 → "2.5%".
pub(crate) fn bps(bps: i64) -> String {
    units(&bps.max(0).to_string(), 2) + "%"
}

/// A decimal amount typed in the currency's units as base units: ("0.01", 18) →
/// "10000000000000000"; `None` when it is not a non-negative decimal with at most `decimals`
/// places.
pub(crate) fn to_base(amount: &str, decimals: u8) -> Option<String> {
    let amount = amount.trim();
    let (whole, fraction) = amount.split_once('.').unwrap_or((amount, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty())
        || !digits(whole)
        || !digits(fraction)
        || fraction.len() > usize::from(decimals)
    {
        return None;
    }
    let text = format!("{whole}{fraction:0<width$}", width = usize::from(decimals));
    let text = text.trim_start_matches('0');
    // At most 78 digits: a uint256.
    match text.len() {
        0 => Some("0".into()),
        1..=78 => Some(text.into()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_read_in_their_units_and_back() {
        assert_eq!(units("10000000000000000", 18), "0.01");
        assert_eq!(units("25000000", 6), "25");
        assert_eq!(units("1", 6), "0.000001");
        assert_eq!(units("0", 18), "0");
        assert_eq!(units("123450000", 6), "123.45");
        assert_eq!(to_base("0.01", 18).as_deref(), Some("10000000000000000"));
        assert_eq!(to_base("25", 6).as_deref(), Some("25000000"));
        assert_eq!(to_base(".5", 6).as_deref(), Some("500000"));
        assert_eq!(to_base("0", 6).as_deref(), Some("0"));
        // Finer than the currency, not a number, negative: refused.
        assert_eq!(to_base("0.0000001", 6), None);
        assert_eq!(to_base("1e3", 6), None);
        assert_eq!(to_base("-1", 6), None);
        assert_eq!(to_base("", 6), None);
    }

    #[test]
    fn durations_and_times_read_as_words() {
        assert_eq!(duration(0), "perpetual");
        assert_eq!(duration(30 * 86_400), "1 month");
        assert_eq!(duration(7 * 86_400), "1 week");
        assert_eq!(duration(86_400), "1 day");
        assert_eq!(duration(2 * 86_400), "2 days");
        assert_eq!(duration(12 * 3_600), "12 hours");
        assert_eq!(duration(90), "90 seconds");
        assert_eq!(relative(1_000, 1_000 + 3 * 3_600 + 5), "3 hours ago");
        assert_eq!(relative(1_000 + 29 * 86_400 + 60, 1_000), "in 29 days");
        assert_eq!(relative(1_000, 1_002), "now");
        assert_eq!(absolute(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(bps(1_000), "10%");
        assert_eq!(bps(250), "2.5%");
        assert_eq!(
            short("0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"),
            "0xf39f…2266"
        );
        // Text from the chain is any text: cut on characters, never inside one.
        assert_eq!(short("aéééééééééééé"), "aééééé…éééé");
        assert_eq!(short("ipfs://é"), "ipfs://é");
        // Past year 9999 (a license renewed for centuries): words, not a panic.
        assert_eq!(absolute(i64::MAX), "after 9999-12-31T23:59:59Z");
        assert_eq!(absolute(YEAR_10000 - 1), "9999-12-31T23:59:59Z");
        assert!(relative(i64::MAX / 2, 0).starts_with("in "));
    }
}
