//! The reader API (spec §4.5, §12): per PreReg group with `[g.accumulator.api]`, an HTTP server that answers
//! graphite's find / expand / render over what the group's writers stored, in the shapes graphite-api and
//! graphite-web expect through the stock `cyanite` finder.
//!
//! | file | what |
//! |---|---|
//! | `glob.rs` | graphite globs → anchored regexes, literal prefix, depth |
//! | `query.rs` | time parsing, resolution choice, alignment, value column, slot filling (the spec's vectors) |
//! | `cassandra.rs`, `mysql.rs` | the stores: `find` (index) and `points` (one bin's table) |
//! | `server.rs` | routes, parameters (query and form), JSON replies, caches, access log |
//!
//! Invariants: every reply is JSON, errors included (the finder parses every body); two readers over one store
//! give the same answers (nothing but the store and the clock decides one); caches hold answers at most
//! [`CACHE_TTL`] and at most [`CACHE_ENTRIES`] entries each.

pub mod cassandra;
pub mod glob;
pub mod mysql;
pub mod query;
pub mod server;

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::{ApiConfig, Bin, Driver, DriverConfig, WriterConfig};
use crate::telemetry::RateLimit;
use crate::writer::WriterError;
use glob::Glob;
use query::Stored;

/// How long a find or a series stays cached.
pub const CACHE_TTL: Duration = Duration::from_secs(10);
/// Entries per cache at most.
pub const CACHE_ENTRIES: usize = 10_000;

/// One node of the tree: a path, whether a series ends there (leaf) and whether longer paths go on (branch).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub path: String,
    pub leaf: bool,
    pub branch: bool,
}

/// Where the reader reads.
#[derive(Debug)]
pub enum Store {
    Cassandra(Box<cassandra::CassandraReader>),
    Mysql(mysql::MysqlReader),
    /// A driver without a reader (`file`): every request gets 503 saying so.
    Unsupported(&'static str),
}

impl Store {
    /// The reader's metrics and indexer: its own `[api.metrics]` / `[api.indexer]`, else the writer's.
    pub fn open(api: &ApiConfig, writer: &WriterConfig) -> Result<Store, WriterError> {
        let metrics = api.metrics.as_ref().unwrap_or(&writer.metrics);
        let index: Option<&DriverConfig> = api
            .indexer
            .as_ref()
            .or(writer.indexer.as_ref())
            .filter(|c| c.driver != Driver::Noop);
        Ok(match metrics.driver {
            Driver::Cassandra => Store::Cassandra(Box::new(cassandra::CassandraReader::open(metrics, index)?)),
            Driver::Mysql => Store::Mysql(mysql::MysqlReader::open(metrics, index)?),
            d => Store::Unsupported(d.name()),
        })
    }

    /// The nodes matching `glob`, in any order.
    pub async fn find(&self, glob: &Glob) -> Result<Vec<Node>, String> {
        match self {
            Store::Cassandra(r) => r.find(glob).await,
            Store::Mysql(r) => r.find(glob).await,
            Store::Unsupported(d) => Err(unsupported(d)),
        }
    }

    /// Each path's points of resolution `step` between `start` and `end`, sorted by time.
    pub async fn points(&self, paths: &[String], step: i64, start: i64, end: i64) -> Vec<Result<Vec<Stored>, String>> {
        match self {
            Store::Cassandra(r) => r.points(paths, step, start, end).await,
            Store::Mysql(r) => r.points(paths, step, start, end).await,
            Store::Unsupported(d) => paths.iter().map(|_| Err(unsupported(d))).collect(),
        }
    }
}

fn unsupported(driver: &str) -> String {
    format!("reader not implemented for driver {driver}")
}

/// A reader's counters (in `/metrics`).
#[derive(Debug, Default)]
pub struct ReaderStats {
    /// Requests answered.
    pub requests: AtomicU64,
    /// Answered 4xx: a bad or incomplete request.
    pub client_errors: AtomicU64,
    /// Answered 5xx: the store failed.
    pub store_errors: AtomicU64,
    /// Series left out of a render because their read failed.
    pub failed_series: AtomicU64,
}

/// What one group's reader serves.
#[derive(Debug)]
pub struct Reader {
    pub group: String,
    pub base_path: String,
    /// `(secs, ttl secs)` of the accumulator's bins, in `times` order.
    pub bins: Vec<(i64, i64)>,
    pub store: Store,
    finds: Cache<String, Vec<Node>>,
    series: Cache<(String, i64, i64, i64), Vec<Stored>>,
    pub stats: Arc<ReaderStats>,
    /// Store failures are logged at most once a second.
    pub store_errors: RateLimit,
}

impl Reader {
    pub fn new(group: &str, api: &ApiConfig, writer: &WriterConfig, times: &[Bin]) -> Result<Reader, WriterError> {
        Ok(Reader {
            group: group.to_string(),
            base_path: api.base_path.clone(),
            bins: times
                .iter()
                .map(|b| (b.secs() as i64, i64::try_from(b.ttl.as_secs()).unwrap_or(i64::MAX)))
                .collect(),
            store: Store::open(api, writer)?,
            finds: Cache::default(),
            series: Cache::default(),
            stats: Arc::default(),
            store_errors: RateLimit::default(),
        })
    }

    /// [`Store::find`] through the find cache.
    pub async fn find(&self, glob: &Glob, pattern: &str) -> Result<Vec<Node>, String> {
        if let Some(hit) = self.finds.get(pattern) {
            return Ok(hit);
        }
        let mut nodes = self.store.find(glob).await?;
        nodes.sort_by(|a, b| a.path.cmp(&b.path));
        self.finds.put(pattern.to_string(), nodes.clone());
        Ok(nodes)
    }

    /// [`Store::points`] through the series cache.
    pub async fn points(&self, paths: &[String], step: i64, start: i64, end: i64) -> Vec<Result<Vec<Stored>, String>> {
        let key = |p: &String| (p.clone(), step, start, end);
        let mut out: Vec<Option<Result<Vec<Stored>, String>>> =
            paths.iter().map(|p| self.series.get(&key(p)).map(Ok)).collect();
        let missing: Vec<String> = paths
            .iter()
            .zip(&out)
            .filter(|(_, hit)| hit.is_none())
            .map(|(p, _)| p.clone())
            .collect();
        if !missing.is_empty() {
            let mut read = self.store.points(&missing, step, start, end).await.into_iter();
            for (i, slot) in out.iter_mut().enumerate() {
                if slot.is_none() {
                    let r = read
                        .next()
                        .unwrap_or_else(|| Err("store answered too few series".into()));
                    if let Ok(points) = &r {
                        self.series.put(key(&paths[i]), points.clone());
                    }
                    *slot = Some(r);
                }
            }
        }
        out.into_iter()
            .map(|r| r.unwrap_or_else(|| Err("not read".into())))
            .collect()
    }
}

/// A small map whose entries expire after [`CACHE_TTL`]; when full, expired entries go first, then all.
#[derive(Debug)]
pub struct Cache<K, V> {
    map: Mutex<HashMap<K, (Instant, V)>>,
}

impl<K, V> Default for Cache<K, V> {
    fn default() -> Self {
        Cache {
            map: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash, V: Clone> Cache<K, V> {
    pub fn get<Q>(&self, k: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        self.get_at(k, Instant::now())
    }

    fn get_at<Q>(&self, k: &Q, now: Instant) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.get(k)
            .filter(|(at, _)| now.saturating_duration_since(*at) < CACHE_TTL)
            .map(|(_, v)| v.clone())
    }

    pub fn put(&self, k: K, v: V) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= CACHE_ENTRIES {
            map.retain(|_, (at, _)| at.elapsed() < CACHE_TTL);
            if map.len() >= CACHE_ENTRIES {
                map.clear();
            }
        }
        map.insert(k, (Instant::now(), v));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_is_bounded() {
        let c: Cache<usize, usize> = Cache::default();
        for i in 0..CACHE_ENTRIES * 2 + 5 {
            c.put(i, i);
            assert!(c.len() <= CACHE_ENTRIES);
        }
        assert_eq!(c.get(&(CACHE_ENTRIES * 2 + 4)), Some(CACHE_ENTRIES * 2 + 4));
    }

    #[test]
    fn cached_answers_expire_after_the_ttl() {
        let c: Cache<&str, u32> = Cache::default();
        c.put("a.*", 7);
        let now = Instant::now();
        assert_eq!(c.get_at("a.*", now), Some(7));
        assert_eq!(c.get_at("a.*", now + CACHE_TTL - Duration::from_millis(100)), Some(7));
        assert_eq!(c.get_at("a.*", now + CACHE_TTL + Duration::from_millis(1)), None);
        assert_eq!(c.get("b.*"), None);
    }
}
