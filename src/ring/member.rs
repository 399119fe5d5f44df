//! Peer member names (hashkeys) of the exact peer rings, spec §7.5: parsing and validation.
//!
//! * carbon (`carbon_ch`): a carbon `DESTINATIONS` entry `host:port[:instance]` or
//!   `[v6]:port[:instance]`, read as carbon's `parseDestination` reads it (the instance is
//!   everything after the second `:`).
//! * carbon-c-relay (`carbon_ch_c_relay`, `fnv1a_ch`, `jump_fnv1a_ch`): a cluster member
//!   `host[:port][=instance]` or `[v6][:port][=instance]`, port 2003 when absent.
//! * statsd (`statsd_hashring`): `host:port`; the ring hashes the string as written.

use super::RingKind;

/// c-relay's default port when a member omits it.
pub const CRELAY_DEFAULT_PORT: u16 = 2003;

/// c-relay formats ring keys into a 256-byte buffer; longer hosts would be truncated there.
const CRELAY_MAX_NAME: usize = 200;

/// A parsed carbon `DESTINATIONS` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CarbonMember<'a> {
    pub host: &'a str,
    pub port: u16,
    pub instance: Option<&'a str>,
}

/// A parsed carbon-c-relay cluster member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CRelayMember<'a> {
    pub host: &'a str,
    pub port: u16,
    pub instance: Option<&'a str>,
}

/// `s` for an error message: control characters escaped, everything else as written.
fn shown(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let esc: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            esc
        })
        .collect()
}

fn port(s: &str) -> Result<u16, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("invalid port \"{s}\""));
    }
    match s.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!("port {s} out of range")),
    }
}

/// Host and instance strings end up inside a Python tuple repr (`('host', 'inst')`); only
/// characters that Python prints unchanged between single quotes keep that repr exact.
fn carbon_safe(what: &str, s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err(format!("empty {what}"));
    }
    match s.chars().find(|&c| !c.is_ascii_graphic() || matches!(c, '\'' | '"' | '\\')) {
        None => Ok(()),
        Some(c) => Err(format!(
            "{what} \"{}\" contains {c:?}; quotes, backslashes, spaces, non-ASCII and non-printable characters are not allowed",
            shown(s)
        )),
    }
}

/// Parses `host:port[:instance]` / `[v6]:port[:instance]` as carbon's `parseDestination` does.
pub fn parse_carbon(key: &str) -> Result<CarbonMember<'_>, String> {
    let (host, rest) = match key.strip_prefix('[') {
        Some(inner) => {
            let b = inner
                .rfind("]:")
                .ok_or_else(|| "expected [v6-address]:port[:instance]".to_string())?;
            (&inner[..b], &inner[b + 2..])
        }
        None => key
            .split_once(':')
            .ok_or_else(|| "expected host:port[:instance]".to_string())?,
    };
    let (p, instance) = match rest.split_once(':') {
        Some((p, i)) => (p, Some(i)),
        None => (rest, None),
    };
    carbon_safe("host", host)?;
    if let Some(i) = instance {
        carbon_safe("instance", i)?;
    }
    Ok(CarbonMember {
        host,
        port: port(p)?,
        instance,
    })
}

/// Parses `host[:port][=instance]` / `[v6][:port][=instance]` as a carbon-c-relay cluster member.
pub fn parse_crelay(key: &str) -> Result<CRelayMember<'_>, String> {
    let (hp, instance) = match key.split_once('=') {
        Some((hp, i)) => (hp, Some(i)),
        None => (key, None),
    };
    let (host, p) = match hp.strip_prefix('[') {
        Some(inner) => {
            let (h, rest) = inner
                .split_once(']')
                .ok_or_else(|| "expected [v6-address][:port][=instance]".to_string())?;
            match rest {
                "" => (h, None),
                r => (
                    h,
                    Some(
                        r.strip_prefix(':')
                            .ok_or_else(|| "expected :port after ]".to_string())?,
                    ),
                ),
            }
        }
        None => match hp.split_once(':') {
            Some((_, p)) if p.contains(':') => return Err("IPv6 addresses must be written as [addr]:port".to_string()),
            Some((h, p)) => (h, Some(p)),
            None => (hp, None),
        },
    };
    carbon_safe("host", host)?;
    if let Some(i) = instance {
        carbon_safe("instance", i)?;
    }
    if key.len() > CRELAY_MAX_NAME {
        return Err(format!("longer than {CRELAY_MAX_NAME} bytes"));
    }
    Ok(CRelayMember {
        host,
        port: p.map(port).transpose()?.unwrap_or(CRELAY_DEFAULT_PORT),
        instance,
    })
}

/// Checks `host:port` for the statsd ring (which hashes the string itself).
pub fn parse_statsd(key: &str) -> Result<(), String> {
    let (host, p) = key.rsplit_once(':').ok_or_else(|| "expected host:port".to_string())?;
    if host.is_empty() {
        return Err("empty host".to_string());
    }
    if let Some(c) = key.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("contains {c:?}"));
    }
    port(p).map(|_| ())
}

/// Checks that `key` is a valid member name (hashkey) for a ring of `kind` (spec §7.5). Every
/// string is valid for the consthash family.
pub fn validate_hashkey(kind: &RingKind, key: &str) -> Result<(), String> {
    let form = match kind {
        RingKind::ConstHash => return Ok(()),
        RingKind::CarbonCh { .. } => parse_carbon(key).map(|_| ()).map_err(|e| (e, "host:port[:instance]")),
        RingKind::CarbonChCRelay | RingKind::Fnv1aCh | RingKind::JumpFnv1aCh => {
            parse_crelay(key).map(|_| ()).map_err(|e| (e, "host[:port][=instance]"))
        }
        RingKind::StatsdHashring => parse_statsd(key).map_err(|e| (e, "host:port")),
    };
    form.map_err(|(e, want)| {
        format!(
            "invalid {} member \"{}\" (expected {want}): {e}",
            kind.name(),
            shown(key)
        )
    })
}

/// The member name a peer ring uses when `hashkeys` is absent: the destination's `host:port`
/// (`[v6]:port` for IPv6) as written in its URL (spec §7.5). For the consthash family the caller
/// uses the URL itself.
pub fn default_hashkey(kind: &RingKind, url_host_port: &str) -> String {
    match kind {
        // hashring hashes "host:port" exactly as proxy.js joins them: no brackets.
        RingKind::StatsdHashring => match url_host_port.strip_prefix('[').and_then(|r| r.split_once("]:")) {
            Some((h, p)) => format!("{h}:{p}"),
            None => url_host_port.to_string(),
        },
        _ => url_host_port.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carbon_forms() {
        let m = parse_carbon("10.0.0.1:2004:a").unwrap();
        assert_eq!((m.host, m.port, m.instance), ("10.0.0.1", 2004, Some("a")));
        let m = parse_carbon("10.0.0.1:2004").unwrap();
        assert_eq!((m.host, m.port, m.instance), ("10.0.0.1", 2004, None));
        let m = parse_carbon("[2001:db8::2]:2004:x:y").unwrap();
        assert_eq!((m.host, m.port, m.instance), ("2001:db8::2", 2004, Some("x:y")));
        for bad in [
            "nocolon",
            "h:",
            "h:port",
            "h:0",
            "h:70000",
            ":2003",
            "h:2003:",
            "h'x:2003",
            "h:2003:a b",
            "h\\:2003",
            "h\"x:2003",
            "hé:2003",
            "[::1:2003",
        ] {
            assert!(parse_carbon(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn crelay_forms() {
        let cases = [
            ("10.0.0.1", ("10.0.0.1", 2003, None)),
            ("10.0.0.1:2004", ("10.0.0.1", 2004, None)),
            ("10.0.0.1=a", ("10.0.0.1", 2003, Some("a"))),
            ("h:2005=node1", ("h", 2005, Some("node1"))),
            ("[::1]:2006=x", ("::1", 2006, Some("x"))),
            ("[::1]", ("::1", 2003, None)),
        ];
        for (key, (h, p, i)) in cases {
            let m = parse_crelay(key).unwrap();
            assert_eq!((m.host, m.port, m.instance), (h, p, i), "{key}");
        }
        for bad in ["", "h:", "h:x", "::1:2003", "h=", "h='x'", "[::1]x", "h:2003=a b"] {
            assert!(parse_crelay(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn statsd_form_and_validate() {
        assert!(parse_statsd("10.0.0.1:8125").is_ok());
        assert!(parse_statsd("10.0.0.1").is_err());
        assert!(parse_statsd(":8125").is_err());
        assert!(parse_statsd("a b:8125").is_err());
        assert!(validate_hashkey(&RingKind::ConstHash, "('x', 'y') anything").is_ok());
        let e = validate_hashkey(&RingKind::CarbonCh { diverse_replicas: true }, "h'1:2003").unwrap_err();
        assert!(
            e.starts_with("invalid carbon_ch member \"h'1:2003\" (expected host:port[:instance]): host"),
            "{e}"
        );
        assert_eq!(default_hashkey(&RingKind::StatsdHashring, "[::1]:8125"), "::1:8125");
        assert_eq!(default_hashkey(&RingKind::Fnv1aCh, "[::1]:2003"), "[::1]:2003");
    }
}
