//! What the tests read back from each database, with the database's own driver: the rows of one bin and the
//! index, in one shape for both stores.

use std::collections::BTreeSet;

use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::DeserializeValue;
use sqlx::mysql::MySqlPool;
use sqlx::Row as _;

pub use consthash::writer::cassandra::MetricPoint;

use crate::Rec;

/// One stored point.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub key: String,
    pub rec: Rec,
    pub mean: f64,
    pub resolution: i64,
    /// Unix seconds.
    pub time: i64,
    /// Cassandra only: the TTL left on the row.
    pub ttl: Option<i64>,
}

/// A name column: consthash creates them `utf8mb4_bin`, which the driver reports as binary.
fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).expect("names are UTF-8")
}

/// A database with one test's tables.
pub enum Db {
    Mysql {
        pool: MySqlPool,
        table: String,
        path_table: String,
    },
    Cassandra {
        session: Box<Session>,
        keyspace: String,
    },
}

impl Db {
    pub async fn mysql(dsn: &str, table: &str) -> Db {
        let opts = consthash::writer::mysql::parse_dsn(dsn).expect("dsn");
        let pool = MySqlPool::connect_with(opts).await.expect("connect to MariaDB");
        Db::Mysql {
            pool,
            table: table.to_string(),
            path_table: format!("{table}_path"),
        }
    }

    pub async fn cassandra(addr: &str, keyspace: &str) -> Db {
        let session = SessionBuilder::new()
            .known_node(addr)
            .build()
            .await
            .expect("connect to Cassandra");
        Db::Cassandra {
            session: Box::new(session),
            keyspace: keyspace.to_string(),
        }
    }

    /// The writer options that point consthash at this test's tables.
    pub fn writer_toml(&self, dsn: &str, indexer: bool) -> String {
        let (driver, opts) = match self {
            Db::Mysql { table, path_table, .. } => (
                "mysql",
                format!("table = \"{table}\", path_table = \"{path_table}\", create_schema = true"),
            ),
            Db::Cassandra { keyspace, .. } => ("cassandra", format!("keyspace = \"{keyspace}\", create_schema = true")),
        };
        let mut s = format!("metrics = {{ driver = \"{driver}\", dsn = \"{dsn}\", options = {{ {opts} }} }}\n");
        if indexer {
            s += &format!("indexer = {{ driver = \"{driver}\", dsn = \"{dsn}\", options = {{ {opts} }} }}\n");
        }
        s
    }

    /// Every stored point of the bin of `secs` seconds, sorted by key and time.
    pub async fn rows(&self, secs: u64) -> Result<Vec<Row>, String> {
        let mut rows = match self {
            Db::Mysql { pool, table, .. } => {
                let sql = format!(
                    "SELECT stat, sum, mean, min, max, count, resolution, CAST(UNIX_TIMESTAMP(time) AS SIGNED) AS t \
                     FROM `{table}_{secs}s`"
                );
                let rows = sqlx::query(&sql).fetch_all(pool).await.map_err(|e| e.to_string())?;
                rows.iter()
                    .map(|r| Row {
                        key: text(r.get("stat")),
                        rec: Rec {
                            sum: r.get("sum"),
                            min: r.get("min"),
                            max: r.get("max"),
                            count: r.get::<i64, _>("count") as u64,
                        },
                        mean: r.get("mean"),
                        resolution: r.get::<i32, _>("resolution").into(),
                        time: r.get("t"),
                        ttl: None,
                    })
                    .collect::<Vec<_>>()
            }
            Db::Cassandra { session, keyspace } => {
                let cql = format!("SELECT id, time, point, TTL(point) FROM {keyspace}.metric");
                let res = session.query_unpaged(cql, ()).await.map_err(|e| e.to_string())?;
                let res = res.into_rows_result().map_err(|e| e.to_string())?;
                let mut out = Vec::new();
                for r in res
                    .rows::<(MetricId, i64, MetricPoint, Option<i32>)>()
                    .map_err(|e| e.to_string())?
                {
                    let (id, time, p, ttl) = r.map_err(|e| e.to_string())?;
                    if id.resolution as u64 != secs {
                        continue;
                    }
                    assert_eq!(time % 1_000_000_000, 0, "time is unix ns of a whole second");
                    out.push(Row {
                        key: id.path,
                        rec: Rec {
                            sum: p.sum,
                            min: p.min,
                            max: p.max,
                            count: p.count as u64,
                        },
                        mean: p.mean,
                        resolution: id.resolution.into(),
                        time: time / 1_000_000_000,
                        ttl: ttl.map(i64::from),
                    });
                }
                out
            }
        };
        rows.sort_by(|a, b| (&a.key, a.time).cmp(&(&b.key, b.time)));
        Ok(rows)
    }

    /// The index: MySQL `(path, length)` rows; Cassandra segment rows `(pos, segment)` and path rows
    /// `({pos, segment}, path, length, has_data)`, as text tuples.
    pub async fn index(&self) -> Result<Index, String> {
        match self {
            Db::Mysql { pool, path_table, .. } => {
                let sql = format!("SELECT path, length FROM `{path_table}`");
                let rows = sqlx::query(&sql).fetch_all(pool).await.map_err(|e| e.to_string())?;
                Ok(Index {
                    paths: rows
                        .iter()
                        .map(|r| (text(r.get("path")), r.get::<i32, _>("length")))
                        .collect(),
                    ..Index::default()
                })
            }
            Db::Cassandra { session, keyspace } => {
                let q = |cql: String| async move {
                    let r = session.query_unpaged(cql, ()).await.map_err(|e| e.to_string())?;
                    r.into_rows_result().map_err(|e| e.to_string())
                };
                let segs = q(format!("SELECT pos, segment FROM {keyspace}.segment")).await?;
                let segments = segs
                    .rows::<(i32, String)>()
                    .map_err(|e| e.to_string())?
                    .collect::<Result<BTreeSet<_>, _>>()
                    .map_err(|e| e.to_string())?;
                let paths = q(format!("SELECT segment, path, length, has_data FROM {keyspace}.path")).await?;
                let tree = paths
                    .rows::<(SegmentPos, String, i32, bool)>()
                    .map_err(|e| e.to_string())?
                    .map(|r| r.map(|(s, p, l, d)| (s.pos, s.segment, p, l, d)))
                    .collect::<Result<BTreeSet<_>, _>>()
                    .map_err(|e| e.to_string())?;
                Ok(Index {
                    segments,
                    tree,
                    ..Index::default()
                })
            }
        }
    }
}

/// What an index holds.
#[derive(Debug, Default, PartialEq)]
pub struct Index {
    /// MySQL: `(path, length)`.
    pub paths: BTreeSet<(String, i32)>,
    /// Cassandra: `(pos, segment)`.
    pub segments: BTreeSet<(i32, String)>,
    /// Cassandra: `(pos, segment, path, length, has_data)`.
    pub tree: BTreeSet<(i32, String, String, i32, bool)>,
}

/// `metric_id` as read back.
#[derive(Debug, DeserializeValue)]
pub struct MetricId {
    pub path: String,
    pub resolution: i32,
}

/// `segment_pos` as read back.
#[derive(Debug, DeserializeValue)]
pub struct SegmentPos {
    pub pos: i32,
    pub segment: String,
}
