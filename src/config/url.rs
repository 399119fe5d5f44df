//! Listen URLs (spec §5.1), destination URLs (§3.4) and the small address types of the config.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

/// Where a section listens (`listen`, spec §5.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Listen {
    /// `tcp://host:port`
    Tcp(String),
    /// `udp://host:port`
    Udp(String),
    /// `unix:///path`
    Unix(PathBuf),
    /// `http://host:port[/path]`; `path` defaults to `/`.
    Http { addr: String, path: String },
    /// `backend_only`: no socket.
    BackendOnly,
}

impl Listen {
    /// The default `listen` of a section.
    pub const DEFAULT: &'static str = "tcp://127.0.0.1:6000";

    pub fn parse(s: &str) -> Result<Listen, String> {
        let s = s.trim();
        if s == "backend_only" {
            return Ok(Listen::BackendOnly);
        }
        let (scheme, rest) = split_scheme(s)?;
        match scheme {
            "tcp" => Ok(Listen::Tcp(host_port(rest, s)?)),
            "udp" => Ok(Listen::Udp(host_port(rest, s)?)),
            "unix" => Ok(Listen::Unix(unix_path(rest, s)?)),
            "http" => {
                let (hp, path) = match rest.find('/') {
                    Some(i) => (&rest[..i], &rest[i..]),
                    None => (rest, "/"),
                };
                if path.contains(['?', '#']) {
                    return Err(format!(
                        "invalid listen URL \"{s}\": query and fragment are not allowed"
                    ));
                }
                Ok(Listen::Http {
                    addr: host_port(hp, s)?,
                    path: path.to_string(),
                })
            }
            other => Err(format!(
                "unsupported listen scheme \"{other}\" in \"{s}\" (expected tcp, udp, unix, http or backend_only)"
            )),
        }
    }

    /// The URL form, for display.
    pub fn url(&self) -> String {
        match self {
            Listen::Tcp(a) => format!("tcp://{a}"),
            Listen::Udp(a) => format!("udp://{a}"),
            Listen::Unix(p) => format!("unix://{}", p.display()),
            Listen::Http { addr, path } => format!("http://{addr}{path}"),
            Listen::BackendOnly => "backend_only".to_string(),
        }
    }

    /// Whether lines sent to `dest` arrive at this listener (a ring member that is its own listener makes every line
    /// loop). `bound` is where it actually listens, when known (port 0 resolved). The destination's host must be the
    /// listener's, or `localhost` / a loopback address when the listener is on loopback or every address; an
    /// `http` destination must also fall under the listener's path.
    pub fn receives(&self, dest: &Target, bound: Option<SocketAddr>) -> bool {
        let at = |configured: &str, dest: &str| {
            let listen = match bound {
                Some(a) => (a.ip().to_string(), a.port()),
                None => match split_host_port(configured) {
                    Some((h, p)) => (h.to_string(), p),
                    None => return false,
                },
            };
            split_host_port(dest).is_some_and(|(h, p)| p == listen.1 && same_host(&listen.0, h))
        };
        match (self, dest) {
            (Listen::Tcp(l), Target::Tcp(d)) | (Listen::Udp(l), Target::Udp(d)) => at(l, d),
            (Listen::Unix(l), Target::Unix(d)) => l == d,
            (Listen::Http { addr, path }, Target::Http(url)) => {
                let rest = url.strip_prefix("http://").unwrap_or(url);
                let (hp, dest_path) = rest.find('/').map_or((rest, "/"), |i| (&rest[..i], &rest[i..]));
                let dest_path = dest_path.split(['?', '#']).next().unwrap_or("/");
                let under = if path.ends_with('/') {
                    dest_path.starts_with(path.as_str())
                } else {
                    dest_path == path
                };
                under && at(addr, hp)
            }
            _ => false,
        }
    }

    /// The transport and port (or path) this listener binds: only listeners with one key can collide (tcp and
    /// http share TCP ports). Port 0 asks the OS for a free port: such listeners have none.
    pub(crate) fn bind_key(&self) -> Option<String> {
        let port = |a: &str| split_host_port(a).map(|(_, p)| p).filter(|p| *p != 0);
        match self {
            Listen::Tcp(a) | Listen::Http { addr: a, .. } => port(a).map(|p| format!("tcp {p}")),
            Listen::Udp(a) => port(a).map(|p| format!("udp {p}")),
            Listen::Unix(p) => Some(format!("unix {}", p.display())),
            Listen::BackendOnly => None,
        }
    }

    /// Whether two listeners with the same [`bind_key`](Listen::bind_key) would bind one socket: the same host
    /// (`localhost` and loopback addresses alike), or one of them on every address.
    pub(crate) fn collides(&self, other: &Listen) -> bool {
        let host = |l: &Listen| match l {
            Listen::Tcp(a) | Listen::Udp(a) | Listen::Http { addr: a, .. } => {
                split_host_port(a).map(|(h, _)| h.to_string())
            }
            _ => None,
        };
        match (host(self), host(other)) {
            (Some(a), Some(b)) => every_address(&a) || every_address(&b) || same_host(&a, &b) || same_host(&b, &a),
            _ => self.bind_key() == other.bind_key(),
        }
    }
}

/// `host:port` or `[v6]:port` split; the host without brackets.
pub(crate) fn split_host_port(hp: &str) -> Option<(&str, u16)> {
    let (host, port) = hp.rsplit_once(':')?;
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    Some((host, port.parse().ok()?))
}

/// Whether a listen host means every address (`0.0.0.0`, `::`, or empty).
fn every_address(h: &str) -> bool {
    h.is_empty() || h.parse::<IpAddr>().is_ok_and(|ip| ip.is_unspecified())
}

/// Whether a destination host names the address a listener is bound to (`listener`), on this machine.
fn same_host(listener: &str, dest: &str) -> bool {
    let local = |h: &str| h.eq_ignore_ascii_case("localhost") || h.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    let canonical = |h: &str| match h.parse::<IpAddr>() {
        Ok(ip) => ip.to_string(),
        Err(_) => h.to_ascii_lowercase(),
    };
    canonical(listener) == canonical(dest)
        || (every_address(listener) && (local(dest) || every_address(dest)))
        || (dest.eq_ignore_ascii_case("localhost") && local(listener))
        || (listener.eq_ignore_ascii_case("localhost") && local(dest))
}

/// Parses a comma-separated list of endpoint URLs (`tcp://`, `udp://`, `unix:///`, `http://host:port/path`), as
/// the tools' `--servers` take them: items trimmed, empty items ignored, at least one required.
pub fn parse_url_list(list: &str) -> Result<Vec<(String, Listen)>, String> {
    let mut out = Vec::new();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match Listen::parse(item)? {
            Listen::BackendOnly => return Err(format!("\"{item}\" is not an address")),
            l => out.push((item.to_string(), l)),
        }
    }
    if out.is_empty() {
        return Err("no URL given".into());
    }
    Ok(out)
}

/// One destination of a ring: the trimmed URL as written and what it means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DestUrl {
    pub raw: String,
    pub target: Target,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// `host:port`
    Tcp(String),
    /// `host:port`
    Udp(String),
    Unix(PathBuf),
    /// The full URL.
    Http(String),
    /// The full URL.
    Https(String),
}

impl DestUrl {
    /// Parses a destination URL; `s` is trimmed of space, tab, CR and LF first.
    pub fn parse(s: &str) -> Result<DestUrl, String> {
        let raw = trim_url(s).to_string();
        let (scheme, rest) = split_scheme(&raw)?;
        let target = match scheme {
            "tcp" => Target::Tcp(host_port(rest, &raw)?),
            "udp" => Target::Udp(host_port(rest, &raw)?),
            "unix" => Target::Unix(unix_path(rest, &raw)?),
            "http" | "https" => {
                let u = url::Url::parse(&raw).map_err(|e| format!("invalid URL \"{raw}\": {e}"))?;
                if u.host_str().is_none_or(str::is_empty) {
                    return Err(format!("invalid URL \"{raw}\": missing host"));
                }
                if scheme == "http" {
                    Target::Http(raw.clone())
                } else {
                    Target::Https(raw.clone())
                }
            }
            other => {
                return Err(format!(
                    "unsupported scheme \"{other}\" in \"{raw}\" (expected tcp, udp, unix, http or https)"
                ))
            }
        };
        Ok(DestUrl { raw, target })
    }

    /// `host:port` of a network destination (the default member name of the peer rings, §7.5).
    pub fn host_port(&self) -> Option<String> {
        match &self.target {
            Target::Tcp(a) | Target::Udp(a) => Some(a.clone()),
            Target::Http(u) | Target::Https(u) => {
                let u = url::Url::parse(u).ok()?;
                let host = u.host_str()?;
                Some(format!("{}:{}", host, u.port_or_known_default()?))
            }
            Target::Unix(_) => None,
        }
    }
}

/// Trims space, tab, CR and LF (spec §3.4).
pub(crate) fn trim_url(s: &str) -> &str {
    s.trim_matches([' ', '\t', '\r', '\n'])
}

fn split_scheme(s: &str) -> Result<(&str, &str), String> {
    match s.split_once("://") {
        Some((scheme, rest)) if !scheme.is_empty() => Ok((scheme, rest)),
        _ => Err(format!("invalid URL \"{s}\": expected scheme://address")),
    }
}

fn unix_path(rest: &str, whole: &str) -> Result<PathBuf, String> {
    if rest.is_empty() {
        return Err(format!("invalid URL \"{whole}\": missing socket path"));
    }
    Ok(PathBuf::from(rest))
}

/// Validates `host:port` (or `[v6]:port`) and returns it unchanged.
pub(crate) fn host_port(hp: &str, whole: &str) -> Result<String, String> {
    let bad = |why: &str| format!("invalid address \"{whole}\": {why}");
    let (host, port) = if let Some(rest) = hp.strip_prefix('[') {
        let (h, p) = rest.split_once("]:").ok_or_else(|| bad("expected [host]:port"))?;
        if h.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(bad("invalid IPv6 address"));
        }
        (h, p)
    } else {
        let (h, p) = hp.rsplit_once(':').ok_or_else(|| bad("expected host:port"))?;
        if h.contains(':') {
            return Err(bad("IPv6 addresses must be written as [addr]:port"));
        }
        (h, p)
    };
    if host.is_empty() {
        return Err(bad("missing host"));
    }
    if host.contains(['/', ' ', '?', '#', '@']) {
        return Err(bad("invalid host"));
    }
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) || port.parse::<u16>().is_err() {
        return Err(bad("invalid port"));
    }
    Ok(hp.to_string())
}

/// An address block such as `127.0.0.0/8` (`internal_health_server_admin_allow`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpCidr(pub ipnet::IpNet);

impl IpCidr {
    /// Parses `addr/len` or a bare address (a host block).
    pub fn parse(s: &str) -> Result<IpCidr, String> {
        let bad = |why: &str| format!("invalid CIDR \"{s}\": {why}");
        let (a, len) = match s.trim().split_once('/') {
            Some((a, len)) => (a, Some(len)),
            None => (s.trim(), None),
        };
        let addr: IpAddr = a.parse().map_err(|_| bad("invalid address"))?;
        let net = match len {
            None => ipnet::IpNet::from(addr),
            Some(len) => len
                .parse::<u8>()
                .ok()
                .and_then(|len| ipnet::IpNet::new(addr, len).ok())
                .ok_or_else(|| bad("invalid prefix length"))?,
        };
        Ok(IpCidr(net))
    }

    pub fn prefix_len(&self) -> u8 {
        self.0.prefix_len()
    }

    /// Whether `ip` lies in the block; IPv4-mapped IPv6 addresses match IPv4 blocks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) if matches!(self.0, ipnet::IpNet::V4(_)) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => return false,
            },
            ip => ip,
        };
        self.0.contains(&ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_url_dest_every_scheme() {
        let cases: &[(&str, Target)] = &[
            ("tcp://10.0.1.1:2004", Target::Tcp("10.0.1.1:2004".into())),
            (" udp://10.0.0.1:8126\r\n", Target::Udp("10.0.0.1:8126".into())),
            ("tcp://[::1]:2003", Target::Tcp("[::1]:2003".into())),
            ("tcp://localhost:2003", Target::Tcp("localhost:2003".into())),
            ("unix:///run/ch.sock", Target::Unix("/run/ch.sock".into())),
            (
                "http://10.0.0.1:8080/metrics",
                Target::Http("http://10.0.0.1:8080/metrics".into()),
            ),
            (
                "https://sink.example.com/in",
                Target::Https("https://sink.example.com/in".into()),
            ),
        ];
        for (s, want) in cases {
            let d = DestUrl::parse(s).unwrap();
            assert_eq!(&d.target, want, "{s}");
            assert_eq!(d.raw, s.trim(), "{s}");
        }
        assert_eq!(
            DestUrl::parse("https://sink.example.com/in").unwrap().host_port(),
            Some("sink.example.com:443".into())
        );
    }

    #[test]
    fn config_url_dest_errors() {
        for s in [
            "10.0.0.1:2003",
            "ftp://10.0.0.1:21",
            "tcp://10.0.0.1",
            "tcp://:2003",
            "tcp://10.0.0.1:99999",
            "tcp://10.0.0.1:20x3",
            "tcp://::1:2003",
            "unix://",
            "http://",
            "backend_only",
        ] {
            assert!(DestUrl::parse(s).is_err(), "{s} should fail");
        }
    }

    #[test]
    fn config_url_listen() {
        let cases: &[(&str, Listen)] = &[
            ("tcp://0.0.0.0:2003", Listen::Tcp("0.0.0.0:2003".into())),
            ("udp://0.0.0.0:8125", Listen::Udp("0.0.0.0:8125".into())),
            ("unix:///run/ch.sock", Listen::Unix("/run/ch.sock".into())),
            (
                "http://0.0.0.0:8080/stats",
                Listen::Http {
                    addr: "0.0.0.0:8080".into(),
                    path: "/stats".into(),
                },
            ),
            (
                "http://0.0.0.0:8080",
                Listen::Http {
                    addr: "0.0.0.0:8080".into(),
                    path: "/".into(),
                },
            ),
            ("backend_only", Listen::BackendOnly),
        ];
        for (s, want) in cases {
            let l = Listen::parse(s).unwrap();
            assert_eq!(&l, want, "{s}");
        }
        assert_eq!(
            Listen::parse("http://0.0.0.0:8080").unwrap().url(),
            "http://0.0.0.0:8080/"
        );
        assert_eq!(Listen::parse("unix:///x.sock").unwrap().url(), "unix:///x.sock");
        for s in ["https://0.0.0.0:1", "tcp://0.0.0.0", "moo", "udp://:1"] {
            assert!(Listen::parse(s).is_err(), "{s}");
        }
    }

    #[test]
    fn config_url_lists_for_the_tools() {
        let l = parse_url_list(" tcp://a:1, ,http://b:2/in ").expect("valid");
        assert_eq!(l[0], ("tcp://a:1".to_string(), Listen::Tcp("a:1".into())));
        assert_eq!(
            l[1].1,
            Listen::Http {
                addr: "b:2".into(),
                path: "/in".into()
            }
        );
        assert!(parse_url_list(" , ").is_err());
        assert!(parse_url_list("backend_only").is_err());
        assert!(parse_url_list("ftp://x:1").is_err());
    }

    #[test]
    fn a_listener_receives_what_is_sent_to_its_own_address() {
        let dest = |u: &str| DestUrl::parse(u).expect("dest").target;
        let listen = |u: &str| Listen::parse(u).expect("listen");
        let tcp = listen("tcp://127.0.0.1:2003");
        for own in ["tcp://127.0.0.1:2003", "tcp://localhost:2003"] {
            assert!(tcp.receives(&dest(own), None), "{own}");
        }
        for other in [
            "tcp://127.0.0.1:2004",
            "udp://127.0.0.1:2003",
            "tcp://10.0.0.9:2003",
            "tcp://127.0.0.2:2003",
        ] {
            assert!(!tcp.receives(&dest(other), None), "{other}");
        }
        let every = listen("tcp://0.0.0.0:2003");
        assert!(every.receives(&dest("tcp://127.0.0.1:2003"), None));
        assert!(every.receives(&dest("tcp://localhost:2003"), None));
        assert!(!every.receives(&dest("tcp://127.0.0.1:2004"), None));
        let ephemeral = listen("tcp://127.0.0.1:0");
        let bound = Some("127.0.0.1:41234".parse().expect("addr"));
        assert!(ephemeral.receives(&dest("tcp://127.0.0.1:41234"), bound));
        assert!(!ephemeral.receives(&dest("tcp://127.0.0.1:41234"), None));
        assert!(listen("udp://[::1]:8125").receives(&dest("udp://[::1]:8125"), None));
        assert!(listen("unix:///run/in.sock").receives(&dest("unix:///run/in.sock"), None));
        let http = listen("http://127.0.0.1:8080/metrics/");
        assert!(http.receives(&dest("http://127.0.0.1:8080/metrics/in"), None));
        assert!(!http.receives(&dest("http://127.0.0.1:8080/other"), None));
        assert!(!listen("backend_only").receives(&dest("tcp://127.0.0.1:6000"), None));
    }

    #[test]
    fn config_url_cidr() {
        let c = IpCidr::parse("127.0.0.0/8").unwrap();
        assert!(c.contains("127.1.2.3".parse().unwrap()));
        assert!(c.contains("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!c.contains("10.0.0.1".parse().unwrap()));
        let c = IpCidr::parse("::1/128").unwrap();
        assert!(c.contains("::1".parse().unwrap()));
        assert!(!c.contains("::2".parse().unwrap()));
        let all = IpCidr::parse("0.0.0.0/0").unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        assert_eq!(IpCidr::parse("10.1.1.1").unwrap().prefix_len(), 32);
        for s in ["10.0.0.0/33", "moo/8", "::/129", ""] {
            assert!(IpCidr::parse(s).is_err(), "{s}");
        }
    }
}
