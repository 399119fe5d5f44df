//! Go duration syntax (`"10s"`, `"250ms"`, `"1h30m"`, `"1.5s"`), the string form every duration key accepts.
//!
//! Hand-written on purpose: the keys must accept exactly what Go's `time.ParseDuration` accepts (the Go
//! original's config files), and the duration crates (`humantime`, `jiff`'s friendly format) accept other
//! spellings (`"1 hour"`, `"1h 30m"`), which would make a config valid here that Go rejects. The vectors in the
//! tests below pin Go's behaviour.

use std::time::Duration;

/// Parses a Go duration string: a sequence of decimal numbers, each with a unit (`ns`, `us`, `µs`, `μs`, `ms`, `s`,
/// `m`, `h`). `"0"` alone is zero. A leading `+` is allowed; negative durations are rejected (no key accepts them).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let orig = s;
    let bad = |why: &str| format!("invalid duration \"{orig}\": {why}");
    let mut s = s.strip_prefix('+').unwrap_or(s);
    if let Some(neg) = s.strip_prefix('-') {
        if !neg.is_empty() && neg.chars().all(|c| c == '0') {
            return Ok(Duration::ZERO);
        }
        return Err(bad("negative durations are not allowed"));
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(bad("empty"));
    }
    let mut total: u128 = 0;
    while !s.is_empty() {
        // number: digits [. digits]
        let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
        let int_part = &s[..int_len];
        s = &s[int_len..];
        let mut frac_part = "";
        if let Some(rest) = s.strip_prefix('.') {
            let frac_len = rest.bytes().take_while(u8::is_ascii_digit).count();
            frac_part = &rest[..frac_len];
            s = &rest[frac_len..];
        }
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(bad("expected a number"));
        }
        let unit_len = s
            .char_indices()
            .find(|&(_, c)| c == '.' || c.is_ascii_digit())
            .map_or(s.len(), |(i, _)| i);
        let unit = &s[..unit_len];
        s = &s[unit_len..];
        let unit_ns: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60 * 1_000_000_000,
            "h" => 3600 * 1_000_000_000,
            "" => return Err(bad("missing unit")),
            _ => return Err(bad(&format!("unknown unit \"{unit}\""))),
        };
        let int_val: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| bad("number too large"))?
        };
        let mut ns = int_val.checked_mul(unit_ns).ok_or_else(|| bad("overflow"))?;
        if !frac_part.is_empty() {
            // Keep at most 30 fractional digits: beyond that nothing is representable in ns anyway.
            let digits = &frac_part[..frac_part.len().min(30)];
            let frac: u128 = digits.parse().map_err(|_| bad("bad fraction"))?;
            let scale = 10u128.pow(digits.len() as u32);
            ns += frac * unit_ns / scale;
        }
        total = total.checked_add(ns).ok_or_else(|| bad("overflow"))?;
    }
    let secs = u64::try_from(total / 1_000_000_000).map_err(|_| bad("overflow"))?;
    Ok(Duration::new(secs, (total % 1_000_000_000) as u32))
}

/// Formats a duration compactly for messages (`"5s"`, `"250ms"`, `"1m30s"`).
pub(crate) fn fmt_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns == 0 {
        return "0s".to_string();
    }
    if !ns.is_multiple_of(1_000_000_000) {
        if ns.is_multiple_of(1_000_000) {
            return format!("{}ms", ns / 1_000_000);
        }
        return format!("{:?}", d);
    }
    let mut secs = d.as_secs();
    let mut out = String::new();
    let h = secs / 3600;
    secs %= 3600;
    let m = secs / 60;
    secs %= 60;
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if secs > 0 {
        out.push_str(&format!("{secs}s"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_duration_parse_valid() {
        let cases: &[(&str, Duration)] = &[
            ("0", Duration::ZERO),
            ("10s", Duration::from_secs(10)),
            ("250ms", Duration::from_millis(250)),
            ("1h30m", Duration::from_secs(5400)),
            ("1.5s", Duration::from_millis(1500)),
            (".5s", Duration::from_millis(500)),
            ("1.s", Duration::from_secs(1)),
            ("100ns", Duration::from_nanos(100)),
            ("3us", Duration::from_micros(3)),
            ("3µs", Duration::from_micros(3)),
            ("2m", Duration::from_secs(120)),
            ("87600h", Duration::from_secs(87600 * 3600)),
            ("1h2m3s4ms", Duration::from_millis(3_723_004)),
            ("+5s", Duration::from_secs(5)),
            ("0s", Duration::ZERO),
            ("-0", Duration::ZERO),
        ];
        for (s, want) in cases {
            assert_eq!(parse_duration(s).as_ref(), Ok(want), "{s}");
        }
    }

    #[test]
    fn config_duration_parse_invalid() {
        for s in ["", "5", "5ii", "7asd", "s", "-5s", "1.5", "5 s", "..5s", "10x", "1h 2m"] {
            assert!(parse_duration(s).is_err(), "{s:?} should fail");
        }
    }

    #[test]
    fn config_duration_format() {
        assert_eq!(fmt_duration(Duration::from_secs(5)), "5s");
        assert_eq!(fmt_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(fmt_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(fmt_duration(Duration::ZERO), "0s");
    }
}
