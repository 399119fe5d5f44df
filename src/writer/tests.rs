use super::*;

pub(super) fn points(n: usize, time: i64) -> Vec<Point> {
    (0..n)
        .map(|i| Point {
            key: format!("k.{i}"),
            sum: 2.0,
            mean: 1.0,
            min: 0.5,
            max: 1.5,
            count: 2,
            time,
            resolution: 5,
            ttl: 3600,
        })
        .collect()
}

fn writer_cfg(dsn: &str, queue: usize, options: &str) -> WriterConfig {
    WriterConfig {
        metric_queue_length: queue,
        indexer_queue_length: 10,
        metrics: DriverConfig {
            driver: Driver::File,
            dsn: dsn.into(),
            options: toml::from_str(options).expect("toml"),
        },
        indexer: None,
    }
}

fn bin(secs: u64) -> Bin {
    Bin {
        interval: Duration::from_secs(secs),
        ttl: Duration::from_secs(3600),
    }
}

fn start_file(
    cfg: &WriterConfig,
    bins: &[Bin],
    tracker: &TaskTracker,
) -> impl Future<Output = Result<Vec<WriterQueue>, WriterError>> {
    start("g", cfg, bins, 1000, tracker, &CancellationToken::new())
}

fn queue_of(capacity: usize) -> (WriterQueue, mpsc::Receiver<Queued<Point>>) {
    let (queue, rx) = Queue::channel("g", Some(5), "file", capacity);
    (WriterQueue { queue, index: None }, rx)
}

#[test]
fn skip_on_full_accounting() {
    let (q, mut rx) = queue_of(100);
    assert_eq!(q.capacity(), 100);
    assert_eq!(q.try_submit(points(60, 5)), Ok(()));
    assert_eq!(q.queued(), 60);
    assert_eq!(
        q.try_submit(points(50, 10)),
        Err(Skipped { records: 50 }),
        "40 free: whole flush skipped"
    );
    assert_eq!(q.try_submit(points(40, 10)), Ok(()), "exactly fits");
    assert_eq!(q.try_submit(points(1, 15)), Err(Skipped { records: 1 }));
    assert_eq!(q.try_submit(Vec::new()), Ok(()), "an empty flush is never skipped");
    assert_eq!(
        q.try_submit(points(101, 15)),
        Err(Skipped { records: 101 }),
        "larger than the queue"
    );
    let s = q.stats();
    assert_eq!(s.skipped_flushes.load(Ordering::Relaxed), 3);
    assert_eq!(s.dropped_records.load(Ordering::Relaxed), 152);

    // Permits come back when the task is done with a batch.
    let first = rx.try_recv().expect("queued batch");
    assert_eq!(first.items.len(), 60);
    assert_eq!(q.queued(), 100, "still held while being written");
    drop(first);
    assert_eq!(q.queued(), 40);
    assert_eq!(q.try_submit(points(60, 20)), Ok(()));

    // A closed queue (task gone) skips too.
    drop(rx);
    assert_eq!(q.try_submit(points(1, 25)), Err(Skipped { records: 1 }));
    assert_eq!(s.skipped_flushes.load(Ordering::Relaxed), 4);
}

#[test]
fn new_keys_go_to_the_index_once_and_a_full_index_skips_the_flush() {
    let (queue, mut rx) = Queue::channel("g", Some(5), "file", 100);
    let (iq, mut irx) = Queue::<String>::channel("g", None, "mysql", 5);
    let index = Arc::new(IndexQueue {
        queue: iq,
        seen: Arc::new(Seen::new(100)),
    });
    let q = WriterQueue {
        queue,
        index: Some(Arc::clone(&index)),
    };
    assert_eq!(q.try_submit(points(3, 5)), Ok(()));
    let keys = irx.try_recv().expect("index batch").items;
    assert_eq!(keys, ["k.0", "k.1", "k.2"]);
    assert_eq!(q.try_submit(points(3, 10)), Ok(()), "known keys: nothing to index");
    assert!(irx.try_recv().is_err());
    // 4 new keys, 5 free in the index queue: fits.
    assert_eq!(q.try_submit(points(7, 15)), Ok(()));
    let held = irx.try_recv().expect("index batch");
    assert_eq!(held.items.len(), 4);
    // Held: 4 of 5 index permits in use, so 2 new keys do not fit and the whole flush is skipped.
    assert_eq!(q.try_submit(points(9, 20)), Err(Skipped { records: 9 }));
    assert_eq!(q.stats().skipped_flushes.load(Ordering::Relaxed), 1);
    assert_eq!(rx.try_recv().map(|b| b.items.len()).ok(), Some(3));
    assert_eq!(rx.try_recv().map(|b| b.items.len()).ok(), Some(3));
    assert_eq!(rx.try_recv().map(|b| b.items.len()).ok(), Some(7));
    assert!(rx.try_recv().is_err(), "the skipped flush queued nothing");
    assert!(!index.seen.contains("k.8"), "skipped keys are not marked");
    drop(held);
    assert_eq!(q.try_submit(points(9, 25)), Ok(()));
    assert_eq!(irx.try_recv().expect("index batch").items, ["k.7", "k.8"]);
    assert_eq!(statuses(std::slice::from_ref(&q)).len(), 2, "the bin and the indexer");
}

#[test]
fn seen_is_bounded_and_forgets() {
    let s = Seen::new(3);
    assert!(s.first_time("a"));
    assert!(!s.first_time("a"));
    assert!(s.first_time("b"));
    assert!(s.first_time("c"));
    assert_eq!(s.len(), 3);
    assert!(s.first_time("d"), "full: starts over");
    assert_eq!(s.len(), 1);
    s.forget(&["d".to_string()]);
    assert!(s.is_empty());
    assert_eq!(
        prefixes("stats.web.cpu").collect::<Vec<_>>(),
        ["stats", "stats.web", "stats.web.cpu"]
    );
    assert_eq!(prefixes("top").collect::<Vec<_>>(), ["top"]);
}

/// A store that fails the way it is told and records what it stored.
#[derive(Debug, Default)]
struct FakeStore {
    /// Per call: `Some(err)` fails after storing `partial` items.
    script: std::collections::VecDeque<(usize, Option<WriterError>)>,
    stored: Arc<Mutex<Vec<String>>>,
    lost: Arc<Mutex<Vec<String>>>,
    /// Whether it asks for its batches in sorted order.
    sorted: bool,
}

impl Store for FakeStore {
    type Item = String;
    fn driver(&self) -> &'static str {
        "fake"
    }
    async fn write(&mut self, items: &mut [String], progress: &mut Progress) -> Result<(), WriterError> {
        let (partial, err) = self.script.pop_front().unwrap_or((0, None));
        let n = if err.is_some() {
            partial.min(items.len())
        } else {
            items.len()
        };
        self.stored.lock().unwrap().extend(items[..n].iter().cloned());
        progress.done = n;
        err.map_or(Ok(()), Err)
    }
    fn arrange(&self) -> Option<fn(&mut [String])> {
        self.sorted.then_some(<[String]>::sort_unstable as fn(&mut [String]))
    }
    fn maintenance_interval(&self) -> Option<Duration> {
        None
    }
    async fn maintain(&mut self) -> Result<(), WriterError> {
        Ok(())
    }
    fn lost(&mut self, items: &[String]) {
        self.lost.lock().unwrap().extend(items.iter().cloned());
    }
    async fn close(&mut self) {}
}

fn keys(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("k{i}")).collect()
}

#[tokio::test]
async fn a_store_that_orders_its_batches_is_given_them_in_its_order() {
    let store = FakeStore {
        sorted: true,
        ..FakeStore::default()
    };
    let stored = Arc::clone(&store.stored);
    let (q, rx) = Queue::channel("g", None, "fake", 100);
    let task = tokio::spawn(run(store, rx, q.status.clone(), CancellationToken::new()));
    let mut batch = keys(12);
    batch.reverse();
    q.send(batch, q.reserve(12).unwrap());
    drop(q);
    task.await.unwrap();
    let mut sorted = keys(12);
    sorted.sort_unstable();
    assert_eq!(*stored.lock().unwrap(), sorted);
    assert_ne!(
        sorted,
        keys(12),
        "k10 sorts before k2: the order is the store's, not the sender's"
    );
}

#[test]
fn the_mysql_writer_orders_a_batch_by_key_then_time() {
    let mut p = points(3, 20);
    p.extend(points(3, 10));
    mysql::by_key(&mut p);
    let order: Vec<(&str, i64)> = p.iter().map(|p| (p.key.as_str(), p.time)).collect();
    assert_eq!(
        order,
        [
            ("k.0", 10),
            ("k.0", 20),
            ("k.1", 10),
            ("k.1", 20),
            ("k.2", 10),
            ("k.2", 20)
        ]
    );
}

proptest::proptest! {
    /// Keys sharing long prefixes, keys that are prefixes of others, NUL and non-ASCII bytes, repeated keys with
    /// several times: the writer orders them exactly as comparing whole keys, then times, does.
    #[test]
    fn the_mysql_writers_order_is_that_of_whole_keys_then_times(
        keys in proptest::collection::vec(("(stats\\.timers\\.web\\.){0,2}[ab\\x00é]{0,20}", 0i64..4), 0..200)
    ) {
        let mut p: Vec<Point> = keys
            .iter()
            .map(|(k, t)| Point { key: k.clone(), time: *t, ..points(1, 0).remove(0) })
            .collect();
        let mut want: Vec<(String, i64)> = keys.clone();
        want.sort();
        mysql::by_key(&mut p);
        let got: Vec<(String, i64)> = p.iter().map(|p| (p.key.clone(), p.time)).collect();
        proptest::prop_assert_eq!(got, want);
    }
}

#[tokio::test(start_paused = true)]
async fn an_outage_is_retried_until_the_store_is_back_resuming_where_it_stopped() {
    let unavailable = || Some(WriterError::Unavailable("down".into()));
    let mut store = FakeStore::default();
    store.script.extend([(2, unavailable())]);
    store.script.extend((0..50).map(|_| (0, unavailable())));
    let (stored, lost) = (Arc::clone(&store.stored), Arc::clone(&store.lost));
    let (q, rx) = Queue::channel("g", None, "fake", 10);
    let stop = CancellationToken::new();
    let task = tokio::spawn(run(store, rx, q.status.clone(), stop.clone()));
    q.send(keys(5), q.reserve(5).unwrap());
    // 51 failures with backoff capped at RETRY_WAIT_MAX: well under 2 minutes.
    tokio::time::sleep(Duration::from_secs(120)).await;
    let st = &q.status.stats;
    assert_eq!(*stored.lock().unwrap(), keys(5), "each item stored once, in order");
    assert_eq!(st.records.load(Ordering::Relaxed), 5);
    assert_eq!(st.errors.load(Ordering::Relaxed), 51);
    assert_eq!(
        st.dropped_records.load(Ordering::Relaxed),
        0,
        "nothing dropped for an outage"
    );
    assert!(lost.lock().unwrap().is_empty());
    assert_eq!(q.status.queued(), 0);
    drop(q);
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_refused_batch_is_dropped_after_its_attempts_and_shutdown_counts_the_rest() {
    let refused = || Some(WriterError::Rejected("no such table".into()));
    let mut store = FakeStore::default();
    store.script.extend([(1, refused()), (0, refused()), (0, refused())]);
    store
        .script
        .extend((0..1000).map(|_| (0, Some(WriterError::Unavailable("down".into())))));
    let (stored, lost) = (Arc::clone(&store.stored), Arc::clone(&store.lost));
    let (q, rx) = Queue::channel("g", None, "fake", 10);
    let stop = CancellationToken::new();
    let task = tokio::spawn(run(store, rx, q.status.clone(), stop.clone()));
    q.send(keys(4), q.reserve(4).unwrap());
    q.send(keys(3), q.reserve(3).unwrap());
    q.send(keys(2), q.reserve(2).unwrap());
    tokio::time::sleep(Duration::from_secs(30)).await;
    let st = &q.status.stats;
    assert_eq!(*stored.lock().unwrap(), ["k0"]);
    assert!(st.errors.load(Ordering::Relaxed) >= 3);
    assert_eq!(
        *lost.lock().unwrap(),
        ["k1", "k2", "k3"],
        "refused three times: dropped"
    );
    assert_eq!(
        q.status.queued(),
        5,
        "the second batch is being retried, the third waits"
    );
    stop.cancel();
    task.await.unwrap();
    assert_eq!(st.dropped_records.load(Ordering::Relaxed), 3 + 3 + 2);
    assert_eq!(lost.lock().unwrap().len(), 8);
    assert_eq!(q.status.queued(), 0);
}

#[tokio::test(start_paused = true)]
async fn start_writes_each_bin_to_its_file_and_drains_on_close() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dsn = dir.path().join("moo");
    let dsn = dsn.to_str().expect("utf8 path");
    let tracker = TaskTracker::new();
    let queues = start_file(&writer_cfg(dsn, 1000, ""), &[bin(5), bin(60)], &tracker)
        .await
        .expect("start");
    assert_eq!(
        queues.iter().map(WriterQueue::bin_secs).collect::<Vec<_>>(),
        vec![5, 60]
    );
    assert_eq!(queues[0].driver(), "file");
    assert_eq!(queues[0].group(), "g");
    queues[0].try_submit(points(3, 1457989005)).expect("fits");
    queues[0].try_submit(points(2, 1457989010)).expect("fits");
    queues[1].try_submit(points(1, 1457989020)).expect("fits");
    let stats: Vec<Arc<WriterStats>> = queues.iter().map(|q| Arc::clone(q.stats())).collect();
    drop(queues);
    tracker.close();
    tracker.wait().await;

    let five = std::fs::read_to_string(format!("{dsn}_5s")).expect("5s file");
    assert_eq!(five.lines().count(), 5);
    assert_eq!(
        five.lines().next(),
        Some("k.0\t2.000000\t1.000000\t0.500000\t1.500000\t2\t5.00\t1457989005000000000\t3600")
    );
    let sixty = std::fs::read_to_string(format!("{dsn}_60s")).expect("60s file");
    assert_eq!(sixty.lines().count(), 1);
    assert_eq!(stats[0].records.load(Ordering::Relaxed), 5);
    assert_eq!(stats[1].records.load(Ordering::Relaxed), 1);
    assert_eq!(stats[0].errors.load(Ordering::Relaxed), 0);
}

#[tokio::test(start_paused = true)]
async fn bin_task_rotates_every_ten_seconds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dsn = dir.path().join("moo");
    let dsn = dsn.to_str().expect("utf8 path");
    let tracker = TaskTracker::new();
    let queues = start_file(&writer_cfg(dsn, 1000, "max_file_size = 200"), &[bin(5)], &tracker)
        .await
        .expect("start");
    queues[0].try_submit(points(5, 5)).expect("fits"); // ~300 bytes
    let count = || std::fs::read_dir(dir.path()).expect("ls").count();
    tokio::time::sleep(Duration::from_secs(9)).await;
    assert_eq!(count(), 1, "not checked before 10 s");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(count(), 2, "rotated at the 10 s check");
    queues[0].try_submit(points(1, 10)).expect("fits");
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(count(), 2, "new file is under the limit");
    drop(queues);
    tracker.close();
    tracker.wait().await;
    assert_eq!(
        std::fs::read_to_string(format!("{dsn}_5s"))
            .expect("read")
            .lines()
            .count(),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn failing_writes_are_retried_then_dropped_and_counted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dsn = dir.path().join("full");
    let dsn = dsn.to_str().expect("utf8 path");
    // Every write to /dev/full fails with ENOSPC.
    std::os::unix::fs::symlink("/dev/full", format!("{dsn}_5s")).expect("symlink");
    let tracker = TaskTracker::new();
    let queues = start_file(&writer_cfg(dsn, 10, ""), &[bin(5)], &tracker)
        .await
        .expect("start");
    queues[0].try_submit(points(4, 5)).expect("fits");
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(queues[0].queued(), 4, "permits held while retrying");
    tokio::time::sleep(RETRY_WAIT_MAX * 4).await;
    let s = Arc::clone(queues[0].stats());
    assert_eq!(s.errors.load(Ordering::Relaxed), u64::from(MAX_WRITE_ATTEMPTS));
    assert_eq!(s.dropped_records.load(Ordering::Relaxed), 4);
    assert_eq!(s.records.load(Ordering::Relaxed), 0);
    assert_eq!(queues[0].queued(), 0, "permits released after the drop");
    drop(queues);
    tracker.close();
    tracker.wait().await;
}

#[tokio::test]
async fn open_errors() {
    let tracker = TaskTracker::new();
    let mut cfg = writer_cfg("/nonexistent-dir/moo", 10, "");
    assert!(matches!(
        start_file(&cfg, &[bin(5)], &tracker).await,
        Err(WriterError::Io { .. })
    ));
    cfg.metrics.driver = Driver::Mysql;
    assert!(matches!(
        start_file(&cfg, &[bin(5)], &tracker).await,
        Err(WriterError::Dsn(_))
    ));
    cfg.metrics.dsn = "u:p@tcp(127.0.0.1:1)/db".into();
    cfg.metrics.options = toml::from_str("batch_count = 0").expect("toml");
    assert!(matches!(
        start_file(&cfg, &[bin(5)], &tracker).await,
        Err(WriterError::Option {
            name: "batch_count",
            ..
        })
    ));
    cfg.metrics.driver = Driver::File;
    cfg.metrics.options = toml::Table::new();
    cfg.metrics.dsn.clear();
    assert!(matches!(
        start_file(&cfg, &[bin(5)], &tracker).await,
        Err(WriterError::MissingDsn("file"))
    ));
    cfg.metrics.dsn = "/tmp/x".into();
    cfg.metrics.options = toml::from_str("max_file_size = \"big\"").expect("toml");
    assert!(matches!(
        start_file(&cfg, &[bin(5)], &tracker).await,
        Err(WriterError::Option { .. })
    ));
    assert!(tracker.is_empty());
}

#[tokio::test]
async fn a_database_down_at_start_does_not_fail_start_up() {
    let tracker = TaskTracker::new();
    let stop = CancellationToken::new();
    let mut cfg = writer_cfg("u:p@tcp(127.0.0.1:1)/db", 10, "");
    cfg.metrics.driver = Driver::Mysql;
    cfg.indexer = Some(DriverConfig {
        driver: Driver::Cassandra,
        dsn: "127.0.0.1:1".into(),
        options: toml::Table::new(),
    });
    let queues = start("g", &cfg, &[bin(5)], 100, &tracker, &stop).await.expect("starts");
    assert_eq!(queues[0].driver(), "mysql");
    assert_eq!(queues[0].index_status().map(|s| s.driver), Some("cassandra"));
    queues[0].try_submit(points(2, 5)).expect("fits");
    stop.cancel();
    drop(queues);
    tracker.close();
    tracker.wait().await;
}
