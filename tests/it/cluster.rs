//! `examples/cluster/start.sh` / `stop.sh` with the real binary (issue 14): a 4-node, replica-factor-2 cluster on
//! the loopback topology, statsd counters sent through every node, each key aggregated by exactly 2 nodes with
//! the exact total, `/placement` identical on every node, `add-node.sh` growing it to 5 nodes live; and a node
//! killed: the others move its keys off it once their health checks see it down, and take them back when it
//! is restarted.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::cluster_scripts::Cluster;
use crate::{get_body, wait_for, wait_until};

const NODES: usize = 4;
const KEYS: usize = 1000;
const LONG: Duration = Duration::from_secs(60);

/// Per node (index 0 = node 1), per key: the summed counts of its file writer's records.
fn records(c: &Cluster) -> Vec<BTreeMap<String, f64>> {
    (1..=c.nodes)
        .map(|i| {
            let text = std::fs::read_to_string(c.dir.join(format!("node{i}/stats_1s"))).unwrap_or_default();
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

/// Sends counter `<prefix><k>:<n>|c` for every key through the statsd ingest of each node `n` of `through`.
fn send_counters(c: &Cluster, prefix: &str, through: &[usize]) {
    let u = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    for &n in through {
        for chunk in (0..KEYS).collect::<Vec<_>>().chunks(50) {
            let dgram: String = chunk.iter().map(|k| format!("{prefix}{k}:{n}|c\n")).collect();
            u.send_to(dgram.as_bytes(), ("127.0.0.1", c.port(n, 4))).expect("send");
        }
    }
}

/// The `/placement` answer of every node of `nodes`.
async fn placements(c: &Cluster, nodes: impl Iterator<Item = usize>) -> Vec<String> {
    let mut answers = Vec::new();
    for n in nodes {
        answers.push(get_body(c.admin(n, "/placement")).await);
    }
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_four_node_cluster_aggregates_every_key_on_exactly_two_nodes_with_the_exact_total() {
    let c = Cluster::new(NODES, 2, "1s", &[]);
    let table = c.script("start.sh");
    assert!(table.contains("every node places keys alike"), "{table}");
    // Again: idempotent, the running nodes are left alone.
    assert_eq!(c.script("start.sh").matches("already running").count(), NODES);

    // Counter key k gets 1 from node 1's ingest, 2 from node 2's, … : a total of 10 whichever nodes hold it.
    send_counters(&c, "cluster.key", &[1, 2, 3, 4]);
    wait_until("every key's total stored by two nodes", LONG, || {
        let r = records(&c);
        (0..KEYS).all(|k| {
            let key = format!("cluster.key{k}");
            r.iter().filter(|n| n.get(&key) == Some(&10.0)).count() == 2
        })
    })
    .await;
    let r = records(&c);
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
    let answers = placements(&c, 1..=NODES).await;
    assert!(
        answers.iter().all(|a| *a == answers[0]),
        "placement differs between nodes"
    );
    let p: serde_json::Value = serde_json::from_str(&answers[0]).expect("JSON");
    assert_eq!(p["statsd-in"]["replica_factor"], 2);
    assert_eq!(p["statsd-in"]["rings"][0].as_array().map(Vec::len), Some(NODES));

    // add-node.sh: node 5 joins every ring live; all five nodes then answer the same placement.
    let added = c.script("add-node.sh");
    assert!(
        added.contains("\"dry_run\":true") && added.contains("node 5 added"),
        "{added}"
    );
    let answers = placements(&c, 1..=NODES + 1).await;
    assert!(
        answers.iter().all(|a| *a == answers[0]),
        "placement differs after add-node.sh"
    );
    let p: serde_json::Value = serde_json::from_str(&answers[0]).expect("JSON");
    assert_eq!(p["statsd-in"]["rings"][0].as_array().map(Vec::len), Some(NODES + 1));
    let stopped = c.script("stop.sh");
    assert!(stopped.contains("stopped 5 node(s)"), "{stopped}");
    assert!((1..=NODES + 1).all(|i| !c.running(i)), "stop.sh stopped every node");
}

/// Whether a `/placement` answer shows, in every ring of both ingest sections, the members listening on
/// `dead_ports` as `up` (or down when `up` is false) and every other member up.
fn sees(answer: &str, dead_ports: &[u16], up: bool) -> bool {
    let p: serde_json::Value = serde_json::from_str(answer).expect("JSON");
    ["graphite-in", "statsd-in"].iter().all(|s| {
        p[s]["rings"].as_array().is_some_and(|rings| {
            rings.iter().flat_map(|r| r.as_array().into_iter().flatten()).all(|m| {
                let url = m["url"].as_str().unwrap_or_default();
                let of_dead = dead_ports.iter().any(|p| url.ends_with(&format!(":{p}")));
                m["up"] == (up || !of_dead)
            })
        })
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_s_keys_move_to_the_others_and_come_back_when_it_restarts() {
    let c = Cluster::new(NODES, 2, "1s", &[]);
    c.script("start.sh");
    let original = placements(&c, 1..=NODES).await;
    assert!(original.iter().all(|a| *a == original[0]), "one placement");
    let hashcheck = |n: usize| get_body(c.admin(n, "/hashcheck?key=cluster.kill.key7"));
    let original_hash = hashcheck(1).await;

    // Node 4 crashes: the other three see it down after their health checks (2 s apart, 2 failures).
    c.kill(4);
    let dead = [c.port(4, 5), c.port(4, 6)];
    wait_for("nodes 1-3 see node 4 down", LONG, || async {
        let answers = placements(&c, 1..NODES).await;
        if answers.iter().all(|a| sees(a, &dead, false)) {
            Ok(())
        } else {
            Err(answers)
        }
    })
    .await;
    // Through nodes 1, 2 and 3: a total of 6 per key, stored by the nodes that hold the key now, each exact.
    send_counters(&c, "cluster.kill.key", &[1, 2, 3]);
    wait_until("every key's total stored by a live node", LONG, || {
        let r = records(&c);
        (0..KEYS).all(|k| {
            let key = format!("cluster.kill.key{k}");
            r[..NODES - 1].iter().filter(|n| n.get(&key) == Some(&6.0)).count() == 2
        })
    })
    .await;
    let r = records(&c);
    for k in 0..KEYS {
        let key = format!("cluster.kill.key{k}");
        let holders: Vec<f64> = r.iter().filter_map(|n| n.get(&key).copied()).collect();
        assert_eq!(
            holders,
            vec![6.0, 6.0],
            "{key}: the live replicas hold it, each with the total, and node 4 nothing"
        );
    }

    // Restarted (start.sh leaves the running nodes alone): every node places keys as before the crash.
    let again = c.script("start.sh");
    assert_eq!(again.matches("already running").count(), NODES - 1, "{again}");
    wait_for("every node sees node 4 up again", LONG, || async {
        let answers = placements(&c, 1..=NODES).await;
        if answers.iter().all(|a| *a == original[0]) {
            Ok(())
        } else {
            Err(answers)
        }
    })
    .await;
    for n in 1..=NODES {
        assert_eq!(hashcheck(n).await, original_hash, "node {n} places a key as before");
    }
    send_counters(&c, "cluster.back.key", &[1, 2, 3, 4]);
    wait_until("every key's total stored by two nodes again", LONG, || {
        let r = records(&c);
        (0..KEYS).all(|k| {
            let key = format!("cluster.back.key{k}");
            r.iter().filter(|n| n.get(&key) == Some(&10.0)).count() == 2
        })
    })
    .await;
    let r = records(&c);
    assert!(
        r[NODES - 1].keys().filter(|k| k.starts_with("cluster.back.")).count() > KEYS / 4,
        "node 4 holds its share again"
    );
}
