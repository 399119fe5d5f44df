//! Integration tests: the relay in-process (or the real binary) on 127.0.0.1, real lines over real sockets to
//! in-test sinks. Every wait is a condition with a deadline.

mod accumulate;
mod ack;
mod admin;
mod binary;
mod cli;
mod cluster;
mod cluster_scripts;
mod reader;
mod relay;
mod reload;
mod sink;
mod status_page;
mod wait;

pub use wait::{wait_for, wait_until};

use consthash::app::Relay;
use consthash::config;
use consthash::listener::Bound;
use tokio::io::AsyncWriteExt;

/// Loads a main config text (panics with every error) and starts the relay.
pub async fn start(toml: &str) -> Relay {
    let config = match config::load_main(toml, "test.toml") {
        Ok(c) => c,
        Err(e) => panic!("test config invalid:\n{e}\n---\n{toml}"),
    };
    Relay::start(&config, None).await.expect("relay starts")
}

/// Loads a main config and a PreReg config (panics with every error) and starts the relay.
pub async fn start_with_prereg(toml: &str, prereg: &str) -> Relay {
    let config =
        config::load_main(toml, "test.toml").unwrap_or_else(|e| panic!("test config invalid:\n{e}\n---\n{toml}"));
    let prereg = config::load_prereg(prereg, "prereg.toml", &config)
        .unwrap_or_else(|e| panic!("test prereg invalid:\n{e}\n---\n{prereg}"));
    Relay::start(&config, Some(&prereg)).await.expect("relay starts")
}

pub fn tcp_addr(relay: &Relay, section: &str) -> std::net::SocketAddr {
    match relay.bound(section).and_then(Bound::addr) {
        Some(a) => a,
        None => panic!(
            "section {section} is not bound to an address: {:?}",
            relay.bound(section)
        ),
    }
}

/// The value of the first sample of `family` (a name with its `{`) in a Prometheus text body.
pub fn metric_value(body: &str, family: &str) -> Option<u64> {
    body.lines()
        .find(|l| l.starts_with(family))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// Writes graphite lines to `addr` over one connection until the relay stops reading and closes it.
pub fn flood(addr: std::net::SocketAddr) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut c = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let chunk: String = (0..10_000)
            .map(|i| format!("flood.key{} {i} 1700000000\n", i % 1000))
            .collect();
        while c.write_all(chunk.as_bytes()).await.is_ok() {}
    })
}

/// The body of a GET of `url` (panics when the request fails).
pub async fn get_body(url: impl reqwest::IntoUrl) -> String {
    let r = reqwest::get(url).await.expect("GET");
    r.text().await.expect("body")
}

/// Sends `lines` (each gets a `\n`) over one TCP connection in writes of about 16 KiB, then closes it.
pub async fn send_tcp(addr: std::net::SocketAddr, lines: &[String]) {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect to relay");
    let mut buf = Vec::with_capacity(32 * 1024);
    for l in lines {
        buf.extend_from_slice(l.as_bytes());
        buf.push(b'\n');
        if buf.len() > 16 * 1024 {
            s.write_all(&buf).await.expect("write");
            buf.clear();
        }
    }
    s.write_all(&buf).await.expect("write");
    s.shutdown().await.expect("shutdown");
}
