//! The main config (`--config`, spec §3): `[default]`, the sections and their rings.
//!
//! Every key is declared once: a field of the struct it configures, and one read in that struct's `read`. Keys a
//! section may inherit are read through a section view that falls back to `[default]` ([`Tbl::inheriting`]); the
//! same readers validate `[default]`'s own values once. A key nobody reads is an unknown key (see
//! [`super::value`]).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use toml::{Table, Value};

use super::duration::fmt_duration;
use super::url::{trim_url, DestUrl, IpCidr, Listen};
use super::value::{parse_toml, top_level_order, type_error, Diag, IntUnit, Tbl};
use super::ConfigErrors;
use crate::ring::{default_hashkey, validate_hashkey, Elter, HasherAlgo, RingKind, RingSpec};
use crate::splitter::GraphiteNames;

/// The validated main config.
#[derive(Clone, Debug)]
pub struct Config {
    pub globals: Globals,
    /// Sections in file order; `[default]` is not one of them.
    pub sections: Vec<SectionConfig>,
    /// Warnings found while loading, each `<file>: <key path>: <message>`.
    pub warnings: Vec<String>,
}

impl Config {
    /// The section named `name`.
    pub fn section(&self, name: &str) -> Option<&SectionConfig> {
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
    /// `Host` names the admin server answers to besides IP literals, localhost and this machine's name (`"*"`: any).
    pub internal_health_server_hosts: Vec<String>,
    pub shutdown_timeout: Duration,
}

/// One server section (spec §3.2): the keys of the section itself, and its inheritable settings by concern.
#[derive(Clone, Debug)]
pub struct SectionConfig {
    pub name: String,
    pub listen: Listen,
    pub msg_type: MsgType,
    /// Set for `msg_type = "regex"`; has a group named `Key`.
    pub msg_regex: Option<regex::bytes::Regex>,
    /// How a graphite section's names are rewritten and hashed (§7.8); the ring kind's default when not written.
    pub graphite_names: GraphiteNames,
    /// One per `[[<name>.servers]]` block, in file order; never empty.
    pub rings: Vec<RingConfig>,
    pub hashing: HashingConfig,
    /// Already capped at the smallest ring size (with a warning).
    pub num_dupe_replicas: usize,
    pub health: HealthConfig,
    pub outgoing: OutgoingConfig,
    pub input: InputConfig,
    pub internal_health_server_points: usize,
}

/// How keys are placed (spec §7): `hasher_algo`, `hasher_elter`, `hasher_vnodes`, `diverse_replicas`,
/// `cache_items`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HashingConfig {
    /// `kind` selects the ring (spec §7.4); `algo`/`elter`/`vnodes` are for the consthash family only (for a peer
    /// ring `algo` is `Crc32` and unused). carbon_ch's `diverse_replicas` is in `kind`.
    pub ring_spec: RingSpec,
    /// `hasher_algo` as written (inherited or `crc32`).
    pub hasher_algo: String,
    /// carbon_ch's DIVERSE_REPLICAS.
    pub diverse_replicas: bool,
    /// Capacity of the key → destinations cache (performance only; not built).
    pub cache_items: usize,
}

/// Health checks of the ring members (spec §8.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HealthConfig {
    pub heartbeat_time_delay: Duration,
    pub heartbeat_time_timeout: Duration,
    /// Consecutive failures before a member is down; at least 1.
    pub failed_heartbeat_count: u32,
    pub server_down_policy: DownPolicy,
}

/// The outgoing side of each destination (spec §8.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutgoingConfig {
    pub sending_method: SendingMethod,
    /// Connections (sender tasks) per destination.
    pub max_pool_connections: usize,
    /// Largest UDP datagram payload or HTTP POST body.
    pub pool_buffersize: usize,
    pub write_timeout: Duration,
    /// How long stream listeners wait for room in the full queue of an unreachable destination.
    pub out_block_timeout: Duration,
    pub reconnect_backoff_max: Duration,
    pub out_queue_lines: usize,
    /// 0 = no byte bound.
    pub out_queue_bytes: usize,
}

/// The listener side of a section (spec §5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InputConfig {
    pub workers: usize,
    /// SO_RCVBUF of a UDP listener.
    pub read_buffer_size: usize,
    /// Input back-pressure threshold (spec §5.3).
    pub max_read_buffer_size: usize,
    pub max_line_length: usize,
    /// UDP listeners: receive sockets on the port (`SO_REUSEPORT`); 0 = one per runtime worker thread.
    pub udp_receivers: usize,
    /// Largest HTTP body accepted (`413` beyond it, after routing what came before); 0 = no limit.
    pub max_body_size: usize,
    /// Most connections a tcp, unix or http listener serves at once; further clients wait in the backlog.
    pub max_connections: usize,
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

/// Keys the Go relay ignored, accepted with a warning in `[default]` and in sections.
const LEGACY_KEYS: &[&str] = &["max_buffer_size", "hasher_replicas"];

/// Loads and validates the main config. All errors are reported together.
pub fn load_main(text: &str, file: &str) -> Result<Config, ConfigErrors> {
    let root = parse_toml(text, file)?;
    let mut d = Diag::new(file);
    let empty = Table::new();
    let def = match root.get("default") {
        Some(v @ Value::Table(t)) => {
            d.mark(v);
            t
        }
        Some(v) => {
            d.mark(v);
            type_error(&mut d, "default", "a table", v);
            &empty
        }
        None => {
            d.file_error("missing [default] section");
            &empty
        }
    };
    let def = Tbl::new(def, "default");
    let globals = read_default(&mut d, def);
    let mut sections = Vec::new();
    for name in top_level_order(text, &root).iter().filter(|n| *n != "default") {
        let Some(v) = root.get(name) else { continue };
        d.mark(v);
        match v {
            Value::Table(t) => sections.extend(SectionConfig::read(&mut d, Tbl::new(t, name), def)),
            v => d.error(
                name,
                format!("top-level keys must be section tables, found {}", v.type_str()),
            ),
        }
    }
    check_listeners(&mut d, &root, &sections);
    let warnings = d.finish(&root)?;
    Ok(Config {
        globals,
        sections,
        warnings,
    })
}

/// `[default]`: the globals, and its inheritable values validated once even when no section uses them. Section
/// keys there have no effect (a warning).
fn read_default(d: &mut Diag, def: Tbl) -> Globals {
    d.enter(def, LEGACY_KEYS);
    let mut section = Diag::new("");
    let _ = SectionConfig::read_keys(&mut section, def, def);
    let mut default = Diag::new("");
    let _ = (Globals::read(&mut default, def), Inherited::read(&mut default, def));
    warn_misplaced(d, def, &section, &default, "no effect in [default]");
    let globals = Globals::read(d, def);
    let _ = Inherited::read(d, def);
    globals
}

/// Warns about every key of `t` that a reader for another table (`elsewhere`) reads and the reader of `t`
/// (`here`) does not, and marks it known: a key in the wrong table.
fn warn_misplaced(d: &mut Diag, t: Tbl, elsewhere: &Diag, here: &Diag, msg: &str) {
    for (k, v) in t.t {
        if elsewhere.was_read(v) && !here.was_read(v) {
            d.warn(&t.path_of(k), msg);
            d.mark_whole(v);
        }
    }
}

/// Two sections listening on one address, or no real listener at all.
fn check_listeners(d: &mut Diag, root: &Table, sections: &[SectionConfig]) {
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
    // Sections by the socket they bind (transport and port, or path); only those can collide.
    let mut bound: HashMap<String, Vec<&SectionConfig>> = HashMap::new();
    for s in sections {
        if let Some(k) = s.listen.bind_key() {
            let same_socket = bound.entry(k).or_default();
            if let Some(other) = same_socket.iter().find(|o| o.listen.collides(&s.listen)) {
                d.error(
                    &format!("{}.listen", s.name),
                    format!("address {} is already used by section {}", s.listen.url(), other.name),
                );
            }
            same_socket.push(s);
        }
        for (r, ring) in s.rings.iter().enumerate() {
            for (i, server) in ring.servers.iter().enumerate() {
                if s.listen.receives(&server.target, None) {
                    d.error(
                        &format!("{}.servers[{r}].servers[{i}]", s.name),
                        format!(
                            "{} is this section's own listener: every line would loop (send it to another section)",
                            server.raw
                        ),
                    );
                }
            }
        }
    }
}

/// `max_connections` unless configured: well under the open-files limit the relay raises itself to.
pub const DEFAULT_MAX_CONNECTIONS: usize = 50_000;

/// Most receive sockets of one UDP listener (`udp_receivers`).
pub const MAX_UDP_RECEIVERS: usize = 64;

/// Most worker threads (`num_procs`): far more than cores only costs memory, and thousands abort the runtime.
pub const MAX_NUM_PROCS: usize = 1024;
/// Most points per member (`hasher_vnodes`): rings of millions of points take minutes to build.
pub const MAX_VNODES: usize = 10_000;

/// A `host:port` string key; empty means unset.
fn host_port_key(d: &mut Diag, t: Tbl, key: &str) -> Option<String> {
    let s = t.str(d, key).filter(|s| !s.is_empty())?;
    if let Err(e) = super::url::host_port(&s, &s) {
        d.error(&t.path_of(key), e);
    }
    Some(s)
}

/// A sample rate in (0, 1], default 1.
fn sample_rate(d: &mut Diag, t: Tbl, key: &str) -> f64 {
    match t.f64(d, key) {
        None => 1.0,
        Some(r) if r > 0.0 && r <= 1.0 => r,
        Some(r) => {
            d.error(
                &t.path_of(key),
                format!("must be greater than 0 and at most 1, found {r}"),
            );
            1.0
        }
    }
}

fn admin_allow(d: &mut Diag, t: Tbl) -> Vec<IpCidr> {
    let key = "internal_health_server_admin_allow";
    let Some(list) = t.str_array(d, key) else {
        return ["127.0.0.0/8", "::1/128"]
            .iter()
            .flat_map(|c| IpCidr::parse(c))
            .collect();
    };
    let mut out = Vec::new();
    for (i, s) in list.iter().enumerate() {
        match IpCidr::parse(s) {
            Ok(c) => out.push(c),
            Err(e) => d.error(&format!("{}[{i}]", t.path_of(key)), e),
        }
    }
    out
}

impl Globals {
    fn read(d: &mut Diag, t: Tbl) -> Globals {
        let non_empty = |s: Option<String>| s.filter(|s| !s.is_empty());
        Globals {
            pid_file: non_empty(t.str(d, "pid_file")).map(PathBuf::from),
            num_procs: t.usize_in(d, "num_procs", 0..=MAX_NUM_PROCS).unwrap_or(0),
            cpu_profile: t.bool(d, "cpu_profile").unwrap_or(false),
            stats_tick: t.bool(d, "stats_tick").unwrap_or(false),
            statsd_server: host_port_key(d, t, "statsd_server"),
            statsd_prefix: t.str(d, "statsd_prefix").unwrap_or_default(),
            statsd_interval: t
                .dur(d, "statsd_interval", IntUnit::Secs)
                .filter(|v| !v.is_zero())
                .unwrap_or(Duration::from_secs(2)),
            statsd_sample_rate: sample_rate(d, t, "statsd_sample_rate"),
            statsd_timer_sample_rate: sample_rate(d, t, "statsd_timer_sample_rate"),
            internal_health_server_listen: host_port_key(d, t, "internal_health_server_listen"),
            internal_health_server_path: non_empty(t.str(d, "internal_health_server_path")).map(PathBuf::from),
            internal_health_server_points: t.usize(d, "internal_health_server_points").unwrap_or(100),
            internal_health_server_admin_allow: admin_allow(d, t),
            internal_health_server_hosts: t.str_array(d, "internal_health_server_hosts").unwrap_or_default(),
            shutdown_timeout: t
                .dur(d, "shutdown_timeout", IntUnit::Secs)
                .unwrap_or(Duration::from_secs(10)),
        }
    }
}

/// The inheritable settings of a section, as read through a view that falls back to `[default]`.
struct Inherited {
    hashing: HashingConfig,
    num_dupe_replicas: usize,
    health: HealthConfig,
    outgoing: OutgoingConfig,
    input: InputConfig,
    internal_health_server_points: usize,
}

impl Inherited {
    fn read(d: &mut Diag, t: Tbl) -> Inherited {
        Inherited {
            hashing: HashingConfig::read(d, t),
            num_dupe_replicas: t.usize(d, "num_dupe_replicas").unwrap_or(1).max(1),
            health: HealthConfig::read(d, t),
            outgoing: OutgoingConfig::read(d, t),
            input: InputConfig::read(d, t),
            internal_health_server_points: t.usize(d, "internal_health_server_points").unwrap_or(100),
        }
    }
}

impl HashingConfig {
    fn read(d: &mut Diag, t: Tbl) -> HashingConfig {
        let hasher_algo = t.str(d, "hasher_algo").unwrap_or_else(|| "crc32".to_string());
        let diverse_replicas = t.bool(d, "diverse_replicas").unwrap_or(true);
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
                    &t.path_of("hasher_algo"),
                    format!("unknown hasher_algo \"{hasher_algo}\", using crc32"),
                );
                HasherAlgo::Crc32
            })
        };
        let elter = match t.str(d, "hasher_elter") {
            None => Elter::Graphite,
            Some(n) => Elter::parse(&n).unwrap_or_else(|| {
                if !peer {
                    let note = if n == "simple" {
                        " (later versions of consthash treat \"simple\" as goconsistent)"
                    } else {
                        ""
                    };
                    d.warn(
                        &t.path_of("hasher_elter"),
                        format!("unknown hasher_elter \"{n}\", using graphite{note}"),
                    );
                }
                Elter::Graphite
            }),
        };
        let vnodes = match t.usize_in(d, "hasher_vnodes", 0..=MAX_VNODES).unwrap_or(4) {
            0 => 4,
            v => v,
        };
        if peer && t.inherits() {
            // Set on the section itself, these keys are a mistake worth a word; inherited, they are not.
            let own = t.own();
            for k in ["hasher_elter", "hasher_vnodes"] {
                if own.has(k) {
                    d.warn(&own.path_of(k), format!("ignored by hasher_algo \"{hasher_algo}\""));
                }
            }
        }
        HashingConfig {
            ring_spec: RingSpec {
                algo,
                elter,
                vnodes,
                kind,
            },
            hasher_algo,
            diverse_replicas,
            cache_items: t.usize(d, "cache_items").unwrap_or(10_000),
        }
    }
}

impl HealthConfig {
    fn read(d: &mut Diag, t: Tbl) -> HealthConfig {
        let secs = |d: &mut Diag, key: &str, default: u64| {
            t.dur(d, key, IntUnit::Secs).unwrap_or(Duration::from_secs(default))
        };
        HealthConfig {
            heartbeat_time_delay: secs(d, "heartbeat_time_delay", 30),
            heartbeat_time_timeout: secs(d, "heartbeat_time_timeout", 5),
            failed_heartbeat_count: t.u32(d, "failed_heartbeat_count").unwrap_or(3).max(1),
            server_down_policy: match t.str(d, "server_down_policy").as_deref() {
                Some("remove_node") => DownPolicy::RemoveNode,
                _ => DownPolicy::Keep,
            },
        }
    }
}

impl OutgoingConfig {
    fn read(d: &mut Diag, t: Tbl) -> OutgoingConfig {
        let millis = |d: &mut Diag, key: &str, default: u64| {
            t.dur(d, key, IntUnit::Millis).unwrap_or(Duration::from_millis(default))
        };
        let sending_method = match t.str(d, "sending_method").as_deref() {
            None | Some("bufferedpool") => SendingMethod::BufferedPool,
            Some("pool") => SendingMethod::Pool,
            Some("single") => SendingMethod::Single,
            Some(other) => {
                d.error(
                    &t.path_of("sending_method"),
                    format!("unknown sending_method \"{other}\", expected bufferedpool, pool or single"),
                );
                SendingMethod::BufferedPool
            }
        };
        // Accepted for compatibility with the Go relay; no effect.
        let _ = t.dur(d, "runner_timeout", IntUnit::Millis);
        let _ = t.usize(d, "out_workers");
        OutgoingConfig {
            sending_method,
            max_pool_connections: t.usize(d, "max_pool_connections").unwrap_or(10),
            pool_buffersize: t.usize(d, "pool_buffersize").unwrap_or(512),
            write_timeout: millis(d, "write_timeout", 1000),
            out_block_timeout: millis(d, "out_block_timeout", 1000),
            reconnect_backoff_max: millis(d, "reconnect_backoff_max", 5000),
            out_queue_lines: t.usize(d, "out_queue_lines").unwrap_or(100_000),
            out_queue_bytes: t.usize(d, "out_queue_bytes").unwrap_or(0),
        }
    }
}

impl InputConfig {
    fn read(d: &mut Diag, t: Tbl) -> InputConfig {
        let read_buffer_size = t.usize(d, "read_buffer_size").unwrap_or(1_048_576);
        InputConfig {
            workers: t.usize(d, "workers").unwrap_or(8),
            read_buffer_size,
            max_read_buffer_size: t
                .usize(d, "max_read_buffer_size")
                .unwrap_or_else(|| read_buffer_size.saturating_mul(1000)),
            max_line_length: t.usize(d, "max_line_length").unwrap_or(65_536),
            udp_receivers: t.usize_in(d, "udp_receivers", 0..=MAX_UDP_RECEIVERS).unwrap_or(0),
            max_body_size: t.usize(d, "max_body_size").unwrap_or(0),
            max_connections: t
                .usize_in(d, "max_connections", 1..=usize::MAX)
                .unwrap_or(DEFAULT_MAX_CONNECTIONS),
        }
    }
}

impl SectionConfig {
    /// Reads section `sec`, inheriting from `def`. `None` when a required key is missing or invalid (reported).
    fn read(d: &mut Diag, sec: Tbl, def: Tbl) -> Option<SectionConfig> {
        let mut globals = Diag::new("");
        let _ = Globals::read(&mut globals, sec);
        let mut section = Diag::new("");
        let _ = SectionConfig::read_keys(&mut section, sec, def);
        warn_misplaced(d, sec, &globals, &section, "only read from [default]; no effect here");
        d.enter(sec, LEGACY_KEYS);
        SectionConfig::read_keys(d, sec, def)
    }

    fn read_keys(d: &mut Diag, sec: Tbl, def: Tbl) -> Option<SectionConfig> {
        let listen = read_listen(d, sec);
        let msg_type = read_msg_type(d, sec);
        let msg_regex = read_msg_regex(d, sec, msg_type);
        let inh = Inherited::read(d, sec.inheriting(def));
        let rings = read_rings(d, sec, &inh.hashing.ring_spec.kind);
        let graphite_names = read_graphite_names(d, sec, msg_type, &inh.hashing.ring_spec.kind);
        let health = inh.health;
        if health.heartbeat_time_delay < 2 * health.heartbeat_time_timeout {
            d.error(
                &sec.path_of("heartbeat_time_delay"),
                format!(
                    "{} is less than 2 × heartbeat_time_timeout ({})",
                    fmt_duration(health.heartbeat_time_delay),
                    fmt_duration(health.heartbeat_time_timeout)
                ),
            );
        }
        let mut num_dupe_replicas = inh.num_dupe_replicas;
        if let Some(smallest) = rings.iter().map(|r| r.servers.len()).min() {
            if smallest > 0 && num_dupe_replicas > smallest {
                d.warn(
                    &sec.path_of("num_dupe_replicas"),
                    format!("{num_dupe_replicas} exceeds the smallest ring ({smallest} servers); using {smallest}"),
                );
                num_dupe_replicas = smallest;
            }
        }
        Some(SectionConfig {
            name: sec.path.to_string(),
            listen: listen?,
            msg_type: msg_type?,
            msg_regex,
            graphite_names,
            rings,
            hashing: inh.hashing,
            num_dupe_replicas,
            health,
            outgoing: inh.outgoing,
            input: inh.input,
            internal_health_server_points: inh.internal_health_server_points,
        })
    }

    /// The listen URL as shown in stats, or `BACKEND-ONLY`.
    pub fn listening(&self) -> String {
        match self.listen {
            Listen::BackendOnly => "BACKEND-ONLY".to_string(),
            _ => self.listen.url(),
        }
    }
}

fn read_listen(d: &mut Diag, sec: Tbl) -> Option<Listen> {
    let written = sec.str(d, "listen");
    match Listen::parse(written.as_deref().unwrap_or(Listen::DEFAULT)) {
        Ok(l) => Some(l),
        Err(e) => {
            d.error(&sec.path_of("listen"), e);
            None
        }
    }
}

fn read_msg_type(d: &mut Diag, sec: Tbl) -> Option<MsgType> {
    match sec.str(d, "msg_type").as_deref() {
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
            if !sec.has("msg_type") {
                d.error(
                    &sec.path_of("msg_type"),
                    "required key missing (graphite, statsd or regex)",
                );
            }
            None
        }
    }
}

fn read_graphite_names(d: &mut Diag, sec: Tbl, msg_type: Option<MsgType>, kind: &RingKind) -> GraphiteNames {
    let default = GraphiteNames::default_for(kind);
    let Some(s) = sec.str(d, "graphite_names") else {
        return default;
    };
    if msg_type.is_some() && msg_type != Some(MsgType::Graphite) {
        d.warn(&sec.path_of("graphite_names"), "ignored unless msg_type = \"graphite\"");
    }
    GraphiteNames::parse(&s).unwrap_or_else(|| {
        d.error(
            &sec.path_of("graphite_names"),
            format!("unknown graphite_names \"{s}\", expected consthash, carbon or c-relay"),
        );
        default
    })
}

fn read_msg_regex(d: &mut Diag, sec: Tbl, msg_type: Option<MsgType>) -> Option<regex::bytes::Regex> {
    let Some(s) = sec.str(d, "msg_regex") else {
        if msg_type == Some(MsgType::Regex) && !sec.has("msg_regex") {
            d.error(&sec.path_of("msg_regex"), "required for msg_type = \"regex\"");
        }
        return None;
    };
    if msg_type.is_some() && msg_type != Some(MsgType::Regex) {
        d.warn(&sec.path_of("msg_regex"), "ignored unless msg_type = \"regex\"");
    }
    match regex::bytes::Regex::new(&s) {
        Ok(re) if re.capture_names().any(|n| n == Some("Key")) => Some(re),
        Ok(_) => {
            d.error(
                &sec.path_of("msg_regex"),
                "must contain a group named Key, e.g. (?P<Key>\\S+)",
            );
            None
        }
        Err(e) => {
            d.error(
                &sec.path_of("msg_regex"),
                format!("invalid regex: {}", e.to_string().replace('\n', " ")),
            );
            None
        }
    }
}

/// Trimmed, non-blank URLs of `key` in a ring table, parsed; errors name the original index.
fn read_urls(d: &mut Diag, ring: Tbl, key: &str) -> Option<Vec<DestUrl>> {
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

/// The `[[<name>.servers]]` blocks: one ring each, at least one.
fn read_rings(d: &mut Diag, sec: Tbl, kind: &RingKind) -> Vec<RingConfig> {
    let servers_path = sec.path_of("servers");
    let blocks = sec.table_array(d, "servers");
    if blocks.as_ref().is_some_and(Vec::is_empty) || (blocks.is_none() && !sec.has("servers")) {
        d.error(
            &servers_path,
            format!("required: at least one [[{servers_path}]] block"),
        );
    }
    let mut rings = Vec::new();
    for (i, t) in blocks.unwrap_or_default() {
        let path = format!("{servers_path}[{i}]");
        let ring = Tbl::new(t, &path);
        d.enter(ring, &[]);
        if let Some(r) = read_ring(d, ring, kind) {
            rings.push(r);
        }
    }
    rings
}

fn read_ring(d: &mut Diag, ring: Tbl, kind: &RingKind) -> Option<RingConfig> {
    let Some(servers) = read_urls(d, ring, "servers") else {
        if !ring.has("servers") {
            d.error(&ring.path_of("servers"), "required key missing");
        }
        return None;
    };
    if servers.is_empty() && ring.has("servers") {
        d.error(&ring.path_of("servers"), "empty (no server after trimming)");
    }
    for (j, s) in servers.iter().enumerate() {
        if servers[..j].iter().any(|o| o.raw == s.raw) {
            d.error(&ring.path_of("servers"), format!("duplicate server \"{}\"", s.raw));
        }
    }
    let check_servers = match read_urls(d, ring, "check_servers") {
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
        None => default_hashkeys(d, ring, kind, &servers),
        Some(h) => {
            check_hashkeys(d, ring, kind, &h, servers.len());
            h
        }
    };
    if let RingKind::CarbonCh { .. } = kind {
        check_carbon_nodes(d, ring, &hashkeys);
    }
    Some(RingConfig {
        servers,
        check_servers,
        hashkeys,
    })
}

/// The hashkeys of §7.5 derived from the server URLs; each must be valid for the ring.
fn default_hashkeys(d: &mut Diag, ring: Tbl, kind: &RingKind, servers: &[DestUrl]) -> Vec<String> {
    let keys: Vec<String> = servers
        .iter()
        .map(|s| match (kind.is_peer(), s.host_port()) {
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

/// Written hashkeys: valid for the ring, one per server, distinct.
fn check_hashkeys(d: &mut Diag, ring: Tbl, kind: &RingKind, keys: &[String], servers: usize) {
    let path = ring.path_of("hashkeys");
    for (j, k) in keys.iter().enumerate() {
        if let Err(e) = validate_hashkey(kind, k) {
            d.error(&format!("{path}[{j}]"), e);
        }
    }
    if keys.len() != servers {
        d.error(
            &path,
            format!("length {} differs from servers length {servers}", keys.len()),
        );
    }
    for (j, k) in keys.iter().enumerate() {
        if keys[..j].contains(k) {
            d.error(&path, format!("duplicate hashkey \"{k}\""));
        }
    }
}

/// carbon keys its ring by (host, instance) only: two members there would be one node.
fn check_carbon_nodes(d: &mut Diag, ring: Tbl, hashkeys: &[String]) {
    let nodes: Vec<_> = hashkeys
        .iter()
        .map(|k| crate::ring::member::parse_carbon(k).ok().map(|m| (m.host, m.instance)))
        .collect();
    for (j, n) in nodes.iter().enumerate() {
        let Some((host, inst)) = n else { continue };
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
        assert_eq!(
            g.hashing.ring_spec,
            RingSpec::consthash(HasherAlgo::Md5, Elter::Graphite, 100)
        );
        assert_eq!(g.health.heartbeat_time_delay, Duration::from_secs(60));
        assert_eq!(g.health.heartbeat_time_timeout, Duration::from_secs(2));
        assert_eq!(g.health.server_down_policy, DownPolicy::RemoveNode);
        let s = &c.sections[1];
        assert_eq!(s.hashing.hasher_algo, "statsd_hashring");
        assert_eq!(s.hashing.ring_spec.algo, HasherAlgo::Crc32);
        assert_eq!(s.hashing.ring_spec.kind, RingKind::StatsdHashring);
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
        assert_eq!(s.hashing.hasher_algo, "crc32");
        assert_eq!(
            s.hashing.ring_spec,
            RingSpec::consthash(HasherAlgo::Crc32, Elter::Graphite, 4)
        );
        assert_eq!(s.num_dupe_replicas, 1);
        assert!(s.hashing.diverse_replicas);
        assert_eq!(s.hashing.cache_items, 10_000);
        assert_eq!(s.health.heartbeat_time_delay, Duration::from_secs(30));
        assert_eq!(s.health.heartbeat_time_timeout, Duration::from_secs(5));
        assert_eq!(s.health.failed_heartbeat_count, 3);
        assert_eq!(s.health.server_down_policy, DownPolicy::Keep);
        assert_eq!(s.outgoing.sending_method, SendingMethod::BufferedPool);
        assert_eq!(s.outgoing.max_pool_connections, 10);
        assert_eq!(s.outgoing.pool_buffersize, 512);
        assert_eq!(s.outgoing.write_timeout, Duration::from_millis(1000));
        assert_eq!(s.input.workers, 8);
        assert_eq!(s.input.read_buffer_size, 1_048_576);
        assert_eq!(s.input.max_read_buffer_size, 1_048_576_000);
        assert_eq!(s.input.max_line_length, 65_536);
        assert_eq!(s.outgoing.out_queue_lines, 100_000);
        assert_eq!(s.outgoing.out_block_timeout, Duration::from_millis(1000));
        assert_eq!(s.outgoing.out_queue_bytes, 0);
        assert_eq!(s.outgoing.reconnect_backoff_max, Duration::from_millis(5000));
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
        assert_eq!(one.outgoing.sending_method, SendingMethod::Pool);
        assert_eq!(one.hashing.ring_spec.algo, HasherAlgo::Md5);
        assert_eq!(one.hashing.ring_spec.vnodes, 10);
        assert_eq!(one.input.max_read_buffer_size, 100_000);
        assert_eq!(one.internal_health_server_points, 7);
        // own nodejs-hashring/statsd/40 kept
        let two = &c.sections[1];
        assert_eq!(two.hashing.hasher_algo, "nodejs-hashring");
        assert_eq!(
            two.hashing.ring_spec,
            RingSpec::consthash(HasherAlgo::NodejsHashring, Elter::Statsd, 40)
        );
        assert_eq!(two.outgoing.sending_method, SendingMethod::Single);
        assert_eq!(two.input.max_read_buffer_size, 10_000);
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
        assert_eq!(s.health.heartbeat_time_delay, Duration::from_secs(20));
        assert_eq!(s.health.heartbeat_time_timeout, Duration::from_secs(3));
        assert_eq!(s.outgoing.write_timeout, Duration::from_secs(2));
        assert_eq!(s.outgoing.out_block_timeout, Duration::from_millis(20));
        assert_eq!(s.outgoing.reconnect_backoff_max, Duration::from_secs(60));
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
        assert_eq!(s.hashing.ring_spec.vnodes, 4);
        assert_eq!(s.health.failed_heartbeat_count, 1);
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
        assert_eq!(c.sections[0].hashing.ring_spec.algo, HasherAlgo::Crc32);
        assert_eq!(c.sections[1].hashing.hasher_algo, "carbon_ch");
        assert_eq!(c.sections[1].rings[0].hashkeys, ["h:1"]);
        assert_eq!(
            c.sections[1].hashing.ring_spec.kind,
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
            assert_eq!(c.sections[0].hashing.hasher_algo, algo);
            assert_eq!(c.sections[0].hashing.ring_spec.kind, kind);
            assert_eq!(c.sections[0].rings[0].hashkeys, ["h:1"]);
        }
        let c = load("[default]\nhasher_algo='md5'\n[a]\nmsg_type='graphite'\n[[a.servers]]\nservers=['tcp://h:1']\n");
        assert_eq!(c.sections[0].hashing.ring_spec.kind, RingKind::ConstHash);
    }

    #[test]
    fn config_main_diverse_replicas_in_carbon_kind() {
        let c = load(
            "[default]\ndiverse_replicas=false\n[a]\nmsg_type='graphite'\nhasher_algo='carbon_ch'\n\
             [[a.servers]]\nservers=['tcp://h:1','tcp://h:2']\nhashkeys=['h:1:a','h:2:b']\n",
        );
        assert_eq!(
            c.sections[0].hashing.ring_spec.kind,
            RingKind::CarbonCh {
                diverse_replicas: false
            }
        );
        assert!(!c.sections[0].hashing.diverse_replicas);
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
            ("[default]\n[a]\nlisten='tcp://0.0.0.0:2003'\nmsg_type='graphite'\n[[a.servers]]\nservers=['tcp://h:1']\n[b]\nlisten='tcp://127.0.0.1:2003'\nmsg_type='graphite'\n[[b.servers]]\nservers=['tcp://h:1']\n",
             "relay.toml: b.listen: address tcp://127.0.0.1:2003 is already used by section a"),
            ("[default]\n[a]\nlisten='udp://localhost:8125'\nmsg_type='statsd'\n[[a.servers]]\nservers=['tcp://h:1']\n[b]\nlisten='udp://127.0.0.1:8125'\nmsg_type='statsd'\n[[b.servers]]\nservers=['tcp://h:1']\n",
             "relay.toml: b.listen: address udp://127.0.0.1:8125 is already used by section a"),
            (&format!("[default]\nnum_procs=20000\n[a]\nmsg_type='graphite'\n{ok_ring}"), "relay.toml: default.num_procs: must be at most 1024, found 20000"),
            (&format!("[default]\n[a]\nmsg_type='graphite'\nhasher_vnodes=10000000\n{ok_ring}"), "relay.toml: a.hasher_vnodes: must be at most 10000, found 10000000"),
            ("[default]\n[a]\nlisten='tcp://0.0.0.0:2003'\nmsg_type='graphite'\n[[a.servers]]\nservers=['tcp://h:1', 'tcp://127.0.0.1:2003']\n",
             "relay.toml: a.servers[0].servers[1]: tcp://127.0.0.1:2003 is this section's own listener: every line would loop (send it to another section)"),
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
    fn config_main_a_loopback_to_another_section_is_no_loop() {
        let c = load(
            "[default]\n[hash]\nlisten='tcp://0.0.0.0:2003'\nmsg_type='graphite'\n[[hash.servers]]\n\
             servers=['tcp://127.0.0.1:2004']\n[acc]\nlisten='tcp://127.0.0.1:2004'\nmsg_type='graphite'\n\
             [[acc.servers]]\nservers=['tcp://h:1']\n",
        );
        assert_eq!(c.sections.len(), 2);
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
