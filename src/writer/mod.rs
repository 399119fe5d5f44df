//! Writers (spec §10): the bins' points go to a per-bin bounded queue and from there to that bin's [`Writer`].
//!
//! ```text
//! bin tick ─► Bins::drain ─► WriterQueue::try_submit ──(Vec<Point> + permits)──► bin task ─► Writer::write
//!                              └─ does not fit: whole flush skipped,                 │  retried, then dropped
//!                                 counted (skipped_flushes), ERROR                   └─ every maintenance_interval:
//!                                                                                       Writer::maintain
//! ```
//!
//! # Bounded memory
//! A [`WriterQueue`] holds a semaphore of `metric_queue_length` permits, one per record. A flush takes as many
//! permits as it has records, all or nothing, and the permits travel with the batch through the channel; they are
//! released only when the bin task is done with the batch (written, or dropped after bounded retries). So queued
//! plus in-flight plus retried records never exceed `metric_queue_length` per bin.
//!
//! # The writer interface
//! [`Writer`] is an enum with async methods (no `async_trait`, no boxing); each driver lives in its own file:
//! * `open(cfg, bin_secs)` — one writer per bin. Parses the driver's own `options` and opens its target. Failing
//!   here fails start-up with the error. The `file` driver is the one built in; a config naming `mysql`,
//!   `cassandra` or `noop` validates but start-up refuses it ([`WriterError::Unsupported`]).
//! * `write(points)` — store one bin flush. An `Err` means "nothing or not everything was stored"; the bin task
//!   retries the whole batch [`MAX_WRITE_ATTEMPTS`] times with backoff, then drops it (counted, ERROR). Writers
//!   must therefore make a batch idempotent or accept duplicates on retry (the file writer accepts them).
//! * `maintenance_interval()` / `maintain()` — periodic work on the bin task, between batches (never concurrently
//!   with `write`, so no locking): the file writer checks rotation every 10 s.
//! * `close()` — flush whatever is buffered; called once when the queue is closed and drained.

pub mod file;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Interval, MissedTickBehavior};
use tokio_util::task::TaskTracker;

use crate::config::{Bin, Driver, DriverConfig, WriterConfig};
use crate::line::Point;

/// Attempts per batch before it is dropped.
pub const MAX_WRITE_ATTEMPTS: u32 = 3;
/// Backoff before the second attempt; doubled for each further one.
pub const RETRY_BACKOFF: Duration = Duration::from_millis(500);
/// Most batches a bin's channel holds (the permits bound the records; this bounds tiny batches).
const MAX_QUEUED_BATCHES: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum WriterError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("option {name}: {reason}")]
    Option { name: &'static str, reason: String },
    #[error("driver {0}: dsn is required")]
    MissingDsn(&'static str),
    #[error("driver {0} is not implemented as a metrics writer yet")]
    Unsupported(&'static str),
}

/// One bin's metrics writer.
#[derive(Debug)]
pub enum Writer {
    File(file::FileWriter),
}

impl Writer {
    pub async fn open(cfg: &DriverConfig, bin_secs: u64) -> Result<Writer, WriterError> {
        match cfg.driver {
            Driver::File => Ok(Writer::File(
                file::FileWriter::open(&cfg.dsn, bin_secs, &cfg.options).await?,
            )),
            d @ (Driver::Mysql | Driver::Cassandra | Driver::Noop) => Err(WriterError::Unsupported(d.name())),
        }
    }

    /// The driver name, for logs and metric labels.
    pub fn driver(&self) -> &'static str {
        match self {
            Writer::File(_) => Driver::File.name(),
        }
    }

    /// Store one bin flush (see the module docs for the retry contract).
    pub async fn write(&mut self, points: &[Point]) -> Result<(), WriterError> {
        match self {
            Writer::File(w) => w.write(points).await,
        }
    }

    /// How often [`Writer::maintain`] should run, if at all.
    pub fn maintenance_interval(&self) -> Option<Duration> {
        match self {
            Writer::File(_) => Some(file::ROTATE_CHECK_INTERVAL),
        }
    }

    /// Periodic work: file rotation.
    pub async fn maintain(&mut self) -> Result<(), WriterError> {
        match self {
            Writer::File(w) => w.check_rotate().await.map(|_| ()),
        }
    }

    /// Flush buffers and release resources.
    pub async fn close(&mut self) {
        match self {
            Writer::File(w) => w.close().await,
        }
    }
}

/// Counters of one bin's writer (§13.2 `consthash_writer_{records,errors,skipped_flushes}_total`).
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Records written.
    pub records: AtomicU64,
    /// Failed write attempts and failed maintenance.
    pub errors: AtomicU64,
    /// Bin flushes refused by a full queue.
    pub skipped_flushes: AtomicU64,
    /// Records lost: skipped flushes plus batches dropped after their last failed attempt.
    pub dropped_records: AtomicU64,
}

/// A bin flush refused because it did not fit in the queue (or the writer is gone).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("writer queue full: bin flush of {records} records skipped")]
pub struct Skipped {
    pub records: usize,
}

#[derive(Debug)]
struct QueueInfo {
    group: String,
    bin_secs: u64,
    driver: &'static str,
    capacity: usize,
    stats: Arc<WriterStats>,
}

/// A batch and the permits (one per record) it holds until the bin task is done with it.
#[derive(Debug)]
struct Queued {
    points: Vec<Point>,
    _permits: OwnedSemaphorePermit,
}

/// The bounded queue in front of one bin's writer. Dropping it closes the queue: the bin task writes what is
/// queued, closes its writer and ends.
#[derive(Debug)]
pub struct WriterQueue {
    tx: mpsc::Sender<Queued>,
    permits: Arc<Semaphore>,
    info: Arc<QueueInfo>,
}

impl WriterQueue {
    fn channel(
        group: &str,
        bin_secs: u64,
        driver: &'static str,
        capacity: usize,
    ) -> (WriterQueue, mpsc::Receiver<Queued>) {
        let capacity = capacity.clamp(1, Semaphore::MAX_PERMITS);
        let (tx, rx) = mpsc::channel(capacity.min(MAX_QUEUED_BATCHES));
        let info = Arc::new(QueueInfo {
            group: group.to_string(),
            bin_secs,
            driver,
            capacity,
            stats: Arc::default(),
        });
        (
            WriterQueue {
                tx,
                permits: Arc::new(Semaphore::new(capacity)),
                info,
            },
            rx,
        )
    }

    /// Queue one bin flush, all or nothing (§10.1). A flush that does not fit in the free space is skipped:
    /// counted in `skipped_flushes` and `dropped_records`, logged at ERROR. An empty flush is accepted as is.
    pub fn try_submit(&self, points: Vec<Point>) -> Result<(), Skipped> {
        if points.is_empty() {
            return Ok(());
        }
        let n = points.len();
        let permits = u32::try_from(n)
            .ok()
            .and_then(|k| Arc::clone(&self.permits).try_acquire_many_owned(k).ok());
        let sent = match permits {
            Some(p) => self.tx.try_send(Queued { points, _permits: p }).is_ok(),
            None => false,
        };
        if sent {
            return Ok(());
        }
        let s = &self.info.stats;
        s.skipped_flushes.fetch_add(1, Ordering::Relaxed);
        s.dropped_records.fetch_add(n as u64, Ordering::Relaxed);
        tracing::error!(
            group = %self.info.group,
            bin = self.info.bin_secs,
            records = n,
            queued = self.queued(),
            capacity = self.info.capacity,
            "writer queue full: bin flush skipped, records lost"
        );
        Err(Skipped { records: n })
    }

    /// Records queued or being written.
    pub fn queued(&self) -> usize {
        self.info.capacity.saturating_sub(self.permits.available_permits())
    }

    /// `metric_queue_length`.
    pub fn capacity(&self) -> usize {
        self.info.capacity
    }

    pub fn stats(&self) -> &Arc<WriterStats> {
        &self.info.stats
    }

    pub fn group(&self) -> &str {
        &self.info.group
    }

    /// The bin width in seconds (the `bin` label).
    pub fn bin_secs(&self) -> u64 {
        self.info.bin_secs
    }

    pub fn driver(&self) -> &'static str {
        self.info.driver
    }
}

/// Open one metrics writer per bin and spawn its task on `tracker`; returns the queues in `bins` order. If any
/// writer fails to open, the ones already opened are closed and the error is returned. The tasks end, after
/// writing everything queued, when their queues are dropped.
pub fn start(
    group: &str,
    cfg: &WriterConfig,
    bins: &[Bin],
    tracker: &TaskTracker,
) -> impl Future<Output = Result<Vec<WriterQueue>, WriterError>> {
    let group = group.to_string();
    let cfg = cfg.clone();
    let bins = bins.to_vec();
    let tracker = tracker.clone();
    async move {
        if let Some(ix) = &cfg.indexer {
            tracing::warn!(group = %group, driver = ix.driver.name(), "indexer writers are not implemented yet; keys are not indexed");
        }
        let mut writers = Vec::with_capacity(bins.len());
        for bin in &bins {
            match Writer::open(&cfg.metrics, bin.secs()).await {
                Ok(w) => writers.push(w),
                Err(e) => {
                    for w in &mut writers {
                        w.close().await;
                    }
                    return Err(e);
                }
            }
        }
        let queues = bins
            .iter()
            .zip(writers)
            .map(|(bin, writer)| {
                let (queue, rx) = WriterQueue::channel(&group, bin.secs(), writer.driver(), cfg.metric_queue_length);
                tracker.spawn(run_bin(writer, rx, Arc::clone(&queue.info)));
                queue
            })
            .collect();
        Ok(queues)
    }
}

/// One bin's task: write batches as they come, run the writer's maintenance between them, and close the writer
/// once the queue is closed and drained.
async fn run_bin(mut writer: Writer, mut rx: mpsc::Receiver<Queued>, info: Arc<QueueInfo>) {
    let mut maintenance = writer.maintenance_interval().map(|period| {
        let mut i = tokio::time::interval_at(Instant::now() + period, period);
        i.set_missed_tick_behavior(MissedTickBehavior::Delay);
        i
    });
    loop {
        tokio::select! {
            biased;
            batch = rx.recv() => match batch {
                Some(batch) => write_batch(&mut writer, batch, &info).await,
                None => break,
            },
            () = next_tick(&mut maintenance) => {
                if let Err(e) = writer.maintain().await {
                    info.stats.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(group = %info.group, bin = info.bin_secs, driver = info.driver, error = %e, "writer maintenance failed");
                }
            }
        }
    }
    writer.close().await;
}

async fn next_tick(i: &mut Option<Interval>) {
    match i {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Write one batch with bounded retries; its permits are released when this returns.
async fn write_batch(writer: &mut Writer, batch: Queued, info: &QueueInfo) {
    let n = batch.points.len() as u64;
    let mut backoff = RETRY_BACKOFF;
    for attempt in 1..=MAX_WRITE_ATTEMPTS {
        match writer.write(&batch.points).await {
            Ok(()) => {
                info.stats.records.fetch_add(n, Ordering::Relaxed);
                return;
            }
            Err(e) => {
                info.stats.errors.fetch_add(1, Ordering::Relaxed);
                if attempt == MAX_WRITE_ATTEMPTS {
                    info.stats.dropped_records.fetch_add(n, Ordering::Relaxed);
                    tracing::error!(group = %info.group, bin = info.bin_secs, driver = info.driver, records = n, attempts = attempt, error = %e, "writer failed: batch dropped, data lost");
                } else {
                    tracing::warn!(group = %info.group, bin = info.bin_secs, driver = info.driver, attempt, error = %e, "writer failed: retrying batch");
                    tokio::time::sleep(backoff).await;
                    backoff = backoff.saturating_mul(2);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points(n: usize, time: i64) -> Vec<Point> {
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

    #[test]
    fn skip_on_full_accounting() {
        let (q, mut rx) = WriterQueue::channel("g", 5, "file", 100);
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
        assert_eq!(first.points.len(), 60);
        assert_eq!(q.queued(), 100, "still held while being written");
        drop(first);
        assert_eq!(q.queued(), 40);
        assert_eq!(q.try_submit(points(60, 20)), Ok(()));

        // A closed queue (task gone) skips too.
        drop(rx);
        assert_eq!(q.try_submit(points(1, 25)), Err(Skipped { records: 1 }));
        assert_eq!(s.skipped_flushes.load(Ordering::Relaxed), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn start_writes_each_bin_to_its_file_and_drains_on_close() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dsn = dir.path().join("moo");
        let dsn = dsn.to_str().expect("utf8 path");
        let tracker = TaskTracker::new();
        let queues = start("g", &writer_cfg(dsn, 1000, ""), &[bin(5), bin(60)], &tracker)
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
        let queues = start("g", &writer_cfg(dsn, 1000, "max_file_size = 200"), &[bin(5)], &tracker)
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
        let queues = start("g", &writer_cfg(dsn, 10, ""), &[bin(5)], &tracker)
            .await
            .expect("start");
        queues[0].try_submit(points(4, 5)).expect("fits");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(queues[0].queued(), 4, "permits held while retrying");
        tokio::time::sleep(RETRY_BACKOFF * 4).await;
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
            start("g", &cfg, &[bin(5)], &tracker).await,
            Err(WriterError::Io { .. })
        ));
        cfg.metrics.driver = Driver::Mysql;
        assert!(matches!(
            start("g", &cfg, &[bin(5)], &tracker).await,
            Err(WriterError::Unsupported("mysql"))
        ));
        cfg.metrics.driver = Driver::File;
        cfg.metrics.dsn.clear();
        assert!(matches!(
            start("g", &cfg, &[bin(5)], &tracker).await,
            Err(WriterError::MissingDsn("file"))
        ));
        cfg.metrics.dsn = "/tmp/x".into();
        cfg.metrics.options = toml::from_str("max_file_size = \"big\"").expect("toml");
        assert!(matches!(
            start("g", &cfg, &[bin(5)], &tracker).await,
            Err(WriterError::Option { .. })
        ));
        assert!(tracker.is_empty());
    }
}
