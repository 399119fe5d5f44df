//! Faults, not crashes: a database that goes away under load, bad credentials, an unreachable host and a
//! missing table. The relay keeps relaying, every record is stored or counted as lost, the writer recovers by
//! itself, and the problems are ERRORs naming the writer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncBufReadExt;

use crate::binary::free_port;
use crate::services::{self, PrivateMariadb};
use crate::store::Db;
use crate::{group, send_udp, unique, wait_for, wait_until, Stack, LONG};

/// A TCP sink that counts the lines it reads.
async fn line_sink() -> (u16, Arc<AtomicU64>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind sink");
    let port = l.local_addr().expect("addr").port();
    let count = Arc::new(AtomicU64::new(0));
    let c = Arc::clone(&count);
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let c = Arc::clone(&c);
            tokio::spawn(async move {
                let mut lines = tokio::io::BufReader::new(s).lines();
                while let Ok(Some(_)) = lines.next_line().await {
                    c.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    (port, count)
}

const KEYS: usize = 20;

fn statsd_round(round: u64) -> Vec<String> {
    (0..KEYS).map(|k| format!("outage.k{k}:{}|c", 1 + round % 3)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mariadb_outage_under_load_is_counted_exactly_and_the_writer_recovers_by_itself() {
    let db_port = free_port();
    let server = PrivateMariadb::start(db_port, "mariadb-outage");
    let table = unique("outage");
    let db = Db::mysql(&server.dsn, &table).await;
    let (sink_port, sink_lines) = line_sink().await;
    let graphite_port = free_port();
    let relay = format!(
        "[graphite-in]\nlisten = \"tcp://127.0.0.1:{graphite_port}\"\nmsg_type = \"graphite\"\n\
         [[graphite-in.servers]]\nservers = [\"tcp://127.0.0.1:{sink_port}\"]\n"
    );
    // 20 records a second into a queue of 60: three flushes fit while the database is away.
    let writer = format!("metric_queue_length = 60\n{}", db.writer_toml(&server.dsn, false));
    let stack = Stack::start("accumulate_flush = \"1s\"\ntimes = [\"1s:1h\"]", &writer, &relay).await;
    let statsd = stack.statsd;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sent_graphite = Arc::new(AtomicU64::new(0));
    let load = {
        let (stop, sent) = (Arc::clone(&stop), Arc::clone(&sent_graphite));
        tokio::spawn(async move {
            crate::binary::wait_listening(([127, 0, 0, 1], graphite_port).into()).await;
            let mut g = tokio::net::TcpStream::connect(("127.0.0.1", graphite_port))
                .await
                .expect("connect");
            let mut round = 0;
            while !stop.load(Ordering::Relaxed) {
                send_udp(statsd, &statsd_round(round)).await;
                let line = format!("relay.during.outage {round} 1700000000\n");
                tokio::io::AsyncWriteExt::write_all(&mut g, line.as_bytes())
                    .await
                    .expect("relay write");
                sent.fetch_add(1, Ordering::Relaxed);
                round += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let m = |name: &str| format!("consthash_writer_{name}{{group=\"g\",bin=\"1\",driver=\"mysql\"}}");
    let skipped = "consthash_writer_skipped_flushes_total{group=\"g\",bin=\"1\"}";
    wait_for("rows stored before the outage", LONG, || async {
        match stack.metric(&m("records_total")).await {
            Some(n) if n >= 40 => Ok(()),
            other => Err(other),
        }
    })
    .await;

    server.stop();
    let relayed_before = sink_lines.load(Ordering::Relaxed);
    // The outage lasts until at least 5 flushes are skipped (about 8 s); the queue never exceeds its length.
    wait_for("flushes skipped while the database is down", LONG, || async {
        let queued = stack.metric(&m("queued_records")).await.unwrap_or(0);
        assert!(queued <= 60, "queue over its length: {queued}");
        match stack.metric(skipped).await {
            Some(n) if n >= 5 => Ok(()),
            other => Err((other, queued)),
        }
    })
    .await;
    assert!(
        sink_lines.load(Ordering::Relaxed) > relayed_before,
        "the relay section keeps relaying while the database is down"
    );
    assert!(
        stack.metric(&m("errors_total")).await.unwrap_or(0) > 0,
        "failed attempts counted"
    );
    assert!(
        stack.child.log().contains("database unavailable"),
        "the outage is logged"
    );

    server.restart();
    let stored_at_restart = stack.metric(&m("records_total")).await.expect("records");
    wait_for("the writer to recover by itself", LONG, || async {
        let stored = stack.metric(&m("records_total")).await.unwrap_or(0);
        let queued = stack.metric(&m("queued_records")).await.unwrap_or(u64::MAX);
        if stored >= stored_at_restart + 60 && queued == 0 {
            Ok(())
        } else {
            Err((stored, queued))
        }
    })
    .await;

    stop.store(true, Ordering::Relaxed);
    load.await.expect("load");
    // Two more flushes after the last line: everything produced has been handed to the writer.
    let flushes = "consthash_accumulator_flushes_total{section=\"statsd-in\"}";
    let f0 = stack.metric(flushes).await.expect("flushes");
    wait_for("two idle flushes and an empty queue", LONG, || async {
        let f = stack.metric(flushes).await.unwrap_or(0);
        let queued = stack.metric(&m("queued_records")).await.unwrap_or(u64::MAX);
        if f >= f0 + 2 && queued == 0 {
            Ok(())
        } else {
            Err((f, queued))
        }
    })
    .await;
    let produced = stack
        .metric("consthash_accumulator_records_total{section=\"statsd-in\"}")
        .await
        .expect("produced");
    let stored = stack.metric(&m("records_total")).await.expect("stored");
    let dropped = stack.metric(&m("dropped_records_total")).await.expect("dropped");
    let skipped_flushes = stack.metric(skipped).await.expect("skipped");
    let rows = db.rows(1).await.expect("rows").len() as u64;
    assert_eq!(stored + dropped, produced, "every record stored or counted as lost");
    assert_eq!(rows, stored, "what is counted stored is in the table, once");
    assert!(dropped >= skipped_flushes, "a skipped flush loses at least one record");
    let stats: serde_json::Value = serde_json::from_str(&stack.get("/statsd-in/stats").await).expect("stats json");
    let w = &stats["writers"][0];
    assert_eq!(
        w["skipped_flushes"], skipped_flushes,
        "/stats shows the skipped flushes: {w}"
    );
    assert_eq!(w["dropped_records"], dropped);
    wait_until("every relayed line at the sink", LONG, || {
        sink_lines.load(Ordering::Relaxed) == sent_graphite.load(Ordering::Relaxed)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_an_unreachable_host_and_a_missing_table_are_errors_not_crashes() {
    let dsn = services::mariadb();
    let bad_pass = dsn.replacen(":consthash@", ":wrong-password@", 1);
    assert_ne!(bad_pass, dsn, "the test DSN has the expected user:pass");
    let closed = free_port();
    let missing = unique("missing");
    let (sink_port, sink_lines) = line_sink().await;
    let ports: Vec<u16> = (0..4).map(|_| free_port()).collect();
    let mut stack = Stack::spawn(|admin, _| {
        let mut main = format!("[default]\ninternal_health_server_listen = \"127.0.0.1:{admin}\"\nshutdown_timeout = 3\n");
        for (i, p) in ports[..3].iter().enumerate() {
            main += &format!(
                "[s{i}]\nlisten = \"udp://127.0.0.1:{p}\"\nmsg_type = \"statsd\"\n[[s{i}.servers]]\nservers = [\"tcp://127.0.0.1:9\"]\n"
            );
        }
        main += &format!(
            "[relay]\nlisten = \"tcp://127.0.0.1:{}\"\nmsg_type = \"graphite\"\n[[relay.servers]]\nservers = [\"tcp://127.0.0.1:{sink_port}\"]\n",
            ports[3]
        );
        let acc = "accumulate_flush = \"1s\"\ntimes = [\"1s\"]";
        let prereg = [
            group("badpass", "s0", acc, &format!("metrics = {{ driver = \"mysql\", dsn = \"{bad_pass}\" }}")),
            group(
                "unreachable",
                "s1",
                acc,
                &format!("metrics = {{ driver = \"cassandra\", dsn = \"127.0.0.1:{closed}\" }}"),
            ),
            group(
                "noschema",
                "s2",
                acc,
                &format!("metrics = {{ driver = \"mysql\", dsn = \"{dsn}\", options = {{ table = \"{missing}\" }} }}"),
            ),
        ]
        .concat();
        (main, prereg)
    })
    .await;
    for p in &ports[..3] {
        send_udp(([127, 0, 0, 1], *p).into(), &["k:1|c".to_string()]).await;
    }
    stack
        .child
        .wait_log("bad credentials named", |l| {
            l.contains(" ERRO") && l.contains("writer badpass") && l.contains("Access denied")
        })
        .await;
    stack
        .child
        .wait_log("unreachable host named", |l| {
            l.contains(" ERRO") && l.contains("writer unreachable") && l.contains("connect")
        })
        .await;
    stack
        .child
        .wait_log("missing table named", |l| {
            l.contains(" ERRO")
                && l.contains("writer noschema")
                && l.contains(&format!("table {missing}_1s does not exist"))
        })
        .await;
    // The refused batch is dropped after its attempts, and counted.
    wait_for("the refused batch counted as lost", LONG, || async {
        let sample = "consthash_writer_dropped_records_total{group=\"noschema\",bin=\"1\",driver=\"mysql\"}";
        match stack.metric(sample).await {
            Some(n) if n >= 1 => Ok(()),
            other => Err(other),
        }
    })
    .await;
    let lines: Vec<String> = (0..100).map(|i| format!("still.relaying {i} 1700000000")).collect();
    let mut c = tokio::net::TcpStream::connect(("127.0.0.1", ports[3]))
        .await
        .expect("connect relay");
    tokio::io::AsyncWriteExt::write_all(&mut c, (lines.join("\n") + "\n").as_bytes())
        .await
        .expect("write");
    wait_until("the other section relays", LONG, || {
        sink_lines.load(Ordering::Relaxed) == 100
    })
    .await;
    assert!(stack.child.exited().is_none(), "still running");
    // SIGTERM with the bad-password writer still retrying: it gives up at shutdown_timeout and counts the rest.
    let started = std::time::Instant::now();
    stack.child.signal(rustix::process::Signal::TERM);
    assert_eq!(stack.child.exit("after SIGTERM").await.code(), Some(0));
    assert!(
        started.elapsed() < Duration::from_secs(3 + 2),
        "within shutdown_timeout = 3 and a grace"
    );
    let log = stack.child.log();
    assert!(
        log.lines()
            .any(|l| l.contains("writer badpass") && l.contains("not stored") && l.contains("lost")),
        "what could not be stored is counted and logged:\n{log}"
    );
    assert!(!log.contains("panicked"), "no panic");
}

/// The MySQL writer keeps two statements in flight. A statement the server fails while the one after it is
/// stored must not be written twice by the retry: the writer moves the stored one into the prefix it reports
/// done. A trigger fails every statement holding `b.poison` while a flag row exists (with a lock-wait error, so
/// the batch is retried until the test lifts the flag); the batch is sorted by key into statements of 10 rows,
/// so the 4th fails while the 5th is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_statement_is_retried_without_writing_the_one_stored_after_it_twice() {
    use consthash::config::{Bin, Driver, DriverConfig, WriterConfig};
    use consthash::line::Point;
    use sqlx::Row as _;

    let dsn = services::mariadb();
    let table = unique("inflight");
    let bin_table = format!("{table}_10s");
    let pool = sqlx::mysql::MySqlPool::connect_with(consthash::writer::mysql::parse_dsn(dsn).expect("dsn"))
        .await
        .expect("connect to MariaDB");
    let cfg = WriterConfig {
        metric_queue_length: 1000,
        indexer_queue_length: 10,
        metrics: DriverConfig {
            driver: Driver::Mysql,
            dsn: dsn.to_string(),
            options: toml::from_str(&format!("table = \"{table}\"\ncreate_schema = true\nbatch_count = 10"))
                .expect("toml"),
        },
        indexer: None,
    };
    let bins = [Bin {
        interval: Duration::from_secs(10),
        ttl: Duration::from_secs(3600),
    }];
    let tracker = tokio_util::task::TaskTracker::new();
    let stop = tokio_util::sync::CancellationToken::new();
    let queues = consthash::writer::start("inflight", &cfg, &bins, 1000, &tracker, &stop)
        .await
        .expect("writer starts");
    let stats = Arc::clone(queues[0].stats());
    let point = |key: String| Point {
        key,
        sum: 1.0,
        mean: 1.0,
        min: 1.0,
        max: 1.0,
        count: 1,
        time: 1_700_000_000,
        resolution: 10,
        ttl: 3600,
    };
    // The table exists once a first point is stored.
    queues[0].try_submit(vec![point("a.warm".into())]).expect("fits");
    wait_until("the first point stored", LONG, || {
        stats.records.load(Ordering::Relaxed) == 1
    })
    .await;
    for sql in [
        format!("CREATE TABLE `{table}_flag` (x INT)"),
        format!("INSERT INTO `{table}_flag` VALUES (1)"),
        format!(
            "CREATE TRIGGER `{table}_poison` BEFORE INSERT ON `{bin_table}` FOR EACH ROW \
             IF NEW.stat = 'b.poison' AND EXISTS (SELECT 1 FROM `{table}_flag`) THEN \
             SIGNAL SQLSTATE 'HY000' SET MYSQL_ERRNO = 1205, MESSAGE_TEXT = 'poisoned'; END IF"
        ),
    ] {
        sqlx::query(&sql).execute(&pool).await.expect(&sql);
    }
    // Sorted: a.000–a.029 (statements 1–3), b.poison and c.000–c.008 (4), c.009–c.018 (5), … c.038 (7).
    let mut keys: Vec<String> = (0..30).map(|i| format!("a.{i:03}")).collect();
    keys.extend((0..39).map(|i| format!("c.{i:03}")));
    keys.push("b.poison".into());
    keys.reverse(); // the writer orders the batch itself
    queues[0]
        .try_submit(keys.iter().cloned().map(point).collect())
        .expect("fits");
    wait_until("the poisoned statement failed", LONG, || {
        stats.errors.load(Ordering::Relaxed) >= 1
    })
    .await;
    sqlx::query(&format!("DELETE FROM `{table}_flag`"))
        .execute(&pool)
        .await
        .expect("lift the flag");
    wait_until("every point stored", LONG, || {
        stats.records.load(Ordering::Relaxed) == 1 + 70
    })
    .await;

    let rows = sqlx::query(&format!("SELECT stat, COUNT(*) FROM `{bin_table}` GROUP BY stat"))
        .fetch_all(&pool)
        .await
        .expect("read the rows");
    let mut stored: Vec<(String, i64)> = rows
        .iter()
        .map(|r| (String::from_utf8(r.get::<Vec<u8>, _>(0)).expect("utf-8"), r.get(1)))
        .collect();
    stored.sort();
    let mut expected: Vec<(String, i64)> = keys.iter().map(|k| (k.clone(), 1)).collect();
    expected.push(("a.warm".into(), 1));
    expected.sort();
    assert_eq!(stored, expected, "every key stored exactly once");
    assert_eq!(stats.dropped_records.load(Ordering::Relaxed), 0);
    drop(queues);
    tracker.close();
    tracker.wait().await;
}
