//! The main config (`--config`, spec §3): `[default]`, the sections and their rings.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use toml::{Table, Value};

use super::duration::fmt_duration;
use super::url::{trim_url, DestUrl, IpCidr, Listen};
use super::value::{check_keys, parse_toml, top_level_order, type_error, Diag, IntUnit, Tbl};
use super::ConfigErrors;
use crate::ring::{default_hashkey, validate_hashkey, Elter, HasherAlgo, RingKind, RingSpec};

/// The validated main config.
#[derive(Clone, Debug)]
pub struct Config {
    pub globals: Globals,
    /// Sections in file order; `[default]` is not one of them.
    pub sections: Vec<Section>,
    /// Warnings found while loading, each `<file>: <key path>: <message>`.
    pub warnings: Vec<String>,
}

impl Config {
    /// The section named `name`.
    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }
}

/// Keys read only from `[default]` (spec §3.1).
#[derive(Clone, Debug, PartialEq)]
pub struct Globals {
    pub pid_file: Option<PathBuf>,
    /// 0 = number of CPUs.
    pub num_procs: usize,
    pub cpu_profile: bool,
    pub stats_tick: bool,
    /// `host:port`; `None` disables self-stats.
    pub statsd_server: Option<String>,
    pub statsd_prefix: String,
    pub statsd_interval: Duration,
    pub statsd_sample_rate: f64,
    pub statsd_timer_sample_rate: f64,
    /// `host:port` of the admin server; `None` disables it.
    pub internal_health_server_listen: Option<String>,
    pub internal_health_server_path: Option<PathBuf>,
    /// The `[default]` value (sections carry their own, possibly inherited).
    pub internal_health_server_points: usize,
    pub internal_health_server_admin_allow: Vec<IpCidr>,
    pub shutdown_timeout: Duration,
}

/// One server section (spec §3.2).
#[derive(Clone, Debug)]
pub struct Section {
    pub name: String,
    pub listen: Listen,
    pub msg_type: MsgType,
    /// Set for `msg_type = "regex"`; has a group named `Key`.
    pub msg_regex: Option<regex::bytes::Regex>,
    /// One per `[[<name>.servers]]` block, in file order; never empty.
    pub rings: Vec<RingConfig>,
    /// `kind` selects the ring (spec §7.4); `algo`/`elter`/`vnodes` are for the consthash family only
    /// (for a peer ring `algo` is `Crc32` and unused).
    pub ring_spec: RingSpec,
    /// `hasher_algo` as written (inherited or `crc32`).
    pub hasher_algo_name: String,
    /// Already capped at the smallest ring size (with a warning).
    pub num_dupe_replicas: usize,
    /// carbon_ch's DIVERSE_REPLICAS; also in `ring_spec.kind` for `carbon_ch`.
    pub diverse_replicas: bool,
    pub cache_items: usize,
    pub heartbeat_time_delay: Duration,
    pub heartbeat_time_timeout: Duration,
    /// At least 1.
    pub failed_heartbeat_count: u32,
    pub server_down_policy: DownPolicy,
    pub sending_method: SendingMethod,
    pub max_pool_connections: usize,
    pub pool_buffersize: usize,
    pub write_timeout: Duration,
    pub workers: usize,
    pub read_buffer_size: usize,
    pub max_read_buffer_size: usize,
    pub max_line_length: usize,
    pub out_queue_lines: usize,
    pub out_block_timeout: Duration,
    /// 0 = no byte bound.
    pub out_queue_bytes: usize,
    pub reconnect_backoff_max: Duration,
    pub internal_health_server_points: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsgType {
    Graphite,
    Statsd,
    Regex,
}

impl MsgType {
    pub fn name(self) -> &'static str {
        match self {
            MsgType::Graphite => "graphite",
            MsgType::Statsd => "statsd",
            MsgType::Regex => "regex",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DownPolicy {
    Keep,
    RemoveNode,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendingMethod {
    BufferedPool,
    Pool,
    Single,
}

/// One ring (`[[<name>.servers]]`). The three vectors have the same length.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RingConfig {
    pub servers: Vec<DestUrl>,
    /// Default: `servers`.
    pub check_servers: Vec<DestUrl>,
    /// As written; default (§7.5): the server URL for the consthash family, `host:port` of the URL for the peer
    /// algorithms (the URL itself for a unix destination).
    pub hashkeys: Vec<String>,
}

/// `hasher_algo` names of the exact peer rings (§7.4).
pub const PEER_ALGOS: &[&str] = &[
    "carbon_ch",
    "carbon_ch_c_relay",
    "fnv1a_ch",
    "jump_fnv1a_ch",
    "statsd_hashring",
];

const GLOBAL_KEYS: &[&str] = &[
    "pid_file",
    "num_procs",
    "cpu_profile",
    "stats_tick",
    "statsd_server",
    "statsd_prefix",
    "statsd_interval",
    "statsd_sample_rate",
    "statsd_timer_sample_rate",
    "internal_health_server_listen",
    "internal_health_server_path",
    "internal_health_server_admin_allow",
    "shutdown_timeout",
];

const INHERITABLE_KEYS: &[&str] = &[
    "hasher_algo",
    "hasher_elter",
    "hasher_vnodes",
    "num_dupe_replicas",
    "diverse_replicas",
    "cache_items",
    "heartbeat_time_delay",
    "heartbeat_time_timeout",
    "failed_heartbeat_count",
    "server_down_policy",
    "sending_method",
    "max_pool_connections",
    "pool_buffersize",
    "write_timeout",
    "runner_timeout",
    "workers",
    "out_workers",
    "read_buffer_size",
    "max_read_buffer_size",
    "max_line_length",
    "out_queue_lines",
    "out_block_timeout",
    "out_queue_bytes",
    "reconnect_backoff_max",
    "internal_health_server_points",
];

const SECTION_ONLY_KEYS: &[&str] = &["listen", "msg_type", "msg_regex", "servers"];

const LEGACY_KEYS: &[&str] = &["max_buffer_size", "hasher_replicas"];

fn all_keys() -> Vec<&'static str> {
    let mut v = Vec::new();
    v.extend_from_slice(GLOBAL_KEYS);
    v.extend_from_slice(INHERITABLE_KEYS);
    v.extend_from_slice(SECTION_ONLY_KEYS);
    v
}

/// Loads and validates the main config. All errors are reported together.
pub fn load_main(text: &str, file: &str) -> Result<Config, ConfigErrors> {
    let root = parse_toml(text, file)?;
    let mut d = Diag::new(file);
    let order = top_level_order(text, &root);

    let empty = Table::new();
    let def = match root.get("default") {
        Some(Value::Table(t)) => t,
        Some(v) => {
            type_error(&mut d, "default", "a table", v);
            &empty
        }
        None => {
            d.file_error("missing [default] section");
            &empty
        }
    };
    let def_tbl = Tbl::new(def, "default");
    check_keys(&mut d, def, "default", &all_keys(), LEGACY_KEYS);
    for k in SECTION_ONLY_KEYS {
        if def.contains_key(*k) {
            d.warn(&def_tbl.path_of(k), "no effect in [default]");
        }
    }
    let globals = parse_globals(&mut d, def_tbl);
    // Validate the inheritable values of [default] once, even when no section uses them.
    let _ = Settings::resolve(&mut d, def_tbl, def_tbl);

    let mut sections = Vec::new();
    for name in &order {
        if name == "default" {
            continue;
        }
        let Some(v) = root.get(name) else { continue };
        match v {
            Value::Table(t) => {
                if let Some(s) = parse_section(&mut d, name, t, def_tbl) {
                    sections.push(s);
                }
            }
            v => d.error(
                name,
                format!("top-level keys must be section tables, found {}", type_name_short(v)),
            ),
        }
    }

    // Judged on the written `listen` values, so that a section with other errors does not add a spurious one here.
    let real_listener = root.iter().any(|(name, v)| {
        name != "default"
            && matches!(v, Value::Table(t) if t.get("listen").and_then(Value::as_str).map(str::trim) != Some("backend_only"))
    });
    if root.contains_key("default") && !real_listener {
        if root.len() == 1 {
            d.file_error("no server section (only [default])");
        } else {
            d.file_error("no section with a real listener (every section is backend_only)");
        }
    }
    let mut bound: HashMap<String, &str> = HashMap::new();
    for s in &sections {
        // Port 0 asks the OS for a free port: two such sections never collide.
        if let Some(k) = s.listen.bind_key().filter(|k| !k.ends_with(":0")) {
            if let Some(other) = bound.get(&k) {
                d.error(
                    &format!("{}.listen", s.name),
                    format!("address {} is already used by section {other}", s.listen.url()),
                );
            } else {
                bound.insert(k, &s.name);
            }
        }
    }

    let warnings = d.finish()?;
    Ok(Config {
        globals,
        sections,
        warnings,
    })
}

fn type_name_short(v: &Value) -> &'static str {
    v.type_str()
}

fn parse_globals(d: &mut Diag, t: Tbl) -> Globals {
    let non_empty = |s: Option<String>| s.filter(|s| !s.is_empty());
    let statsd_server = non_empty(t.str(d, "statsd_server"));
    if let Some(s) = &statsd_server {
        if let Err(e) = super::url::host_port(s, s) {
            d.error(&t.path_of("statsd_server"), e);
        }
    }
    let listen = non_empty(t.str(d, "internal_health_server_listen"));
    if let Some(s) = &listen {
        if let Err(e) = super::url::host_port(s, s) {
            d.error(&t.path_of("internal_health_server_listen"), e);
        }
    }
    let statsd_interval = match t.dur(d, "statsd_interval", IntUnit::Secs) {
        None => Duration::from_secs(2),
        Some(v) if v.is_zero() => Duration::from_secs(2),
        Some(v) => v,
    };
    let mut rate = |key: &str| match t.f64(d, key) {
        None => 1.0,
        Some(r) if r > 0.0 && r <= 1.0 => r,
        Some(r) => {
            d.error(
                &t.path_of(key),
                format!("must be greater than 0 and at most 1, found {r}"),
            );
            1.0
        }
    };
    let statsd_sample_rate = rate("statsd_sample_rate");
    let statsd_timer_sample_rate = rate("statsd_timer_sample_rate");
    let admin_allow = match t.str_array(d, "internal_health_server_admin_allow") {
        None => vec![IpCidr::parse("127.0.0.0/8"), IpCidr::parse("::1/128")]
            .into_iter()
            .flatten()
            .collect(),
        Some(list) => {
            let mut out = Vec::new();
            for (i, s) in list.iter().enumerate() {
                match IpCidr::parse(s) {
                    Ok(c) => out.push(c),
                    Err(e) => d.error(&format!("{}[{i}]", t.path_of("internal_health_server_admin_allow")), e),
                }
            }
            out
        }
    };
    Globals {
        pid_file: non_empty(t.str(d, "pid_file")).map(PathBuf::from),
        num_procs: t.usize(d, "num_procs").unwrap_or(0),
        cpu_profile: t.bool(d, "cpu_profile").unwrap_or(false),
        stats_tick: t.bool(d, "stats_tick").unwrap_or(false),
        statsd_server,
        statsd_prefix: t.str(d, "statsd_prefix").unwrap_or_default(),
        statsd_interval,
        statsd_sample_rate,
        statsd_timer_sample_rate,
        internal_health_server_listen: listen,
        internal_health_server_path: non_empty(t.str(d, "internal_health_server_path")).map(PathBuf::from),
        internal_health_server_points: t.usize(d, "internal_health_server_points").unwrap_or(100),
        internal_health_server_admin_allow: admin_allow,
        shutdown_timeout: t
            .dur(d, "shutdown_timeout", IntUnit::Secs)
            .unwrap_or(Duration::from_secs(10)),
    }
}

/// The inheritable keys of one section, resolved against `[default]` and the built-in defaults.
struct Settings {
    hasher_algo: String,
    ring_spec: RingSpec,
    num_dupe_replicas: usize,
    diverse_replicas: bool,
    cache_items: usize,
    heartbeat_time_delay: Duration,
    heartbeat_time_timeout: Duration,
    failed_heartbeat_count: u32,
    server_down_policy: DownPolicy,
    sending_method: SendingMethod,
    max_pool_connections: usize,
    pool_buffersize: usize,
    write_timeout: Duration,
    workers: usize,
    read_buffer_size: usize,
    max_read_buffer_size: usize,
    max_line_length: usize,
    out_queue_lines: usize,
    out_block_timeout: Duration,
    out_queue_bytes: usize,
    reconnect_backoff_max: Duration,
    internal_health_server_points: usize,
}

impl Settings {
    fn resolve(d: &mut Diag, sec: Tbl, def: Tbl) -> Settings {
        // The table a key is read from: the section's own, else [default].
        let from = |key: &str| if sec.has(key) { sec } else { def };
        let us = |d: &mut Diag, key: &str, dflt: usize| from(key).usize(d, key).unwrap_or(dflt);
        let dur = |d: &mut Diag, key: &str, unit: IntUnit, dflt: Duration| from(key).dur(d, key, unit).unwrap_or(dflt);

        let algo_tbl = from("hasher_algo");
        let hasher_algo = algo_tbl.str(d, "hasher_algo").unwrap_or_else(|| "crc32".to_string());
        let hasher_algo_path = algo_tbl.path_of("hasher_algo");
        let diverse_replicas = from("diverse_replicas").bool(d, "diverse_replicas").unwrap_or(true);
        let kind = match RingKind::parse(&hasher_algo) {
            Some(RingKind::CarbonCh { .. }) => RingKind::CarbonCh { diverse_replicas },
            Some(k) => k,
            None => RingKind::ConstHash,
        };
        let peer = kind.is_peer();
        let algo = if peer {
            HasherAlgo::Crc32
        } else {
            HasherAlgo::parse(&hasher_algo).unwrap_or_else(|| {
                d.warn(
                    &hasher_algo_path,
                    format!("unknown hasher_algo \"{hasher_algo}\", using crc32"),
                );
                HasherAlgo::Crc32
            })
        };
        let elter_tbl = from("hasher_elter");
        let elter_name = elter_tbl.str(d, "hasher_elter");
        let elter = match &elter_name {
            None => Elter::Graphite,
            Some(n) => Elter::parse(n).unwrap_or_else(|| {
                let note = if n == "simple" {
                    " (later versions of consthash treat \"simple\" as goconsistent)"
                } else {
                    ""
                };
                if !peer {
                    d.warn(
                        &elter_tbl.path_of("hasher_elter"),
                        format!("unknown hasher_elter \"{n}\", using graphite{note}"),
                    );
                }
                Elter::Graphite
            }),
        };
        let vnodes = match us(d, "hasher_vnodes", 4) {
            0 => 4,
            v => v,
        };
        if peer && !std::ptr::eq(sec.t, def.t) {
            for k in ["hasher_elter", "hasher_vnodes"] {
                if sec.has(k) {
                    d.warn(&sec.path_of(k), format!("ignored by hasher_algo \"{hasher_algo}\""));
                }
            }
        }

        let down_tbl = from("server_down_policy");
        let server_down_policy = match down_tbl.str(d, "server_down_policy").as_deref() {
            Some("remove_node") => DownPolicy::RemoveNode,
            _ => DownPolicy::Keep,
        };
        let sm_tbl = from("sending_method");
        let sending_method = match sm_tbl.str(d, "sending_method").as_deref() {
            None | Some("bufferedpool") => SendingMethod::BufferedPool,
            Some("pool") => SendingMethod::Pool,
            Some("single") => SendingMethod::Single,
            Some(other) => {
                d.error(
                    &sm_tbl.path_of("sending_method"),
                    format!("unknown sending_method \"{other}\", expected bufferedpool, pool or single"),
                );
                SendingMethod::BufferedPool
            }
        };
        // Accepted for compatibility; no effect.
        let _ = from("runner_timeout").dur(d, "runner_timeout", IntUnit::Millis);
        let _ = from("out_workers").usize(d, "out_workers");

        let read_buffer_size = us(d, "read_buffer_size", 1_048_576);
        let max_read_buffer_size = from("max_read_buffer_size")
            .usize(d, "max_read_buffer_size")
            .unwrap_or_else(|| read_buffer_size.saturating_mul(1000));
        Settings {
            hasher_algo,
            ring_spec: RingSpec {
                algo,
                elter,
                vnodes,
                kind,
            },
            num_dupe_replicas: us(d, "num_dupe_replicas", 1).max(1),
            diverse_replicas,
            cache_items: us(d, "cache_items", 10_000),
            heartbeat_time_delay: dur(d, "heartbeat_time_delay", IntUnit::Secs, Duration::from_secs(30)),
            heartbeat_time_timeout: dur(d, "heartbeat_time_timeout", IntUnit::Secs, Duration::from_secs(5)),
            failed_heartbeat_count: from("failed_heartbeat_count")
                .u32(d, "failed_heartbeat_count")
                .unwrap_or(3)
                .max(1),
            server_down_policy,
            sending_method,
            max_pool_connections: us(d, "max_pool_connections", 10),
            pool_buffersize: us(d, "pool_buffersize", 512),
            write_timeout: dur(d, "write_timeout", IntUnit::Millis, Duration::from_millis(1000)),
            workers: us(d, "workers", 8),
            read_buffer_size,
            max_read_buffer_size,
            max_line_length: us(d, "max_line_length", 65_536),
            out_queue_lines: us(d, "out_queue_lines", 100_000),
            out_block_timeout: dur(d, "out_block_timeout", IntUnit::Millis, Duration::from_millis(1000)),
            out_queue_bytes: us(d, "out_queue_bytes", 0),
            reconnect_backoff_max: dur(d, "reconnect_backoff_max", IntUnit::Millis, Duration::from_millis(5000)),
            internal_health_server_points: us(d, "internal_health_server_points", 100),
        }
    }
}

fn parse_section(d: &mut Diag, name: &str, t: &Table, def: Tbl) -> Option<Section> {
    let sec = Tbl::new(t, name);
    for k in t.keys() {
        if GLOBAL_KEYS.contains(&k.as_str()) {
            d.warn(&sec.path_of(k), "only read from [default]; no effect here");
        }
    }
    check_keys(d, t, name, &all_keys(), LEGACY_KEYS);

    let listen = match sec.str(d, "listen") {
        None => Listen::parse(Listen::DEFAULT).ok(),
        Some(s) => match Listen::parse(&s) {
            Ok(l) => Some(l),
            Err(e) => {
                d.error(&sec.path_of("listen"), e);
                None
            }
        },
    };
    let msg_type = match sec.str(d, "msg_type").as_deref() {
        Some("graphite") => Some(MsgType::Graphite),
        Some("statsd") => Some(MsgType::Statsd),
        Some("regex") => Some(MsgType::Regex),
        Some(other) => {
            d.error(
                &sec.path_of("msg_type"),
                format!("unknown msg_type \"{other}\", expected graphite, statsd or regex"),
            );
            None
        }
        None => {
            if !t.contains_key("msg_type") {
                d.error(
                    &sec.path_of("msg_type"),
                    "required key missing (graphite, statsd or regex)",
                );
            }
            None
        }
    };
    let mut msg_regex = None;
    if let Some(s) = sec.str(d, "msg_regex") {
        match regex::bytes::Regex::new(&s) {
            Ok(re) => {
                if re.capture_names().any(|n| n == Some("Key")) {
                    msg_regex = Some(re);
                } else {
                    d.error(
                        &sec.path_of("msg_regex"),
                        "must contain a group named Key, e.g. (?P<Key>\\S+)",
                    );
                }
            }
            Err(e) => d.error(
                &sec.path_of("msg_regex"),
                format!("invalid regex: {}", e.to_string().replace('\n', " ")),
            ),
        }
        if msg_type.is_some() && msg_type != Some(MsgType::Regex) {
            d.warn(&sec.path_of("msg_regex"), "ignored unless msg_type = \"regex\"");
        }
    } else if msg_type == Some(MsgType::Regex) && !t.contains_key("msg_regex") {
        d.error(&sec.path_of("msg_regex"), "required for msg_type = \"regex\"");
    }

    let s = Settings::resolve(d, sec, def);
    let rings = parse_rings(d, sec, &s.ring_spec.kind);

    if s.heartbeat_time_delay < 2 * s.heartbeat_time_timeout {
        d.error(
            &sec.path_of("heartbeat_time_delay"),
            format!(
                "{} is less than 2 × heartbeat_time_timeout ({})",
                fmt_duration(s.heartbeat_time_delay),
                fmt_duration(s.heartbeat_time_timeout)
            ),
        );
    }
    let mut num_dupe_replicas = s.num_dupe_replicas;
    if let Some(smallest) = rings.iter().map(|r| r.servers.len()).min() {
        if smallest > 0 && num_dupe_replicas > smallest {
            d.warn(
                &sec.path_of("num_dupe_replicas"),
                format!("{num_dupe_replicas} exceeds the smallest ring ({smallest} servers); using {smallest}"),
            );
            num_dupe_replicas = smallest;
        }
    }

    Some(Section {
        name: name.to_string(),
        listen: listen?,
        msg_type: msg_type?,
        msg_regex,
        rings,
        ring_spec: s.ring_spec,
        hasher_algo_name: s.hasher_algo,
        num_dupe_replicas,
        diverse_replicas: s.diverse_replicas,
        cache_items: s.cache_items,
        heartbeat_time_delay: s.heartbeat_time_delay,
        heartbeat_time_timeout: s.heartbeat_time_timeout,
        failed_heartbeat_count: s.failed_heartbeat_count,
        server_down_policy: s.server_down_policy,
        sending_method: s.sending_method,
        max_pool_connections: s.max_pool_connections,
        pool_buffersize: s.pool_buffersize,
        write_timeout: s.write_timeout,
        workers: s.workers,
        read_buffer_size: s.read_buffer_size,
        max_read_buffer_size: s.max_read_buffer_size,
        max_line_length: s.max_line_length,
        out_queue_lines: s.out_queue_lines,
        out_block_timeout: s.out_block_timeout,
        out_queue_bytes: s.out_queue_bytes,
        reconnect_backoff_max: s.reconnect_backoff_max,
        internal_health_server_points: s.internal_health_server_points,
    })
}

/// Trimmed, non-blank URLs of `key` in a ring table, parsed; errors name the original index.
fn parse_urls(d: &mut Diag, ring: Tbl, key: &str) -> Option<Vec<DestUrl>> {
    let list = ring.str_array(d, key)?;
    let mut out = Vec::with_capacity(list.len());
    for (j, s) in list.iter().enumerate() {
        if trim_url(s).is_empty() {
            continue;
        }
        match DestUrl::parse(s) {
            Ok(u) => out.push(u),
            Err(e) => d.error(&format!("{}[{j}]", ring.path_of(key)), e),
        }
    }
    Some(out)
}

fn parse_rings(d: &mut Diag, sec: Tbl, kind: &RingKind) -> Vec<RingConfig> {
    let servers_path = sec.path_of("servers");
    let Some(blocks) = sec.table_array(d, "servers") else {
        if !sec.has("servers") {
            d.error(
                &servers_path,
                format!("required: at least one [[{servers_path}]] block"),
            );
        }
        return Vec::new();
    };
    if blocks.is_empty() {
        d.error(
            &servers_path,
            format!("required: at least one [[{servers_path}]] block"),
        );
    }
    let peer = kind.is_peer();
    let mut rings = Vec::new();
    for (i, t) in blocks {
        let path = format!("{servers_path}[{i}]");
        let ring = Tbl::new(t, &path);
        check_keys(d, t, &path, &["servers", "check_servers", "hashkeys"], &[]);
        let servers = match parse_urls(d, ring, "servers") {
            Some(s) => s,
            None => {
                if !ring.has("servers") {
                    d.error(&ring.path_of("servers"), "required key missing");
                }
                continue;
            }
        };
        if servers.is_empty() && ring.has("servers") {
            d.error(&ring.path_of("servers"), "empty (no server after trimming)");
        }
        for (j, s) in servers.iter().enumerate() {
            if servers[..j].iter().any(|o| o.raw == s.raw) {
                d.error(&ring.path_of("servers"), format!("duplicate server \"{}\"", s.raw));
            }
        }
        let check_servers = match parse_urls(d, ring, "check_servers") {
            None => servers.clone(),
            Some(c) => {
                if c.len() != servers.len() {
                    d.error(
                        &ring.path_of("check_servers"),
                        format!("length {} differs from servers length {}", c.len(), servers.len()),
                    );
                }
                c
            }
        };
        let hashkeys = match ring.str_array(d, "hashkeys") {
            None => {
                let keys: Vec<String> = servers
                    .iter()
                    .map(|s| match (peer, s.host_port()) {
                        (true, Some(hp)) => default_hashkey(kind, &hp),
                        _ => s.raw.clone(),
                    })
                    .collect();
                for (j, k) in keys.iter().enumerate() {
                    if let Err(e) = validate_hashkey(kind, k) {
                        d.error(
                            &format!("{}[{j}]", ring.path_of("servers")),
                            format!("no valid default hashkey, set hashkeys: {e}"),
                        );
                    }
                }
                keys
            }
            Some(h) => {
                for (j, k) in h.iter().enumerate() {
                    if let Err(e) = validate_hashkey(kind, k) {
                        d.error(&format!("{}[{j}]", ring.path_of("hashkeys")), e);
                    }
                }
                if h.len() != servers.len() {
                    d.error(
                        &ring.path_of("hashkeys"),
                        format!("length {} differs from servers length {}", h.len(), servers.len()),
                    );
                }
                for (j, k) in h.iter().enumerate() {
                    if h[..j].contains(k) {
                        d.error(&ring.path_of("hashkeys"), format!("duplicate hashkey \"{k}\""));
                    }
                }
                h
            }
        };
        if let RingKind::CarbonCh { .. } = kind {
            // carbon keys its ring by (host, instance) only: two members there would be one node.
            let nodes: Vec<_> = hashkeys
                .iter()
                .map(|k| crate::ring::member::parse_carbon(k).ok().map(|m| (m.host, m.instance)))
                .collect();
            for (j, n) in nodes.iter().enumerate() {
                if let Some((host, inst)) = n {
                    if nodes[..j].contains(n) {
                        d.error(
                            &format!("{}[{j}]", ring.path_of("hashkeys")),
                            format!(
                                "carbon_ch node (host \"{host}\", instance {}) already configured; give members on one host distinct instances",
                                inst.map_or("None".to_string(), |i| format!("\"{i}\""))
                            ),
                        );
                    }
                }
            }
        }
        rings.push(RingConfig {
            servers,
            check_servers,
            hashkeys,
        });
    }
    rings
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const EXAMPLE: &str = r#"
[default]
internal_health_server_listen = "127.0.0.1:6061"
hasher_algo = "md5"
hasher_vnodes = 100
heartbeat_time_delay = 60          # seconds
heartbeat_time_timeout = "2s"      # extension: duration string
server_down_policy = "remove_node"

[graphite-relay]
listen = "tcp://0.0.0.0:2003"
msg_type = "graphite"
  [[graphite-relay.servers]]       # ring 0
  servers = ["tcp://10.0.1.1:2004", "tcp://10.0.1.2:2004"]
  hashkeys = ["('10.0.1.1', 'a')", "('10.0.1.2', 'b')"]
  [[graphite-relay.servers]]       # ring 1: full copy to a second farm
  servers = ["tcp://10.9.1.1:2004"]

[statsd-relay]
listen = "udp://0.0.0.0:8125"
msg_type = "statsd"
hasher_algo = "statsd_hashring"    # exact statsd proxy.js ring (§7.4)
  [[statsd-relay.servers]]
  servers = ["udp://10.0.0.1:8126", "udp://10.0.0.2:8126"]
  check_servers = ["tcp://10.0.0.1:8127", "tcp://10.0.0.2:8127"]

[aux]
listen = "backend_only"
msg_type = "statsd"
  [[aux.servers]]
  servers = ["udp://10.0.2.1:8125"]
"#;

    fn load(text: &str) -> Config {
        match load_main(text, "relay.toml") {
            Ok(c) => c,
            Err(e) => panic!("config should load:\n{e}"),
        }
    }

    fn errors(text: &str) -> Vec<String> {
        match load_main(text, "relay.toml") {
            Ok(c) => panic!("config should fail: {c:?}"),
            Err(e) => e.0,
        }
    }

    #[test]
    fn config_main_spec_example_loads() {
        let c = load(EXAMPLE);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        let names: Vec<_> = c.sections.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["graphite-relay", "statsd-relay", "aux"]);
        assert_eq!(
            c.globals.internal_health_server_listen.as_deref(),
            Some("127.0.0.1:6061")
        );
        let g = &c.sections[0];
        assert_eq!(g.listen, Listen::Tcp("0.0.0.0:2003".into()));
        assert_eq!(g.msg_type, MsgType::Graphite);
        assert_eq!(g.rings.len(), 2);
        assert_eq!(g.rings[0].hashkeys[1], "('10.0.1.2', 'b')");
        assert_eq!(g.rings[1].hashkeys, ["tcp://10.9.1.1:2004"]);
        assert_eq!(g.rings[1].check_servers, g.rings[1].servers);
        assert_eq!(g.ring_spec, RingSpec::consthash(HasherAlgo::Md5, Elter::Graphite, 100));
        assert_eq!(g.heartbeat_time_delay, Duration::from_secs(60));
        assert_eq!(g.heartbeat_time_timeout, Duration::from_secs(2));
        assert_eq!(g.server_down_policy, DownPolicy::RemoveNode);
        let s = &c.sections[1];
        assert_eq!(s.hasher_algo_name, "statsd_hashring");
        assert_eq!(s.ring_spec.algo, HasherAlgo::Crc32);
        assert_eq!(s.ring_spec.kind, RingKind::StatsdHashring);
        assert_eq!(s.rings[0].hashkeys, ["10.0.0.1:8126", "10.0.0.2:8126"]);
        assert_eq!(s.rings[0].check_servers[1].raw, "tcp://10.0.0.2:8127");
        assert_eq!(c.sections[2].listen, Listen::BackendOnly);
    }

    #[test]
    fn config_main_defaults() {
        let c = load("[default]\n[a]\nmsg_type='graphite'\n[[a.servers]]\nservers=['tcp://h:1']\n");
        let g = &c.globals;
        assert_eq!(g.statsd_interval, Duration::from_secs(2));
        assert_eq!(g.shutdown_timeout, Duration::from_secs(10));
        assert_eq!(g.internal_health_server_points, 100);
        assert_eq!(g.internal_health_server_admin_allow.len(), 2);
        assert_eq!(g.statsd_server, None);
        let s = &c.sections[0];
        assert_eq!(s.listen, Listen::Tcp("127.0.0.1:6000".into()));
        assert_eq!(s.hasher_algo_name, "crc32");
        assert_eq!(s.ring_spec, RingSpec::consthash(HasherAlgo::Crc32, Elter::Graphite, 4));
        assert_eq!(s.num_dupe_replicas, 1);
        assert!(s.diverse_replicas);
        assert_eq!(s.cache_items, 10_000);
        assert_eq!(s.heartbeat_time_delay, Duration::from_secs(30));
        assert_eq!(s.heartbeat_time_timeout, Duration::from_secs(5));
        assert_eq!(s.failed_heartbeat_count, 3);
        assert_eq!(s.server_down_policy, DownPolicy::Keep);
        assert_eq!(s.sending_method, SendingMethod::BufferedPool);
        assert_eq!(s.max_pool_connections, 10);
        assert_eq!(s.pool_buffersize, 512);
        assert_eq!(s.write_timeout, Duration::from_millis(1000));
        assert_eq!(s.workers, 8);
        assert_eq!(s.read_buffer_size, 1_048_576);
        assert_eq!(s.max_read_buffer_size, 1_048_576_000);
        assert_eq!(s.max_line_length, 65_536);
        assert_eq!(s.out_queue_lines, 100_000);
        assert_eq!(s.out_block_timeout, Duration::from_millis(1000));
        assert_eq!(s.out_queue_bytes, 0);
        assert_eq!(s.reconnect_backoff_max, Duration::from_millis(5000));
        assert_eq!(s.internal_health_server_points, 100);
    }

    const THREE: &str = r#"
[default]
sending_method = "pool"
hasher_algo = "md5"
hasher_elter = "graphite"
hasher_vnodes = 10
statsd_interval = 0
read_buffer_size = 100
internal_health_server_points = 7
[one]
listen = "tcp://127.0.0.1:6002"
msg_type = "graphite"
[[one.servers]]
servers = ["tcp://127.0.0.1:2003", "tcp://127.0.0.1:2004"]
[two]
listen = "udp://127.0.0.1:6002"
msg_type = "statsd"
hasher_algo = "nodejs-hashring"
hasher_elter = "statsd"
hasher_vnodes = 40
sending_method = "single"
read_buffer_size = 10
[[two.servers]]
servers = ["udp://127.0.0.1:8126"]
[[two.servers]]
servers = ["udp://127.0.0.1:8127"]
[three]
listen = "http://127.0.0.1:6003/stats"
msg_type = "regex"
msg_regex = '^(?P<Key>\S+) '
[[three.servers]]
servers = ["http://127.0.0.1:8080/in"]
"#;

    #[test]
    fn config_main_consthash_vectors_and_inheritance() {
        let c = load(THREE);
        // three servable sections, default pool
        assert_eq!(c.sections.len(), 3);
        assert!(c.sections.iter().all(|s| s.listen != Listen::BackendOnly));
        let one = &c.sections[0];
        assert_eq!(one.sending_method, SendingMethod::Pool);
        assert_eq!(one.ring_spec.algo, HasherAlgo::Md5);
        assert_eq!(one.ring_spec.vnodes, 10);
        assert_eq!(one.max_read_buffer_size, 100_000);
        assert_eq!(one.internal_health_server_points, 7);
        // own nodejs-hashring/statsd/40 kept
        let two = &c.sections[1];
        assert_eq!(two.hasher_algo_name, "nodejs-hashring");
        assert_eq!(
            two.ring_spec,
            RingSpec::consthash(HasherAlgo::NodejsHashring, Elter::Statsd, 40)
        );
        assert_eq!(two.sending_method, SendingMethod::Single);
        assert_eq!(two.max_read_buffer_size, 10_000);
        // two blocks = two rings
        assert_eq!(two.rings.len(), 2);
        let three = &c.sections[2];
        assert!(three.msg_regex.is_some());
        assert_eq!(
            three.listen,
            Listen::Http {
                addr: "127.0.0.1:6003".into(),
                path: "/stats".into()
            }
        );
        assert_eq!(c.globals.statsd_interval, Duration::from_secs(2));
    }

    #[test]
    fn config_main_duration_units_per_key() {
        let c = load(
            r#"[default]
heartbeat_time_delay = 20
heartbeat_time_timeout = 3
write_timeout = 250
runner_timeout = 10
out_block_timeout = 20
reconnect_backoff_max = "1m"
shutdown_timeout = 4
statsd_interval = 7
[a]
msg_type = "statsd"
write_timeout = "2s"
[[a.servers]]
servers = ["udp://h:1"]
"#,
        );
        let s = &c.sections[0];
        assert_eq!(s.heartbeat_time_delay, Duration::from_secs(20));
        assert_eq!(s.heartbeat_time_timeout, Duration::from_secs(3));
        assert_eq!(s.write_timeout, Duration::from_secs(2));
        assert_eq!(s.out_block_timeout, Duration::from_millis(20));
        assert_eq!(s.reconnect_backoff_max, Duration::from_secs(60));
        assert_eq!(c.globals.shutdown_timeout, Duration::from_secs(4));
        assert_eq!(c.globals.statsd_interval, Duration::from_secs(7));
    }

    #[test]
    fn config_main_zero_fixups_and_replica_cap() {
        let c = load(
            r#"[default]
hasher_vnodes = 0
failed_heartbeat_count = 0
num_dupe_replicas = 3
[a]
msg_type = "graphite"
[[a.servers]]
servers = ["tcp://h:1", " tcp://h:2\t", "", "  "]
[[a.servers]]
servers = ["tcp://h:3", "tcp://h:4", "tcp://h:5"]
"#,
        );
        let s = &c.sections[0];
        assert_eq!(s.ring_spec.vnodes, 4);
        assert_eq!(s.failed_heartbeat_count, 1);
        assert_eq!(s.num_dupe_replicas, 2);
        assert_eq!(s.rings[0].servers[1].raw, "tcp://h:2");
        assert_eq!(s.rings[0].servers.len(), 2);
        assert_eq!(
            c.warnings,
            ["relay.toml: a.num_dupe_replicas: 3 exceeds the smallest ring (2 servers); using 2"]
        );
    }

    #[test]
    fn config_main_warnings() {
        let c = load(
            r#"[default]
max_buffer_size = 10
listen = "tcp://1.2.3.4:5"
hasher_elter = "simple"
[a]
msg_type = "graphite"
hasher_replicas = 3
hasher_algo = "crc23"
pid_file = "/x"
[[a.servers]]
servers = ["tcp://h:1"]
[b]
listen = "tcp://127.0.0.1:1"
msg_type = "graphite"
hasher_algo = "carbon_ch"
hasher_vnodes = 10
[[b.servers]]
servers = ["tcp://h:1"]
"#,
        );
        assert_eq!(
            c.warnings,
            [
                "relay.toml: default.max_buffer_size: legacy key ignored (no effect)",
                "relay.toml: default.listen: no effect in [default]",
                "relay.toml: default.hasher_elter: unknown hasher_elter \"simple\", using graphite (later versions of consthash treat \"simple\" as goconsistent)",
                "relay.toml: a.pid_file: only read from [default]; no effect here",
                "relay.toml: a.hasher_replicas: legacy key ignored (no effect)",
                "relay.toml: a.hasher_algo: unknown hasher_algo \"crc23\", using crc32",
                "relay.toml: b.hasher_vnodes: ignored by hasher_algo \"carbon_ch\"",
            ]
        );
        assert_eq!(c.sections[0].ring_spec.algo, HasherAlgo::Crc32);
        assert_eq!(c.sections[1].hasher_algo_name, "carbon_ch");
        assert_eq!(c.sections[1].rings[0].hashkeys, ["h:1"]);
        assert_eq!(
            c.sections[1].ring_spec.kind,
            RingKind::CarbonCh { diverse_replicas: true }
        );
    }

    #[test]
    fn config_main_peer_algos_select_their_ring() {
        let kinds = [
            ("carbon_ch", RingKind::CarbonCh { diverse_replicas: true }),
            ("carbon_ch_c_relay", RingKind::CarbonChCRelay),
            ("fnv1a_ch", RingKind::Fnv1aCh),
            ("jump_fnv1a_ch", RingKind::JumpFnv1aCh),
            ("statsd_hashring", RingKind::StatsdHashring),
        ];
        assert_eq!(PEER_ALGOS.len(), kinds.len());
        for (algo, kind) in kinds {
            assert!(PEER_ALGOS.contains(&algo));
            let c = load(&format!(
                "[default]\nhasher_algo='{algo}'\n[a]\nmsg_type='graphite'\n[[a.servers]]\nservers=['tcp://h:1']\n"
            ));
            assert!(c.warnings.is_empty(), "{algo}: {:?}", c.warnings);
            assert_eq!(c.sections[0].hasher_algo_name, algo);
            assert_eq!(c.sections[0].ring_spec.kind, kind);
            assert_eq!(c.sections[0].rings[0].hashkeys, ["h:1"]);
        }
        let c = load("[default]\nhasher_algo='md5'\n[a]\nmsg_type='graphite'\n[[a.servers]]\nservers=['tcp://h:1']\n");
        assert_eq!(c.sections[0].ring_spec.kind, RingKind::ConstHash);
    }

    #[test]
    fn config_main_diverse_replicas_in_carbon_kind() {
        let c = load(
            "[default]\ndiverse_replicas=false\n[a]\nmsg_type='graphite'\nhasher_algo='carbon_ch'\n\
             [[a.servers]]\nservers=['tcp://h:1','tcp://h:2']\nhashkeys=['h:1:a','h:2:b']\n",
        );
        assert_eq!(
            c.sections[0].ring_spec.kind,
            RingKind::CarbonCh {
                diverse_replicas: false
            }
        );
        assert!(!c.sections[0].diverse_replicas);
    }

    #[test]
    fn config_main_peer_hashkeys_validated() {
        let ring = |algo: &str, keys: &str| {
            format!(
                "[default]\n[graphite-relay]\nmsg_type='graphite'\nhasher_algo='{algo}'\n[[graphite-relay.servers]]\n\
                 servers=['tcp://10.0.0.1:2003','tcp://10.0.0.2:2003']\nhashkeys=[{keys}]\n"
            )
        };
        let cases = [
            (
                ring("carbon_ch", "'10.0.0.1:2003:a', \"10.0.0.2:2003:it's\""),
                "relay.toml: graphite-relay.servers[0].hashkeys[1]: invalid carbon_ch member \"10.0.0.2:2003:it's\" (expected host:port[:instance]): instance \"it's\" contains '\\''; quotes, backslashes, spaces, non-ASCII and non-printable characters are not allowed",
            ),
            (
                ring("carbon_ch", "'10.0.0.1:2003', 'nocolon'"),
                "relay.toml: graphite-relay.servers[0].hashkeys[1]: invalid carbon_ch member \"nocolon\" (expected host:port[:instance]): expected host:port[:instance]",
            ),
            (
                ring("carbon_ch", "'h:2003:a', 'h:2004:a'"),
                "relay.toml: graphite-relay.servers[0].hashkeys[1]: carbon_ch node (host \"h\", instance \"a\") already configured; give members on one host distinct instances",
            ),
            (
                ring("fnv1a_ch", "'10.0.0.1:2003=a', '10.0.0.2:x'"),
                "relay.toml: graphite-relay.servers[0].hashkeys[1]: invalid fnv1a_ch member \"10.0.0.2:x\" (expected host[:port][=instance]): invalid port \"x\"",
            ),
            (
                ring("statsd_hashring", "'10.0.0.1:8125', '10.0.0.2'"),
                "relay.toml: graphite-relay.servers[0].hashkeys[1]: invalid statsd_hashring member \"10.0.0.2\" (expected host:port): expected host:port",
            ),
        ];
        for (text, want) in cases {
            let errs = errors(&text);
            assert_eq!(errs, [want], "{text}");
        }
        // Forms that are valid per algorithm.
        load(&ring("carbon_ch", "'10.0.0.1:2003:a', '[2001:db8::1]:2003:b'"));
        load(&ring("carbon_ch_c_relay", "'10.0.0.1', '10.0.0.2:2004=b'"));
        load(&ring("jump_fnv1a_ch", "'10.0.0.1=1', '10.0.0.2=2'"));
        load(&ring("md5", "'any thing', \"('quoted')\""));
        // A unix destination has no host:port to derive a peer hashkey from.
        let errs = errors(
            "[default]\n[a]\nmsg_type='graphite'\nhasher_algo='carbon_ch'\n[[a.servers]]\nservers=['unix:///tmp/x.sock']\n",
        );
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].starts_with("relay.toml: a.servers[0].servers[0]: no valid default hashkey, set hashkeys: "),
            "{errs:?}"
        );
    }

    #[test]
    fn config_main_error_vectors() {
        let ok_ring = "[[a.servers]]\nservers=['tcp://h:1']\n";
        let cases: &[(&str, &str)] = &[
            ("[a]\nmsg_type='graphite'\n[[a.servers]]\nservers=['tcp://h:1']\n", "relay.toml: missing [default] section"),
            ("[default]\n", "relay.toml: no server section (only [default])"),
            ("[default]\n[a]\nlisten='backend_only'\nmsg_type='graphite'\n[[a.servers]]\nservers=['tcp://h:1']\n",
             "relay.toml: no section with a real listener (every section is backend_only)"),
            ("x = 1\n[default]\n[a]\nmsg_type='graphite'\n[[a.servers]]\nservers=['tcp://h:1']\n",
             "relay.toml: x: top-level keys must be section tables, found integer"),
            (&format!("[default]\n[a]\n{ok_ring}"), "relay.toml: a.msg_type: required key missing (graphite, statsd or regex)"),
            (&format!("[default]\n[a]\nmsg_type='carbon'\n{ok_ring}"), "relay.toml: a.msg_type: unknown msg_type \"carbon\", expected graphite, statsd or regex"),
            (&format!("[default]\n[a]\nmsg_type='regex'\n{ok_ring}"), "relay.toml: a.msg_regex: required for msg_type = \"regex\""),
            (&format!("[default]\n[a]\nmsg_type='regex'\nmsg_regex='^(?P<Name>.*)'\n{ok_ring}"),
             "relay.toml: a.msg_regex: must contain a group named Key, e.g. (?P<Key>\\S+)"),
            ("[default]\n[a]\nmsg_type='graphite'\n", "relay.toml: a.servers: required: at least one [[a.servers]] block"),
            ("[default]\n[a]\nmsg_type='graphite'\n[[a.servers]]\nservers=[' ', '']\n", "relay.toml: a.servers[0].servers: empty (no server after trimming)"),
            ("[default]\n[a]\nmsg_type='graphite'\n[[a.servers]]\nhashkeys=['x']\n", "relay.toml: a.servers[0].servers: required key missing"),
            ("[default]\n[a]\nmsg_type='graphite'\n[[a.servers]]\nservers=['tcp://h:1','tcp://h:1']\n", "relay.toml: a.servers[0].servers: duplicate server \"tcp://h:1\""),
            ("[default]\n[a]\nmsg_type='graphite'\n[[a.servers]]\nservers=['tcp://h:1','tcp://h:2']\nhashkeys=['k','k']\n", "relay.toml: a.servers[0].hashkeys: duplicate hashkey \"k\""),
            ("[default]\n[a]\nmsg_type='graphite'\n[[a.servers]]\nservers=['tcp://h:1','tcp://h:2']\ncheck_servers=['tcp://h:1']\n", "relay.toml: a.servers[0].check_servers: length 1 differs from servers length 2"),
            ("[default]\n[a]\nmsg_type='graphite'\n[[a.servers]]\nservers=['tcp://h:1','ftp://h:2']\n", "relay.toml: a.servers[0].servers[1]: unsupported scheme \"ftp\" in \"ftp://h:2\" (expected tcp, udp, unix, http or https)"),
            ("[default]\nheartbeat_time_delay=9\n[a]\nmsg_type='graphite'\nheartbeat_time_timeout='5s'\n[[a.servers]]\nservers=['tcp://h:1']\n",
             "relay.toml: a.heartbeat_time_delay: 9s is less than 2 × heartbeat_time_timeout (5s)"),
            ("[default]\n[a]\nmsg_type='graphite'\n[[a.servers]]\nservers=['tcp://h:1']\n[b]\nmsg_type='graphite'\n[[b.servers]]\nservers=['tcp://h:1']\n",
             "relay.toml: b.listen: address tcp://127.0.0.1:6000 is already used by section a"),
            ("[default]\n[a]\nlisten='tcp://0.0.0.0:80'\nmsg_type='graphite'\n[[a.servers]]\nservers=['tcp://h:1']\n[b]\nlisten='http://0.0.0.0:80/x'\nmsg_type='graphite'\n[[b.servers]]\nservers=['tcp://h:1']\n",
             "relay.toml: b.listen: address http://0.0.0.0:80/x is already used by section a"),
            (&format!("[default]\nsending_method='fast'\n[a]\nmsg_type='graphite'\n{ok_ring}"), "relay.toml: default.sending_method: unknown sending_method \"fast\", expected bufferedpool, pool or single"),
            (&format!("[default]\ninternal_health_server_admin_allow=['10.0.0.0/99']\n[a]\nmsg_type='graphite'\n{ok_ring}"), "relay.toml: default.internal_health_server_admin_allow[0]: invalid CIDR \"10.0.0.0/99\": invalid prefix length"),
            (&format!("[default]\nstatsd_sample_rate=2\n[a]\nmsg_type='graphite'\n{ok_ring}"), "relay.toml: default.statsd_sample_rate: must be greater than 0 and at most 1, found 2"),
            (&format!("[default]\n[a]\nmsg_type='graphite'\nlisten='sctp://h:1'\n{ok_ring}"), "relay.toml: a.listen: unsupported listen scheme \"sctp\" in \"sctp://h:1\" (expected tcp, udp, unix, http or backend_only)"),
        ];
        for (text, want) in cases {
            let errs = errors(text);
            assert!(errs.iter().any(|e| e == want), "want {want:?}\ngot {errs:#?}");
        }
    }

    #[test]
    fn config_main_invalid_section_gives_no_spurious_listener_error() {
        let errs = errors("[default]\n[a]\nmsg_type='nope'\n[[a.servers]]\nservers=['tcp://h:1']\n");
        assert_eq!(
            errs,
            ["relay.toml: a.msg_type: unknown msg_type \"nope\", expected graphite, statsd or regex"]
        );
    }

    #[test]
    fn config_main_shipped_examples_load() {
        let main = load(include_str!("../../configs/example.toml"));
        assert_eq!(main.sections.len(), 3);
        let pre = super::super::load_prereg(
            include_str!("../../configs/example-prereg.toml"),
            "example-prereg.toml",
            &main,
        );
        match pre {
            Ok(p) => assert_eq!(p.groups.len(), 1),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn config_main_every_error_at_once_with_paths() {
        let errs = errors(
            r#"top = "x"
[default]
num_procs = "four"
hasher_vnodes = -1
statsd_interval = "2x"
[graphite-proxy]
msg_type = "graphite"
sevrers = 1
workers = 1.5
  [[graphite-proxy.servers]]
  servers = ["tcp://a:1"]
  [[graphite-proxy.servers]]
  servers = ["tcp://a:1", "tcp://b:1", "tcp://c:1"]
  hashkeys = ["x", "y"]
  moo = 1
[other]
msg_type = "nope"
[[other.servers]]
servers = "tcp://a:1"
"#,
        );
        let want = [
            "relay.toml: default.num_procs: expected an integer, found a string",
            "relay.toml: default.statsd_interval: invalid duration \"2x\": unknown unit \"x\"",
            "relay.toml: default.hasher_vnodes: expected a non-negative integer, found -1",
            "relay.toml: graphite-proxy.sevrers: unknown key",
            "relay.toml: graphite-proxy.workers: expected an integer, found a float",
            "relay.toml: graphite-proxy.servers[1].moo: unknown key",
            "relay.toml: graphite-proxy.servers[1].hashkeys: length 2 differs from servers length 3",
            "relay.toml: other.msg_type: unknown msg_type \"nope\", expected graphite, statsd or regex",
            "relay.toml: other.servers[0].servers: expected an array of strings, found a string",
            "relay.toml: top: top-level keys must be section tables, found string",
        ];
        for w in want {
            assert!(errs.iter().any(|e| e == w), "missing {w:?} in {errs:#?}");
        }
        assert_eq!(errs.len(), want.len(), "{errs:#?}");
    }
}
