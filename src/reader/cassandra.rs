//! The Cassandra reader (spec §12 over the §10.4 schema), on the writer's own session type and UDTs.
//!
//! * find: the candidates are the `segment` rows at `pos = depth − 1` from the pattern's literal prefix on (a
//!   clustering range, stopped at the first segment past the prefix) that the glob matches, or, when a literal part
//!   follows a wildcard (`servers.*.cpu.user`), the tree walked level by level ([`walk`]), which visits only the
//!   children of what matched so far instead of every path of that depth. Then per candidate one read of its path
//!   partition, `LIMIT 2`: sorted by path, the node itself comes first if it is a series (leaf), and any other row
//!   means something lies below it (branch).
//! * points: one partition read per `{path, resolution}` between two times (unix ns), at most [`CONCURRENCY`]
//!   series at once.

use futures_util::stream::{FuturesOrdered, StreamExt};
use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use tokio::sync::OnceCell;

use super::glob::{Glob, Part};
use super::query::Stored;
use super::Node;
use crate::config::DriverConfig;
use crate::writer::cassandra::{CassandraOptions, Connection, MetricId, MetricPoint, SegmentPos};
use crate::writer::WriterError;

/// Reads in flight at once for one request.
const CONCURRENCY: usize = 32;

/// Prepared on first use.
#[derive(Debug)]
struct Statements {
    segments: PreparedStatement,
    node: PreparedStatement,
    points: PreparedStatement,
}

#[derive(Debug)]
pub struct CassandraReader {
    metrics: Connection,
    index: Option<Connection>,
    statements: OnceCell<Statements>,
}

impl CassandraReader {
    pub fn open(metrics: &DriverConfig, index: Option<&DriverConfig>) -> Result<CassandraReader, WriterError> {
        Ok(CassandraReader {
            metrics: Connection::open(metrics, "reader")?,
            index: index.map(|c| Connection::open(c, "reader")).transpose()?,
            statements: OnceCell::new(),
        })
    }

    async fn statements(&self) -> Result<&Statements, String> {
        self.statements
            .get_or_try_init(|| async {
                let prepare = |conn: &Connection, cql: String| {
                    let conn = conn.clone();
                    async move {
                        let session = conn.session().await.map_err(|e| e.to_string())?;
                        let o = conn.options();
                        let mut p = session
                            .prepare(cql.as_str())
                            .await
                            .map_err(|e| format!("cassandra: prepare {cql:?}: {e}"))?;
                        p.set_consistency(o.read_consistency);
                        p.set_request_timeout(Some(o.timeout));
                        p.set_is_idempotent(true);
                        Ok::<_, String>(p)
                    }
                };
                let m: &CassandraOptions = self.metrics.options();
                let points = prepare(
                    &self.metrics,
                    format!(
                        "SELECT time, point FROM {}.{} WHERE id = ? AND time >= ? AND time <= ?",
                        m.keyspace, m.metrics_table
                    ),
                )
                .await?;
                let ix = self.index.as_ref().unwrap_or(&self.metrics);
                let i = ix.options();
                let segments = prepare(
                    ix,
                    format!(
                        "SELECT segment FROM {}.{} WHERE pos = ? AND segment >= ?",
                        i.keyspace, i.segment_table
                    ),
                )
                .await?;
                let node = prepare(
                    ix,
                    format!(
                        "SELECT path, has_data FROM {}.{} WHERE segment = ? LIMIT 2",
                        i.keyspace, i.path_table
                    ),
                )
                .await?;
                Ok(Statements { segments, node, points })
            })
            .await
    }

    pub async fn find(&self, glob: &Glob) -> Result<Vec<Node>, String> {
        let Some(index) = &self.index else {
            return Err("no indexer configured: find needs the path index".into());
        };
        let st = self.statements().await?;
        let session = index.session().await.map_err(|e| e.to_string())?;
        let pos = (glob.depth() - 1) as i32;
        let candidates = match glob.parts() {
            _ if glob.is_literal() => vec![glob.prefix().to_string()],
            Some(parts) if glob.narrows_after_a_wildcard() => walk(session, &st.segments, parts).await?,
            _ => {
                let prefix = glob.prefix().to_string();
                segments(session, &st.segments, pos, prefix, |s| glob.matches(s)).await?
            }
        };
        let nodes = each(candidates, CONCURRENCY, |path| node(session, &st.node, pos, path)).await;
        let mut found = Vec::with_capacity(nodes.len());
        for n in nodes {
            found.extend(n?);
        }
        Ok(found)
    }

    /// Each path's points of resolution `step` between `start` and `end` (unix seconds, both included), by time.
    pub async fn points(&self, paths: &[String], step: i64, start: i64, end: i64) -> Vec<Result<Vec<Stored>, String>> {
        let st = match self.statements().await {
            Ok(st) => st,
            Err(e) => return paths.iter().map(|_| Err(e.clone())).collect(),
        };
        let session = match self.metrics.session().await {
            Ok(s) => s,
            Err(e) => return paths.iter().map(|_| Err(e.to_string())).collect(),
        };
        each(paths, CONCURRENCY, |path| {
            series(session, &st.points, path, step, start, end)
        })
        .await
    }
}

/// The segments at `pos` that start with `prefix` and pass `keep`: a clustering range from `prefix`, read until
/// the first segment past it.
async fn segments(
    session: &Session,
    st: &PreparedStatement,
    pos: i32,
    prefix: String,
    keep: impl Fn(&str) -> bool,
) -> Result<Vec<String>, String> {
    let mut rows = session
        .execute_iter(st.clone(), (pos, prefix.as_str()))
        .await
        .map_err(|e| format!("cassandra: read segments: {e}"))?
        .rows_stream::<(String,)>()
        .map_err(|e| format!("cassandra: segments: {e}"))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().await {
        let (segment,) = row.map_err(|e| format!("cassandra: read segments: {e}"))?;
        if !segment.starts_with(&prefix) {
            break;
        }
        if keep(&segment) {
            out.push(segment);
        }
    }
    Ok(out)
}

/// The candidates of a pattern with a literal part after a wildcard (`servers.*.cpu.user`), level by level: a
/// literal part extends every candidate (plain alternatives once per name), a wildcard part lists each
/// candidate's children and keeps the matching ones. Candidates that do not exist fall out at the next listing
/// or at the final node reads.
async fn walk(session: &Session, st: &PreparedStatement, parts: &[Part]) -> Result<Vec<String>, String> {
    let mut level: Vec<String> = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        level = match part {
            Part::Literal(l) if i == 0 => vec![l.clone()],
            Part::Literal(l) => level.into_iter().map(|c| format!("{c}.{l}")).collect(),
            Part::Literals(ls) if i == 0 => ls.clone(),
            Part::Literals(ls) => level
                .iter()
                .flat_map(|c| ls.iter().map(move |l| format!("{c}.{l}")))
                .collect(),
            Part::Wild(_) => {
                let parents = if i == 0 { vec![String::new()] } else { level };
                let pos = i as i32;
                let children = each(parents, CONCURRENCY, |p| {
                    let from = if p.is_empty() { p } else { p + "." };
                    let skip = from.len();
                    segments(session, st, pos, from, move |s| part.matches(&s[skip..]))
                })
                .await;
                let mut next = Vec::new();
                for c in children {
                    next.extend(c?);
                }
                next
            }
        };
        if level.is_empty() {
            break;
        }
    }
    Ok(level)
}

/// Whether `path` (at `pos`) is a series (leaf) and whether paths go on below it (branch): its path partition,
/// sorted by path, starts with the node itself if it is a series; any other row lies below it.
async fn node(session: &Session, st: &PreparedStatement, pos: i32, path: String) -> Result<Option<Node>, String> {
    let result = session
        .execute_unpaged(st, (SegmentPos { pos, segment: &path },))
        .await
        .map_err(|e| format!("cassandra: read path rows of {path}: {e}"))?;
    let rows = result
        .into_rows_result()
        .map_err(|e| format!("cassandra: path rows of {path}: {e}"))?;
    let (mut leaf, mut branch) = (false, false);
    for row in rows.rows::<(String, bool)>().map_err(|e| e.to_string())? {
        let (p, has_data) = row.map_err(|e| e.to_string())?;
        if p == path {
            leaf |= has_data;
        } else {
            branch = true;
        }
    }
    Ok((leaf || branch).then_some(Node { path, leaf, branch }))
}

/// One series' points of one resolution between two times (unix seconds), by time.
async fn series(
    session: &Session,
    st: &PreparedStatement,
    path: &str,
    step: i64,
    start: i64,
    end: i64,
) -> Result<Vec<Stored>, String> {
    let ns = |s: i64| s.saturating_mul(1_000_000_000);
    let id = MetricId {
        path,
        resolution: i32::try_from(step).unwrap_or(i32::MAX),
    };
    let mut rows = session
        .execute_iter(st.clone(), (id, ns(start), ns(end)))
        .await
        .map_err(|e| format!("cassandra: read {path}: {e}"))?
        .rows_stream::<(i64, MetricPoint)>()
        .map_err(|e| format!("cassandra: {path}: {e}"))?;
    let mut points = Vec::new();
    while let Some(row) = rows.next().await {
        let (time, p) = row.map_err(|e| format!("cassandra: read {path}: {e}"))?;
        points.push(Stored {
            time: time.div_euclid(1_000_000_000),
            sum: p.sum,
            mean: p.mean,
            min: p.min,
            max: p.max,
        });
    }
    Ok(points)
}

/// `f` over `items` with at most `limit` running at once; the results in the order of `items`.
async fn each<I: IntoIterator, Fut: std::future::Future>(
    items: I,
    limit: usize,
    mut f: impl FnMut(I::Item) -> Fut,
) -> Vec<Fut::Output> {
    let mut items = items.into_iter();
    let mut running = FuturesOrdered::new();
    let mut out = Vec::new();
    loop {
        while running.len() < limit {
            match items.next() {
                Some(i) => running.push_back(f(i)),
                None => break,
            }
        }
        match running.next().await {
            Some(r) => out.push(r),
            None => return out,
        }
    }
}
