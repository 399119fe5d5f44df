//! A statsd burst through the UDP listener into an accumulator with `times = ["5s:1h", "1m:2h"]` lands in each
//! store: per key and bin, sum / count / min / max / mean equal what was sent; the 1 m bin holds the merged 5 s
//! flushes and is written at SIGTERM (rows pending then are in the database afterwards); Cassandra rows carry the
//! bin's TTL; the index holds exactly the keys sent, in the §10.4 shape.

use std::collections::{BTreeMap, BTreeSet};

use crate::services;
use crate::store::{Db, Index, Row};
use crate::{burst, burst_keys, early_in_interval, send_udp, unique, wait_for, Rec, Stack, LONG};

const SPREAD: usize = 20;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(1.0)
}

fn assert_row(row: &Row, rec: &Rec, secs: i64, ttl: i64) {
    assert_eq!(row.rec, *rec, "{row:?}");
    assert!(close(row.mean, rec.mean()), "mean of {row:?}");
    assert_eq!(row.resolution, secs, "{row:?}");
    assert_eq!(row.time % secs, 0, "time on the bin's tick: {row:?}");
    if let Some(left) = row.ttl {
        assert!(left > ttl - 300 && left <= ttl, "TTL {left} of {row:?}, expected {ttl}");
    }
}

async fn a_burst_lands(db: Db, dsn: &str) {
    let keys = burst_keys(SPREAD);
    let mut stack = Stack::start(r#"times = ["5s:1h", "1m:2h"]"#, &db.writer_toml(dsn, true), "").await;
    for part in 0..2 {
        early_in_interval(5).await;
        let (lines, recs) = burst(part, SPREAD);
        send_udp(stack.statsd, &lines).await;
        let rows = wait_for(&format!("part {part} in the 5 s bin"), LONG, || async {
            let rows = db.rows(5).await?;
            let mut per_key: BTreeMap<&str, usize> = BTreeMap::new();
            for r in &rows {
                *per_key.entry(&r.key).or_default() += 1;
            }
            let done = rows.len() == keys.len() * (part + 1) && per_key.values().all(|&n| n == part + 1);
            if done {
                Ok(rows)
            } else {
                Err(format!("{} rows: {per_key:?}", rows.len()))
            }
        })
        .await;
        for key in &keys {
            let last = rows
                .iter()
                .filter(|r| &r.key == key)
                .max_by_key(|r| r.time)
                .expect("row");
            assert_row(last, &recs[key], 5, 3600);
        }
    }
    stack.child.signal(rustix::process::Signal::TERM);
    assert_eq!(stack.child.exit("after SIGTERM").await.code(), Some(0));

    // The minute bin: each minute's 5 s rows merged, stamped with the minute's tick.
    let mut expected: BTreeMap<(String, i64), Rec> = BTreeMap::new();
    for r in db.rows(5).await.expect("5 s rows") {
        let minute = (r.time + 59) / 60 * 60;
        expected
            .entry((r.key.clone(), minute))
            .and_modify(|m| *m = m.merge(r.rec))
            .or_insert(r.rec);
    }
    let minute_rows = db.rows(60).await.expect("1 m rows, written at shutdown");
    assert_eq!(
        minute_rows
            .iter()
            .map(|r| (r.key.clone(), r.time))
            .collect::<BTreeSet<_>>(),
        expected.keys().cloned().collect::<BTreeSet<_>>(),
        "one minute row per key and minute"
    );
    for r in &minute_rows {
        assert_row(r, &expected[&(r.key.clone(), r.time)], 60, 7200);
    }
    let total: BTreeMap<&str, u64> = minute_rows.iter().fold(BTreeMap::new(), |mut m, r| {
        *m.entry(r.key.as_str()).or_default() += r.rec.count;
        m
    });
    assert_eq!(total["stats.web.cpu"], 100, "both parts' timer values");
    assert_eq!(total["stats.web.mem"], 100);

    let index = db.index().await.expect("index");
    assert_index(&db, &index, &keys);
}

fn assert_index(db: &Db, index: &Index, keys: &[String]) {
    match db {
        Db::Mysql { .. } => {
            let expected: BTreeSet<(String, i32)> =
                keys.iter().map(|k| (k.clone(), k.split('.').count() as i32)).collect();
            assert_eq!(index.paths, expected, "the path table holds exactly the keys sent");
        }
        Db::Cassandra { .. } => {
            let row = |pos: i32, seg: &str, path: &str, len: i32, data: bool| {
                (pos, seg.to_string(), path.to_string(), len, data)
            };
            // §10.4's example for stats.web.cpu.
            for r in [
                row(0, "stats", "stats.web", 1, false),
                row(0, "stats", "stats.web.cpu", 2, true),
                row(1, "stats.web", "stats.web.cpu", 2, true),
                row(2, "stats.web.cpu", "stats.web.cpu", 2, true),
            ] {
                assert!(index.tree.contains(&r), "missing path row {r:?}");
            }
            let of_cpu: Vec<_> = index.tree.iter().filter(|r| r.2 == "stats.web.cpu").collect();
            assert_eq!(of_cpu.len(), 3, "only the leaf rows name the key: {of_cpu:?}");
            let leaves: BTreeSet<&str> = index.tree.iter().filter(|r| r.4).map(|r| r.2.as_str()).collect();
            assert_eq!(
                leaves,
                keys.iter().map(String::as_str).collect(),
                "leaves are exactly the keys sent"
            );
            let mut segments = BTreeSet::new();
            for k in keys {
                let parts: Vec<&str> = k.split('.').collect();
                for i in 0..parts.len() {
                    segments.insert((i as i32, parts[..=i].join(".")));
                }
            }
            assert_eq!(index.segments, segments, "one segment row per prefix");
            let branches: BTreeSet<_> = index.tree.iter().filter(|r| !r.4).collect();
            for b in &branches {
                assert_eq!(b.3, b.0 + 1, "a branch row names the next prefix: {b:?}");
                assert!(b.2.starts_with(&format!("{}.", b.1)), "{b:?}");
            }
            assert!(branches.contains(&row(0, "stats", "stats.load", 1, false)));
            assert!(branches.contains(&row(0, "stats", "stats.db", 1, false)));
            assert_eq!(branches.len(), 3, "stats → web, db, load: {branches:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statsd_burst_lands_in_mariadb_per_key_and_bin() {
    let dsn = services::mariadb();
    let db = Db::mysql(dsn, &unique("burst")).await;
    a_burst_lands(db, dsn).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statsd_burst_lands_in_cassandra_per_key_and_bin_with_ttls() {
    let addr = services::cassandra();
    let db = Db::cassandra(addr, &unique("burst")).await;
    a_burst_lands(db, addr).await;
}
