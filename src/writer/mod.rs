//! Writers (spec §10): the bins' points go to a per-bin bounded queue and from there to that bin's [`Writer`];
//! the keys seen for the first time go to the accumulator's [`Indexer`] through a queue of their own.
//!
//! ```text
//! bin tick ─► Bins::drain ─► WriterQueue::try_submit ──(Vec<Point> + permits)──► bin task ─► Writer::write
//!                             │  └─ does not fit: whole flush skipped,              │  retried (see below)
//!                             │     counted (skipped_flushes), ERROR                └─ maintain (connect, rotate)
//!                             └─ keys never indexed ──(Vec<String> + permits)──► index task ─► Indexer::write
//! ```
//!
//! # Bounded memory
//! A queue holds a semaphore of `metric_queue_length` (or `indexer_queue_length`) permits, one per record (key).
//! A flush takes as many permits as it has records, all or nothing, and the permits travel with the batch through
//! the channel; they are released only when the task is done with the batch (stored, or dropped). So queued plus
//! in-flight plus retried records never exceed the configured length, whatever the database does. A bin flush
//! whose records, or whose new keys, do not fit is skipped as a whole.
//!
//! # Retries
//! [`Store::write`] stores a batch and reports how far it got, so a retry resumes where the last attempt stopped
//! (a MySQL row is never inserted twice by a retry; Cassandra writes are idempotent upserts anyway). A failure
//! is either
//! * [`WriterError::Unavailable`] — the database cannot be reached, or refuses the login: the batch is retried
//!   with backoff until it is stored, however long the outage lasts (further flushes queue up, then are skipped
//!   and counted); at shutdown, what is still unstored when `shutdown_timeout` ends is counted as dropped; or
//! * any other error — the database (or disk) refused the statement: retried [`MAX_WRITE_ATTEMPTS`] times, then
//!   the rest of the batch is dropped, counted and logged at ERROR.
//!
//! # The store interface
//! [`Store`] is implemented by [`Writer`] and [`Indexer`], enums over the drivers, one file each:
//! * `open` parses the driver's options and DSN (an error fails start-up: it is configuration). It does no I/O
//!   for databases: a database that is down at start does not stop the relay.
//! * `maintain` runs on the task at start and every `maintenance_interval`, never concurrently with `write`:
//!   databases connect (and create or check their schema) there and in `write`; the file writer rotates.
//! * `close` releases what the store holds, once the queue is closed and drained.

pub mod cassandra;
pub mod file;
pub mod mysql;
mod options;

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Interval, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::backend::Backoff;
use crate::config::{Bin, Driver, DriverConfig, WriterConfig};
use crate::line::Point;

/// Attempts per batch at a statement the database (or disk) refuses, before the batch is dropped.
pub const MAX_WRITE_ATTEMPTS: u32 = 3;
/// Longest wait between two attempts, unless the driver sets its own.
pub const RETRY_WAIT_MAX: Duration = Duration::from_secs(2);
/// How often a store that is not yet usable is tried again between batches (connect, schema).
pub const CONNECT_INTERVAL: Duration = Duration::from_secs(5);
/// Most batches a queue's channel holds (the permits bound the records; this bounds tiny batches).
const MAX_QUEUED_BATCHES: usize = 1024;
/// While a database stays unavailable, one log line per this long.
const OUTAGE_LOG_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum WriterError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("option {name}: {reason}")]
    Option { name: &'static str, reason: String },
    #[error("driver {0}: dsn is required")]
    MissingDsn(&'static str),
    #[error("dsn: {0}")]
    Dsn(String),
    /// The database cannot be reached or refuses the login: retried until it can.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The database refused the statement.
    #[error("{0}")]
    Rejected(String),
}

impl WriterError {
    fn is_unavailable(&self) -> bool {
        matches!(self, WriterError::Unavailable(_))
    }
}

/// What a queue's task writes to.
pub trait Store: Send + 'static {
    type Item: Send + Sync + 'static;

    /// The driver name, for logs and metric labels.
    fn driver(&self) -> &'static str;

    /// Store `items`, recording in `progress` each item as soon as it is handled (a prefix of `items`), so that
    /// a retry resumes after them. `Ok` means all of `items` are handled. A store may reorder the items it has
    /// not handled (to move one it stored ahead of a failed one into the prefix).
    fn write(
        &mut self,
        items: &mut [Self::Item],
        progress: &mut Progress,
    ) -> impl Future<Output = Result<(), WriterError>> + Send;

    /// How the store orders a batch before its first attempt, if it does (run on a blocking thread).
    fn arrange(&self) -> Option<fn(&mut [Self::Item])> {
        None
    }

    /// How often [`Store::maintain`] runs, if at all.
    fn maintenance_interval(&self) -> Option<Duration>;

    /// Whether [`Store::maintain`] also runs once at start (databases connect there).
    fn maintain_at_start(&self) -> bool {
        true
    }

    /// Periodic work between batches.
    fn maintain(&mut self) -> impl Future<Output = Result<(), WriterError>> + Send;

    /// The cap of the wait between two attempts.
    fn retry_wait_max(&self) -> Duration {
        RETRY_WAIT_MAX
    }

    /// Items that will not be stored (dropped after retries, or at shutdown).
    fn lost(&mut self, _items: &[Self::Item]) {}

    /// Flush buffers and release resources.
    fn close(&mut self) -> impl Future<Output = ()> + Send;
}

/// How far one [`Store::write`] got.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    /// Items handled, from the start of the slice: stored, or refused one by one.
    pub done: usize,
    /// Of those, items the store cannot ever store (a key too long for its column): counted as dropped.
    pub refused: usize,
}

/// One bin's metrics writer.
#[derive(Debug)]
pub enum Writer {
    File(file::FileWriter),
    Mysql(mysql::MysqlWriter),
    Cassandra(cassandra::CassandraWriter),
}

/// A metrics writer's connection, shared by the writers of all bins of one accumulator.
#[derive(Clone, Debug)]
enum Shared {
    None,
    Mysql(mysql::Connection),
    Cassandra(cassandra::Connection),
}

impl Shared {
    fn open(cfg: &DriverConfig, role: &str) -> Result<Shared, WriterError> {
        Ok(match cfg.driver {
            Driver::File | Driver::Noop => Shared::None,
            Driver::Mysql => Shared::Mysql(mysql::Connection::open(cfg, role)?),
            Driver::Cassandra => Shared::Cassandra(cassandra::Connection::open(cfg, role)?),
        })
    }
}

impl Writer {
    /// One bin's writer with a connection of its own (tools and benches; the relay shares one per accumulator).
    pub async fn for_bin(cfg: &DriverConfig, bin_secs: u64) -> Result<Writer, WriterError> {
        Writer::open(cfg, &Shared::open(cfg, "metrics")?, bin_secs).await
    }

    async fn open(cfg: &DriverConfig, shared: &Shared, bin_secs: u64) -> Result<Writer, WriterError> {
        Ok(match shared {
            Shared::Mysql(c) => Writer::Mysql(mysql::MysqlWriter::new(c.clone(), bin_secs)),
            Shared::Cassandra(c) => Writer::Cassandra(cassandra::CassandraWriter::new(c.clone())),
            Shared::None => Writer::File(file::FileWriter::open(&cfg.dsn, bin_secs, &cfg.options).await?),
        })
    }
}

impl Store for Writer {
    type Item = Point;

    fn driver(&self) -> &'static str {
        match self {
            Writer::File(_) => Driver::File.name(),
            Writer::Mysql(_) => Driver::Mysql.name(),
            Writer::Cassandra(_) => Driver::Cassandra.name(),
        }
    }

    async fn write(&mut self, points: &mut [Point], progress: &mut Progress) -> Result<(), WriterError> {
        match self {
            Writer::File(w) => {
                w.write(points).await?;
                progress.done = points.len();
                Ok(())
            }
            Writer::Mysql(w) => w.write(points, progress).await,
            Writer::Cassandra(w) => w.write(points, progress).await,
        }
    }

    fn arrange(&self) -> Option<fn(&mut [Point])> {
        match self {
            // In key order, the table's `stat` index grows page by page instead of at random pages (a 1 M-point
            // flush is stored ~1.4 times faster than in the accumulator's hash order).
            Writer::Mysql(_) => Some(mysql::by_key),
            // The rows of a batch are neighbours on the ring, so one replica takes the whole batch.
            Writer::Cassandra(_) => Some(cassandra::by_token),
            Writer::File(_) => None,
        }
    }

    fn maintenance_interval(&self) -> Option<Duration> {
        match self {
            Writer::File(_) => Some(file::ROTATE_CHECK_INTERVAL),
            Writer::Mysql(_) | Writer::Cassandra(_) => Some(CONNECT_INTERVAL),
        }
    }

    async fn maintain(&mut self) -> Result<(), WriterError> {
        match self {
            Writer::File(w) => w.check_rotate().await.map(|_| ()),
            Writer::Mysql(w) => w.ready().await,
            Writer::Cassandra(w) => w.ready().await,
        }
    }

    fn maintain_at_start(&self) -> bool {
        // The file writer checked rotation when it opened.
        !matches!(self, Writer::File(_))
    }

    fn retry_wait_max(&self) -> Duration {
        match self {
            Writer::Mysql(w) => w.retry_wait_max(),
            Writer::File(_) | Writer::Cassandra(_) => RETRY_WAIT_MAX,
        }
    }

    async fn close(&mut self) {
        match self {
            Writer::File(w) => w.close().await,
            Writer::Mysql(w) => w.close().await,
            Writer::Cassandra(_) => {}
        }
    }
}

/// An accumulator's indexer: each key once per process (spec §10.1, §10.3, §10.4).
#[derive(Debug)]
pub enum Indexer {
    Mysql(mysql::MysqlIndexer),
    Cassandra(cassandra::CassandraIndexer),
}

impl Indexer {
    /// `None` for the `noop` driver: no index is kept.
    pub fn open(cfg: &DriverConfig, seen: Arc<Seen>) -> Result<Option<Indexer>, WriterError> {
        Ok(match cfg.driver {
            Driver::Mysql => Some(Indexer::Mysql(mysql::MysqlIndexer::new(
                mysql::Connection::open(cfg, "indexer")?,
                seen,
            ))),
            Driver::Cassandra => Some(Indexer::Cassandra(cassandra::CassandraIndexer::new(
                cassandra::Connection::open(cfg, "indexer")?,
                seen,
            ))),
            Driver::Noop | Driver::File => None,
        })
    }

    fn seen(&self) -> &Seen {
        match self {
            Indexer::Mysql(i) => i.seen(),
            Indexer::Cassandra(i) => i.seen(),
        }
    }
}

impl Store for Indexer {
    type Item = String;

    fn driver(&self) -> &'static str {
        match self {
            Indexer::Mysql(_) => Driver::Mysql.name(),
            Indexer::Cassandra(_) => Driver::Cassandra.name(),
        }
    }

    async fn write(&mut self, keys: &mut [String], progress: &mut Progress) -> Result<(), WriterError> {
        match self {
            Indexer::Mysql(i) => i.write(keys, progress).await,
            Indexer::Cassandra(i) => i.write(keys, progress).await,
        }
    }

    fn maintenance_interval(&self) -> Option<Duration> {
        Some(CONNECT_INTERVAL)
    }

    async fn maintain(&mut self) -> Result<(), WriterError> {
        match self {
            Indexer::Mysql(i) => i.ready().await,
            Indexer::Cassandra(i) => i.ready().await,
        }
    }

    fn lost(&mut self, keys: &[String]) {
        // Not indexed after all: index them again when they next flush.
        self.seen().forget(keys);
    }

    async fn close(&mut self) {
        if let Indexer::Mysql(i) = self {
            i.close().await;
        }
    }
}

/// The keys an indexer was given, as 64-bit hashes, so that each key is indexed once per process. Bounded: when
/// it holds `cap` hashes it starts over (keys are then indexed again; index writes are idempotent). A hash
/// collision can leave a key unindexed until the set starts over.
#[derive(Debug)]
pub struct Seen {
    cap: usize,
    hashes: Mutex<HashSet<u64, foldhash::fast::FixedState>>,
}

impl Seen {
    pub fn new(cap: usize) -> Seen {
        Seen {
            cap: cap.max(1),
            hashes: Mutex::default(),
        }
    }

    fn hash(s: &str) -> u64 {
        use std::hash::BuildHasher;
        foldhash::fast::FixedState::with_seed(0x636f_6e73_7468_6173).hash_one(s)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<u64, foldhash::fast::FixedState>> {
        self.hashes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The names among `names` not yet seen (not marked).
    fn unseen<'a>(&self, names: impl Iterator<Item = &'a str>) -> Vec<(u64, &'a str)> {
        let set = self.lock();
        names
            .map(|n| (Seen::hash(n), n))
            .filter(|(h, _)| !set.contains(h))
            .collect()
    }

    /// Marks these hashes as seen.
    fn mark(&self, hashes: impl Iterator<Item = u64>) {
        let mut set = self.lock();
        for h in hashes {
            if set.len() >= self.cap {
                set.clear();
            }
            set.insert(h);
        }
    }

    /// Marks `name`; true if it was not seen before.
    pub fn first_time(&self, name: &str) -> bool {
        let h = Seen::hash(name);
        let mut set = self.lock();
        if set.contains(&h) {
            return false;
        }
        if set.len() >= self.cap {
            set.clear();
        }
        set.insert(h)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.lock().contains(&Seen::hash(name))
    }

    /// The most hashes held before the set starts over.
    pub fn cap(&self) -> usize {
        self.cap
    }

    pub fn forget(&self, names: &[String]) {
        let mut set = self.lock();
        for n in names {
            set.remove(&Seen::hash(n));
        }
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Counters of one queue and its store (§13.2 `consthash_writer_*`, `consthash_indexer_*`).
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Records (keys) stored.
    pub records: AtomicU64,
    /// Failed write attempts and failed maintenance.
    pub errors: AtomicU64,
    /// Bin flushes refused by a full queue.
    pub skipped_flushes: AtomicU64,
    /// Records lost: skipped flushes, batches dropped after their last failed attempt, and what was left at
    /// shutdown.
    pub dropped_records: AtomicU64,
}

/// A bin flush refused because it did not fit in the queue (or the writer is gone).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("writer queue full: bin flush of {records} records skipped")]
pub struct Skipped {
    pub records: usize,
}

/// What the admin API shows of one queue: a bin's writer (`bin` = its seconds) or an indexer (`bin` = `None`).
#[derive(Clone, Debug)]
pub struct QueueStatus {
    pub group: String,
    pub bin: Option<u64>,
    pub driver: &'static str,
    pub capacity: usize,
    pub stats: Arc<WriterStats>,
    permits: Arc<Semaphore>,
}

impl QueueStatus {
    /// Records queued or being written.
    pub fn queued(&self) -> usize {
        self.capacity.saturating_sub(self.permits.available_permits())
    }

    fn what(&self) -> String {
        match self.bin {
            Some(b) => format!("writer {} bin {b}s", self.group),
            None => format!("indexer {}", self.group),
        }
    }
}

/// A batch and the permits (one per item) it holds until its task is done with it.
#[derive(Debug)]
struct Queued<T> {
    items: Vec<T>,
    _permits: OwnedSemaphorePermit,
}

/// A bounded queue in front of one store. Dropping it closes the queue: the task stores what is queued, closes
/// the store and ends.
#[derive(Debug)]
struct Queue<T> {
    tx: mpsc::Sender<Queued<T>>,
    status: QueueStatus,
}

impl<T> Queue<T> {
    fn channel(
        group: &str,
        bin: Option<u64>,
        driver: &'static str,
        capacity: usize,
    ) -> (Queue<T>, mpsc::Receiver<Queued<T>>) {
        let capacity = capacity.clamp(1, Semaphore::MAX_PERMITS);
        let (tx, rx) = mpsc::channel(capacity.min(MAX_QUEUED_BATCHES));
        let status = QueueStatus {
            group: group.to_string(),
            bin,
            driver,
            capacity,
            stats: Arc::default(),
            permits: Arc::new(Semaphore::new(capacity)),
        };
        (Queue { tx, status }, rx)
    }

    /// Permits for `n` items, all or nothing.
    fn reserve(&self, n: usize) -> Option<OwnedSemaphorePermit> {
        let n = u32::try_from(n).ok()?;
        Arc::clone(&self.status.permits).try_acquire_many_owned(n).ok()
    }

    /// Sends a batch whose permits are reserved; false if the channel is full or closed.
    fn send(&self, items: Vec<T>, permits: OwnedSemaphorePermit) -> bool {
        self.tx
            .try_send(Queued {
                items,
                _permits: permits,
            })
            .is_ok()
    }
}

/// The indexer's queue and the keys it was given.
#[derive(Debug)]
struct IndexQueue {
    queue: Queue<String>,
    seen: Arc<Seen>,
}

/// The bounded queue in front of one bin's writer, and the accumulator's index queue.
#[derive(Debug)]
pub struct WriterQueue {
    queue: Queue<Point>,
    index: Option<Arc<IndexQueue>>,
}

impl WriterQueue {
    /// Queue one bin flush, all or nothing (§10.1): its records, and its keys not indexed yet. A flush that does
    /// not fit in the free space of either queue is skipped: counted in `skipped_flushes` and `dropped_records`,
    /// logged at ERROR. An empty flush is accepted as is.
    pub fn try_submit(&self, points: Vec<Point>) -> Result<(), Skipped> {
        if points.is_empty() {
            return Ok(());
        }
        let n = points.len();
        let index = self.index.as_deref().map(|ix| {
            let new = ix.seen.unseen(points.iter().map(|p| p.key.as_str()));
            let (hashes, keys): (Vec<u64>, Vec<String>) = new.into_iter().map(|(h, k)| (h, k.to_string())).unzip();
            (ix, hashes, keys)
        });
        let index_permits = match &index {
            Some((ix, _, keys)) if !keys.is_empty() => match ix.queue.reserve(keys.len()) {
                Some(p) => Some(p),
                None => return Err(self.skip(n, "indexer queue full")),
            },
            _ => None,
        };
        let Some(permits) = self.queue.reserve(n) else {
            return Err(self.skip(n, "writer queue full"));
        };
        if !self.queue.send(points, permits) {
            return Err(self.skip(n, "writer queue full"));
        }
        if let (Some((ix, hashes, keys)), Some(p)) = (index, index_permits) {
            let new = keys.len();
            if ix.queue.send(keys, p) {
                ix.seen.mark(hashes.into_iter());
            } else {
                // The records are queued; their keys are indexed at a later flush.
                ix.queue
                    .status
                    .stats
                    .dropped_records
                    .fetch_add(new as u64, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    fn skip(&self, n: usize, why: &str) -> Skipped {
        let st = &self.queue.status;
        st.stats.skipped_flushes.fetch_add(1, Ordering::Relaxed);
        st.stats.dropped_records.fetch_add(n as u64, Ordering::Relaxed);
        tracing::error!(
            group = %st.group,
            bin = st.bin,
            records = n,
            queued = st.queued(),
            capacity = st.capacity,
            "{why}: bin flush skipped, records lost"
        );
        Skipped { records: n }
    }

    pub fn status(&self) -> &QueueStatus {
        &self.queue.status
    }

    /// The index queue's status, if there is an indexer.
    pub fn index_status(&self) -> Option<&QueueStatus> {
        self.index.as_deref().map(|ix| &ix.queue.status)
    }

    /// Records queued or being written.
    pub fn queued(&self) -> usize {
        self.queue.status.queued()
    }

    /// `metric_queue_length`.
    pub fn capacity(&self) -> usize {
        self.queue.status.capacity
    }

    pub fn stats(&self) -> &Arc<WriterStats> {
        &self.queue.status.stats
    }

    pub fn group(&self) -> &str {
        &self.queue.status.group
    }

    /// The bin width in seconds (the `bin` label).
    pub fn bin_secs(&self) -> u64 {
        self.queue.status.bin.unwrap_or_default()
    }

    pub fn driver(&self) -> &'static str {
        self.queue.status.driver
    }
}

/// Every queue's status: the bins' writers in order, then the indexer if any.
pub fn statuses(queues: &[WriterQueue]) -> Vec<QueueStatus> {
    let mut v: Vec<QueueStatus> = queues.iter().map(|q| q.status().clone()).collect();
    v.extend(queues.first().and_then(|q| q.index_status()).cloned());
    v
}

/// Open one metrics writer per bin and the indexer, and spawn their tasks on `tracker`; returns the queues in
/// `bins` order. Opening does no database I/O (a database down at start does not fail start-up): only options
/// and DSNs are checked here. The tasks end, after storing everything queued, when the queues are dropped, or
/// at once when `stop` is cancelled (what is left is counted as dropped).
pub fn start(
    group: &str,
    cfg: &WriterConfig,
    bins: &[Bin],
    max_keys: usize,
    tracker: &TaskTracker,
    stop: &CancellationToken,
) -> impl Future<Output = Result<Vec<WriterQueue>, WriterError>> {
    let group = group.to_string();
    let cfg = cfg.clone();
    let bins = bins.to_vec();
    let tracker = tracker.clone();
    let stop = stop.clone();
    async move {
        let shared = Shared::open(&cfg.metrics, "metrics")?;
        let mut writers = Vec::with_capacity(bins.len());
        for bin in &bins {
            match Writer::open(&cfg.metrics, &shared, bin.secs()).await {
                Ok(w) => writers.push(w),
                Err(e) => {
                    for w in &mut writers {
                        w.close().await;
                    }
                    return Err(e);
                }
            }
        }
        // Twice the keys an accumulator may hold: room for churn before the set starts over.
        let seen = Arc::new(Seen::new(max_keys.saturating_mul(2).max(1024)));
        let indexer = match &cfg.indexer {
            Some(ix) => Indexer::open(ix, Arc::clone(&seen))?,
            None => None,
        };
        let index = indexer.map(|indexer| {
            let (queue, rx) = Queue::channel(&group, None, indexer.driver(), cfg.indexer_queue_length);
            tracker.spawn(run(indexer, rx, queue.status.clone(), stop.clone()));
            Arc::new(IndexQueue { queue, seen })
        });
        let queues = bins
            .iter()
            .zip(writers)
            .map(|(bin, writer)| {
                let (queue, rx) = Queue::channel(&group, Some(bin.secs()), writer.driver(), cfg.metric_queue_length);
                tracker.spawn(run(writer, rx, queue.status.clone(), stop.clone()));
                WriterQueue {
                    queue,
                    index: index.clone(),
                }
            })
            .collect();
        Ok(queues)
    }
}

/// One queue's task: maintain the store at start and periodically, store batches as they come, and close the
/// store once the queue is closed and drained, or when `stop` is cancelled (the rest counted as dropped).
async fn run<S: Store>(
    mut store: S,
    mut rx: mpsc::Receiver<Queued<S::Item>>,
    status: QueueStatus,
    stop: CancellationToken,
) {
    let first = |period| {
        Instant::now()
            + if store.maintain_at_start() {
                Duration::ZERO
            } else {
                period
            }
    };
    let mut maintenance = store.maintenance_interval().map(|period| {
        let mut i = tokio::time::interval_at(first(period), period);
        i.set_missed_tick_behavior(MissedTickBehavior::Delay);
        i
    });
    let mut outage = Outage::default();
    loop {
        tokio::select! {
            biased;
            () = stop.cancelled() => break,
            batch = rx.recv() => match batch {
                Some(batch) => write_batch(&mut store, batch, &status, &stop, &mut outage).await,
                None => break,
            },
            () = next_tick(&mut maintenance) => {
                match store.maintain().await {
                    Ok(()) => outage.over(&status),
                    Err(e) => {
                        status.stats.errors.fetch_add(1, Ordering::Relaxed);
                        outage.failed(&status, &e, "not ready");
                    }
                }
            }
        }
    }
    rx.close();
    let mut left = 0;
    while let Ok(batch) = rx.try_recv() {
        left += batch.items.len();
        store.lost(&batch.items);
    }
    if left > 0 {
        status.stats.dropped_records.fetch_add(left as u64, Ordering::Relaxed);
        tracing::error!(what = %status.what(), driver = status.driver, records = left, "shutdown: queued records not stored, lost");
    }
    store.close().await;
}

/// Logs an unavailable store once, then once per [`OUTAGE_LOG_EVERY`], and its recovery.
#[derive(Debug, Default)]
struct Outage {
    failures: u64,
    last_log: Option<Instant>,
}

impl Outage {
    fn failed(&mut self, status: &QueueStatus, e: &WriterError, doing: &str) {
        self.failures += 1;
        if self.last_log.is_none_or(|t| t.elapsed() >= OUTAGE_LOG_EVERY) {
            self.last_log = Some(Instant::now());
            tracing::error!(what = %status.what(), driver = status.driver, failures = self.failures, queued = status.queued(), error = %e, "{doing}: will retry");
        }
    }

    fn over(&mut self, status: &QueueStatus) {
        if self.failures > 0 {
            tracing::info!(what = %status.what(), driver = status.driver, failures = self.failures, "database available again");
        }
        *self = Outage::default();
    }
}

async fn next_tick(i: &mut Option<Interval>) {
    match i {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Store one batch with retries (module docs); its permits are released when this returns.
async fn write_batch<S: Store>(
    store: &mut S,
    batch: Queued<S::Item>,
    status: &QueueStatus,
    stop: &CancellationToken,
    outage: &mut Outage,
) {
    let Queued { mut items, _permits } = batch;
    let stats = &status.stats;
    let started = std::time::Instant::now();
    if let Some(arrange) = store.arrange() {
        let n = items.len();
        match tokio::task::spawn_blocking(move || {
            arrange(&mut items);
            items
        })
        .await
        {
            Ok(arranged) => {
                items = arranged;
                let took_ms = started.elapsed().as_millis() as u64;
                tracing::debug!(what = %status.what(), records = n, took_ms, "batch arranged");
            }
            Err(e) => {
                stats.dropped_records.fetch_add(n as u64, Ordering::Relaxed);
                tracing::error!(what = %status.what(), driver = status.driver, records = n, error = %e, "ordering a batch failed: records lost");
                return;
            }
        }
    }
    let mut done = 0;
    let mut attempts_refused = 0;
    let mut backoff = Backoff::new(store.retry_wait_max());
    let lost = loop {
        let mut progress = Progress::default();
        let res = tokio::select! {
            biased;
            () = stop.cancelled() => None,
            r = store.write(&mut items[done..], &mut progress) => Some(r),
        };
        let handled = progress.done.min(items.len() - done);
        let refused = progress.refused.min(handled);
        done += handled;
        stats.records.fetch_add((handled - refused) as u64, Ordering::Relaxed);
        stats.dropped_records.fetch_add(refused as u64, Ordering::Relaxed);
        let e = match res {
            None => break "shutdown: batch not stored",
            Some(Ok(())) if done == items.len() => {
                let took_ms = started.elapsed().as_millis() as u64;
                tracing::debug!(what = %status.what(), records = done, took_ms, "batch stored");
                outage.over(status);
                return;
            }
            Some(Ok(())) => WriterError::Rejected(format!("store reported {done} of {} items handled", items.len())),
            Some(Err(e)) => e,
        };
        stats.errors.fetch_add(1, Ordering::Relaxed);
        if e.is_unavailable() {
            outage.failed(status, &e, "write failed");
        } else {
            attempts_refused += 1;
            if attempts_refused == MAX_WRITE_ATTEMPTS {
                tracing::error!(what = %status.what(), driver = status.driver, records = items.len() - done, attempts = attempts_refused, error = %e, "write refused: batch dropped, data lost");
                break "refused";
            }
            tracing::warn!(what = %status.what(), driver = status.driver, attempt = attempts_refused, error = %e, "write refused: retrying batch");
        }
        tokio::select! {
            biased;
            () = stop.cancelled() => break "shutdown: batch not stored",
            () = tokio::time::sleep(backoff.failed()) => {}
        }
    };
    let rest = &items[done..];
    if !rest.is_empty() {
        stats.dropped_records.fetch_add(rest.len() as u64, Ordering::Relaxed);
        store.lost(rest);
        if lost != "refused" {
            tracing::error!(what = %status.what(), driver = status.driver, records = rest.len(), "{lost}, records lost");
        }
    }
}

/// Splits a key into its dot-separated prefixes (spec §10.4): for `stats.web.cpu`, `stats`, `stats.web`,
/// `stats.web.cpu`. Empty parts are kept as they are (`a..b` gives `a`, `a.`, `a..b`).
pub fn prefixes(key: &str) -> impl Iterator<Item = &str> {
    key.match_indices('.')
        .map(move |(i, _)| &key[..i])
        .chain(std::iter::once(key))
}

#[cfg(test)]
mod tests;
