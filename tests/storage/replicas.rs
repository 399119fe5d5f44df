//! Replicated accumulators in Cassandra (issue 14 item 4): a 4-node cluster with replica factor 2 from
//! `examples/cluster/start.sh`, every node writing to the real Cassandra. Both replicas of a key accumulate every
//! line of it and flush the same bins; a row is an upsert keyed by (path, resolution, time), so the two flushes of
//! a bin land in one row. The replicas' own flushes, read by a sink from their graphite output, show how often
//! they differ: a line that reaches one replica before a tick and the other after it is counted in neighbouring
//! bins by the two (the boundary effect), and that bin's row then holds whichever write came last. The test
//! sends a round of lines every 100 ms across two ticks: most runs have no round in flight at a tick and every
//! key agrees; when a tick falls inside a round, most keys differ by that round's line between two bins.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::cluster_scripts::Cluster;
use crate::sink::Sink;
use crate::store::Db;
use crate::{services, unique, wait_for, wait_until, LONG};

const NODES: usize = 4;
const KEYS: usize = 300;
const ROUNDS: usize = 40;
/// Per key: node n's ingest adds n in every round.
const TOTAL: f64 = (ROUNDS * NODES * (NODES + 1) / 2) as f64;

/// The replicas' flushes of our keys as the sink read them: per (key, tick), the values emitted.
fn emitted(sink: &Sink) -> BTreeMap<(String, i64), Vec<f64>> {
    let mut out: BTreeMap<(String, i64), Vec<f64>> = BTreeMap::new();
    for line in sink.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        if let [name, value, time] = f[..] {
            if let Some(key) = name.strip_prefix("stats_counts.") {
                if key.starts_with("replica.key") {
                    let t = time.parse().expect("tick");
                    out.entry((key.to_string(), t))
                        .or_default()
                        .push(value.parse().expect("value"));
                }
            }
        }
    }
    out
}

/// The sum over every node of the samples of `family` in its `/metrics`.
async fn summed(c: &Cluster, family: &str) -> u64 {
    let mut total = 0;
    for n in 1..=NODES {
        let body = reqwest::get(c.admin(n, "/metrics"))
            .await
            .expect("GET")
            .text()
            .await
            .expect("body");
        total += body
            .lines()
            .filter(|l| l.starts_with(family) && l[family.len()..].starts_with(['{', ' ']))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum::<u64>();
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_flush_the_same_bins_into_one_row_per_key_and_time() {
    let addr = services::cassandra();
    let keyspace = unique("replicas");
    let sink = Sink::tcp().await;
    let out = sink.url();
    let c = Cluster::new(
        NODES,
        2,
        "2s",
        &[
            ("CONSTHASH_CASSANDRA", addr),
            ("CONSTHASH_CASSANDRA_KEYSPACE", &keyspace),
            ("CONSTHASH_OUTPUT", &out),
        ],
    );
    c.script("start.sh");

    // Rounds of counters through every node, paced over two flushes (the pause paces the load; nothing waits on
    // it), so that lines are in flight at every tick.
    let u = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    for _ in 0..ROUNDS {
        for n in 1..=NODES {
            for chunk in (0..KEYS).collect::<Vec<_>>().chunks(50) {
                let dgram: String = chunk.iter().map(|k| format!("replica.key{k}:{n}|c\n")).collect();
                u.send_to(dgram.as_bytes(), ("127.0.0.1", c.port(n, 4))).expect("send");
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Each replica counts every line once: the two replicas' flushes of a key add up to twice its total.
    wait_until("both replicas flushed every line", LONG, || {
        let mut per_key: BTreeMap<String, f64> = BTreeMap::new();
        for ((k, _), vs) in emitted(&sink) {
            *per_key.entry(k).or_default() += vs.iter().sum::<f64>();
        }
        per_key.len() == KEYS && per_key.values().all(|s| *s == 2.0 * TOTAL)
    })
    .await;
    let flushes = emitted(&sink);
    let records: u64 = flushes.values().map(|v| v.len() as u64).sum();
    // ... and every node's writer has stored each of its records.
    wait_for("every record stored", LONG, || async {
        let (stored, queued) = (
            summed(&c, "consthash_writer_records_total").await,
            summed(&c, "consthash_writer_queued_records").await,
        );
        if stored == records && queued == 0 {
            Ok(())
        } else {
            Err((stored, queued, records))
        }
    })
    .await;

    let db = Db::cassandra(addr, &keyspace).await;
    let rows: Vec<_> = db
        .rows(2)
        .await
        .expect("read the rows")
        .into_iter()
        .filter(|r| r.key.starts_with("replica.key"))
        .collect();
    let stored: BTreeMap<(String, i64), f64> = rows.iter().map(|r| ((r.key.clone(), r.time), r.rec.sum)).collect();
    assert_eq!(stored.len(), rows.len(), "one row per (key, resolution, time)");
    assert_eq!(
        stored.keys().collect::<BTreeSet<_>>(),
        flushes.keys().collect::<BTreeSet<_>>(),
        "a row for every bin a replica flushed, and no other"
    );
    assert!(
        rows.iter().all(|r| r.ttl.is_some_and(|t| t > 0 && t <= 86_400)),
        "rows carry the bin's TTL"
    );

    // Replicas agree on a key when each of its bins was flushed by both with one value.
    let agree = |key: &str| {
        flushes
            .iter()
            .filter(|((k, _), _)| k == key)
            .all(|(_, vs)| vs.len() == 2 && vs[0] == vs[1])
    };
    let (mut differ, mut off) = (Vec::new(), Vec::new());
    for k in 0..KEYS {
        let key = format!("replica.key{k}");
        let total: f64 = stored.iter().filter(|((k, _), _)| *k == key).map(|(_, s)| s).sum();
        if agree(&key) {
            assert_eq!(
                total, TOTAL,
                "{key}: the replicas agree, so its rows hold the exact total"
            );
        } else {
            differ.push(key.clone());
            if total != TOTAL {
                off.push(key);
            }
        }
    }
    for (bin, s) in &stored {
        assert!(
            flushes[bin].contains(s),
            "{bin:?}: the row is one replica's flush of the bin ({s} of {:?})",
            flushes[bin]
        );
    }
    println!(
        "replicated accumulators: {} of {KEYS} keys flushed differently by their two replicas (a line on either \
         side of a tick); the stored total is off for {} of them: {off:?}",
        differ.len(),
        off.len()
    );
}
