//! Listen URLs: `tcp://host:port`, `udp://host:port`, `unix:///path`, `http://host:port/path`.

use std::path::PathBuf;

use anyhow::{bail, Context};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Tcp(String),
    Udp(String),
    Unix(PathBuf),
    /// `addr` is `host:port`; `path` starts with `/` (default `/`).
    Http {
        addr: String,
        path: String,
    },
}

impl Endpoint {
    pub fn parse(url: &str) -> anyhow::Result<Endpoint> {
        let (scheme, rest) = url
            .split_once("://")
            .with_context(|| format!("{url:?}: expected scheme://address"))?;
        let need_addr = |a: &str| -> anyhow::Result<String> {
            if a.is_empty() || !a.contains(':') {
                bail!("{url:?}: expected host:port");
            }
            Ok(a.to_string())
        };
        Ok(match scheme {
            "tcp" => Endpoint::Tcp(need_addr(rest)?),
            "udp" => Endpoint::Udp(need_addr(rest)?),
            "unix" => {
                if rest.is_empty() {
                    bail!("{url:?}: expected unix:///path");
                }
                Endpoint::Unix(PathBuf::from(rest))
            }
            "http" => {
                let (addr, path) = match rest.find('/') {
                    Some(i) => (&rest[..i], &rest[i..]),
                    None => (rest, "/"),
                };
                Endpoint::Http {
                    addr: need_addr(addr)?,
                    path: path.to_string(),
                }
            }
            other => bail!("{url:?}: unknown scheme {other:?}, expected tcp, udp, unix or http"),
        })
    }
}

/// Parses a comma-separated list, ignoring empty items and surrounding spaces.
pub fn parse_list(list: &str) -> anyhow::Result<Vec<(String, Endpoint)>> {
    let items: Vec<_> = list
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| Endpoint::parse(s).map(|e| (s.to_string(), e)))
        .collect::<Result<_, _>>()?;
    if items.is_empty() {
        bail!("--servers: no listen URL given");
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_scheme() {
        assert_eq!(
            Endpoint::parse("tcp://127.0.0.1:6002").unwrap(),
            Endpoint::Tcp("127.0.0.1:6002".into())
        );
        assert_eq!(
            Endpoint::parse("udp://0.0.0.0:8125").unwrap(),
            Endpoint::Udp("0.0.0.0:8125".into())
        );
        assert_eq!(
            Endpoint::parse("unix:///tmp/x.sock").unwrap(),
            Endpoint::Unix("/tmp/x.sock".into())
        );
        assert_eq!(
            Endpoint::parse("http://127.0.0.1:80/stats/").unwrap(),
            Endpoint::Http {
                addr: "127.0.0.1:80".into(),
                path: "/stats/".into()
            }
        );
        assert_eq!(
            Endpoint::parse("http://127.0.0.1:80").unwrap(),
            Endpoint::Http {
                addr: "127.0.0.1:80".into(),
                path: "/".into()
            }
        );
    }

    #[test]
    fn rejects_bad_urls() {
        for bad in ["127.0.0.1:1", "ftp://a:1", "tcp://", "tcp://nohost", "unix://"] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
        assert!(parse_list(" , ").is_err());
        assert_eq!(parse_list("tcp://a:1, udp://b:2").unwrap().len(), 2);
    }
}
