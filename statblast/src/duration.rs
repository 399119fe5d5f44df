//! Go-style duration strings (`time.ParseDuration`): `0`, `10ms`, `0.1s`, `1m30s`, `250us`, `1.5h`.

use std::time::Duration;

use anyhow::{bail, Context};

/// Parses a sequence of decimal numbers each followed by a unit (`ns`, `us`, `µs`, `ms`, `s`, `m`, `h`).
/// A bare `0` is allowed; any other number needs a unit. Negative durations are refused.
pub fn parse_duration(s: &str) -> anyhow::Result<Duration> {
    let s = s.trim();
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() || rest.starts_with('-') {
        bail!("invalid duration {s:?}");
    }
    let mut nanos = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(num_len);
        if num.is_empty() || num == "." {
            bail!("invalid duration {s:?}");
        }
        let value: f64 = num.parse().with_context(|| format!("invalid duration {s:?}"))?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => bail!("missing unit in duration {s:?}"),
            other => bail!("unknown unit {other:?} in duration {s:?}"),
        };
        nanos += value * scale;
        rest = tail;
    }
    if !nanos.is_finite() || nanos > u64::MAX as f64 {
        bail!("duration {s:?} out of range");
    }
    Ok(Duration::from_nanos(nanos.round() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations() {
        let table: &[(&str, Duration)] = &[
            ("0", Duration::ZERO),
            ("0s", Duration::ZERO),
            ("0.1s", Duration::from_millis(100)),
            ("10ms", Duration::from_millis(10)),
            ("1s", Duration::from_secs(1)),
            ("1m30s", Duration::from_secs(90)),
            ("1.5h", Duration::from_secs(5400)),
            ("250us", Duration::from_micros(250)),
            ("250µs", Duration::from_micros(250)),
            ("7ns", Duration::from_nanos(7)),
            (".5s", Duration::from_millis(500)),
            ("+2s", Duration::from_secs(2)),
        ];
        for (s, want) in table {
            assert_eq!(parse_duration(s).unwrap(), *want, "{s}");
        }
    }

    #[test]
    fn rejects_bad_durations() {
        for s in ["", "10", "1x", "s", "-1s", ".s", "1..2s", "ms10"] {
            assert!(parse_duration(s).is_err(), "{s}");
        }
    }
}
