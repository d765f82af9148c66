//! Checks of single option values, as clap value parsers: each refuses a
//! value with a [`UsageError::BadValue`] naming the option and what it takes.

use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::str::FromStr;

use super::{UsageError, MAX_LABEL_CHARS, MAX_TITLE_CHARS};

/// A value parser for `option`: `read` takes the value or refuses it, which
/// is reported as expecting `expected`.
pub(super) fn check<T>(
    option: &'static str,
    expected: &'static str,
    read: impl Fn(&str) -> Option<T> + Clone + Send + Sync + 'static,
) -> impl Fn(&str) -> Result<T, UsageError> + Clone + Send + Sync + 'static {
    move |v| {
        read(v).ok_or_else(|| UsageError::BadValue {
            option,
            value: v.to_string(),
            expected,
        })
    }
}

/// A value parser of a number within `range`.
pub(super) fn number<T>(
    option: &'static str,
    expected: &'static str,
    range: RangeInclusive<T>,
) -> impl Fn(&str) -> Result<T, UsageError> + Clone + Send + Sync + 'static
where
    T: FromStr + PartialOrd + Clone + Send + Sync + 'static,
{
    check(option, expected, move |v| {
        v.parse().ok().filter(|n| range.contains(n))
    })
}

/// Whether `s` is a safe domain name: 1 to 64 of letters, digits, `.`, `_`, `-`.
pub fn valid_domain_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

/// What a domain name option expects.
pub(super) const DOMAIN_NAME: &str = "a domain name (1 to 64 of letters, digits, . _ -)";

/// A domain name (see [`valid_domain_name`]).
pub(super) fn domain_name(v: &str) -> Option<String> {
    valid_domain_name(v).then(|| v.to_string())
}

/// A host for the transport: 1 to 255 of letters, digits and `. _ - : @ [ ]`
/// (names, IPv4 and bracketed IPv6 addresses, ssh's `user@host`), not
/// starting with `-` (it would read as an option).
pub(super) fn host(v: &str) -> Option<String> {
    let ok = !v.is_empty()
        && v.len() <= 255
        && !v.starts_with('-')
        && v.bytes().all(|c| {
            c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-' | b':' | b'@' | b'[' | b']')
        });
    ok.then(|| v.to_string())
}

/// An interface name, which the kernel caps at 15 bytes.
pub(super) fn bridge(v: &str) -> Option<String> {
    (valid_domain_name(v) && v.len() <= 15).then(|| v.to_string())
}

/// xl's vif rate syntax, `RATE/s[@INTERVAL]`: RATE is a number from 1 to
/// 2^32-1, an optional decimal multiplier `K`, `M` or `G`, and `B` (bytes)
/// or `b` (bits); INTERVAL is a number below 2^32 with an optional `m` or
/// `u` and an optional `s`. This is what libxlu's vif parser accepts (it goes into a
/// generated xl config, so nothing else may pass).
pub fn link_rate(v: &str) -> Option<String> {
    link_rate_bytes_per_s(v).map(|_| v.to_string())
}

/// The bytes per second of an xl vif rate (see [`link_rate`]), as xl
/// computes them: multipliers are powers of 1000, bits are divided by 8.
pub fn link_rate_bytes_per_s(v: &str) -> Option<u64> {
    if v.len() > 32 {
        return None;
    }
    let (rate, interval) = match v.split_once('@') {
        Some((r, i)) => (r, Some(i)),
        None => (v, None),
    };
    if let Some(i) = interval {
        let digits = i.bytes().take_while(u8::is_ascii_digit).count();
        let rest = &i[digits..];
        let n: Option<u32> = i[..digits].parse().ok();
        if n.is_none() || !matches!(rest, "" | "s" | "m" | "ms" | "u" | "us") {
            return None;
        }
    }
    let rate = rate.strip_suffix("/s")?;
    let digits = rate.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = rate.split_at(digits);
    let n: u64 = number
        .parse()
        .ok()
        .filter(|n| (1..=u64::from(u32::MAX)).contains(n))?;
    let (multiplier, bits) = match unit {
        "B" => (1, false),
        "b" => (1, true),
        "KB" => (1_000, false),
        "Kb" => (1_000, true),
        "MB" => (1_000_000, false),
        "Mb" => (1_000_000, true),
        "GB" => (1_000_000_000, false),
        "Gb" => (1_000_000_000, true),
        _ => return None,
    };
    let bytes = n * multiplier;
    Some(if bits { bytes / 8 } else { bytes })
}

fn printable(s: &str) -> bool {
    !s.chars().any(char::is_control)
}

/// `depmig compare --title`.
pub(super) fn title(v: &str) -> Option<String> {
    (v.chars().count() <= MAX_TITLE_CHARS && printable(v)).then(|| v.to_string())
}

/// A `LABEL=REPORT.json` argument of `depmig compare`: the label ends at
/// the first `=`.
pub(super) fn labelled_report(v: &str) -> Option<(String, PathBuf)> {
    let (label, file) = v.split_once('=')?;
    let ok = !label.is_empty()
        && label.chars().count() <= MAX_LABEL_CHARS
        && printable(label)
        && !file.is_empty();
    ok.then(|| (label.to_string(), PathBuf::from(file)))
}
