//! The PreReg config (`--prereg`, spec §4): per listening section, ordered routing rules and an optional accumulator
//! with writers and a reader API.

use std::collections::HashMap;
use std::time::Duration;

use toml::{Table, Value};

use super::duration::{fmt_duration, parse_duration};
use super::main_config::Config;
use super::url::{host_port, Listen};
use super::value::{check_keys, parse_toml, top_level_order, type_error, Diag, Tbl};
use super::ConfigErrors;

/// The validated PreReg config.
#[derive(Clone, Debug)]
pub struct PreRegConfig {
    /// In file order; at most one per section.
    pub groups: Vec<Group>,
    pub warnings: Vec<String>,
}

impl PreRegConfig {
    /// The group in front of section `section`.
    pub fn group_for(&self, section: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.listen_server == section)
    }
}

/// One group: the rules in front of `listen_server` (spec §4.1).
#[derive(Clone, Debug)]
pub struct Group {
    pub name: String,
    pub listen_server: String,
    pub default_backend: String,
    /// In file order; the first match wins.
    pub rules: Vec<Rule>,
    pub accumulator: Option<AccumulatorConfig>,
}

#[derive(Clone, Debug)]
pub struct Rule {
    pub matcher: Matcher,
    pub reject: bool,
    /// The rule's backend, or the group's `default_backend`.
    pub backend: String,
}

#[derive(Clone, Debug)]
pub enum Matcher {
    Prefix(Vec<u8>),
    Substring(Vec<u8>),
    /// Unanchored search.
    Regex(regex::bytes::Regex),
    /// Matches every key.
    Noop,
}

impl Matcher {
    pub fn matches(&self, key: &[u8]) -> bool {
        match self {
            Matcher::Prefix(p) => key.starts_with(p),
            Matcher::Substring(s) => memchr::memmem::find(key, s).is_some(),
            Matcher::Regex(re) => re.is_match(key),
            Matcher::Noop => true,
        }
    }
}

/// `[<g>.accumulator]` (spec §4.3).
#[derive(Clone, Debug, PartialEq)]
pub struct AccumulatorConfig {
    pub backend: AccTarget,
    pub input_format: Format,
    pub output_format: Format,
    pub accumulate_flush: Duration,
    /// Strictly ascending, each a multiple of the previous; never empty.
    pub times: Vec<Bin>,
    pub keep_keys: bool,
    /// statsd naming options (§9.2.4), names validated, in file order.
    pub options: Vec<(String, String)>,
    pub writer: Option<WriterConfig>,
    pub api: Option<ApiConfig>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccTarget {
    Section(String),
    /// `BLACKHOLE`: output lines are discarded.
    Blackhole,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Statsd,
    Graphite,
}

/// One time bin: `"dur"` or `"dur:ttl"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bin {
    pub interval: Duration,
    pub ttl: Duration,
}

/// `[<g>.accumulator.writer]` (spec §4.4); present only when a metrics driver is set.
#[derive(Clone, Debug, PartialEq)]
pub struct WriterConfig {
    pub metric_queue_length: usize,
    pub indexer_queue_length: usize,
    pub metrics: DriverConfig,
    pub indexer: Option<DriverConfig>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct DriverConfig {
    pub driver: Driver,
    /// Empty only for `noop`.
    pub dsn: String,
    /// Driver-specific options, unvalidated here.
    pub options: Table,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Driver {
    File,
    Mysql,
    Cassandra,
    Noop,
}

impl Driver {
    pub fn name(self) -> &'static str {
        match self {
            Driver::File => "file",
            Driver::Mysql => "mysql",
            Driver::Cassandra => "cassandra",
            Driver::Noop => "noop",
        }
    }
}

/// `[<g>.accumulator.api]` (spec §4.5).
#[derive(Clone, Debug, PartialEq)]
pub struct ApiConfig {
    /// `host:port`
    pub listen: String,
    /// Starts and ends with `/`.
    pub base_path: String,
    /// `stdout`, `stderr`, `none` or a file path.
    pub log_file: String,
    pub metrics: Option<DriverConfig>,
    pub indexer: Option<DriverConfig>,
}

/// The statsd accumulator option names (§9.2.4).
pub const STATSD_OPTIONS: &[&str] = &[
    "legacyNamespace",
    "globalPrefix",
    "globalSuffix",
    "prefixCounter",
    "prefixTimer",
    "prefixGauge",
    "prefixSet",
    "percentThreshold",
];

const DEFAULT_TTL: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

const GROUP_KEYS: &[&str] = &["listen_server", "default_backend", "map", "accumulator"];
const RULE_KEYS: &[&str] = &["prefix", "substring", "regex", "noop", "reject", "backend"];
const MATCHER_KEYS: &[&str] = &["prefix", "substring", "regex", "noop"];
const PREREG_LEGACY: &[&str] = &["flush_time", "to_prereg_group"];
const ACC_KEYS: &[&str] = &[
    "backend",
    "input_format",
    "output_format",
    "accumulate_flush",
    "times",
    "keep_keys",
    "options",
    "tags",
    "writer",
    "api",
];
const ACC_LEGACY: &[&str] = &["flush_time", "to_prereg_group", "keeper"];

/// Loads and validates the PreReg config against the already loaded main config. All errors are reported together.
pub fn load_prereg(text: &str, file: &str, main: &Config) -> Result<PreRegConfig, ConfigErrors> {
    let root = parse_toml(text, file)?;
    let mut d = Diag::new(file);
    let mut groups = Vec::new();
    let mut owner: HashMap<String, String> = HashMap::new();
    for name in top_level_order(text, &root) {
        let Some(v) = root.get(&name) else { continue };
        let Value::Table(t) = v else {
            d.error(
                &name,
                format!(
                    "top-level keys must be group tables, found {}",
                    v.type_str()
                ),
            );
            continue;
        };
        if let Some(g) = parse_group(&mut d, &name, t, main) {
            if let Some(first) = owner.get(&g.listen_server) {
                d.error(
                    &format!("{name}.listen_server"),
                    format!(
                        "section \"{}\" already has PreReg group \"{first}\" (at most one group per section)",
                        g.listen_server
                    ),
                );
            } else {
                owner.insert(g.listen_server.clone(), name.clone());
            }
            groups.push(g);
        }
    }
    let warnings = d.finish()?;
    Ok(PreRegConfig { groups, warnings })
}

/// A required section-name key; errors when missing or naming no section.
fn section_name(d: &mut Diag, t: Tbl, key: &str, main: &Config) -> Option<String> {
    let Some(name) = t.str(d, key) else {
        if !t.has(key) {
            d.error(&t.path_of(key), "required key missing");
        }
        return None;
    };
    if main.section(&name).is_none() {
        d.error(
            &t.path_of(key),
            format!("\"{name}\" is not a section of the main config"),
        );
        return None;
    }
    Some(name)
}

fn warn_redirect(d: &mut Diag, path: &str, main: &Config, from: &str, to: &str) {
    if from == to {
        return;
    }
    if let (Some(a), Some(b)) = (main.section(from), main.section(to)) {
        if a.msg_type != b.msg_type {
            d.warn(
                path,
                format!(
                    "redirects {} lines of \"{from}\" to \"{to}\" whose msg_type is {}",
                    a.msg_type.name(),
                    b.msg_type.name()
                ),
            );
        }
    }
}

fn parse_group(d: &mut Diag, name: &str, t: &Table, main: &Config) -> Option<Group> {
    let g = Tbl::new(t, name);
    check_keys(d, t, name, GROUP_KEYS, PREREG_LEGACY);
    let listen_server = section_name(d, g, "listen_server", main);
    if let Some(ls) = &listen_server {
        if main
            .section(ls)
            .is_some_and(|s| s.listen == Listen::BackendOnly)
        {
            d.error(
                &g.path_of("listen_server"),
                format!("section \"{ls}\" is backend_only (it has no listener to filter)"),
            );
        }
    }
    let default_backend = section_name(d, g, "default_backend", main);
    if let (Some(ls), Some(db)) = (&listen_server, &default_backend) {
        warn_redirect(d, &g.path_of("default_backend"), main, ls, db);
    }

    let mut rules = Vec::new();
    let map_path = g.path_of("map");
    match g.table_array(d, "map") {
        None if !g.has("map") => d.error(
            &map_path,
            format!("at least one [[{map_path}]] rule is required"),
        ),
        None => {}
        Some(list) if list.is_empty() => d.error(
            &map_path,
            format!("at least one [[{map_path}]] rule is required"),
        ),
        Some(list) => {
            for (i, rt) in list {
                let path = format!("{map_path}[{i}]");
                if let Some(r) = parse_rule(
                    d,
                    Tbl::new(rt, &path),
                    main,
                    listen_server.as_deref(),
                    default_backend.as_deref(),
                ) {
                    rules.push(r);
                }
            }
        }
    }

    let accumulator = match g.table(d, "accumulator") {
        Some(at) => parse_accumulator(d, Tbl::new(at, &g.path_of("accumulator")), main),
        None => None,
    };
    Some(Group {
        name: name.to_string(),
        listen_server: listen_server?,
        default_backend: default_backend?,
        rules,
        accumulator,
    })
}

fn parse_rule(
    d: &mut Diag,
    r: Tbl,
    main: &Config,
    listen_server: Option<&str>,
    default_backend: Option<&str>,
) -> Option<Rule> {
    check_keys(d, r.t, r.path, RULE_KEYS, &[]);
    let present: Vec<&str> = MATCHER_KEYS.iter().copied().filter(|k| r.has(k)).collect();
    if present.len() != 1 {
        d.error(
            r.path,
            "exactly one of prefix, substring, regex, noop is required",
        );
    }
    let mut matcher = None;
    if let Some(p) = r.str(d, "prefix") {
        matcher = Some(Matcher::Prefix(p.into_bytes()));
    }
    if let Some(s) = r.str(d, "substring") {
        matcher = Some(Matcher::Substring(s.into_bytes()));
    }
    if let Some(s) = r.str(d, "regex") {
        match regex::bytes::Regex::new(&s) {
            Ok(re) => matcher = Some(Matcher::Regex(re)),
            Err(e) => d.error(
                &r.path_of("regex"),
                format!("invalid regex: {}", e.to_string().replace('\n', " ")),
            ),
        }
    }
    if let Some(s) = r.str(d, "noop") {
        if s.is_empty() {
            d.error(&r.path_of("noop"), "must be a non-empty string");
        } else {
            matcher = Some(Matcher::Noop);
        }
    }
    let reject = r.bool(d, "reject").unwrap_or(false);
    let backend = if r.has("backend") {
        let b = section_name(d, r, "backend", main);
        if let (Some(ls), Some(b)) = (listen_server, &b) {
            warn_redirect(d, &r.path_of("backend"), main, ls, b);
        }
        b?
    } else {
        default_backend?.to_string()
    };
    if present.len() != 1 {
        return None;
    }
    Some(Rule {
        matcher: matcher?,
        reject,
        backend,
    })
}

fn parse_format(d: &mut Diag, a: Tbl, key: &str) -> Option<Format> {
    match a.str(d, key)?.as_str() {
        "statsd" => Some(Format::Statsd),
        "graphite" => Some(Format::Graphite),
        other => {
            d.error(
                &a.path_of(key),
                format!("unknown format \"{other}\", expected statsd or graphite"),
            );
            None
        }
    }
}

fn parse_accumulator(d: &mut Diag, a: Tbl, main: &Config) -> Option<AccumulatorConfig> {
    check_keys(d, a.t, a.path, ACC_KEYS, ACC_LEGACY);
    let backend = match a.str(d, "backend") {
        None => {
            if !a.has("backend") {
                d.error(
                    &a.path_of("backend"),
                    "required key missing (a section name or BLACKHOLE)",
                );
            }
            None
        }
        Some(b) if b == "BLACKHOLE" => Some(AccTarget::Blackhole),
        Some(b) if main.section(&b).is_some() => Some(AccTarget::Section(b)),
        Some(b) => {
            d.error(
                &a.path_of("backend"),
                format!("\"{b}\" is neither a section of the main config nor BLACKHOLE"),
            );
            None
        }
    };
    let input_format = parse_format(d, a, "input_format");
    let output_format = parse_format(d, a, "output_format");
    if !a.has("output_format") {
        d.error(
            &a.path_of("output_format"),
            "required key missing (statsd or graphite)",
        );
    }
    let (accumulate_flush, times) = parse_times(d, a);
    let keep_keys = a.bool(d, "keep_keys").unwrap_or(false);
    let options = parse_options(d, a, input_format);
    if let Some(tags) = a.table_array(d, "tags") {
        for (i, t) in tags {
            let path = format!("{}[{i}]", a.path_of("tags"));
            check_keys(d, t, &path, &["key", "value"], &[]);
            let tt = Tbl::new(t, &path);
            let _ = (tt.str(d, "key"), tt.str(d, "value"));
        }
        d.warn(&a.path_of("tags"), "accepted; no effect");
    }
    let writer = a
        .table(d, "writer")
        .and_then(|w| parse_writer(d, Tbl::new(w, &a.path_of("writer"))));
    let api = a
        .table(d, "api")
        .and_then(|t| parse_api(d, Tbl::new(t, &a.path_of("api"))));
    if api.is_some() && writer.is_none() {
        d.warn(
            &a.path_of("api"),
            "the reader API is started only if writers are configured",
        );
    }
    if !a.has("input_format") {
        d.warn(
            a.path,
            "no input_format: the accumulator is disabled (set statsd or graphite)",
        );
        return None;
    }
    Some(AccumulatorConfig {
        backend: backend?,
        input_format: input_format?,
        output_format: output_format?,
        accumulate_flush,
        times,
        keep_keys,
        options,
        writer,
        api,
    })
}

/// `accumulate_flush` and `times` with their defaults and rules (spec §4.3).
fn parse_times(d: &mut Diag, a: Tbl) -> (Duration, Vec<Bin>) {
    let flush = a.dur_str(d, "accumulate_flush");
    if flush.is_some_and(|f| f.is_zero()) {
        d.error(&a.path_of("accumulate_flush"), "must be greater than 0");
    }
    let times_path = a.path_of("times");
    let mut bins: Vec<Bin> = Vec::new();
    let mut ok = true;
    if let Some(list) = a.str_array(d, "times") {
        if list.is_empty() {
            d.error(&times_path, "must not be empty (omit it for the default)");
        }
        for (i, s) in list.iter().enumerate() {
            let path = format!("{times_path}[{i}]");
            let (dur_s, ttl_s) = match s.split_once(':') {
                Some((a, b)) => (a, Some(b)),
                None => (s.as_str(), None),
            };
            let interval = match parse_duration(dur_s) {
                Ok(v) if v.is_zero() => {
                    d.error(&path, "bin duration must be greater than 0");
                    ok = false;
                    continue;
                }
                Ok(v) => v,
                Err(e) => {
                    d.error(&path, e);
                    ok = false;
                    continue;
                }
            };
            let ttl = match ttl_s.map(parse_duration) {
                None => DEFAULT_TTL,
                Some(Ok(t)) => t,
                Some(Err(e)) => {
                    d.error(&path, format!("bad TTL: {e}"));
                    ok = false;
                    continue;
                }
            };
            bins.push(Bin { interval, ttl });
        }
        if ok {
            for (i, w) in bins.windows(2).enumerate() {
                let (prev, cur) = (w[0].interval, w[1].interval);
                let path = format!("{times_path}[{}]", i + 1);
                if cur <= prev {
                    d.error(
                        &path,
                        format!(
                            "{} must be greater than the previous entry {} (times must be strictly ascending)",
                            fmt_duration(cur),
                            fmt_duration(prev)
                        ),
                    );
                } else if cur.as_nanos() % prev.as_nanos() != 0 {
                    d.error(
                        &path,
                        format!(
                            "{} is not a multiple of the previous entry {}",
                            fmt_duration(cur),
                            fmt_duration(prev)
                        ),
                    );
                }
            }
        }
    }
    let flush = flush
        .filter(|f| !f.is_zero())
        .or_else(|| bins.first().map(|b| b.interval))
        .unwrap_or(Duration::from_secs(5));
    if !a.has("times") {
        bins.push(Bin {
            interval: flush,
            ttl: DEFAULT_TTL,
        });
    }
    for (i, b) in bins.iter().enumerate() {
        if b.interval.as_nanos() % flush.as_nanos() != 0 {
            d.warn(
                &format!("{times_path}[{i}]"),
                format!(
                    "bin {} is not a multiple of accumulate_flush {}",
                    fmt_duration(b.interval),
                    fmt_duration(flush)
                ),
            );
        }
    }
    (flush, bins)
}

fn go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

fn parse_options(d: &mut Diag, a: Tbl, input: Option<Format>) -> Vec<(String, String)> {
    let path = a.path_of("options");
    let arr = match a.t.get("options") {
        None => return Vec::new(),
        Some(Value::Array(arr)) => arr,
        Some(v) => {
            type_error(d, &path, "an array of [name, value] string pairs", v);
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for (i, v) in arr.iter().enumerate() {
        let p = format!("{path}[{i}]");
        let pair = match v {
            Value::Array(pair) if pair.len() == 2 => pair,
            Value::Array(pair) => {
                d.error(
                    &p,
                    format!(
                        "expected exactly 2 items [name, value], found {}",
                        pair.len()
                    ),
                );
                continue;
            }
            v => {
                type_error(d, &p, "a [name, value] pair", v);
                continue;
            }
        };
        let (Value::String(name), Value::String(value)) = (&pair[0], &pair[1]) else {
            d.error(&p, "expected a pair of strings [name, value]");
            continue;
        };
        if !STATSD_OPTIONS.contains(&name.as_str()) {
            d.error(
                &p,
                format!(
                    "unknown option \"{name}\", expected one of {}",
                    STATSD_OPTIONS.join(", ")
                ),
            );
            continue;
        }
        match name.as_str() {
            "legacyNamespace" if go_bool(value).is_none() => {
                d.error(&p, format!("legacyNamespace: \"{value}\" is not a boolean"));
                continue;
            }
            "percentThreshold" => {
                let bad = value.split(',').any(|x| {
                    x.trim().is_empty() || !x.trim().parse::<f64>().is_ok_and(f64::is_finite)
                });
                if bad {
                    d.error(
                        &p,
                        format!(
                            "percentThreshold: \"{value}\" is not a comma-separated list of numbers"
                        ),
                    );
                    continue;
                }
            }
            "globalSuffix" if !value.is_empty() => d.warn(
                &p,
                "globalSuffix is appended to every name (consthash used it as the root prefix; drop globalSuffix=\"stats\")",
            ),
            _ => {}
        }
        out.push((name.clone(), value.clone()));
    }
    if input == Some(Format::Graphite) && !arr.is_empty() {
        d.warn(&path, "ignored for input_format = \"graphite\"");
    }
    out
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    WriterMetrics,
    WriterIndexer,
    ApiMetrics,
    ApiIndexer,
}

/// `driver`, `dsn`, `options` of `t` (keys already checked).
fn driver_fields(d: &mut Diag, t: Tbl, role: Role) -> Option<DriverConfig> {
    let name = match t.str(d, "driver") {
        Some(n) => n,
        None => {
            if !t.has("driver") {
                d.error(&t.path_of("driver"), "required key missing");
            }
            return None;
        }
    };
    let driver = match (name.as_str(), role) {
        ("file", Role::WriterMetrics | Role::ApiMetrics) => Some(Driver::File),
        ("mysql", _) => Some(Driver::Mysql),
        ("cassandra", _) => Some(Driver::Cassandra),
        ("noop", Role::WriterIndexer | Role::ApiIndexer) => Some(Driver::Noop),
        _ => None,
    };
    let Some(driver) = driver else {
        let expected = match role {
            Role::WriterMetrics | Role::ApiMetrics => "file, mysql or cassandra",
            Role::WriterIndexer | Role::ApiIndexer => "cassandra, mysql or noop",
        };
        d.error(
            &t.path_of("driver"),
            format!("unknown driver \"{name}\", expected {expected}"),
        );
        return None;
    };
    if matches!(role, Role::ApiMetrics | Role::ApiIndexer) && driver != Driver::Cassandra {
        d.warn(
            &t.path_of("driver"),
            format!(
                "reader not implemented for driver {}; the reader API answers 503",
                driver.name()
            ),
        );
    }
    let dsn = t.str(d, "dsn").unwrap_or_default();
    if dsn.is_empty() && driver != Driver::Noop {
        d.error(
            &t.path_of("dsn"),
            format!("required for driver {}", driver.name()),
        );
    }
    let options = t.table(d, "options").cloned().unwrap_or_default();
    Some(DriverConfig {
        driver,
        dsn,
        options,
    })
}

/// A nested driver table (`[...writer.metrics]` or an inline table).
fn driver_table(d: &mut Diag, parent: Tbl, key: &str, role: Role) -> Option<DriverConfig> {
    let t = parent.table(d, key)?;
    let path = parent.path_of(key);
    check_keys(
        d,
        t,
        &path,
        &["driver", "dsn", "options"],
        &["queue_length"],
    );
    driver_fields(d, Tbl::new(t, &path), role)
}

fn parse_writer(d: &mut Diag, w: Tbl) -> Option<WriterConfig> {
    check_keys(
        d,
        w.t,
        w.path,
        &[
            "metric_queue_length",
            "indexer_queue_length",
            "metrics",
            "indexer",
            "driver",
            "dsn",
            "options",
        ],
        &["queue_length"],
    );
    let flat = ["driver", "dsn", "options"].iter().any(|k| w.has(k));
    let nested = ["metrics", "indexer"].iter().any(|k| w.has(k));
    if flat && nested {
        d.error(
            w.path,
            "mixes the flat form (driver, dsn, options) with the metrics/indexer tables; use one form",
        );
    }
    let metric_queue_length = w.usize(d, "metric_queue_length").unwrap_or(102_400);
    let indexer_queue_length = w.usize(d, "indexer_queue_length").unwrap_or(204_800);
    let metrics = if flat {
        driver_fields(d, w, Role::WriterMetrics)
    } else {
        driver_table(d, w, "metrics", Role::WriterMetrics)
    };
    let indexer = driver_table(d, w, "indexer", Role::WriterIndexer);
    if metrics.is_none() && !w.has("metrics") && !flat {
        d.warn(w.path, "no metrics driver: writers are disabled");
    }
    Some(WriterConfig {
        metric_queue_length,
        indexer_queue_length,
        metrics: metrics?,
        indexer,
    })
}

fn normalize_base_path(p: &str) -> String {
    let mut s = String::with_capacity(p.len() + 2);
    if !p.starts_with('/') {
        s.push('/');
    }
    s.push_str(p);
    if !s.ends_with('/') {
        s.push('/');
    }
    s
}

fn parse_api(d: &mut Diag, a: Tbl) -> Option<ApiConfig> {
    check_keys(
        d,
        a.t,
        a.path,
        &["listen", "base_path", "log_file", "metrics", "indexer"],
        &[],
    );
    let listen = a.str(d, "listen");
    if let Some(l) = &listen {
        if let Err(e) = host_port(l, l) {
            d.error(&a.path_of("listen"), e);
        }
    }
    let base_path = normalize_base_path(&a.str(d, "base_path").unwrap_or_default());
    let log_file = a
        .str(d, "log_file")
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "stdout".to_string());
    let metrics = driver_table(d, a, "metrics", Role::ApiMetrics);
    let indexer = driver_table(d, a, "indexer", Role::ApiIndexer);
    if !a.has("listen") {
        d.warn(a.path, "no listen: the reader API is disabled");
    }
    Some(ApiConfig {
        listen: listen?,
        base_path,
        log_file,
        metrics,
        indexer,
    })
}
