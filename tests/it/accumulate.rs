//! PreReg routing, accumulators through the relay, the loopback topology, and the final flush on SIGTERM.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use serde_json::Value;

use crate::binary::{free_port, wait_listening, Running, BIN};
use crate::sink::Sink;
use crate::{metric_value, send_tcp, start_with_prereg, tcp_addr, wait_until};

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
    let stats: Value = serde_json::from_str(&crate::get_body(format!("{base}/stats")).await).expect("JSON");
    assert_eq!(stats["in"]["rejected_lines_count"], 600);
    assert_eq!(stats["in"]["redirected_lines_count"], 600);
    let metrics = crate::get_body(format!("{base}/metrics")).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_flushes_everything_accumulated_to_the_backend_and_the_writers() {
    let carbon = Sink::tcp().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (port, admin) = (free_port(), free_port());
    let config = dir.path().join("relay.toml");
    let prereg = dir.path().join("prereg.toml");
    std::fs::write(
        &config,
        format!(
            "[default]\ninternal_health_server_listen = \"127.0.0.1:{admin}\"\n\
             [statsd-in]\nlisten = \"tcp://127.0.0.1:{port}\"\nmsg_type = \"statsd\"\n\
             [[statsd-in.servers]]\nservers = [\"tcp://127.0.0.1:9\"]\n\
             [carbon]\nlisten = \"backend_only\"\nmsg_type = \"graphite\"\n[[carbon.servers]]\nservers = [\"{}\"]\n",
            carbon.url()
        ),
    )
    .expect("config");
    std::fs::write(
        &prereg,
        format!(
            "[g]\nlisten_server = \"statsd-in\"\ndefault_backend = \"statsd-in\"\n[[g.map]]\nnoop = \"true\"\n\
             [g.accumulator]\nbackend = \"carbon\"\ninput_format = \"statsd\"\noutput_format = \"graphite\"\n\
             accumulate_flush = \"1h\"\n[g.accumulator.writer]\nmetrics = {{ driver = \"file\", dsn = \"{}\" }}\n",
            dir.path().join("stats").display()
        ),
    )
    .expect("prereg");
    let mut child = Running::spawn(std::process::Command::new(BIN).args([
        "--config",
        &config.to_string_lossy(),
        "--prereg",
        &prereg.to_string_lossy(),
    ]));
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    wait_listening(addr).await;
    let lines: Vec<String> = (0..1_000)
        .map(|i| format!("term.key{}:{}|c", i % 10, 1 + i % 2))
        .collect();
    send_tcp(addr, &lines).await;
    // nothing flushes for an hour: the un-flushed state shows in /<s>/accumulator
    let url = format!("http://127.0.0.1:{admin}/statsd-in/accumulator");
    let mut state = Value::Null;
    let deadline = std::time::Instant::now() + LONG;
    let key0_sum = |state: &Value| {
        state["stats"]
            .as_array()
            .and_then(|a| a.iter().find(|s| s["key"] == "term.key0"))
            .map(|s| s["sum"].clone())
    };
    while state["stats"].as_array().map_or(0, Vec::len) < 10 || key0_sum(&state) != Some(Value::from(100.0)) {
        assert!(
            std::time::Instant::now() < deadline,
            "accumulator state never showed: {state}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        if let Ok(r) = reqwest::get(&url).await {
            state = serde_json::from_str(&r.text().await.unwrap_or_default()).unwrap_or(Value::Null);
        }
    }
    let key0 = state["stats"]
        .as_array()
        .expect("stats")
        .iter()
        .find(|s| s["key"] == "term.key0")
        .expect("term.key0");
    assert_eq!(key0["stat_key"], "term.key0|c");
    assert_eq!(key0["count"], 100);
    assert_eq!(carbon.count(), 0, "nothing flushed yet");

    child.signal(rustix::process::Signal::TERM);
    assert_eq!(child.exit("after SIGTERM").await.code(), Some(0));
    wait_until("the final flush at carbon", LONG, || {
        counter_totals_legacy(&carbon.lines()).len() == 10
    })
    .await;
    let totals = counter_totals_legacy(&carbon.lines());
    assert_eq!((totals["term.key0"], totals["term.key1"]), (100.0, 200.0));
    assert_eq!(
        totals.values().sum::<f64>(),
        1_500.0,
        "every accumulated sample was flushed"
    );
    let rows = std::fs::read_to_string(dir.path().join("stats_3600s")).expect("bin file");
    assert_eq!(rows.lines().count(), 10, "one row per key in the hour bin: {rows}");
    assert!(rows.lines().any(|l| l.starts_with("term.key0\t100.000000\t")), "{rows}");
}

/// Sums `stats_counts.<key>` values (statsd's legacy namespace) per key.
fn counter_totals_legacy(lines: &[String]) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    for l in lines {
        let mut f = l.split(' ');
        if let (Some(Some(key)), Some(v)) = (f.next().map(|n| n.strip_prefix("stats_counts.")), f.next()) {
            *out.entry(key.to_string()).or_insert(0.0) += v.parse::<f64>().expect("value");
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accumulator_holds_at_most_max_keys_and_counts_what_it_drops() {
    let carbon = Sink::tcp().await;
    let relay = start_with_prereg(
        &format!(
            "[default]\ninternal_health_server_listen = \"127.0.0.1:0\"\n\
             [statsd-in]\nlisten = \"tcp://127.0.0.1:0\"\nmsg_type = \"statsd\"\n\
             [[statsd-in.servers]]\nservers = [\"tcp://127.0.0.1:9\"]\n\
             [carbon]\nlisten = \"backend_only\"\nmsg_type = \"graphite\"\n[[carbon.servers]]\nservers = [\"{}\"]\n",
            carbon.url()
        ),
        "[g]\nlisten_server = \"statsd-in\"\ndefault_backend = \"statsd-in\"\n[[g.map]]\nnoop = \"true\"\n\
         [g.accumulator]\nbackend = \"carbon\"\ninput_format = \"statsd\"\noutput_format = \"graphite\"\n\
         accumulate_flush = \"1h\"\nmax_keys = 3\n",
    )
    .await;
    let lines: Vec<String> = (0..10)
        .map(|i| format!("capped.key{i}:1|c"))
        .chain(["bad:x|c".into()])
        .collect();
    send_tcp(tcp_addr(&relay, "statsd-in"), &lines).await;
    let base = format!("http://{}", relay.admin_addr().expect("admin"));
    let deadline = std::time::Instant::now() + LONG;
    let body = loop {
        let body = crate::get_body(format!("{base}/metrics")).await;
        if metric_value(&body, "consthash_accumulator_max_keys_dropped_total{") == Some(7) {
            break body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the accumulator never folded every line:\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(metric_value(&body, "consthash_accumulator_keys{"), Some(3), "{body}");
    assert_eq!(
        metric_value(&body, "consthash_accumulator_invalid_samples_total{"),
        Some(1),
        "{body}"
    );
    relay.shutdown().await;
}
