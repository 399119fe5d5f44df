//! The PreReg config (`--prereg`, spec §4): per listening section, ordered routing rules and an optional accumulator
//! with writers and a reader API.

use std::collections::HashMap;
use std::time::Duration;

use toml::{Table, Value};

use super::duration::{fmt_duration, parse_duration};
use super::main_config::Config;
use super::statsd_options::StatsdOptions;
use super::url::{host_port, Listen};
use super::value::{parse_toml, top_level_order, type_error, Diag, Tbl};
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
/// `max_keys` unless configured: about 130 MB of statsd state.
pub const DEFAULT_MAX_KEYS: usize = 1_000_000;

/// Most shards of one accumulator (`shards`).
pub const MAX_SHARDS: usize = 64;

#[derive(Clone, Debug, PartialEq)]
pub struct AccumulatorConfig {
    pub backend: AccTarget,
    pub input_format: Format,
    pub output_format: Format,
    pub accumulate_flush: Duration,
    /// Strictly ascending, each a multiple of the previous; never empty.
    pub times: Vec<Bin>,
    pub keep_keys: bool,
    /// Most distinct keys held; samples of further new keys are dropped and counted.
    pub max_keys: usize,
    /// Parts the state is split into by key hash, folded on different threads; 0 = one per worker thread.
    pub shards: usize,
    /// statsd naming options (§9.2.4); defaults for a graphite accumulator.
    pub options: StatsdOptions,
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

impl Bin {
    /// The bin's width in whole seconds, as writers name and stamp it (rounded half up, at least 1).
    pub fn secs(&self) -> u64 {
        (self.interval.as_millis().saturating_add(500) / 1000).clamp(1, u128::from(u64::MAX)) as u64
    }
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

const DEFAULT_TTL: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// The matcher keys of a rule: exactly one per rule.
const MATCHER_KEYS: &[&str] = &["prefix", "substring", "regex", "noop"];
/// Legacy keys of the Go relay, accepted with a warning.
const PREREG_LEGACY: &[&str] = &["flush_time", "to_prereg_group"];
const ACC_LEGACY: &[&str] = &["flush_time", "to_prereg_group", "keeper"];

/// Loads and validates the PreReg config against the already loaded main config. All errors are reported together.
pub fn load_prereg(text: &str, file: &str, main: &Config) -> Result<PreRegConfig, ConfigErrors> {
    let root = parse_toml(text, file)?;
    let mut d = Diag::new(file);
    let mut groups = Vec::new();
    let mut owner: HashMap<String, String> = HashMap::new();
    for name in top_level_order(text, &root) {
        let Some(v) = root.get(&name) else { continue };
        d.mark(v);
        let Value::Table(t) = v else {
            d.error(
                &name,
                format!("top-level keys must be group tables, found {}", v.type_str()),
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
    let warnings = d.finish(&root)?;
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
    d.enter(g, PREREG_LEGACY);
    let listen_server = section_name(d, g, "listen_server", main);
    if let Some(ls) = &listen_server {
        if main.section(ls).is_some_and(|s| s.listen == Listen::BackendOnly) {
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
        None if !g.has("map") => d.error(&map_path, format!("at least one [[{map_path}]] rule is required")),
        None => {}
        Some(list) if list.is_empty() => d.error(&map_path, format!("at least one [[{map_path}]] rule is required")),
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
    d.enter(r, &[]);
    let present: Vec<&str> = MATCHER_KEYS.iter().copied().filter(|k| r.has(k)).collect();
    if present.len() != 1 {
        d.error(r.path, "exactly one of prefix, substring, regex, noop is required");
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
    d.enter(a, ACC_LEGACY);
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
        d.error(&a.path_of("output_format"), "required key missing (statsd or graphite)");
    }
    let (accumulate_flush, times) = parse_times(d, a);
    let keep_keys = a.bool(d, "keep_keys").unwrap_or(false);
    let max_keys = a.usize_in(d, "max_keys", 1..=usize::MAX).unwrap_or(DEFAULT_MAX_KEYS);
    let shards = a.usize_in(d, "shards", 0..=MAX_SHARDS).unwrap_or(0);
    let options = parse_options(d, a, input_format);
    if let Some(tags) = a.table_array(d, "tags") {
        for (i, t) in tags {
            let path = format!("{}[{i}]", a.path_of("tags"));
            let tt = Tbl::new(t, &path);
            d.enter(tt, &[]);
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
        max_keys,
        shards,
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

fn parse_options(d: &mut Diag, a: Tbl, input: Option<Format>) -> StatsdOptions {
    let path = a.path_of("options");
    let mut options = StatsdOptions::default();
    let Some(v) = a.t.get("options") else {
        return options;
    };
    d.mark(v);
    let arr = match v {
        Value::Array(arr) => arr,
        v => {
            type_error(d, &path, "an array of [name, value] string pairs", v);
            return options;
        }
    };
    for (i, v) in arr.iter().enumerate() {
        let p = format!("{path}[{i}]");
        let pair = match v {
            Value::Array(pair) if pair.len() == 2 => pair,
            Value::Array(pair) => {
                d.error(
                    &p,
                    format!("expected exactly 2 items [name, value], found {}", pair.len()),
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
        if let Err(e) = options.set(name, value) {
            d.error(&p, e);
            continue;
        }
        if name == "globalSuffix" && !value.is_empty() {
            d.warn(
                &p,
                "globalSuffix is appended to every name (consthash used it as the root prefix; drop globalSuffix=\"stats\")",
            );
        }
    }
    if input == Some(Format::Graphite) && !arr.is_empty() {
        d.warn(&path, "ignored for input_format = \"graphite\"");
    }
    if input == Some(Format::Statsd) {
        if let Err(e) = options.check_thresholds() {
            d.error(&path, e);
        }
    }
    options
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
    if role == Role::ApiMetrics && driver == Driver::File {
        d.warn(
            &t.path_of("driver"),
            "reader not implemented for driver file; the reader API answers 503",
        );
    }
    let dsn = t.str(d, "dsn").unwrap_or_default();
    if dsn.is_empty() && driver != Driver::Noop {
        d.error(&t.path_of("dsn"), format!("required for driver {}", driver.name()));
    }
    let options = t.opaque_table(d, "options").cloned().unwrap_or_default();
    Some(DriverConfig { driver, dsn, options })
}

/// A nested driver table (`[...writer.metrics]` or an inline table).
fn driver_table(d: &mut Diag, parent: Tbl, key: &str, role: Role) -> Option<DriverConfig> {
    let t = parent.table(d, key)?;
    let path = parent.path_of(key);
    let t = Tbl::new(t, &path);
    d.enter(t, &["queue_length"]);
    driver_fields(d, t, role)
}

fn parse_writer(d: &mut Diag, w: Tbl) -> Option<WriterConfig> {
    d.enter(w, &["queue_length"]);
    let flat = ["driver", "dsn", "options"].iter().any(|k| w.has(k));
    let nested = ["metrics", "indexer"].iter().any(|k| w.has(k));
    if flat && nested {
        d.error(
            w.path,
            "mixes the flat form (driver, dsn, options) with the metrics/indexer tables; use one form",
        );
        // Reported as a whole; its keys are not checked one by one.
        let _ = w.opaque_table(d, "metrics");
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
    d.enter(a, &[]);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_main;

    const MAIN: &str = r#"
[default]
[graphite-relay]
listen = "tcp://0.0.0.0:2003"
msg_type = "graphite"
[[graphite-relay.servers]]
servers = ["tcp://10.0.1.1:2004"]
[statsd-relay]
listen = "udp://0.0.0.0:8125"
msg_type = "statsd"
[[statsd-relay.servers]]
servers = ["udp://10.0.0.1:8126"]
[aux]
listen = "backend_only"
msg_type = "statsd"
[[aux.servers]]
servers = ["udp://10.0.2.1:8125"]
[graphite-prefix]
listen = "backend_only"
msg_type = "graphite"
[[graphite-prefix.servers]]
servers = ["tcp://10.0.3.1:2003"]
[graphite-substring]
listen = "backend_only"
msg_type = "graphite"
[[graphite-substring.servers]]
servers = ["tcp://10.0.3.2:2003"]
[graphite-regex]
listen = "backend_only"
msg_type = "graphite"
[[graphite-regex.servers]]
servers = ["tcp://10.0.3.3:2003"]
[defaultbackend]
listen = "backend_only"
msg_type = "graphite"
[[defaultbackend.servers]]
servers = ["tcp://10.0.3.4:2003"]
"#;

    const EXAMPLE: &str = r#"
[statsd-filter]
listen_server = "statsd-relay"
default_backend = "statsd-relay"
  [[statsd-filter.map]]
  substring = ".badline."
  reject = true
  [[statsd-filter.map]]
  prefix = "servers.main-"
  backend = "aux"                      # redirect, with or without an accumulator
  [statsd-filter.accumulator]
  backend = "graphite-relay"           # or "BLACKHOLE"
  input_format = "statsd"
  output_format = "graphite"
  accumulate_flush = "10s"
  times = ["10s:168h", "1m:720h"]
  options = [["legacyNamespace", "false"], ["percentThreshold", "90,99"]]
    [statsd-filter.accumulator.writer]   # inline tables = [...writer.metrics] / [...writer.indexer]
    metrics = { driver = "cassandra", dsn = "10.0.5.1,10.0.5.2" }
    indexer = { driver = "cassandra", dsn = "10.0.5.1,10.0.5.2" }   # optional; the reader's find needs it
    [statsd-filter.accumulator.api]      # reader API (§12)
    listen = "0.0.0.0:8083"
    metrics = { driver = "cassandra", dsn = "10.0.5.1,10.0.5.2" }
    indexer = { driver = "cassandra", dsn = "10.0.5.1,10.0.5.2" }
"#;

    fn main_cfg() -> Config {
        load_main(MAIN, "relay.toml").unwrap()
    }

    fn load(text: &str) -> PreRegConfig {
        match load_prereg(text, "prereg.toml", &main_cfg()) {
            Ok(c) => c,
            Err(e) => panic!("prereg should load:\n{e}"),
        }
    }

    fn errors(text: &str) -> Vec<String> {
        match load_prereg(text, "prereg.toml", &main_cfg()) {
            Ok(c) => panic!("prereg should fail: {c:?}"),
            Err(e) => e.0,
        }
    }

    /// A graphite group on graphite-relay with an accumulator whose extra keys are `acc`.
    fn with_acc(acc: &str) -> String {
        format!(
            "[g]\nlisten_server='graphite-relay'\ndefault_backend='graphite-relay'\n[[g.map]]\nnoop='true'\n\
             [g.accumulator]\n{acc}\n"
        )
    }

    fn acc_of(text: &str) -> AccumulatorConfig {
        let c = load(text);
        c.groups[0].accumulator.clone().expect("accumulator")
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn config_prereg_spec_example_loads() {
        let c = load(EXAMPLE);
        assert_eq!(c.groups.len(), 1);
        let g = &c.groups[0];
        assert_eq!(g.name, "statsd-filter");
        assert_eq!(g.listen_server, "statsd-relay");
        assert_eq!(g.rules.len(), 2);
        assert!(g.rules[0].reject);
        assert_eq!(g.rules[0].backend, "statsd-relay");
        assert_eq!(g.rules[1].backend, "aux");
        let a = g.accumulator.as_ref().unwrap();
        assert_eq!(a.backend, AccTarget::Section("graphite-relay".into()));
        assert_eq!(a.input_format, Format::Statsd);
        assert_eq!(a.output_format, Format::Graphite);
        assert_eq!(a.accumulate_flush, secs(10));
        assert_eq!(
            a.times,
            [
                Bin {
                    interval: secs(10),
                    ttl: secs(168 * 3600)
                },
                Bin {
                    interval: secs(60),
                    ttl: secs(720 * 3600)
                }
            ]
        );
        assert!(!a.options.legacy_namespace, "both options read: legacyNamespace");
        assert_eq!(
            a.options.percent_threshold,
            [90.0, 99.0],
            "both options read: percentThreshold"
        );
        let w = a.writer.as_ref().unwrap();
        assert_eq!(w.metrics.driver, Driver::Cassandra);
        assert_eq!(w.metrics.dsn, "10.0.5.1,10.0.5.2");
        assert_eq!(w.indexer.as_ref().unwrap().driver, Driver::Cassandra);
        assert_eq!(w.metric_queue_length, 102_400);
        assert_eq!(w.indexer_queue_length, 204_800);
        let api = a.api.as_ref().unwrap();
        assert_eq!(api.listen, "0.0.0.0:8083");
        assert_eq!(api.base_path, "/");
        assert_eq!(api.log_file, "stdout");
        assert!(api.metrics.is_some() && api.indexer.is_some());
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        assert!(c.group_for("statsd-relay").is_some());
    }

    #[test]
    fn config_prereg_rule_vectors() {
        let c = load(
            r#"
[g]
listen_server = "graphite-relay"
default_backend = "defaultbackend"
[[g.map]]
prefix = "tester.i"
backend = "graphite-prefix"
[[g.map]]
substring = ".am."
reject = true
backend = "graphite-substring"
[[g.map]]
regex = '.i.*stat'
backend = "graphite-regex"
[[g.map]]
noop = "true"
"#,
        );
        let rules = &c.groups[0].rules;
        let first = |key: &str| {
            rules
                .iter()
                .position(|r| r.matcher.matches(key.as_bytes()))
                .map(|i| (i, rules[i].backend.as_str(), rules[i].reject))
        };
        let cases = [
            ("tester.i.am.a.stat 1234 1234", (0, "graphite-prefix", false)),
            ("123123", (3, "defaultbackend", false)),
            ("moo.am.goo", (1, "graphite-substring", true)),
        ];
        for (key, want) in cases {
            assert_eq!(first(key), Some(want), "{key}");
        }
    }

    #[test]
    fn config_prereg_times_valid_vectors() {
        let a = acc_of(&with_acc(
            "backend='graphite-relay'\ninput_format='graphite'\noutput_format='graphite'\naccumulate_flush='1s'\ntimes=['5s','1m','10m']",
        ));
        assert_eq!(a.times.len(), 3);
        assert_eq!(a.times[0].interval, secs(5));
        assert_eq!(a.times[0].ttl, secs(87600 * 3600));
        assert_eq!(a.accumulate_flush, secs(1));
        let a = acc_of(&with_acc(
            "backend='BLACKHOLE'\ninput_format='statsd'\noutput_format='statsd'\ntimes=['5s:168h','1m:720h','10m:17520h']",
        ));
        assert_eq!(a.backend, AccTarget::Blackhole);
        assert_eq!(a.accumulate_flush, secs(5));
        assert_eq!(a.times[2].ttl, secs(17520 * 3600));
        // defaults
        let a = acc_of(&with_acc(
            "backend='graphite-relay'\ninput_format='statsd'\noutput_format='graphite'\naccumulate_flush='10s'",
        ));
        assert_eq!(
            a.times,
            [Bin {
                interval: secs(10),
                ttl: secs(87600 * 3600)
            }]
        );
        assert!(!a.keep_keys);
        assert_eq!(a.max_keys, DEFAULT_MAX_KEYS);
        let a = acc_of(&with_acc(
            "backend='graphite-relay'\ninput_format='statsd'\noutput_format='graphite'\nmax_keys=5000",
        ));
        assert_eq!(a.max_keys, 5000);
        let a = acc_of(&with_acc(
            "backend='graphite-relay'\ninput_format='statsd'\noutput_format='graphite'",
        ));
        assert_eq!(a.accumulate_flush, secs(5));
        assert_eq!(a.times.len(), 1);
        assert_eq!(a.times[0].interval, secs(5));
    }

    #[test]
    fn config_prereg_times_error_vectors() {
        let base = "backend='graphite-relay'\ninput_format='statsd'\noutput_format='graphite'\n";
        let cases = [
            (
                "times=['5s','31s','10m']",
                "prereg.toml: g.accumulator.times[1]: 31s is not a multiple of the previous entry 5s",
            ),
            (
                "times=['1m','5s','10m']",
                "prereg.toml: g.accumulator.times[1]: 5s must be greater than the previous entry 1m (times must be strictly ascending)",
            ),
            (
                "times=['1m:7asd']",
                "prereg.toml: g.accumulator.times[0]: bad TTL: invalid duration \"7asd\": unknown unit \"asd\"",
            ),
            (
                "times=['5ii']",
                "prereg.toml: g.accumulator.times[0]: invalid duration \"5ii\": unknown unit \"ii\"",
            ),
        ];
        for (times, want) in cases {
            let errs = errors(&with_acc(&format!("{base}{times}")));
            assert!(errs.iter().any(|e| e == want), "want {want:?}\ngot {errs:#?}");
        }
        let cases = [
            (
                "input_format='statsd'\noutput_format='graphite'",
                "prereg.toml: g.accumulator.backend: required key missing (a section name or BLACKHOLE)",
            ),
            (
                "backend='graphite-relay'\ninput_format='moo'\noutput_format='graphite'",
                "prereg.toml: g.accumulator.input_format: unknown format \"moo\", expected statsd or graphite",
            ),
            (
                "backend='graphite-relay'\ninput_format='statsd'\noutput_format='moo'",
                "prereg.toml: g.accumulator.output_format: unknown format \"moo\", expected statsd or graphite",
            ),
            (
                "backend='nowhere'\ninput_format='statsd'\noutput_format='graphite'",
                "prereg.toml: g.accumulator.backend: \"nowhere\" is neither a section of the main config nor BLACKHOLE",
            ),
        ];
        for (acc, want) in cases {
            let errs = errors(&with_acc(acc));
            assert!(errs.iter().any(|e| e == want), "want {want:?}\ngot {errs:#?}");
        }
    }

    #[test]
    fn config_prereg_writer_vectors() {
        let base = "backend='graphite-relay'\ninput_format='statsd'\noutput_format='graphite'\n";
        // driver moo errors
        let errs = errors(&with_acc(&format!(
            "{base}[g.accumulator.writer.metrics]\ndriver='moo'\ndsn='/tmp/x'"
        )));
        assert!(
            errs.contains(&"prereg.toml: g.accumulator.writer.metrics.driver: unknown driver \"moo\", expected file, mysql or cassandra".to_string()),
            "{errs:#?}"
        );
        // times=["3s:5s"] with a file writer loads
        let a = acc_of(&with_acc(&format!(
            "{base}times=['3s:5s']\n[g.accumulator.writer.metrics]\ndriver='file'\ndsn='/tmp/moo'\n[g.accumulator.writer.metrics.options]\nmax_file_size=200"
        )));
        let w = a.writer.unwrap();
        assert_eq!(w.metrics.driver, Driver::File);
        assert_eq!(w.metrics.dsn, "/tmp/moo");
        assert_eq!(w.metrics.options.get("max_file_size"), Some(&Value::Integer(200)));
        assert_eq!(w.indexer, None);
        assert_eq!(
            a.times,
            [Bin {
                interval: secs(3),
                ttl: secs(5)
            }]
        );
        // flat alias form
        let a = acc_of(&with_acc(&format!(
            "{base}[g.accumulator.writer]\ndriver='mysql'\ndsn='u:p@tcp(h:3306)/db'\nmetric_queue_length=5\n[g.accumulator.writer.options]\ntable='m'"
        )));
        let w = a.writer.unwrap();
        assert_eq!(w.metrics.driver, Driver::Mysql);
        assert_eq!(w.metric_queue_length, 5);
        assert_eq!(w.metrics.options.get("table"), Some(&Value::String("m".into())));
        // noop indexer, no dsn needed
        let a = acc_of(&with_acc(&format!(
            "{base}[g.accumulator.writer]\nmetrics={{driver='file', dsn='/x'}}\nindexer={{driver='noop'}}"
        )));
        assert_eq!(a.writer.unwrap().indexer.unwrap().driver, Driver::Noop);
        // errors: mixing forms, file dsn missing, file indexer
        let cases = [
            (
                "[g.accumulator.writer]\ndriver='file'\ndsn='/x'\nindexer={driver='noop'}",
                "prereg.toml: g.accumulator.writer: mixes the flat form (driver, dsn, options) with the metrics/indexer tables; use one form",
            ),
            (
                "[g.accumulator.writer]\nmetrics={driver='file'}",
                "prereg.toml: g.accumulator.writer.metrics.dsn: required for driver file",
            ),
            (
                "[g.accumulator.writer]\nmetrics={driver='file', dsn='/x'}\nindexer={driver='file', dsn='/y'}",
                "prereg.toml: g.accumulator.writer.indexer.driver: unknown driver \"file\", expected cassandra, mysql or noop",
            ),
            (
                "[g.accumulator.writer]\nmetrics={driver='file', dsn='/x', dns='oops'}",
                "prereg.toml: g.accumulator.writer.metrics.dns: unknown key",
            ),
        ];
        for (w, want) in cases {
            let errs = errors(&with_acc(&format!("{base}{w}")));
            assert!(errs.iter().any(|e| e == want), "want {want:?}\ngot {errs:#?}");
        }
    }

    #[test]
    fn config_prereg_api() {
        let base = "backend='graphite-relay'\ninput_format='statsd'\noutput_format='graphite'\n[g.accumulator.writer]\nmetrics={driver='file', dsn='/x'}\n";
        for (bp, want) in [("", "/"), ("graphite", "/graphite/"), ("/a/b", "/a/b/"), ("/c/", "/c/")] {
            let a = acc_of(&with_acc(&format!(
                "{base}[g.accumulator.api]\nlisten='127.0.0.1:8083'\nbase_path='{bp}'\nlog_file='none'\nmetrics={{driver='cassandra', dsn='h'}}"
            )));
            let api = a.api.unwrap();
            assert_eq!(api.base_path, want);
            assert_eq!(api.log_file, "none");
        }
        let c = load(&with_acc(&format!(
            "{base}[g.accumulator.api]\nlisten='127.0.0.1:8083'\nmetrics={{driver='file', dsn='/x'}}"
        )));
        assert_eq!(
            c.warnings,
            ["prereg.toml: g.accumulator.api.metrics.driver: reader not implemented for driver file; the reader API answers 503"]
        );
        let errs = errors(&with_acc(&format!(
            "{base}[g.accumulator.api]\nlisten='nope'\nbase='/x'"
        )));
        assert!(
            errs.contains(&"prereg.toml: g.accumulator.api.base: unknown key".to_string()),
            "{errs:#?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.starts_with("prereg.toml: g.accumulator.api.listen: invalid address")),
            "{errs:#?}"
        );
    }

    #[test]
    fn config_prereg_options() {
        let base = "backend='graphite-relay'\noutput_format='graphite'\n";
        let a = acc_of(&with_acc(&format!(
            "{base}input_format='statsd'\noptions=[['legacyNamespace','F'],['globalPrefix',''],['percentThreshold','0.95, 99.9,-10']]"
        )));
        assert!(!a.options.legacy_namespace, "legacyNamespace F");
        let cases = [
            ("options=[['globalprefix','x']]", "prereg.toml: g.accumulator.options[0]: unknown option \"globalprefix\", expected one of legacyNamespace, globalPrefix, globalSuffix, prefixCounter, prefixTimer, prefixGauge, prefixSet, percentThreshold"),
            ("options=[['globalPrefix','x','y']]", "prereg.toml: g.accumulator.options[0]: expected exactly 2 items [name, value], found 3"),
            ("options=[['legacyNamespace']]", "prereg.toml: g.accumulator.options[0]: expected exactly 2 items [name, value], found 1"),
            ("options=[['legacyNamespace','yes']]", "prereg.toml: g.accumulator.options[0]: legacyNamespace: \"yes\" is not a boolean"),
            ("options=[['percentThreshold','90,x']]", "prereg.toml: g.accumulator.options[0]: percentThreshold: \"90,x\" is not a comma-separated list of numbers"),
            ("options=[['percentThreshold','90,150']]", "prereg.toml: g.accumulator.options: percentThreshold: 150 is outside -100..100"),
            ("options=[['globalPrefix', 1]]", "prereg.toml: g.accumulator.options[0]: expected a pair of strings [name, value]"),
        ];
        for (o, want) in cases {
            let errs = errors(&with_acc(&format!("{base}input_format='statsd'\n{o}")));
            assert!(errs.iter().any(|e| e == want), "want {want:?}\ngot {errs:#?}");
        }
        let c = load(&with_acc(&format!(
            "{base}input_format='graphite'\noptions=[['globalSuffix','stats']]"
        )));
        assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
        assert_eq!(
            c.warnings[1],
            "prereg.toml: g.accumulator.options: ignored for input_format = \"graphite\""
        );
    }

    #[test]
    fn config_prereg_validation_vectors() {
        // a rule with only noop="true" is valid
        let c = load("[g]\nlisten_server='graphite-relay'\ndefault_backend='graphite-relay'\n[[g.map]]\nnoop='true'\n");
        assert!(matches!(c.groups[0].rules[0].matcher, Matcher::Noop));
        assert!(c.groups[0].accumulator.is_none());
        let rule = "[[g.map]]\nnoop='true'\n";
        let cases: Vec<(String, &str)> = vec![
            ("[g]\nlisten_server='graphite-relay'\ndefault_backend='graphite-relay'\n[[g.map]]\nmooo='x'\n".to_string(),
             "prereg.toml: g.map[0].mooo: unknown key"),
            ("[g]\nlisten_server='graphite-relay'\ndefault_backend='graphite-relay'\n[[g.map]]\nmooo='x'\n".to_string(),
             "prereg.toml: g.map[0]: exactly one of prefix, substring, regex, noop is required"),
            (format!("[g]\nlisten_server='graphite-relay'\n{rule}"), "prereg.toml: g.default_backend: required key missing"),
            (format!("[g]\ndefault_backend='graphite-relay'\n{rule}"), "prereg.toml: g.listen_server: required key missing"),
            ("[g]\nlisten_server='graphite-relay'\ndefault_backend='graphite-relay'\n".to_string(),
             "prereg.toml: g.map: at least one [[g.map]] rule is required"),
            (format!("[g]\nlisten_server='graphite-relay'\ndefault_backend='graphite-relay'\n{rule}[[g.map]]\nprefix='a'\nsubstring='b'\n[[g.map]]\nnoop='x'\n[[g.map]]\nregex='a'\nnoop='y'\n"),
             "prereg.toml: g.map[3]: exactly one of prefix, substring, regex, noop is required"),
            ("[g]\nlisten_server='graphite-relay'\ndefault_backend='graphite-relay'\n[[g.map]]\nprefix='a'\nbackend='nope'\n".to_string(),
             "prereg.toml: g.map[0].backend: \"nope\" is not a section of the main config"),
            ("[g]\nlisten_server='graphite-relay'\ndefault_backend='graphite-relay'\n[[g.map]]\nprefix='a'\nreject='yes'\n".to_string(),
             "prereg.toml: g.map[0].reject: expected a boolean, found a string"),
            ("[g]\nlisten_server='graphite-relay'\ndefault_backend='graphite-relay'\n[[g.map]]\nregex='(a'\n".to_string(),
             "prereg.toml: g.map[0].regex: invalid regex: regex parse error:     (a     ^ error: unclosed group"),
            (format!("[g]\nlisten_server='missing'\ndefault_backend='graphite-relay'\n{rule}"),
             "prereg.toml: g.listen_server: \"missing\" is not a section of the main config"),
            (format!("[g]\nlisten_server='aux'\ndefault_backend='aux'\n{rule}"),
             "prereg.toml: g.listen_server: section \"aux\" is backend_only (it has no listener to filter)"),
            (format!("[g]\nlisten_server='graphite-relay'\ndefault_backend='graphite-relay'\n{rule}[h]\nlisten_server='graphite-relay'\ndefault_backend='graphite-relay'\n[[h.map]]\nnoop='true'\n"),
             "prereg.toml: h.listen_server: section \"graphite-relay\" already has PreReg group \"g\" (at most one group per section)"),
            ("x = 1\n".to_string(), "prereg.toml: x: top-level keys must be group tables, found integer"),
        ];
        for (text, want) in &cases {
            let errs = errors(text);
            assert!(errs.iter().any(|e| e == want), "want {want:?}\ngot {errs:#?}");
        }
    }

    #[test]
    fn config_prereg_warnings() {
        let c = load(
            r#"
[g]
listen_server = "graphite-relay"
default_backend = "graphite-relay"
flush_time = 5
[[g.map]]
prefix = "x"
backend = "aux"
[g.accumulator]
backend = "graphite-relay"
input_format = "graphite"
output_format = "graphite"
accumulate_flush = "10s"
times = ["5s", "20s"]
to_prereg_group = "y"
[g.accumulator.keeper]
a = 1
[[g.accumulator.tags]]
key = "a"
value = "b"
[g.accumulator.writer]
queue_length = 5
metrics = { driver = "file", dsn = "/x", queue_length = 3 }
"#,
        );
        assert_eq!(
            c.warnings,
            [
                "prereg.toml: g.flush_time: legacy key ignored (no effect)",
                "prereg.toml: g.map[0].backend: redirects graphite lines of \"graphite-relay\" to \"aux\" whose msg_type is statsd",
                "prereg.toml: g.accumulator.keeper: legacy key ignored (no effect)",
                "prereg.toml: g.accumulator.to_prereg_group: legacy key ignored (no effect)",
                "prereg.toml: g.accumulator.times[0]: bin 5s is not a multiple of accumulate_flush 10s",
                "prereg.toml: g.accumulator.tags: accepted; no effect",
                "prereg.toml: g.accumulator.writer.queue_length: legacy key ignored (no effect)",
                "prereg.toml: g.accumulator.writer.metrics.queue_length: legacy key ignored (no effect)",
            ]
        );
    }

    #[test]
    fn config_prereg_several_errors_at_once() {
        let errs = errors(
            r#"
[statsd-filter]
listen_server = "statsd-relay"
default_backend = "nope"
[[statsd-filter.map]]
prefix = "a"
[[statsd-filter.map]]
[[statsd-filter.map]]
prefix = "b"
substring = "c"
[statsd-filter.accumulator]
backend = "graphite-relay"
input_format = "statsd"
output_format = "graphite"
times = ["1m", "5s"]
[statsd-filter.accumulator.writer.metrics]
driver = "moo"
"#,
        );
        let want = [
            "prereg.toml: statsd-filter.default_backend: \"nope\" is not a section of the main config",
            "prereg.toml: statsd-filter.map[1]: exactly one of prefix, substring, regex, noop is required",
            "prereg.toml: statsd-filter.map[2]: exactly one of prefix, substring, regex, noop is required",
            "prereg.toml: statsd-filter.accumulator.times[1]: 5s must be greater than the previous entry 1m (times must be strictly ascending)",
            "prereg.toml: statsd-filter.accumulator.writer.metrics.driver: unknown driver \"moo\", expected file, mysql or cassandra",
        ];
        assert_eq!(errs, want);
    }
}
