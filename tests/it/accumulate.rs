//! PreReg routing, accumulators through the relay, the loopback topology, and the final flush on SIGTERM.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use serde_json::Value;

use crate::sink::Sink;
use crate::{send_tcp, start_with_prereg, tcp_addr, wait_until};

const LONG: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prereg_rejects_and_redirects_before_anything_else() {
    let (own, other) = (Sink::tcp().await, Sink::tcp().await);
    let relay = start_with_prereg(
        &format!(
            "[default]\ninternal_health_server_listen = \"127.0.0.1:0\"\n\
             [in]\nlisten = \"tcp://127.0.0.1:0\"\nmsg_type = \"graphite\"\n[[in.servers]]\nservers = [\"{}\"]\n\
             [other]\nlisten = \"backend_only\"\nmsg_type = \"graphite\"\n[[other.servers]]\nservers = [\"{}\"]\n",
            own.url(),
            other.url()
        ),
        "[g]\nlisten_server = \"in\"\ndefault_backend = \"in\"\n\
         [[g.map]]\nsubstring = \".bad.\"\nreject = true\n\
         [[g.map]]\nprefix = \"redir.\"\nbackend = \"other\"\n\
         [[g.map]]\nregex = '^re\\.[0-9]+$'\nbackend = \"other\"\n\
         [[g.map]]\nnoop = \"true\"\n",
    )
    .await;
    let mut lines = Vec::new();
    for i in 0..300 {
        lines.push(format!("keep.k{i} 1 1700000000"));
        lines.push(format!("x.bad.k{i} 1 1700000000"));
        lines.push(format!("redir.k{i} 1 1700000000"));
        lines.push(format!("redir.bad.k{i} 1 1700000000")); // the reject rule comes first
        lines.push(format!("re.{i} 1 1700000000"));
    }
    send_tcp(tcp_addr(&relay, "in"), &lines).await;
    wait_until("kept and redirected lines", LONG, || {
        own.count() >= 300 && other.count() >= 600
    })
    .await;
    let section = relay.section("in").expect("section").clone();
    wait_until("all lines counted", LONG, || {
        section.stats.valid_lines.load(Relaxed) >= 1_500
    })
    .await;
    assert!(
        own.lines().iter().all(|l| l.starts_with("keep.")),
        "only kept lines on the own ring"
    );
    assert!(
        other
            .lines()
            .iter()
            .all(|l| l.starts_with("redir.k") || l.starts_with("re.")),
        "redirected, never rejected"
    );
    assert_eq!((own.count(), other.count()), (300, 600));
    assert_eq!(section.stats.rejected_lines.load(Relaxed), 600);
    assert_eq!(section.stats.redirected_lines.load(Relaxed), 600);

    let base = format!("http://{}", relay.admin_addr().expect("admin"));
    let stats: Value = serde_json::from_str(
        &reqwest::get(format!("{base}/stats"))
            .await
            .expect("GET")
            .text()
            .await
            .expect("body"),
    )
    .expect("JSON");
    assert_eq!(stats["in"]["rejected_lines_count"], 600);
    assert_eq!(stats["in"]["redirected_lines_count"], 600);
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .expect("GET")
        .text()
        .await
        .expect("body");
    assert!(
        metrics.contains("consthash_lines_rejected_total{section=\"in\"} 600"),
        "{metrics}"
    );
    assert!(
        metrics.contains("consthash_lines_redirected_total{section=\"in\",backend=\"other\"} 600"),
        "{metrics}"
    );
    relay.shutdown().await;
}

/// Sums `stats.counters.<key>.count` values per key from graphite lines.
fn counter_totals(lines: &[String]) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    for l in lines {
        let mut f = l.split(' ');
        let (Some(name), Some(v)) = (f.next(), f.next()) else {
            continue;
        };
        if let Some(key) = name
            .strip_prefix("stats.counters.")
            .and_then(|n| n.strip_suffix(".count"))
        {
            *out.entry(key.to_string()).or_insert(0.0) += v.parse::<f64>().expect("value");
        }
    }
    out
}

fn loopback_config(name: &str, acc_listen: &str, peers: &[String], out: &Sink) -> String {
    format!(
        "[default]\nhasher_algo = \"md5\"\nhasher_vnodes = 100\n\
         [hash-in]\nlisten = \"tcp://127.0.0.1:0\"\nmsg_type = \"statsd\"\n[[hash-in.servers]]\nservers = [{}]\n\
         [accumulate]\nlisten = \"{acc_listen}\"\nmsg_type = \"statsd\"\n[[accumulate.servers]]\nservers = [\"{}\"]\n\
         [graphite-out]\nlisten = \"backend_only\"\nmsg_type = \"graphite\"\n[[graphite-out.servers]]\nservers = [\"{}\"]\n\
         # {name}\n",
        peers.iter().map(|p| format!("\"{p}\"")).collect::<Vec<_>>().join(", "),
        out.url(),
        out.url()
    )
}

const LOOPBACK_PREREG: &str =
    "[acc]\nlisten_server = \"accumulate\"\ndefault_backend = \"accumulate\"\n[[acc.map]]\nnoop = \"true\"\n\
    [acc.accumulator]\nbackend = \"graphite-out\"\ninput_format = \"statsd\"\noutput_format = \"graphite\"\n\
    accumulate_flush = \"1s\"\noptions = [[\"legacyNamespace\", \"false\"]]\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_every_key_is_accumulated_by_exactly_one_accumulator() {
    let ports = [free_port(), free_port()];
    let peers: Vec<String> = ports.iter().map(|p| format!("tcp://127.0.0.1:{p}")).collect();
    let (out_a, out_b) = (Sink::tcp().await, Sink::tcp().await);
    let a = start_with_prereg(
        &loopback_config("a", &format!("tcp://127.0.0.1:{}", ports[0]), &peers, &out_a),
        LOOPBACK_PREREG,
    )
    .await;
    let b = start_with_prereg(
        &loopback_config("b", &format!("tcp://127.0.0.1:{}", ports[1]), &peers, &out_b),
        LOOPBACK_PREREG,
    )
    .await;
    let keys = 200;
    let per_process = 10_000;
    let mut sent: HashMap<String, f64> = HashMap::new();
    for (relay, tag) in [(&a, "a"), (&b, "b")] {
        let lines: Vec<String> = (0..per_process)
            .map(|i| format!("loop.key{}:{}|c", i % keys, 1 + i % 3))
            .collect();
        for (i, _) in lines.iter().enumerate() {
            *sent.entry(format!("loop.key{}", i % keys)).or_default() += (1 + i % 3) as f64;
        }
        send_tcp(tcp_addr(relay, "hash-in"), &lines).await;
        let _ = tag;
    }
    let (acc_a, acc_b) = (
        a.section("accumulate").expect("a").clone(),
        b.section("accumulate").expect("b").clone(),
    );
    wait_until("every line at an accumulator", LONG, || {
        acc_a.stats.accumulated_lines.load(Relaxed) + acc_b.stats.accumulated_lines.load(Relaxed)
            >= 2 * per_process as u64
    })
    .await;
    a.shutdown().await; // final flushes
    b.shutdown().await;
    // the sinks read what the final flushes wrote
    let merged = || {
        let mut all = counter_totals(&out_a.lines());
        all.extend(counter_totals(&out_b.lines()));
        all
    };
    wait_until("every key's total at a sink", LONG, || merged() == sent).await;
    let (ta, tb) = (counter_totals(&out_a.lines()), counter_totals(&out_b.lines()));
    assert!(!ta.is_empty() && !tb.is_empty(), "both accumulators own some keys");
    for k in ta.keys() {
        assert!(!tb.contains_key(k), "{k} was emitted by both accumulators");
    }
    assert_eq!(ta.len() + tb.len(), keys, "every key flushed by one accumulator");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}
