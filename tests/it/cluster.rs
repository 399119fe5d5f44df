//! `examples/cluster/start.sh` / `stop.sh` with the real binary (issue 14): a 4-node, replica-factor-2 cluster on
//! the loopback topology, statsd counters sent through every node, each key aggregated by exactly 2 nodes with
//! the exact total, `/placement` identical on every node, and `add-node.sh` growing it to 5 nodes live.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::binary::BIN;
use crate::{get_body, wait_until};

const NODES: usize = 4;
const KEYS: usize = 1000;

/// A base port with the ports of the cluster (and of a fifth node) above it free a moment ago, below the
/// kernel's ephemeral range (from 32768), so that the port-0 binds of tests running meanwhile cannot take them.
fn free_base() -> u16 {
    for _ in 0..100 {
        // spread by the ephemeral port the kernel hands out, so that concurrent runs pick different bases
        let base = 20_000 + crate::binary::free_port() % 12_000 / 10 * 10;
        let all_free = (1..=(NODES as u16 + 1) * 10).all(|o| {
            std::net::TcpListener::bind(("127.0.0.1", base + o)).is_ok()
                && std::net::UdpSocket::bind(("127.0.0.1", base + o)).is_ok()
        });
        if base > 1024 && all_free {
            return base;
        }
    }
    panic!("no 50 free ports in a row");
}

/// Runs one of the cluster scripts with the test's settings; its output on failure.
fn script(name: &str, dir: &Path, base: u16) -> String {
    let out = Command::new("bash")
        .arg(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("examples/cluster")
                .join(name),
        )
        .env("CONSTHASH_CLUSTER_DIR", dir)
        .env("CONSTHASH_BASE_PORT", base.to_string())
        .env("CONSTHASH_NODE_COUNT", NODES.to_string())
        .env("CONSTHASH_REPLICA_FACTOR", "2")
        .env("CONSTHASH_FLUSH", "1s")
        .env("CONSTHASH_BIN", BIN)
        .output()
        .expect("run the script");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{name} failed:\n{text}");
    text
}

/// Stops the cluster when the test ends, failed or not.
struct Cluster {
    dir: PathBuf,
    base: u16,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/cluster/stop.sh"))
            .env("CONSTHASH_CLUSTER_DIR", &self.dir)
            .env("CONSTHASH_BASE_PORT", self.base.to_string())
            .status();
    }
}

/// Per node, per key: the summed counts of its file writer's records.
fn records(dir: &Path) -> Vec<BTreeMap<String, f64>> {
    (1..=NODES)
        .map(|i| {
            let text = std::fs::read_to_string(dir.join(format!("node{i}/stats_1s"))).unwrap_or_default();
            let mut sums = BTreeMap::new();
            for line in text.lines() {
                let cols: Vec<&str> = line.split('\t').collect();
                if let [key, sum, ..] = cols[..] {
                    *sums.entry(key.to_string()).or_insert(0.0) += sum.parse::<f64>().expect("sum");
                }
            }
            sums
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_four_node_cluster_aggregates_every_key_on_exactly_two_nodes_with_the_exact_total() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("cluster");
    let base = free_base();
    let table = script("start.sh", &dir, base);
    let cluster = Cluster { dir: dir.clone(), base };
    assert!(table.contains("every node places keys alike"), "{table}");
    // Again: idempotent, the running nodes are left alone.
    assert_eq!(script("start.sh", &dir, base).matches("already running").count(), NODES);

    // Counter key k gets 1 from node 1's ingest, 2 from node 2's, … : a total of 10 whichever nodes hold it.
    let u = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    for n in 0..NODES {
        for chunk in (0..KEYS).collect::<Vec<_>>().chunks(50) {
            let dgram: String = chunk.iter().map(|k| format!("cluster.key{k}:{}|c\n", n + 1)).collect();
            u.send_to(dgram.as_bytes(), ("127.0.0.1", base + 10 * n as u16 + 4))
                .expect("send");
        }
    }
    wait_until("every key's total stored by two nodes", Duration::from_secs(60), || {
        let r = records(&dir);
        (0..KEYS).all(|k| {
            let key = format!("cluster.key{k}");
            r.iter().filter(|n| n.get(&key) == Some(&10.0)).count() == 2
        })
    })
    .await;
    let r = records(&dir);
    for k in 0..KEYS {
        let key = format!("cluster.key{k}");
        let holders: Vec<f64> = r.iter().filter_map(|n| n.get(&key).copied()).collect();
        assert_eq!(
            holders,
            vec![10.0, 10.0],
            "{key}: exactly two nodes, each with the total"
        );
    }
    for (i, n) in r.iter().enumerate() {
        assert!(
            n.len() > KEYS / 4,
            "node {} holds {} keys: the keys spread",
            i + 1,
            n.len()
        );
    }

    // Every node gives the same /placement.
    let mut answers = Vec::new();
    for n in 0..NODES {
        answers.push(get_body(format!("http://127.0.0.1:{}/placement", base + 10 * n as u16 + 1)).await);
    }
    assert!(
        answers.iter().all(|a| *a == answers[0]),
        "placement differs between nodes"
    );
    let p: serde_json::Value = serde_json::from_str(&answers[0]).expect("JSON");
    assert_eq!(p["statsd-in"]["replica_factor"], 2);
    assert_eq!(p["statsd-in"]["rings"][0].as_array().map(Vec::len), Some(NODES));

    // add-node.sh: node 5 joins every ring live; all five nodes then answer the same placement.
    let added = script("add-node.sh", &dir, base);
    assert!(
        added.contains("\"dry_run\":true") && added.contains("node 5 added"),
        "{added}"
    );
    let mut answers = Vec::new();
    for n in 0..=NODES {
        answers.push(get_body(format!("http://127.0.0.1:{}/placement", base + 10 * n as u16 + 1)).await);
    }
    assert!(
        answers.iter().all(|a| *a == answers[0]),
        "placement differs after add-node.sh"
    );
    let p: serde_json::Value = serde_json::from_str(&answers[0]).expect("JSON");
    assert_eq!(p["statsd-in"]["rings"][0].as_array().map(Vec::len), Some(NODES + 1));
    drop(cluster);
    assert!(
        (1..=NODES + 1).all(|i| !dir.join(format!("node{i}/pid")).exists()
            || std::fs::read_to_string(dir.join(format!("node{i}/pid")))
                .ok()
                .and_then(|p| p.trim().parse::<i32>().ok())
                .is_some_and(|p| !Path::new(&format!("/proc/{p}")).exists())),
        "stop.sh stopped every node"
    );
}
