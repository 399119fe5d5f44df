//! Storage tests: the real `consthash` binary accumulating statsd into real MariaDB and Cassandra servers,
//! started once per test run by the project's scripts (`services.rs`). Every wait is a condition with a deadline.

#[path = "../it/binary.rs"]
mod binary;
mod burst;
mod cassandra_batches;
// shared with tests/it, which uses all of it
#[allow(dead_code)]
#[path = "../it/cluster_scripts.rs"]
mod cluster_scripts;
mod faults;
mod reader;
mod replicas;
mod services;
// shared with tests/it, which uses all of it
#[allow(dead_code)]
#[path = "../it/sink.rs"]
mod sink;
mod store;
#[path = "../it/wait.rs"]
mod wait;

pub use wait::{wait_for, wait_until};

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use binary::{free_port, Running, BIN};

/// How long a test waits for rows to arrive.
pub const LONG: Duration = Duration::from_secs(60);

/// One key's aggregate of one interval (spec §9.5), as the tests expect it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rec {
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    pub count: u64,
}

impl Rec {
    pub fn merge(self, o: Rec) -> Rec {
        Rec {
            sum: self.sum + o.sum,
            min: self.min.min(o.min),
            max: self.max.max(o.max),
            count: self.count + o.count,
        }
    }

    pub fn mean(&self) -> f64 {
        self.sum / self.count as f64
    }
}

/// The keys of a burst: a timer, a counter with a sample rate, a gauge and `spread` plain counters.
pub fn burst_keys(spread: usize) -> Vec<String> {
    let mut keys: Vec<String> = ["stats.web.cpu", "stats.web.mem", "stats.db.conns"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    keys.extend((0..spread).map(|i| format!("stats.load.k{i}")));
    keys
}

/// Part `part` (0 or 1) of a statsd burst: its lines and, per key, the record one base flush makes of them.
pub fn burst(part: usize, spread: usize) -> (Vec<String>, BTreeMap<String, Rec>) {
    let mut lines = Vec::new();
    let mut recs = BTreeMap::new();
    let timer: Vec<u64> = (1 + 50 * part as u64..=50 + 50 * part as u64).collect();
    lines.extend(timer.iter().map(|v| format!("stats.web.cpu:{v}|ms")));
    recs.insert(
        "stats.web.cpu".to_string(),
        Rec {
            sum: timer.iter().sum::<u64>() as f64,
            min: timer[0] as f64,
            max: timer[timer.len() - 1] as f64,
            count: timer.len() as u64,
        },
    );
    // 25 × 2 and 25 × 1 at rate 0.5: 50 values of 2 each.
    lines.extend((0..25).map(|_| "stats.web.mem:2|c".to_string()));
    lines.extend((0..25).map(|_| "stats.web.mem:1|c|@0.5".to_string()));
    recs.insert(
        "stats.web.mem".to_string(),
        Rec {
            sum: 100.0,
            min: 2.0,
            max: 2.0,
            count: 50,
        },
    );
    let gauge: &[f64] = if part == 0 { &[5.0, 7.0, 3.0] } else { &[9.0, 4.0] };
    lines.extend(gauge.iter().map(|v| format!("stats.db.conns:{v}|g")));
    recs.insert(
        "stats.db.conns".to_string(),
        Rec {
            sum: gauge[gauge.len() - 1],
            min: gauge.iter().copied().fold(f64::INFINITY, f64::min),
            max: gauge.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            count: gauge.len() as u64,
        },
    );
    for i in 0..spread {
        let v = (i + 1 + part) as f64;
        lines.push(format!("stats.load.k{i}:{v}|c"));
        recs.insert(
            format!("stats.load.k{i}"),
            Rec {
                sum: v,
                min: v,
                max: v,
                count: 1,
            },
        );
    }
    (lines, recs)
}

/// Sends statsd lines over UDP, several lines per datagram.
pub async fn send_udp(addr: SocketAddr, lines: &[String]) {
    let s = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let mut buf = String::new();
    for l in lines {
        if buf.len() + l.len() > 1200 {
            s.send_to(buf.as_bytes(), addr).await.expect("send");
            buf.clear();
        }
        buf.push_str(l);
        buf.push('\n');
    }
    if !buf.is_empty() {
        s.send_to(buf.as_bytes(), addr).await.expect("send");
    }
}

/// Waits until the wall clock is early in an interval of `secs` (at least 60 % of it left), so that lines sent now
/// all fall into one base flush.
pub async fn early_in_interval(secs: u64) {
    let ms = secs * 1000;
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_millis() as u64
    };
    wait_until("early in a flush interval", Duration::from_secs(secs + 1), || {
        let into = now() % ms;
        (100..ms * 4 / 10).contains(&into)
    })
    .await;
}

/// A running consthash with one statsd UDP section accumulating into writers.
pub struct Stack {
    pub child: Running,
    pub admin: u16,
    pub statsd: SocketAddr,
    pub dir: tempfile::TempDir,
}

impl Stack {
    /// One statsd UDP section `statsd-in` and group `g` accumulating it: `acc` holds accumulator keys (`times`,
    /// …), `writer` the `[g.accumulator.writer]` body; `main_extra` is appended to the main config.
    pub async fn start(acc: &str, writer: &str, main_extra: &str) -> Stack {
        Stack::spawn(|admin, port| {
            (
                format!(
                    "[default]\ninternal_health_server_listen = \"127.0.0.1:{admin}\"\nshutdown_timeout = 10\n\
                     [statsd-in]\nlisten = \"udp://127.0.0.1:{port}\"\nmsg_type = \"statsd\"\n\
                     [[statsd-in.servers]]\nservers = [\"tcp://127.0.0.1:9\"]\n{main_extra}"
                ),
                group("g", "statsd-in", acc, writer),
            )
        })
        .await
    }

    /// consthash with the configs `texts(admin port, statsd port)` returns (main, PreReg).
    pub async fn spawn(texts: impl FnOnce(u16, u16) -> (String, String)) -> Stack {
        let dir = tempfile::tempdir().expect("tempdir");
        let (admin, port) = (free_port(), free_port());
        let (main, pre) = texts(admin, port);
        let config = dir.path().join("relay.toml");
        let prereg = dir.path().join("prereg.toml");
        std::fs::write(&config, main).expect("config");
        std::fs::write(&prereg, pre).expect("prereg");
        let child = Running::spawn(std::process::Command::new(BIN).args([
            "--config",
            &config.to_string_lossy(),
            "--prereg",
            &prereg.to_string_lossy(),
        ]));
        binary::wait_listening(([127, 0, 0, 1], admin).into()).await;
        Stack {
            child,
            admin,
            statsd: ([127, 0, 0, 1], port).into(),
            dir,
        }
    }

    pub async fn get(&self, path: &str) -> String {
        let url = format!("http://127.0.0.1:{}{path}", self.admin);
        reqwest::get(&url).await.expect("admin GET").text().await.expect("body")
    }

    /// A sample of `/metrics`: `family` with all its labels, e.g. `consthash_writer_records_total{group="g",bin="5",driver="mysql"}`.
    pub async fn metric(&self, sample: &str) -> Option<u64> {
        let body = self.get("/metrics").await;
        body.lines()
            .find(|l| l.starts_with(sample) && l[sample.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
    }
}

/// A PreReg group `name` accumulating section `section` into writers.
pub fn group(name: &str, section: &str, acc: &str, writer: &str) -> String {
    format!(
        "[{name}]\nlisten_server = \"{section}\"\ndefault_backend = \"{section}\"\n[[{name}.map]]\nnoop = \"true\"\n\
         [{name}.accumulator]\nbackend = \"BLACKHOLE\"\ninput_format = \"statsd\"\noutput_format = \"graphite\"\n\
         {acc}\n[{name}.accumulator.writer]\n{writer}\n"
    )
}

/// A unique name for one test's tables or keyspace.
pub fn unique(prefix: &str) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    format!("{prefix}_{}_{t}_{n}", std::process::id())
}
