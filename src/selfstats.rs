//! Self-stats to a statsd server (spec §13.1): every `statsd_interval` the relay sends the change of its
//! counters since the last flush (`name:delta|c`) and its gauges (`name:value|g`) over UDP, named
//! `<statsd_prefix>.<hostname>.<name>` (no leading dot when the prefix is empty). Counters are sent as exact
//! per-interval totals, so `statsd_sample_rate` has nothing to sample. Lines are packed into datagrams of at most
//! `DATAGRAM` bytes.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::section::{Section, Sections};
use crate::telemetry::{DropReason, InvalidReason, Kind, DEST_STATS, SECTION_STATS};

const DATAGRAM: usize = 1400;

/// A destination URL or section name as a metric path segment: `:` → `-`, `/` removed, `.` → `-`.
pub fn clean(s: &str) -> String {
    s.chars()
        .filter(|c| *c != '/')
        .map(|c| if c == ':' || c == '.' { '-' } else { c })
        .collect()
}

/// The name prefix: `<prefix>.<hostname>.`, or `<hostname>.` for an empty prefix.
pub fn name_prefix(prefix: &str) -> String {
    let host = hostname();
    if prefix.is_empty() {
        format!("{host}.")
    } else {
        format!("{prefix}.{host}.")
    }
}

fn hostname() -> String {
    let uname = rustix::system::uname();
    match uname.nodename().to_bytes() {
        b"" => "localhost".into(),
        name => clean(&String::from_utf8_lossy(name)),
    }
}

/// Counters (cumulative) and gauges of every section, by metric name: the self-stats names of
/// [`SECTION_STATS`] and [`DEST_STATS`], plus invalid lines by reason, drops by reason and queue depths.
pub fn snapshot(sections: &[Arc<Section>]) -> (HashMap<String, u64>, HashMap<String, u64>) {
    let (mut c, mut g) = (HashMap::new(), HashMap::new());
    let mut add = |kind: Kind, k: String, v: u64| {
        let m = if kind == Kind::Counter { &mut c } else { &mut g };
        *m.entry(k).or_insert(0) += v;
    };
    for s in sections {
        let st = &s.stats;
        let proto = s.listening.split_once("://").map_or("backend", |(p, _)| p);
        let section = clean(&s.name);
        for stat in SECTION_STATS {
            for name in stat.selfstat {
                let name = name.replace("{proto}", proto).replace("{section}", &section);
                add(stat.kind, name, (stat.read)(st));
            }
        }
        for (i, reason) in InvalidReason::LABELS.iter().enumerate() {
            add(
                Kind::Counter,
                format!("{section}.invalid.{reason}"),
                st.invalid_lines[i].load(Relaxed),
            );
        }
        let up: usize = s.backend.load().rings.iter().map(|r| r.members()).sum();
        add(Kind::Gauge, "hasher.up-servers".into(), up as u64);
        for d in s.backend.destinations() {
            let dest = clean(&d.url.raw);
            for stat in DEST_STATS {
                for name in stat.selfstat {
                    add(stat.kind, name.replace("{dest}", &dest), (stat.read)(&d.stats));
                }
            }
            for r in DropReason::ALL {
                add(
                    Kind::Counter,
                    format!("failed.dropped.{dest}.{}", r.label()),
                    d.stats.dropped(r),
                );
            }
            add(Kind::Gauge, format!("outqueue.{dest}.length"), d.queue.depth().0 as u64);
        }
    }
    (c, g)
}

/// The lines of one flush: counter deltas since `last` (zero deltas skipped) and every gauge.
pub fn lines(
    prefix: &str,
    counters: &HashMap<String, u64>,
    gauges: &HashMap<String, u64>,
    last: &HashMap<String, u64>,
) -> Vec<String> {
    let mut out = Vec::new();
    let mut names: Vec<&String> = counters.keys().collect();
    names.sort();
    for k in names {
        let delta = counters[k].saturating_sub(last.get(k).copied().unwrap_or(0));
        if delta > 0 {
            out.push(format!("{prefix}{k}:{delta}|c"));
        }
    }
    let mut names: Vec<&String> = gauges.keys().collect();
    names.sort();
    for k in names {
        out.push(format!("{prefix}{}:{}|g", k, gauges[k]));
    }
    out
}

/// Flushes every `interval` to `server` until `stop` (a last flush then).
pub async fn run(server: String, prefix: String, interval: Duration, sections: Sections, stop: CancellationToken) {
    let sock = match tokio::net::UdpSocket::bind("0.0.0.0:0").await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "self-stats: cannot open a UDP socket; no statsd self-stats");
            return;
        }
    };
    let prefix = name_prefix(&prefix);
    let mut last = HashMap::new();
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    loop {
        let stopping = tokio::select! {
            _ = tick.tick() => false,
            _ = stop.cancelled() => true,
        };
        let (counters, gauges) = snapshot(&sections.load());
        let mut datagram = String::new();
        for line in lines(&prefix, &counters, &gauges, &last) {
            if !datagram.is_empty() && datagram.len() + line.len() + 1 > DATAGRAM {
                send(&sock, &server, &datagram).await;
                datagram.clear();
            }
            datagram.push_str(&line);
            datagram.push('\n');
        }
        if !datagram.is_empty() {
            send(&sock, &server, &datagram).await;
        }
        last = counters;
        if stopping {
            return;
        }
    }
}

async fn send(sock: &tokio::net::UdpSocket, server: &str, datagram: &str) {
    if let Err(e) = sock.send_to(datagram.as_bytes(), server).await {
        tracing::debug!(error = %e, server, "self-stats send failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_cleaned() {
        assert_eq!(clean("tcp://10.0.0.1:2003"), "tcp-10-0-0-1-2003");
        assert_eq!(clean("unix:///run/x.sock"), "unix-runx-sock");
    }

    #[test]
    fn the_host_name_is_the_kernels() {
        let kernel = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
        assert_eq!(hostname(), clean(kernel.trim()));
    }

    #[test]
    fn counter_deltas_and_gauges() {
        let c: HashMap<String, u64> = [("a".to_string(), 10), ("b".to_string(), 5)].into();
        let g: HashMap<String, u64> = [("q".to_string(), 3)].into();
        let last: HashMap<String, u64> = [("a".to_string(), 4), ("b".to_string(), 5)].into();
        assert_eq!(lines("p.h.", &c, &g, &last), ["p.h.a:6|c", "p.h.q:3|g"]);
    }
}
