//! The MySQL/MariaDB writer and indexer (spec §10.3), with `sqlx` runtime queries over one lazy pool per role.
//!
//! * Metrics: a table per bin, `{table}_{secs}s` (`stat`, `sum`, `mean`, `min`, `max`, `count`, `resolution`,
//!   `time` as UTC `DATETIME(6)`), written as multi-row INSERTs of `batch_count` rows, never more than MySQL's
//!   65 535 placeholders per statement, in key order, two statements in flight. A retry resumes at the first
//!   statement not yet stored, so a row is never inserted twice. A key longer than the `stat` column
//!   (255 characters) is refused and counted as dropped.
//! * Index: `INSERT IGNORE INTO {path_table} (path, length)`, `length` = number of dot-separated parts.
//! * `create_schema = true` creates missing tables (`IF NOT EXISTS`); otherwise a missing table is an ERROR naming
//!   it. `periodic_flush` is how long a failed statement waits at most before it is retried.
//!
//! The pool connects lazily and reconnects by itself: nothing here fails start-up but a bad DSN or option.

use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{FuturesOrdered, StreamExt};
use sqlx::mysql::{MySqlConnectOptions, MySqlDatabaseError, MySqlPool, MySqlPoolOptions, MySqlSslMode};

use super::options::Options;
use super::{Progress, Seen, WriterError};
use crate::config::DriverConfig;
use crate::line::Point;

/// Placeholders MySQL accepts in one prepared statement.
const MAX_PLACEHOLDERS: usize = 65_535;
/// Columns bound per metrics row.
const METRIC_COLUMNS: usize = 8;
/// Characters of the `stat` and `path` columns.
pub const MAX_NAME_CHARS: usize = 255;
/// Statements one bin's writer has in flight: a MariaDB connection inserts on one server thread, so two keep
/// two of them busy (a 1 M-point flush is stored ~1.5 times faster than one statement after another).
pub const STATEMENTS_IN_FLIGHT: usize = 2;
// `MysqlWriter::write` moves at most one statement stored after a failed one into the done prefix.
const _: () = assert!(STATEMENTS_IN_FLIGHT <= 2);
/// Connections of one role's pool: room for two bins writing at once.
const POOL_SIZE: u32 = 2 * STATEMENTS_IN_FLIGHT as u32;
/// How long a statement waits for a connection before the database counts as unavailable.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// The options of §10.3.
#[derive(Clone, Debug, PartialEq)]
pub struct MysqlOptions {
    pub table: String,
    pub path_table: String,
    pub batch_count: usize,
    pub periodic_flush: Duration,
    pub create_schema: bool,
}

impl MysqlOptions {
    pub fn parse(options: &toml::Table, role: &str) -> Result<MysqlOptions, WriterError> {
        let mut o = Options::new(options, "mysql");
        let parsed = MysqlOptions {
            table: o.identifier("table", "metrics")?,
            path_table: o.identifier("path_table", "metric_path")?,
            batch_count: o.count("batch_count", 1000, 1_000_000)? as usize,
            periodic_flush: o.duration("periodic_flush", Duration::from_secs(1))?,
            create_schema: o.bool("create_schema", false)?,
        };
        o.finish(role);
        Ok(parsed)
    }
}

/// A go-sql-driver DSN, `[user[:pass]@][tcp(host:port)|unix(/path)]/dbname[?param=value&…]`, or a `mysql://` URL.
pub fn parse_dsn(dsn: &str) -> Result<MySqlConnectOptions, WriterError> {
    if dsn.starts_with("mysql://") || dsn.starts_with("mariadb://") {
        return dsn
            .replacen("mariadb://", "mysql://", 1)
            .parse()
            .map_err(|e| WriterError::Dsn(format!("{dsn:?}: {e}")));
    }
    let bad = |why: &str| WriterError::Dsn(format!("{dsn:?}: {why} (expected user:pass@tcp(host:port)/db)"));
    let (main, params) = dsn.split_once('?').unwrap_or((dsn, ""));
    let slash = main.rfind('/').ok_or_else(|| bad("no /dbname"))?;
    let (before, db) = (&main[..slash], &main[slash + 1..]);
    let (cred, addr) = match before.rfind('@') {
        Some(at) => (Some(&before[..at]), &before[at + 1..]),
        None => (None, before),
    };
    let mut o = MySqlConnectOptions::new().host("127.0.0.1").port(3306);
    if let Some(cred) = cred {
        let (user, pass) = cred.split_once(':').unwrap_or((cred, ""));
        o = o.username(user);
        if !pass.is_empty() {
            o = o.password(pass);
        }
    }
    if !db.is_empty() {
        o = o.database(db);
    }
    match addr.split_once('(') {
        None if addr.is_empty() || addr == "tcp" => {}
        Some(("tcp", rest)) => {
            let hp = rest.strip_suffix(')').ok_or_else(|| bad("unclosed tcp("))?;
            let (host, port) = match hp.rsplit_once(':') {
                Some((h, p)) => (h, p.parse::<u16>().map_err(|_| bad("bad port"))?),
                None => (hp, 3306),
            };
            let host = host.trim_start_matches('[').trim_end_matches(']');
            if !host.is_empty() {
                o = o.host(host);
            }
            o = o.port(port);
        }
        Some(("unix", rest)) => o = o.socket(rest.strip_suffix(')').ok_or_else(|| bad("unclosed unix("))?),
        _ => return Err(bad("unknown network (tcp or unix)")),
    }
    for (k, v) in params
        .split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|p| p.split_once('='))
    {
        o = match k {
            "tls" => o.ssl_mode(match v {
                "true" => MySqlSslMode::VerifyIdentity,
                "skip-verify" => MySqlSslMode::Required,
                "preferred" => MySqlSslMode::Preferred,
                "false" => MySqlSslMode::Disabled,
                _ => return Err(bad("tls must be true, skip-verify, preferred or false")),
            }),
            "charset" => o.charset(v.split(',').next().unwrap_or(v)),
            "collation" => o.collation(v),
            // Times are always written in UTC; the driver's own connection settings have no equivalent here.
            _ => {
                tracing::warn!(param = k, "mysql dsn: parameter ignored");
                o
            }
        };
    }
    Ok(o)
}

/// One role's pool and options; cloned into each bin's writer.
#[derive(Clone, Debug)]
pub struct Connection {
    pool: MySqlPool,
    opts: Arc<MysqlOptions>,
    /// `host:port/db` for logs (never the password).
    target: Arc<str>,
}

impl Connection {
    pub fn open(cfg: &DriverConfig, role: &str) -> Result<Connection, WriterError> {
        let connect = parse_dsn(&cfg.dsn)?;
        let opts = MysqlOptions::parse(&cfg.options, role)?;
        let target = format!(
            "{}:{}/{}",
            connect.get_host(),
            connect.get_port(),
            connect.get_database().unwrap_or("")
        );
        let pool = MySqlPoolOptions::new()
            .max_connections(POOL_SIZE)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_lazy_with(connect);
        Ok(Connection {
            pool,
            opts: Arc::new(opts),
            target: target.into(),
        })
    }

    pub fn options(&self) -> &MysqlOptions {
        &self.opts
    }

    pub fn pool(&self) -> &MySqlPool {
        &self.pool
    }

    /// Closes the pool when the last holder of this connection is done with it. The writers of all bins share
    /// one pool and finish their shutdown writes in any order: one closing it early failed the others' last
    /// rows ("attempted to acquire a connection on a closed pool").
    async fn release(&self) {
        if Arc::strong_count(&self.opts) == 1 {
            self.pool.close().await;
        }
    }

    /// Creates `table` (with `create_schema`) or checks that it exists.
    async fn ensure_table(&self, table: &str, create: &str) -> Result<(), WriterError> {
        if self.opts.create_schema {
            sqlx::query(create)
                .execute(&self.pool)
                .await
                .map_err(|e| self.error(&format!("create table {table}"), e))?;
            return Ok(());
        }
        let check = format!("SELECT 1 FROM `{table}` LIMIT 0");
        match sqlx::query(&check).execute(&self.pool).await {
            Ok(_) => Ok(()),
            Err(e) if code(&e) == Some(1146) => Err(WriterError::Rejected(format!(
                "mysql {}: table {table} does not exist: create it or set create_schema = true",
                self.target
            ))),
            Err(e) => Err(self.error(&format!("check table {table}"), e)),
        }
    }

    /// Classifies a failure: the server unreachable, overloaded or refusing the login is
    /// [`WriterError::Unavailable`]; a statement the server refuses is [`WriterError::Rejected`].
    fn error(&self, doing: &str, e: sqlx::Error) -> WriterError {
        let text = format!("mysql {} {doing}: {e}", self.target);
        match code(&e) {
            // access denied, unknown database, too many connections, shutdown in progress, lock wait timeout,
            // deadlock, server gone away, lost connection, read only
            Some(1044 | 1045 | 1049 | 1040 | 1053 | 1205 | 1213 | 2006 | 2013 | 1290 | 1836) | None => {
                WriterError::Unavailable(text)
            }
            Some(_) => WriterError::Rejected(text),
        }
    }
}

/// The MySQL error number, if the server answered with an error.
fn code(e: &sqlx::Error) -> Option<u16> {
    match e {
        sqlx::Error::Database(db) => db
            .try_downcast_ref::<MySqlDatabaseError>()
            .map(MySqlDatabaseError::number),
        _ => None,
    }
}

/// A name too long for a 255-character column.
fn too_long(name: &str) -> bool {
    name.len() > MAX_NAME_CHARS && name.chars().count() > MAX_NAME_CHARS
}

/// `(?,?,…),(?,?,…)…`: `rows` groups of `cols` placeholders (and `group` around each, e.g. `FROM_UNIXTIME`).
fn values_clause(rows: usize, row: &str) -> String {
    let mut s = String::with_capacity(rows * (row.len() + 1));
    for i in 0..rows {
        if i > 0 {
            s.push(',');
        }
        s.push_str(row);
    }
    s
}

/// One bin's writer: its table and the statements for it.
#[derive(Debug)]
pub struct MysqlWriter {
    conn: Connection,
    table: String,
    rows_per_statement: usize,
    /// The INSERT of a full statement, built once.
    full_insert: String,
    ready: bool,
}

const METRIC_ROW: &str = "(?,?,?,?,?,?,?,FROM_UNIXTIME(?))";

impl MysqlWriter {
    pub fn new(conn: Connection, bin_secs: u64) -> MysqlWriter {
        let table = format!("{}_{bin_secs}s", conn.opts.table);
        let rows_per_statement = conn.opts.batch_count.min(MAX_PLACEHOLDERS / METRIC_COLUMNS);
        let full_insert = insert_sql(&table, rows_per_statement);
        MysqlWriter {
            conn,
            table,
            rows_per_statement,
            full_insert,
            ready: false,
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    pub fn retry_wait_max(&self) -> Duration {
        self.conn.opts.periodic_flush
    }

    /// Creates or checks the bin's table, once.
    pub async fn ready(&mut self) -> Result<(), WriterError> {
        if !self.ready {
            let create = format!(
                "CREATE TABLE IF NOT EXISTS `{}` (\
                 `id` BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, \
                 `stat` VARCHAR({MAX_NAME_CHARS}) NOT NULL, \
                 `sum` DOUBLE, `mean` DOUBLE, `min` DOUBLE, `max` DOUBLE, `count` BIGINT, \
                 `resolution` INT NOT NULL, `time` DATETIME(6) NOT NULL, \
                 KEY `stat` (`stat`), KEY `time` (`time`)) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
                self.table
            );
            self.conn.ensure_table(&self.table, &create).await?;
            self.ready = true;
        }
        Ok(())
    }

    /// Insert the points, one statement per `batch_count` rows, [`STATEMENTS_IN_FLIGHT`] at a time on the pool's
    /// connections (so the server inserts on as many threads); `progress` advances per statement stored, in
    /// order. When a statement fails and the one after it is stored, the two swap places in `points`, so the
    /// stored one is in the prefix reported done and the retry starts at the failed one: no row is inserted
    /// twice.
    pub async fn write(&mut self, points: &mut [Point], progress: &mut Progress) -> Result<(), WriterError> {
        self.ready().await?;
        let rows = self.rows_per_statement;
        let mut failed = None;
        // (rows, refused) of a statement stored after the one that failed
        let mut stored_after_failed = None;
        {
            let mut chunks = points.chunks(rows);
            let mut in_flight = FuturesOrdered::new();
            loop {
                while failed.is_none() && in_flight.len() < STATEMENTS_IN_FLIGHT {
                    match chunks.next() {
                        Some(chunk) => in_flight.push_back(self.insert(chunk)),
                        None => break,
                    }
                }
                let Some((len, result)) = in_flight.next().await else {
                    break;
                };
                match (result, failed.is_some()) {
                    (Ok(refused), false) => {
                        progress.done += len;
                        progress.refused += refused;
                    }
                    (Ok(refused), true) => stored_after_failed = Some((len, refused)),
                    (Err(e), false) => failed = Some(e),
                    (Err(_), true) => {}
                }
            }
        }
        let Some(e) = failed else {
            return Ok(());
        };
        if let Some((len, refused)) = stored_after_failed {
            // The failed statement is a full one, since another follows it.
            points[progress.done..progress.done + rows + len].rotate_left(rows);
            progress.done += len;
            progress.refused += refused;
        }
        if code(&e) == Some(1146) {
            self.ready = false;
        }
        Err(self.conn.error(&format!("insert into {}", self.table), e))
    }

    /// One statement: the rows of `chunk` whose keys fit the `stat` column. Returns the chunk's length and, once
    /// stored, how many keys were refused.
    async fn insert(&self, chunk: &[Point]) -> (usize, Result<usize, sqlx::Error>) {
        let keep: Vec<&Point> = chunk.iter().filter(|p| !too_long(&p.key)).collect();
        let refused = chunk.len() - keep.len();
        if refused > 0 {
            tracing::warn!(table = %self.table, refused, "mysql writer: keys longer than {MAX_NAME_CHARS} characters dropped");
        }
        if keep.is_empty() {
            return (chunk.len(), Ok(refused));
        }
        let partial;
        let sql = if keep.len() == self.rows_per_statement {
            &self.full_insert
        } else {
            partial = insert_sql(&self.table, keep.len());
            &partial
        };
        let mut q = sqlx::query(sql).persistent(keep.len() == self.rows_per_statement);
        for p in keep {
            q = q
                .bind(p.key.as_str())
                .bind(finite(p.sum))
                .bind(finite(p.mean))
                .bind(finite(p.min))
                .bind(finite(p.max))
                .bind(i64::try_from(p.count).unwrap_or(i64::MAX))
                .bind(i32::try_from(p.resolution).unwrap_or(i32::MAX))
                .bind(p.time);
        }
        (chunk.len(), q.execute(&self.conn.pool).await.map(|_| refused))
    }

    pub async fn close(&mut self) {
        self.conn.release().await;
    }
}

/// The order the metrics writer stores a batch in (see [`super::Store::arrange`]): by key, then time.
pub fn by_key(points: &mut [Point]) {
    points.sort_unstable_by(|a, b| a.key.cmp(&b.key).then(a.time.cmp(&b.time)));
}

/// The metrics writer's statement: `rows` rows into `table`.
pub fn insert_sql(table: &str, rows: usize) -> String {
    format!(
        "INSERT INTO `{table}` (`stat`,`sum`,`mean`,`min`,`max`,`count`,`resolution`,`time`) VALUES {}",
        values_clause(rows, METRIC_ROW)
    )
}

/// MySQL's DOUBLE holds no NaN or infinity: those are stored as NULL.
fn finite(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

/// The path indexer: each key once per process into `path_table`.
#[derive(Debug)]
pub struct MysqlIndexer {
    conn: Connection,
    seen: Arc<Seen>,
    ready: bool,
}

impl MysqlIndexer {
    pub fn new(conn: Connection, seen: Arc<Seen>) -> MysqlIndexer {
        MysqlIndexer {
            conn,
            seen,
            ready: false,
        }
    }

    pub fn seen(&self) -> &Seen {
        &self.seen
    }

    pub async fn ready(&mut self) -> Result<(), WriterError> {
        if !self.ready {
            let t = &self.conn.opts.path_table;
            let create = format!(
                "CREATE TABLE IF NOT EXISTS `{t}` (`path` VARCHAR({MAX_NAME_CHARS}) NOT NULL PRIMARY KEY, \
                 `length` INT NOT NULL, KEY `length` (`length`)) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
            );
            self.conn.ensure_table(t, &create).await?;
            self.ready = true;
        }
        Ok(())
    }

    pub async fn write(&mut self, keys: &[String], progress: &mut Progress) -> Result<(), WriterError> {
        self.ready().await?;
        let rows = self.conn.opts.batch_count.min(MAX_PLACEHOLDERS / 2);
        let t = &self.conn.opts.path_table;
        for chunk in keys.chunks(rows) {
            let keep: Vec<&String> = chunk.iter().filter(|k| !too_long(k)).collect();
            if !keep.is_empty() {
                let sql = format!(
                    "INSERT IGNORE INTO `{t}` (`path`,`length`) VALUES {}",
                    values_clause(keep.len(), "(?,?)")
                );
                let mut q = sqlx::query(&sql).persistent(false);
                for k in &keep {
                    q = q
                        .bind(k.as_str())
                        .bind(i32::try_from(k.split('.').count()).unwrap_or(i32::MAX));
                }
                q.execute(&self.conn.pool)
                    .await
                    .map_err(|e| self.conn.error(&format!("insert into {t}"), e))?;
            }
            progress.done += chunk.len();
            progress.refused += chunk.len() - keep.len();
        }
        Ok(())
    }

    pub async fn close(&mut self) {
        self.conn.release().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_sql_driver_dsns_and_urls() {
        let o = parse_dsn("user:p@ss:word@tcp(db.example:3307)/metrics?charset=utf8mb4&parseTime=true").unwrap();
        assert_eq!(
            (o.get_host(), o.get_port(), o.get_username(), o.get_database()),
            ("db.example", 3307, "user", Some("metrics"))
        );
        let o = parse_dsn("root@tcp(127.0.0.1)/m").unwrap();
        assert_eq!(
            (o.get_host(), o.get_port(), o.get_username()),
            ("127.0.0.1", 3306, "root")
        );
        let o = parse_dsn("u:p@unix(/run/mysqld/mysqld.sock)/m").unwrap();
        assert_eq!(
            o.get_socket().map(|p| p.to_str().unwrap()),
            Some("/run/mysqld/mysqld.sock")
        );
        let o = parse_dsn("/m").unwrap();
        assert_eq!((o.get_host(), o.get_database()), ("127.0.0.1", Some("m")));
        let o = parse_dsn("u:p@tcp([::1]:3306)/m?tls=false").unwrap();
        assert_eq!(o.get_host(), "::1");
        assert!(matches!(o.get_ssl_mode(), MySqlSslMode::Disabled));
        let o = parse_dsn("mysql://u:p@h:3308/m").unwrap();
        assert_eq!((o.get_host(), o.get_port(), o.get_database()), ("h", 3308, Some("m")));
        for bad in [
            "u:p@tcp(h:3306",
            "u:p@tcp(h:x)/m",
            "u@udp(h)/m",
            "nodb",
            "u@tcp(h)/m?tls=maybe",
        ] {
            assert!(matches!(parse_dsn(bad), Err(WriterError::Dsn(_))), "{bad}");
        }
    }

    #[test]
    fn statements_stay_under_the_placeholder_limit() {
        let t: toml::Table = toml::from_str("batch_count = 100000").unwrap();
        let cfg = DriverConfig {
            driver: crate::config::Driver::Mysql,
            dsn: "u:p@tcp(127.0.0.1:1)/m".into(),
            options: t,
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _guard = rt.enter();
        let w = MysqlWriter::new(Connection::open(&cfg, "metrics").unwrap(), 5);
        assert_eq!(w.table(), "metrics_5s");
        assert_eq!(w.rows_per_statement, 8191);
        assert!(w.rows_per_statement * METRIC_COLUMNS <= MAX_PLACEHOLDERS);
        assert_eq!(w.full_insert.matches('?').count(), 8191 * 8);
        assert_eq!(values_clause(2, "(?,?)"), "(?,?),(?,?)");
    }

    #[test]
    fn long_names_are_counted_in_characters() {
        assert!(!too_long(&"é".repeat(255)), "510 bytes, 255 characters");
        assert!(too_long(&"a".repeat(256)));
    }
}
