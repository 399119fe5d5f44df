//! The MySQL reader (spec §12 over the §10.3 tables), on the writer's own pool type.
//!
//! * find: one grouped query over the path table: the first `depth` parts of every path at least that deep whose
//!   name starts with the pattern's literal prefix (an index range) and matches the glob's portable regex (in the
//!   server, so only matches come back), with whether a path ends there (leaf) or goes on (branch); the glob
//!   then matches exactly. Names compare byte for byte (`utf8mb4_bin`), even in tables created with a
//!   case-insensitive collation.
//! * points: the bin's table `{table}_{secs}s`, [`PATHS_PER_QUERY`] series per query, rows by time.

use std::collections::HashMap;

use sqlx::Row;

use super::glob::Glob;
use super::query::Stored;
use super::Node;
use crate::config::DriverConfig;
use crate::writer::mysql::Connection;
use crate::writer::WriterError;

/// Series per points query.
const PATHS_PER_QUERY: usize = 500;

#[derive(Debug)]
pub struct MysqlReader {
    metrics: Connection,
    index: Option<Connection>,
}

impl MysqlReader {
    pub fn open(metrics: &DriverConfig, index: Option<&DriverConfig>) -> Result<MysqlReader, WriterError> {
        Ok(MysqlReader {
            metrics: Connection::open(metrics, "reader")?,
            index: index.map(|c| Connection::open(c, "reader")).transpose()?,
        })
    }

    pub async fn find(&self, glob: &Glob) -> Result<Vec<Node>, String> {
        let Some(index) = &self.index else {
            return Err("no indexer configured: find needs the path index".into());
        };
        let table = &index.options().path_table;
        let depth = glob.depth() as i64;
        let sql = format!(
            "SELECT SUBSTRING_INDEX(`path` COLLATE utf8mb4_bin, '.', ?) AS node, \
             MAX(`length` = ?) AS leaf, MAX(`length` > ?) AS branch \
             FROM `{table}` WHERE `length` >= ? AND `path` LIKE ? \
             AND SUBSTRING_INDEX(`path` COLLATE utf8mb4_bin, '.', ?) REGEXP ? GROUP BY node"
        );
        let rows = sqlx::query(&sql)
            .bind(depth)
            .bind(depth)
            .bind(depth)
            .bind(depth)
            .bind(format!("{}%", like_escape(glob.prefix())))
            .bind(depth)
            .bind(glob.portable_regex())
            .fetch_all(index.pool())
            .await
            .map_err(|e| format!("mysql: read {table}: {e}"))?;
        let mut nodes = Vec::new();
        for row in rows {
            let path = text(row.try_get(0).map_err(|e| e.to_string())?);
            let leaf: i64 = row.try_get(1).map_err(|e| e.to_string())?;
            let branch: i64 = row.try_get(2).map_err(|e| e.to_string())?;
            if glob.matches(&path) {
                nodes.push(Node {
                    path,
                    leaf: leaf != 0,
                    branch: branch != 0,
                });
            }
        }
        Ok(nodes)
    }

    /// Each path's points of resolution `step` between `start` and `end` (unix seconds, both included), by time.
    pub async fn points(&self, paths: &[String], step: i64, start: i64, end: i64) -> Vec<Result<Vec<Stored>, String>> {
        let table = format!("{}_{step}s", self.metrics.options().table);
        let mut out = Vec::with_capacity(paths.len());
        for chunk in paths.chunks(PATHS_PER_QUERY) {
            let sql = format!(
                "SELECT `stat`, CAST(UNIX_TIMESTAMP(`time`) AS SIGNED), `sum`, `mean`, `min`, `max` FROM `{table}` \
                 WHERE `stat` IN ({}) AND `time` >= FROM_UNIXTIME(?) AND `time` <= FROM_UNIXTIME(?) ORDER BY `time`",
                vec!["?"; chunk.len()].join(",")
            );
            let mut q = sqlx::query(&sql);
            for p in chunk {
                q = q.bind(p.as_str());
            }
            let rows = q.bind(start).bind(end).fetch_all(self.metrics.pool()).await;
            let rows = match rows {
                Ok(rows) => rows,
                Err(e) => {
                    let e = format!("mysql: read {table}: {e}");
                    out.extend(chunk.iter().map(|_| Err(e.clone())));
                    continue;
                }
            };
            let mut per: HashMap<&str, Vec<Stored>> = chunk.iter().map(|p| (p.as_str(), Vec::new())).collect();
            let mut bad = None;
            for row in &rows {
                let decoded = (|| -> Result<(String, Stored), sqlx::Error> {
                    let nan = |v: Option<f64>| v.unwrap_or(f64::NAN);
                    Ok((
                        text(row.try_get(0)?),
                        Stored {
                            time: row.try_get(1)?,
                            sum: nan(row.try_get(2)?),
                            mean: nan(row.try_get(3)?),
                            min: nan(row.try_get(4)?),
                            max: nan(row.try_get(5)?),
                        },
                    ))
                })();
                match decoded {
                    // `IN` follows the column's collation: keep only exact names
                    Ok((stat, p)) => {
                        if let Some(v) = per.get_mut(stat.as_str()) {
                            v.push(p);
                        }
                    }
                    Err(e) => bad = Some(format!("mysql: read {table}: {e}")),
                }
            }
            match bad {
                Some(e) => out.extend(chunk.iter().map(|_| Err(e.clone()))),
                None => out.extend(chunk.iter().map(|p| Ok(per.remove(p.as_str()).unwrap_or_default()))),
            }
        }
        out
    }
}

/// A name column: the driver reports `utf8mb4_bin` text as binary.
fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// `s` as a literal in a `LIKE` pattern.
fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(super::like_escape("a_b%c\\d"), "a\\_b\\%c\\\\d");
    }
}
