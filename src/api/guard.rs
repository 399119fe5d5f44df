//! What keeps browsers from being used against the admin server: a web page the operator happens to open must not
//! read the stats (DNS rebinding), change the rings (cross-site form posts) or run script through `/stats`
//! (`?jsonp=`). Clients outside `internal_health_server_admin_allow` are refused separately (in `admin`).
//!
//! * **Host**: a request is answered only when its `Host` names this server: an IP literal (a rebinding page needs a
//!   DNS name), `localhost` (and `*.localhost`), this machine's host name, or a name of
//!   `internal_health_server_hosts` (`"*"` turns the check off). No `Host` (HTTP/1.0 tools) is accepted.
//! * **Mutations** are refused when `Sec-Fetch-Site` says the request came from another site, when an `Origin` other
//!   than the server's own is sent, and when the body has a type an HTML form can send (`application/x-www-form-
//!   urlencoded`, `multipart/form-data`, `text/plain`) without an `X-Requested-By` header, which a cross-site page
//!   cannot add without the browser asking first.
//! * **jsonp** callbacks are JavaScript identifiers, optionally dotted (`cb`, `app.onStats`), at most 64 bytes.

use std::net::IpAddr;

use hyper::header::{HeaderMap, CONTENT_TYPE, HOST, ORIGIN};

/// The names besides IP literals and `localhost` that the server answers to.
#[derive(Clone, Debug, Default)]
pub struct Hosts {
    /// Lower-case names; `None` = any Host (`"*"` configured).
    names: Option<Vec<String>>,
}

impl Hosts {
    /// This machine's host name (and its first label) plus `configured`.
    pub fn new(configured: &[String]) -> Hosts {
        if configured.iter().any(|h| h == "*") {
            return Hosts { names: None };
        }
        let node = rustix::system::uname().nodename().to_string_lossy().to_lowercase();
        let mut names: Vec<String> = configured.iter().map(|h| h.to_lowercase()).collect();
        if let Some((first, _)) = node.split_once('.') {
            names.push(first.to_string());
        }
        names.push(node);
        Hosts { names: Some(names) }
    }

    /// Whether a request with these headers may be answered.
    pub fn allow(&self, headers: &HeaderMap) -> bool {
        let Some(names) = &self.names else { return true };
        let Some(host) = headers.get(HOST) else { return true };
        let Ok(host) = host.to_str() else { return false };
        let name = host_name(host).to_ascii_lowercase();
        name.parse::<IpAddr>().is_ok() || name == "localhost" || name.ends_with(".localhost") || names.contains(&name)
    }
}

/// The host part of a `Host` header or an origin's authority: without the port, an IPv6 literal without brackets.
fn host_name(authority: &str) -> &str {
    match crate::config::split_host_port(authority) {
        Some((host, _)) => host,
        None => authority.trim_start_matches('[').trim_end_matches(']'),
    }
}

/// Why a ring change must be refused as coming from a web page, if it must.
pub fn cross_site(headers: &HeaderMap) -> Option<&'static str> {
    if let Some(site) = headers.get("sec-fetch-site") {
        if !matches!(site.as_bytes(), b"same-origin" | b"none") {
            return Some("the browser says this request comes from another site");
        }
    }
    if let Some(origin) = headers.get(ORIGIN) {
        let authority = origin.to_str().ok().and_then(|o| o.split_once("://")).map(|(_, a)| a);
        let host = headers.get(HOST).and_then(|h| h.to_str().ok());
        match (authority, host) {
            (Some(a), Some(h)) if a.eq_ignore_ascii_case(h) => {}
            _ => return Some("the request comes from another origin"),
        }
    }
    let form = headers.get(CONTENT_TYPE).is_some_and(|v| {
        let v = v.to_str().unwrap_or("").trim_start().to_ascii_lowercase();
        ["application/x-www-form-urlencoded", "multipart/form-data", "text/plain"]
            .iter()
            .any(|t| v.starts_with(t))
    });
    if form && headers.get("x-requested-by").is_none_or(|v| v.is_empty()) {
        return Some("a form body needs an X-Requested-By header");
    }
    None
}

/// Whether `cb` may name a jsonp callback.
pub fn jsonp_callback_ok(cb: &str) -> bool {
    let ident = |p: &str| {
        let mut bytes = p.bytes();
        bytes
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_' || b == b'$')
            && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$')
    };
    cb.len() <= 64 && cb.split('.').all(ident)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn hosts_are_ip_literals_localhost_this_machine_or_configured() {
        let hosts = Hosts::new(&["Relay.Example.Org".to_string()]);
        for ok in [
            "127.0.0.1:6061",
            "10.1.2.3",
            "[::1]:6061",
            "localhost:6061",
            "LOCALHOST",
            "app.localhost",
            "relay.example.org:80",
        ] {
            assert!(hosts.allow(&headers(&[("host", ok)])), "{ok}");
        }
        for bad in ["evil.example.com", "evil.example.com:6061", "127.0.0.1.evil.com"] {
            assert!(!hosts.allow(&headers(&[("host", bad)])), "{bad}");
        }
        assert!(hosts.allow(&HeaderMap::new()), "no Host header");
        let node = rustix::system::uname().nodename().to_string_lossy().into_owned();
        let mut h = HeaderMap::new();
        h.insert(HOST, HeaderValue::from_str(&format!("{node}:6061")).expect("header"));
        assert!(hosts.allow(&h), "this machine's name");
        assert!(Hosts::new(&["*".to_string()]).allow(&headers(&[("host", "evil.example.com")])));
    }

    #[test]
    fn cross_site_requests_and_bare_forms_are_refused() {
        assert_eq!(cross_site(&HeaderMap::new()), None, "curl -X POST '...?server=...'");
        assert_eq!(cross_site(&headers(&[("sec-fetch-site", "same-origin")])), None);
        assert!(cross_site(&headers(&[("sec-fetch-site", "cross-site")])).is_some());
        assert!(cross_site(&headers(&[("sec-fetch-site", "same-site")])).is_some());
        let same = headers(&[("host", "127.0.0.1:6061"), ("origin", "http://127.0.0.1:6061")]);
        assert_eq!(cross_site(&same), None);
        let other = headers(&[("host", "127.0.0.1:6061"), ("origin", "http://evil.example.com")]);
        assert!(cross_site(&other).is_some());
        assert!(cross_site(&headers(&[("host", "127.0.0.1:6061"), ("origin", "null")])).is_some());
        let form = ("content-type", "application/x-www-form-urlencoded");
        assert!(cross_site(&headers(&[form])).is_some());
        assert!(cross_site(&headers(&[("content-type", "text/plain;charset=UTF-8")])).is_some());
        assert_eq!(cross_site(&headers(&[form, ("x-requested-by", "ops")])), None);
        assert_eq!(cross_site(&headers(&[("content-type", "application/json")])), None);
    }

    #[test]
    fn jsonp_callbacks_are_identifiers() {
        for ok in ["cb", "_cb1", "$", "app.onStats", "jQuery123_456"] {
            assert!(jsonp_callback_ok(ok), "{ok}");
        }
        for bad in [
            "",
            "alert(1)//",
            "a b",
            "1cb",
            "a..b",
            "cb;",
            "<script>",
            &"a".repeat(65),
        ] {
            assert!(!jsonp_callback_ok(bad), "{bad}");
        }
    }
}
