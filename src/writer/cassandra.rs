//! The Cassandra writer and indexer (spec §10.4), with the `scylla` driver: one session per role (shared by the
//! bins of an accumulator), token-aware prepared statements, at most `write_workers` requests in flight.
//!
//! * Metrics: an `INSERT … USING TTL ?` per point into `{keyspace}.{metrics_table}`, partition
//!   `{path, resolution}`, clustering `time` (unix ns), sent in small unlogged batches of neighbours on the ring
//!   ([`by_token`], [`batches`]): at most [`BATCH_ROWS`] rows and an estimated [`BATCH_BYTES`], under the server's
//!   default warn thresholds (10 partitions, 5 KiB) and far from the 50 KiB at which a stock server refuses a batch.
//!   A batch of ten stores about twice the points per second of single inserts here (benches/README.md). Inserts
//!   are idempotent upserts, so a retried batch writes the same rows.
//! * Index: per key, the segment rows and the path rows of §10.4 ([`index_rows`]); a prefix's rows are written once
//!   per process ([`Seen`], bounded), a key's once (the index queue sends each key once). The rows of
//!   [`INDEX_CHUNK_KEYS`] keys at a time are sorted by partition and sent in unlogged batches of one table
//!   ([`index_batches`]): many keys share a path partition (a prefix) and a segment partition (a depth), so most
//!   batches are single-partition, and the rest are neighbours on the ring under the same bounds as the metrics'.
//! * `create_schema = true` creates the keyspace (SimpleStrategy, RF 1, only if missing), the types and the tables
//!   of the role; otherwise a missing table is an ERROR naming it.
//!
//! The session is built on first use, not at start: a server that is down at start does not stop the relay, and
//! the writer connects when it comes up. Once built, the driver reconnects by itself.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{FuturesOrdered, StreamExt};
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::client::PoolSize;
use scylla::errors::{DbError, ExecutionError, PrepareError, RequestAttemptError};
use scylla::frame::Compression;
use scylla::response::query_result::QueryResult;
use scylla::routing::partitioner::{Murmur3Partitioner, Partitioner, PartitionerHasher};
use scylla::statement::batch::{Batch, BatchType};
use scylla::statement::prepared::PreparedStatement;
use scylla::statement::Consistency;
use scylla::SerializeValue;
use tokio::sync::OnceCell;

use super::options::Options;
use super::{prefixes, Progress, Seen, WriterError};
use crate::config::DriverConfig;
use crate::line::Point;
use crate::telemetry::RateLimit;

/// Cassandra's largest TTL (20 years).
pub const MAX_TTL_SECS: u64 = 630_720_000;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The most rows in a batch: the server's default `unlogged_batch_across_partitions_warn_threshold` (every point of
/// a flush is a partition of its own).
pub const BATCH_ROWS: usize = 10;
/// The estimated size at which a batch is cut, under the server's default `batch_size_warn_threshold` (5 KiB).
pub const BATCH_BYTES: usize = 4096;
/// A row's estimated size in a batch besides its key (the server counts ~146 B for a row with a 13-byte key).
const ROW_BYTES: usize = 160;
/// The keys whose index rows are batched together; an index write's progress advances a chunk at a time.
pub const INDEX_CHUNK_KEYS: usize = 256;
/// The most rows in an index batch (rows of one partition count once toward the [`BATCH_ROWS`] partitions).
pub const INDEX_BATCH_ROWS: usize = 32;

/// The options of §10.4.
#[derive(Clone, Debug, PartialEq)]
pub struct CassandraOptions {
    pub port: u16,
    pub keyspace: String,
    pub metrics_table: String,
    pub path_table: String,
    pub segment_table: String,
    pub write_consistency: Consistency,
    pub read_consistency: Consistency,
    pub timeout: Duration,
    pub numcons: usize,
    pub compress: bool,
    pub user: String,
    pub pass: String,
    pub write_workers: usize,
    pub create_schema: bool,
}

impl CassandraOptions {
    pub fn parse(options: &toml::Table, role: &str) -> Result<CassandraOptions, WriterError> {
        let mut o = Options::new(options, "cassandra");
        let consistency = |o: &mut Options, name| -> Result<Consistency, WriterError> {
            match o.string(name, "one")?.to_ascii_lowercase().as_str() {
                "one" | "local_one" => Ok(Consistency::LocalOne),
                "local_quorum" => Ok(Consistency::LocalQuorum),
                "quorum" => Ok(Consistency::Quorum),
                "all" => Ok(Consistency::All),
                other => Err(WriterError::Option {
                    name,
                    reason: format!("{other:?}: expected one, local_quorum, quorum or all"),
                }),
            }
        };
        let parsed = CassandraOptions {
            port: o.count("port", 9042, 65535)? as u16,
            keyspace: o.identifier("keyspace", "metric")?,
            metrics_table: o.identifier("metrics_table", "metric")?,
            path_table: o.identifier("path_table", "path")?,
            segment_table: o.identifier("segment_table", "segment")?,
            write_consistency: consistency(&mut o, "write_consistency")?,
            read_consistency: consistency(&mut o, "read_consistency")?,
            timeout: o.duration("timeout", Duration::from_secs(30))?,
            numcons: o.count("numcons", 5, 1024)? as usize,
            compress: o.bool("compress", true)?,
            user: o.string("user", "")?,
            pass: o.string("pass", "")?,
            write_workers: o.count("write_workers", 128, 65536)? as usize,
            create_schema: o.bool("create_schema", false)?,
        };
        // The metric queue (`metric_queue_length`) bounds what waits; a flush is written at once.
        for name in ["write_queue_length", "batch_count", "periodic_flush"] {
            o.accept(name);
        }
        o.finish(role);
        Ok(parsed)
    }
}

/// The two roles a session serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Metrics,
    Indexer,
}

/// The prepared statements of one role.
#[derive(Debug)]
enum Statements {
    Metrics {
        insert: PreparedStatement,
        batches: Batches,
    },
    Indexer {
        segment: PreparedStatement,
        path: PreparedStatement,
        segments: Batches,
        paths: Batches,
    },
}

/// Unlogged batches of one insert, built once: [`Batches::of`] `n` inserts, for `n` in `2..=` the most rows.
struct Batches(Vec<Batch>);

impl Batches {
    /// Batches of 2 to `most` times `insert`, with the statement's consistency and timeout, idempotent.
    fn new(insert: &PreparedStatement, most: usize, o: &CassandraOptions) -> Batches {
        Batches(
            (2..=most)
                .map(|n| {
                    let mut b = unlogged(insert, n);
                    b.set_consistency(o.write_consistency);
                    b.set_request_timeout(Some(o.timeout));
                    b.set_is_idempotent(true);
                    b
                })
                .collect(),
        )
    }

    fn of(&self, n: usize) -> &Batch {
        &self.0[n - 2]
    }
}

impl std::fmt::Debug for Batches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Batches(2..={} inserts)", self.0.len() + 1)
    }
}

#[derive(Debug)]
struct Inner {
    hosts: Vec<String>,
    opts: CassandraOptions,
    role: Role,
    session: OnceCell<Session>,
    statements: OnceCell<Statements>,
    /// The server's warnings on writes (a batch over its thresholds, tombstones), logged at most once a second.
    warning_log: RateLimit,
}

/// One role's session, built on first use, shared by the writers of all bins.
#[derive(Clone, Debug)]
pub struct Connection(Arc<Inner>);

impl Connection {
    /// Parses the DSN (comma-separated hosts, each optionally `host:port`) and the options; no I/O.
    pub fn open(cfg: &DriverConfig, role: &str) -> Result<Connection, WriterError> {
        let opts = CassandraOptions::parse(&cfg.options, role)?;
        let hosts: Vec<String> = cfg
            .dsn
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .map(|h| with_port(h, opts.port))
            .collect();
        if hosts.is_empty() {
            return Err(WriterError::Dsn(format!("{:?}: no hosts", cfg.dsn)));
        }
        Ok(Connection(Arc::new(Inner {
            hosts,
            opts,
            role: if role == "indexer" {
                Role::Indexer
            } else {
                Role::Metrics
            },
            session: OnceCell::new(),
            statements: OnceCell::new(),
            warning_log: RateLimit::default(),
        })))
    }

    pub fn options(&self) -> &CassandraOptions {
        &self.0.opts
    }

    /// The session, connecting (and creating the schema) if it is not yet there.
    pub async fn session(&self) -> Result<&Session, WriterError> {
        let inner = &*self.0;
        inner
            .session
            .get_or_try_init(|| async {
                let o = &inner.opts;
                let mut b = SessionBuilder::new()
                    .known_nodes(&inner.hosts)
                    .connection_timeout(CONNECT_TIMEOUT)
                    .pool_size(PoolSize::PerHost(
                        std::num::NonZeroUsize::new(o.numcons).unwrap_or(std::num::NonZeroUsize::MIN),
                    ))
                    .compression(o.compress.then_some(Compression::Lz4));
                if !o.user.is_empty() {
                    b = b.user(&o.user, &o.pass);
                }
                let session = b.build().await.map_err(|e| {
                    WriterError::Unavailable(format!("cassandra {}: connect: {e}", inner.hosts.join(",")))
                })?;
                if o.create_schema {
                    for cql in schema(o, inner.role) {
                        session
                            .query_unpaged(cql.as_str(), ())
                            .await
                            .map_err(|e| self.exec_error("create schema", &e))?;
                    }
                }
                Ok(session)
            })
            .await
    }

    /// The role's prepared statements (a missing table fails here).
    async fn statements(&self) -> Result<(&Session, &Statements), WriterError> {
        let session = self.session().await?;
        let inner = &*self.0;
        let o = &inner.opts;
        let st = inner
            .statements
            .get_or_try_init(|| async {
                let ks = &o.keyspace;
                Ok(match inner.role {
                    Role::Metrics => {
                        let insert = self
                            .prepare(session, &metric_insert_cql(ks, &o.metrics_table), &o.metrics_table)
                            .await?;
                        let batches = Batches::new(&insert, BATCH_ROWS, o);
                        Statements::Metrics { insert, batches }
                    }
                    Role::Indexer => {
                        let segment = self
                            .prepare(session, &segment_insert_cql(ks, &o.segment_table), &o.segment_table)
                            .await?;
                        let path = self
                            .prepare(session, &path_insert_cql(ks, &o.path_table), &o.path_table)
                            .await?;
                        Statements::Indexer {
                            segments: Batches::new(&segment, INDEX_BATCH_ROWS, o),
                            paths: Batches::new(&path, INDEX_BATCH_ROWS, o),
                            segment,
                            path,
                        }
                    }
                })
            })
            .await?;
        Ok((session, st))
    }

    async fn prepare(&self, session: &Session, cql: &str, table: &str) -> Result<PreparedStatement, WriterError> {
        let o = &self.0.opts;
        let mut p = session.prepare(cql).await.map_err(|e| {
            let text = format!("cassandra: prepare for table {}.{table}: {e}", o.keyspace);
            match prepare_db_error(&e) {
                Some(DbError::Invalid) => WriterError::Rejected(format!(
                    "{text} (does the table exist? create it or set create_schema = true)"
                )),
                Some(d) if refused(d) => WriterError::Rejected(text),
                _ => WriterError::Unavailable(text),
            }
        })?;
        p.set_consistency(o.write_consistency);
        p.set_request_timeout(Some(o.timeout));
        p.set_is_idempotent(true);
        Ok(p)
    }

    fn exec_error(&self, doing: &str, e: &ExecutionError) -> WriterError {
        let text = format!("cassandra {}: {doing}: {e}", self.0.hosts.join(","));
        let db = match e {
            ExecutionError::LastAttemptError(RequestAttemptError::DbError(d, _)) => Some(d),
            ExecutionError::PrepareError(p) => prepare_db_error(p),
            ExecutionError::BadQuery(_) => return WriterError::Rejected(text),
            _ => None,
        };
        match db {
            Some(d) if refused(d) => WriterError::Rejected(text),
            _ => WriterError::Unavailable(text),
        }
    }

    /// Logs what the server warned of in answering a write (the driver would drop it silently).
    fn server_warnings(&self, doing: &str, res: &QueryResult) {
        for w in res.warnings() {
            if let Some(suppressed) = self.0.warning_log.allow() {
                tracing::warn!(hosts = %self.0.hosts.join(","), suppressed, "cassandra {doing}: the server warns: {w}");
            }
        }
    }

    /// Connects and prepares, so that start-up shows a problem at once.
    pub async fn ready(&self) -> Result<(), WriterError> {
        self.statements().await.map(|_| ())
    }
}

/// `host:port` as the driver wants it: a host without a port gets `port`; a bare IPv6 address its brackets.
fn with_port(h: &str, port: u16) -> String {
    match h.matches(':').count() {
        0 => format!("{h}:{port}"),
        1 => h.to_string(),
        _ if h.starts_with('[') && h.contains("]:") => h.to_string(),
        _ => format!("[{}]:{port}", h.trim_start_matches('[').trim_end_matches(']')),
    }
}

fn prepare_db_error(e: &PrepareError) -> Option<&DbError> {
    match e {
        PrepareError::AllAttemptsFailed {
            first_attempt: RequestAttemptError::DbError(d, _),
        } => Some(d),
        _ => None,
    }
}

/// Errors that retrying the same statement cannot fix.
fn refused(d: &DbError) -> bool {
    matches!(
        d,
        DbError::SyntaxError
            | DbError::Invalid
            | DbError::AlreadyExists { .. }
            | DbError::FunctionFailure { .. }
            | DbError::Unauthorized
            | DbError::ConfigError
    )
}

/// The CQL of §10.4 for one role, every object `IF NOT EXISTS`.
fn schema(o: &CassandraOptions, role: Role) -> Vec<String> {
    let ks = &o.keyspace;
    let mut v = vec![format!(
        "CREATE KEYSPACE IF NOT EXISTS {ks} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}"
    )];
    match role {
        Role::Metrics => v.extend([
            format!("CREATE TYPE IF NOT EXISTS {ks}.metric_point (max double, mean double, min double, sum double, count int)"),
            format!("CREATE TYPE IF NOT EXISTS {ks}.metric_id (path text, resolution int)"),
            format!(
                "CREATE TABLE IF NOT EXISTS {ks}.{} (id frozen<metric_id>, time bigint, point frozen<metric_point>, \
                 PRIMARY KEY (id, time)) WITH CLUSTERING ORDER BY (time ASC) AND compaction = \
                 {{'class': 'TimeWindowCompactionStrategy', 'compaction_window_unit': 'DAYS', 'compaction_window_size': 1}}",
                o.metrics_table
            ),
        ]),
        Role::Indexer => v.extend([
            format!("CREATE TYPE IF NOT EXISTS {ks}.segment_pos (pos int, segment text)"),
            format!(
                "CREATE TABLE IF NOT EXISTS {ks}.{} (segment frozen<segment_pos>, path text, length int, has_data boolean, \
                 PRIMARY KEY (segment, path, has_data)) WITH CLUSTERING ORDER BY (path ASC, has_data ASC)",
                o.path_table
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {ks}.{} (pos int, segment text, PRIMARY KEY (pos, segment)) \
                 WITH CLUSTERING ORDER BY (segment ASC)",
                o.segment_table
            ),
        ]),
    }
    v
}

/// An unlogged batch of `rows` times `insert` (with the driver's default settings).
pub fn unlogged(insert: &PreparedStatement, rows: usize) -> Batch {
    let mut b = Batch::new(BatchType::Unlogged);
    for _ in 0..rows {
        b.append_statement(insert.clone());
    }
    b
}

/// The metrics writer's statement: one point with its bin's TTL.
pub fn metric_insert_cql(keyspace: &str, table: &str) -> String {
    format!("INSERT INTO {keyspace}.{table} (id, time, point) VALUES (?, ?, ?) USING TTL ?")
}

/// The indexer's statement for a segment row.
pub fn segment_insert_cql(keyspace: &str, table: &str) -> String {
    format!("INSERT INTO {keyspace}.{table} (pos, segment) VALUES (?, ?)")
}

/// The indexer's statement for a path row.
pub fn path_insert_cql(keyspace: &str, table: &str) -> String {
    format!("INSERT INTO {keyspace}.{table} (segment, path, length, has_data) VALUES (?, ?, ?, ?)")
}

/// `metric_id`: the partition key of a series.
#[derive(Debug, SerializeValue)]
pub struct MetricId<'a> {
    pub path: &'a str,
    pub resolution: i32,
}

/// `metric_point`: one stored aggregate.
#[derive(Debug, SerializeValue, scylla::DeserializeValue)]
pub struct MetricPoint {
    pub max: f64,
    pub mean: f64,
    pub min: f64,
    pub sum: f64,
    pub count: i32,
}

/// `segment_pos`: the partition key of the path table.
#[derive(Debug, SerializeValue)]
pub struct SegmentPos<'a> {
    pub pos: i32,
    pub segment: &'a str,
}

/// The metrics writer of one bin.
#[derive(Debug)]
pub struct CassandraWriter {
    conn: Connection,
}

impl CassandraWriter {
    pub fn new(conn: Connection) -> CassandraWriter {
        CassandraWriter { conn }
    }

    pub async fn ready(&mut self) -> Result<(), WriterError> {
        self.conn.ready().await
    }

    /// The points in [`batches`], `write_workers` batches in flight; `progress` advances over the prefix stored.
    pub async fn write(&mut self, points: &[Point], progress: &mut Progress) -> Result<(), WriterError> {
        let (session, st) = self.conn.statements().await?;
        let Statements::Metrics {
            insert,
            batches: templates,
        } = st
        else {
            unreachable!("a metrics connection prepares the metrics statement")
        };
        let (conn, doing) = (&self.conn, &format!("insert into {}", self.conn.0.opts.metrics_table));
        let res = in_order(
            batches(points),
            self.conn.0.opts.write_workers,
            |batch: &[Point]| async move {
                let res = match batch {
                    [p] => session.execute_unpaged(insert, values(p)).await?,
                    _ => {
                        let values: Vec<_> = batch.iter().map(values).collect();
                        session.batch(templates.of(batch.len()), values).await?
                    }
                };
                conn.server_warnings(doing, &res);
                Ok(batch.len())
            },
            |stored| progress.done += stored,
        )
        .await;
        res.map_err(|e: ExecutionError| conn.exec_error(doing, &e))
    }
}

/// The bound values of a point's insert.
pub fn values(p: &Point) -> (MetricId<'_>, i64, MetricPoint, i32) {
    (
        MetricId {
            path: &p.key,
            resolution: resolution(p),
        },
        p.time.saturating_mul(1_000_000_000),
        MetricPoint {
            max: p.max,
            mean: p.mean,
            min: p.min,
            sum: p.sum,
            count: i32::try_from(p.count).unwrap_or(i32::MAX),
        },
        p.ttl.min(MAX_TTL_SECS) as i32,
    )
}

fn resolution(p: &Point) -> i32 {
    i32::try_from(p.resolution).unwrap_or(i32::MAX)
}

/// The order the metrics writer stores a flush in (see [`super::Store::arrange`]): by [`token`], so that the rows
/// of a batch are neighbours on the ring and share their replicas, where the driver sends the batch (it routes a
/// batch by its first row). With a partitioner other than Murmur3 (the default of Cassandra and ScyllaDB) the
/// batches are stored as well, only not always by a replica of every row.
pub fn by_token(points: &mut [Point]) {
    points.sort_by_cached_key(token);
}

/// The Murmur3 token of a point's partition: its `metric_id` as the driver serializes it.
pub fn token(p: &Point) -> i64 {
    udt_token(&[p.key.as_bytes(), &resolution(p).to_be_bytes()])
}

/// The Murmur3 token of a frozen UDT partition key: each field as a 4-byte big-endian length and its bytes.
fn udt_token(fields: &[&[u8]]) -> i64 {
    let mut h = Murmur3Partitioner.build_hasher();
    for f in fields {
        h.write(&(f.len() as i32).to_be_bytes());
        h.write(f);
    }
    h.finish().value()
}

/// `points` cut into consecutive batches of at most [`BATCH_ROWS`] rows and an estimated [`BATCH_BYTES`] (a row
/// estimated bigger than that is a batch of its own).
pub fn batches(points: &[Point]) -> impl Iterator<Item = &[Point]> {
    let mut rest = points;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let (mut n, mut bytes) = (0, 0);
        while n < rest.len().min(BATCH_ROWS) {
            bytes += ROW_BYTES + rest[n].key.len();
            if n > 0 && bytes > BATCH_BYTES {
                break;
            }
            n += 1;
        }
        let (batch, tail) = rest.split_at(n);
        rest = tail;
        Some(batch)
    })
}

/// Runs `op` over `items` with at most `limit` in flight, handing each result to `done` in the order of `items`;
/// stops at the first error (dropping what is in flight).
async fn in_order<T, R, E, Fut>(
    items: impl IntoIterator<Item = T>,
    limit: usize,
    mut op: impl FnMut(T) -> Fut,
    mut done: impl FnMut(R),
) -> Result<(), E>
where
    Fut: std::future::Future<Output = Result<R, E>>,
{
    let mut in_flight = FuturesOrdered::new();
    let mut next = items.into_iter();
    loop {
        while in_flight.len() < limit.max(1) {
            match next.next() {
                Some(item) => in_flight.push_back(op(item)),
                None => break,
            }
        }
        match in_flight.next().await {
            None => return Ok(()),
            Some(Ok(r)) => done(r),
            Some(Err(e)) => return Err(e),
        }
    }
}

/// One row of the index (§10.4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IndexRow<'a> {
    /// `segment (pos, segment)`.
    Segment { pos: i32, segment: &'a str },
    /// `path ({pos, segment}, path, length, has_data)`.
    Path {
        pos: i32,
        segment: &'a str,
        path: &'a str,
        length: i32,
        has_data: bool,
    },
}

impl<'a> IndexRow<'a> {
    /// The values of a segment row for the segment insert (`pos`, `segment`).
    ///
    /// # Panics
    /// On a path row: a batch holds one table's rows.
    pub fn segment_values(&self) -> (i32, &'a str) {
        match *self {
            IndexRow::Segment { pos, segment } => (pos, segment),
            IndexRow::Path { .. } => panic!("a segment insert is given a path row"),
        }
    }

    /// The values of a path row for the path insert (`segment`, `path`, `length`, `has_data`).
    ///
    /// # Panics
    /// On a segment row: a batch holds one table's rows.
    pub fn path_values(&self) -> (SegmentPos<'a>, &'a str, i32, bool) {
        match *self {
            IndexRow::Path {
                pos,
                segment,
                path,
                length,
                has_data,
            } => (SegmentPos { pos, segment }, path, length, has_data),
            IndexRow::Segment { .. } => panic!("a path insert is given a segment row"),
        }
    }

    /// 0 for the segment table, 1 for the path table.
    fn table(&self) -> u8 {
        match self {
            IndexRow::Segment { .. } => 0,
            IndexRow::Path { .. } => 1,
        }
    }

    /// The row's partition within its table: `(pos, "")` for a segment row, its `segment_pos` for a path row.
    fn partition(&self) -> (i32, &'a str) {
        match *self {
            IndexRow::Segment { pos, .. } => (pos, ""),
            IndexRow::Path { pos, segment, .. } => (pos, segment),
        }
    }

    /// The Murmur3 token of the row's partition, as the server computes it (`token(pos)`, `token(segment)`).
    pub fn token(&self) -> i64 {
        match *self {
            IndexRow::Segment { pos, .. } => {
                let mut h = Murmur3Partitioner.build_hasher();
                h.write(&pos.to_be_bytes());
                h.finish().value()
            }
            IndexRow::Path { pos, segment, .. } => udt_token(&[&pos.to_be_bytes(), segment.as_bytes()]),
        }
    }

    /// The row's estimated size in a batch.
    fn bytes(&self) -> usize {
        match self {
            IndexRow::Segment { segment, .. } => ROW_BYTES + segment.len(),
            IndexRow::Path { segment, path, .. } => ROW_BYTES + segment.len() + path.len(),
        }
    }
}

/// `rows` sorted by table, token and partition, and cut into unlogged batches: each of one table's rows, at most
/// [`INDEX_BATCH_ROWS`] rows in at most [`BATCH_ROWS`] partitions and an estimated [`BATCH_BYTES`] (a row
/// estimated bigger than that is a batch of its own).
pub fn index_batches(mut rows: Vec<IndexRow<'_>>) -> Vec<Vec<IndexRow<'_>>> {
    rows.sort_by_cached_key(|r| (r.table(), r.token(), r.partition()));
    let mut batches = Vec::new();
    let (mut batch, mut partitions, mut bytes): (Vec<IndexRow<'_>>, usize, usize) = (Vec::new(), 0, 0);
    for row in rows {
        let (other_table, other_partition) = match batch.last() {
            Some(last) => (last.table() != row.table(), last.partition() != row.partition()),
            None => (false, true),
        };
        let full = batch.len() == INDEX_BATCH_ROWS
            || bytes + row.bytes() > BATCH_BYTES
            || (other_partition && partitions == BATCH_ROWS);
        if !batch.is_empty() && (other_table || full) {
            batches.push(std::mem::take(&mut batch));
            (partitions, bytes) = (0, 0);
        }
        if batch.is_empty() || other_partition {
            partitions += 1;
        }
        bytes += row.bytes();
        batch.push(row);
    }
    if !batch.is_empty() {
        batches.push(batch);
    }
    batches
}

/// One index batch, and with a chunk's last batch the chunk's key count and the prefixes it writes.
type IndexBatch<'a> = (Vec<IndexRow<'a>>, Option<(usize, HashSet<String>)>);

/// The [`index_chunk`]s of keys, [`INDEX_CHUNK_KEYS`] at a time, one after the other (a named iterator rather than
/// a `flat_map` closure, whose borrow the `Send` future of a write cannot name).
struct IndexChunks<'a> {
    chunks: std::slice::Chunks<'a, String>,
    written: &'a Seen,
    batches: std::vec::IntoIter<IndexBatch<'a>>,
}

impl<'a> IndexChunks<'a> {
    fn new(keys: &'a [String], written: &'a Seen) -> Self {
        IndexChunks {
            chunks: keys.chunks(INDEX_CHUNK_KEYS),
            written,
            batches: Vec::new().into_iter(),
        }
    }
}

impl<'a> Iterator for IndexChunks<'a> {
    type Item = IndexBatch<'a>;

    fn next(&mut self) -> Option<IndexBatch<'a>> {
        loop {
            if let Some(b) = self.batches.next() {
                return Some(b);
            }
            self.batches = index_chunk(self.chunks.next()?, self.written).into_iter();
        }
    }
}

/// The [`index_batches`] of a chunk of keys; a prefix not in `written` is written by the first key that has it.
fn index_chunk<'a>(chunk: &'a [String], written: &Seen) -> Vec<IndexBatch<'a>> {
    let mut fresh = HashSet::new();
    let rows = chunk
        .iter()
        .flat_map(|key| {
            index_rows(key, |p| {
                !fresh.contains(p) && !written.contains(p) && fresh.insert(p.to_string())
            })
        })
        .collect();
    let mut batches: Vec<IndexBatch<'a>> = index_batches(rows).into_iter().map(|b| (b, None)).collect();
    if let Some(last) = batches.last_mut() {
        last.1 = Some((chunk.len(), fresh));
    }
    batches
}

/// Stores one of [`index_batches`]: a single row as a plain insert.
async fn send_index_batch(
    session: &Session,
    st: &Statements,
    batch: &[IndexRow<'_>],
) -> Result<QueryResult, ExecutionError> {
    let Statements::Indexer {
        segment,
        path,
        segments,
        paths,
    } = st
    else {
        unreachable!("an indexer connection prepares the index statements")
    };
    match batch {
        [] => unreachable!("index_batches cuts no empty batch"),
        [r @ IndexRow::Segment { .. }] => session.execute_unpaged(segment, r.segment_values()).await,
        [r @ IndexRow::Path { .. }] => session.execute_unpaged(path, r.path_values()).await,
        [IndexRow::Segment { .. }, ..] => {
            let values: Vec<_> = batch.iter().map(IndexRow::segment_values).collect();
            session.batch(segments.of(batch.len()), values).await
        }
        [IndexRow::Path { .. }, ..] => {
            let values: Vec<_> = batch.iter().map(IndexRow::path_values).collect();
            session.batch(paths.of(batch.len()), values).await
        }
    }
}

/// The rows of `key`, in §10.4 order per prefix: its segment row, a branch row to the next prefix (for all but
/// the last two prefixes), and a leaf row for the key. `fresh(prefix)` (asked once per prefix other than the key
/// itself) says whether the prefix is new, false when an earlier key wrote its rows: a new prefix brings its
/// segment row and the branch row that leads to it from its parent.
pub fn index_rows<'a>(key: &'a str, mut fresh: impl FnMut(&str) -> bool) -> Vec<IndexRow<'a>> {
    let parts: Vec<&str> = prefixes(key).collect();
    let n = parts.len();
    let last = i32::try_from(n - 1).unwrap_or(i32::MAX);
    let new: Vec<bool> = parts.iter().enumerate().map(|(i, p)| i + 1 == n || fresh(p)).collect();
    let mut rows = Vec::with_capacity(3 * n);
    for (i, seg) in parts.iter().enumerate() {
        let pos = i as i32;
        if new[i] {
            rows.push(IndexRow::Segment { pos, segment: seg });
        }
        if i + 2 < n && new[i + 1] {
            rows.push(IndexRow::Path {
                pos,
                segment: seg,
                path: parts[i + 1],
                length: pos + 1,
                has_data: false,
            });
        }
        rows.push(IndexRow::Path {
            pos,
            segment: seg,
            path: key,
            length: last,
            has_data: true,
        });
    }
    rows
}

/// The path indexer.
#[derive(Debug)]
pub struct CassandraIndexer {
    conn: Connection,
    seen: Arc<Seen>,
    /// Prefixes whose segment and branch rows are stored.
    prefixes: Seen,
}

impl CassandraIndexer {
    pub fn new(conn: Connection, seen: Arc<Seen>) -> CassandraIndexer {
        let cap = seen.cap();
        CassandraIndexer {
            conn,
            seen,
            prefixes: Seen::new(cap),
        }
    }

    pub fn seen(&self) -> &Seen {
        &self.seen
    }

    pub async fn ready(&mut self) -> Result<(), WriterError> {
        self.conn.ready().await
    }

    /// The keys' rows in [`index_batches`] of [`INDEX_CHUNK_KEYS`] keys at a time, `write_workers` batches in
    /// flight; `progress` advances per chunk whose batches are all stored. A prefix is written by the first key of
    /// a chunk that has it, and marked written only once its chunk is stored.
    pub async fn write(&mut self, keys: &[String], progress: &mut Progress) -> Result<(), WriterError> {
        let (session, st) = self.conn.statements().await?;
        let prefixes = &self.prefixes;
        let chunks = IndexChunks::new(keys, prefixes);
        let (conn, doing) = (&self.conn, "insert into the index");
        let res = in_order(
            chunks,
            conn.0.opts.write_workers,
            |(batch, end)| async move {
                let res = send_index_batch(session, st, &batch).await?;
                conn.server_warnings(doing, &res);
                Ok(end)
            },
            |end| {
                if let Some((keys, fresh)) = end {
                    for p in &fresh {
                        prefixes.first_time(p);
                    }
                    progress.done += keys;
                }
            },
        )
        .await;
        res.map_err(|e: ExecutionError| conn.exec_error(doing, &e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_rows_of_the_spec_example() {
        let rows = index_rows("stats.web.cpu", |_| true);
        let seg = |pos, segment| IndexRow::Segment { pos, segment };
        let path = |pos, segment, path, length, has_data| IndexRow::Path {
            pos,
            segment,
            path,
            length,
            has_data,
        };
        assert_eq!(
            rows,
            vec![
                seg(0, "stats"),
                path(0, "stats", "stats.web", 1, false),
                path(0, "stats", "stats.web.cpu", 2, true),
                seg(1, "stats.web"),
                path(1, "stats.web", "stats.web.cpu", 2, true),
                seg(2, "stats.web.cpu"),
                path(2, "stats.web.cpu", "stats.web.cpu", 2, true),
            ]
        );
        // `a.b.c` keeps its dots (consthash wrote `a`, `ab`, `ab.c`).
        let segments: Vec<_> = index_rows("a.b.c", |_| true)
            .into_iter()
            .filter_map(|r| match r {
                IndexRow::Segment { segment, .. } => Some(segment),
                IndexRow::Path { .. } => None,
            })
            .collect();
        assert_eq!(segments, ["a", "a.b", "a.b.c"]);
        // A prefix already written: only the key's own rows.
        let rows = index_rows("stats.web.mem", |p| p != "stats" && p != "stats.web");
        assert_eq!(
            rows,
            vec![
                path(0, "stats", "stats.web.mem", 2, true),
                path(1, "stats.web", "stats.web.mem", 2, true),
                seg(2, "stats.web.mem"),
                path(2, "stats.web.mem", "stats.web.mem", 2, true),
            ]
        );
        // Only `stats` written: the new branch `stats.db` brings its row under `stats`.
        let rows = index_rows("stats.db.cpu", |p| p != "stats");
        assert_eq!(
            rows,
            vec![
                path(0, "stats", "stats.db", 1, false),
                path(0, "stats", "stats.db.cpu", 2, true),
                seg(1, "stats.db"),
                path(1, "stats.db", "stats.db.cpu", 2, true),
                seg(2, "stats.db.cpu"),
                path(2, "stats.db.cpu", "stats.db.cpu", 2, true),
            ]
        );
        assert_eq!(
            index_rows("top", |_| true),
            vec![seg(0, "top"), path(0, "top", "top", 0, true)]
        );
    }

    #[test]
    fn options_and_hosts() {
        let t: toml::Table =
            toml::from_str("port = 19042\nwrite_consistency = 'local_quorum'\ncompress = false\nbatch_count = 10")
                .unwrap();
        let cfg = DriverConfig {
            driver: crate::config::Driver::Cassandra,
            dsn: "10.0.0.1, 10.0.0.2:9043".into(),
            options: t,
        };
        let c = Connection::open(&cfg, "metrics").unwrap();
        assert_eq!(c.0.hosts, ["10.0.0.1:19042", "10.0.0.2:9043"]);
        assert_eq!(with_port("::1", 9042), "[::1]:9042");
        assert_eq!(with_port("[::1]:9043", 9042), "[::1]:9043");
        let o = c.options();
        assert_eq!(
            (o.write_consistency, o.read_consistency, o.compress),
            (Consistency::LocalQuorum, Consistency::LocalOne, false)
        );
        assert_eq!(
            (o.keyspace.as_str(), o.write_workers, o.timeout),
            ("metric", 128, Duration::from_secs(30))
        );
        let bad: toml::Table = toml::from_str("write_consistency = 'some'").unwrap();
        assert!(matches!(
            CassandraOptions::parse(&bad, "metrics"),
            Err(WriterError::Option {
                name: "write_consistency",
                ..
            })
        ));
        let cfg = DriverConfig {
            dsn: " , ".into(),
            ..cfg
        };
        assert!(matches!(Connection::open(&cfg, "metrics"), Err(WriterError::Dsn(_))));
    }

    fn point(key: &str, resolution: u64) -> Point {
        Point {
            key: key.into(),
            resolution,
            ..crate::writer::tests::points(1, 1_700_000_000).remove(0)
        }
    }

    #[test]
    fn tokens_are_the_servers() {
        // Cassandra 5.0.9's `token(id)` of these rows (tests/storage/cassandra_batches.rs stores them and compares
        // every row's token with the server's).
        for (key, resolution, want) in [
            ("stats.web.cpu", 10, 6_000_120_080_377_916_527),
            ("stats.web.cpu", 60, -7_451_521_644_670_246_684),
            ("ü", 1, -4_339_240_020_281_907_822),
        ] {
            assert_eq!(token(&point(key, resolution)), want, "{key} {resolution}");
        }
        let mut p: Vec<Point> = (0..100).map(|i| point(&format!("k.{i}"), 10)).collect();
        by_token(&mut p);
        assert!(p.windows(2).all(|w| token(&w[0]) <= token(&w[1])));
    }

    /// Keys sharing prefixes at every depth, some with segments long enough to fill a batch's bytes alone.
    fn index_keys(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| match i % 7 {
                6 => format!("app.{}.{}", "x".repeat(2000 + i), i % 3),
                _ => format!("app.host{}.cpu{}", i % 13, i % 5),
            })
            .collect()
    }

    #[test]
    fn index_chunks_write_each_prefix_once_and_count_every_key() {
        let keys = index_keys(600);
        let written = Seen::new(1 << 20);
        written.first_time("app");
        let batches: Vec<IndexBatch<'_>> = IndexChunks::new(&keys, &written).collect();
        let ends: Vec<usize> = batches
            .iter()
            .filter_map(|(_, end)| end.as_ref().map(|e| e.0))
            .collect();
        assert_eq!(ends, [INDEX_CHUNK_KEYS, INDEX_CHUNK_KEYS, 600 - 2 * INDEX_CHUNK_KEYS]);
        let rows: Vec<&IndexRow<'_>> = batches.iter().flat_map(|(b, _)| b).collect();
        // Every key's leaf rows, once per chunk for each prefix of a key not written before the chunk.
        let mut want: Vec<IndexRow<'_>> = Vec::new();
        for chunk in keys.chunks(INDEX_CHUNK_KEYS) {
            let mut fresh = HashSet::new();
            for k in chunk {
                want.extend(index_rows(k, |p| p != "app" && fresh.insert(p.to_string())));
            }
        }
        let mut rows: Vec<IndexRow<'_>> = rows.into_iter().cloned().collect();
        rows.sort_by_key(|r| format!("{r:?}"));
        want.sort_by_key(|r| format!("{r:?}"));
        assert_eq!(rows, want);
        let marked: HashSet<&String> = batches.iter().flat_map(|(_, e)| e.iter().flat_map(|e| &e.1)).collect();
        assert!(marked.contains(&"app.host3".to_string()) && !marked.contains(&"app".to_string()));
    }

    #[test]
    fn index_tokens_are_the_servers() {
        // Cassandra 5.0.9's `token(pos)` of segment rows and `token(segment)` of path rows (the storage test
        // tests/storage/cassandra_batches.rs compares every stored index row's token with the server's).
        let seg = IndexRow::Segment {
            pos: 1,
            segment: "stats.web",
        };
        let path = IndexRow::Path {
            pos: 1,
            segment: "stats.web",
            path: "stats.web.cpu",
            length: 2,
            has_data: true,
        };
        assert_eq!(
            (seg.token(), path.token()),
            (-4_069_959_284_402_364_209, -3_934_766_126_923_400_616)
        );
    }

    proptest::proptest! {
        /// The index batches hold every row once, each batch one table's rows in token order, within the bounds
        /// of rows, partitions and bytes (or a single row), and consecutive batches of a table in token order.
        #[test]
        fn index_batches_hold_every_row_once_within_the_bounds(n in 0usize..300, cut in 0usize..4) {
            let keys = index_keys(n);
            let rows: Vec<IndexRow<'_>> = keys.iter().skip(cut).flat_map(|k| index_rows(k, |_| true)).collect();
            let batches = index_batches(rows.clone());
            let mut seen: Vec<IndexRow<'_>> = Vec::new();
            for b in &batches {
                proptest::prop_assert!(!b.is_empty() && b.len() <= INDEX_BATCH_ROWS);
                proptest::prop_assert!(b.iter().all(|r| r.table() == b[0].table()), "one table");
                let partitions: HashSet<_> = b.iter().map(IndexRow::partition).collect();
                proptest::prop_assert!(partitions.len() <= BATCH_ROWS);
                let bytes: usize = b.iter().map(IndexRow::bytes).sum();
                proptest::prop_assert!(b.len() == 1 || bytes <= BATCH_BYTES, "{} bytes", bytes);
                seen.extend(b.iter().cloned());
            }
            proptest::prop_assert!(seen.windows(2).all(|w| (w[0].table(), w[0].token()) <= (w[1].table(), w[1].token())));
            let key = |r: &IndexRow<'_>| format!("{r:?}");
            let (mut a, mut b) = (rows, seen);
            a.sort_by_key(key);
            b.sort_by_key(key);
            proptest::prop_assert_eq!(a, b);
        }

        /// The batches are the points in order, each of at most BATCH_ROWS rows and BATCH_BYTES estimated bytes
        /// (or a single row), and each as long as those bounds allow.
        #[test]
        fn batches_are_the_points_in_order_cut_at_the_bounds(
            lens in proptest::collection::vec(proptest::prop_oneof![0usize..40, 200usize..600, 3900usize..5000], 0..120)
        ) {
            let points: Vec<Point> = lens.iter().map(|&n| point(&"k".repeat(n), 10)).collect();
            let bytes = |b: &[Point]| b.iter().map(|p| ROW_BYTES + p.key.len()).sum::<usize>();
            let cuts: Vec<&[Point]> = batches(&points).collect();
            let mut at = 0;
            for (i, b) in cuts.iter().enumerate() {
                proptest::prop_assert!(!b.is_empty() && b.len() <= BATCH_ROWS);
                proptest::prop_assert!(b.len() == 1 || bytes(b) <= BATCH_BYTES, "{} bytes", bytes(b));
                proptest::prop_assert!(std::ptr::eq(&b[0], &points[at]), "batch {i} starts where the last ended");
                at += b.len();
                if let Some(next) = points.get(at) {
                    proptest::prop_assert!(
                        b.len() == BATCH_ROWS || bytes(b) + ROW_BYTES + next.key.len() > BATCH_BYTES,
                        "batch {i} could have taken the next row"
                    );
                }
            }
            proptest::prop_assert_eq!(at, points.len());
        }
    }
}
