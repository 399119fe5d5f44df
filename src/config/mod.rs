//! Configuration: the main config (`--config`, spec §3) and the PreReg config (`--prereg`, spec §4).
//!
//! The main config is a TOML file of sections: `[default]` holds process-wide settings and values the other sections
//! inherit; every other table is a server section with a listener, a message type and one or more rings of
//! destinations. The PreReg config holds one group of routing rules (and optionally an accumulator with writers and a
//! reader API) per listening section.
//!
//! Loading is validating: [`load_main`] and [`load_prereg`] walk the TOML tables by hand, so that every problem in a
//! file (unknown keys, wrong types, bad values, failed cross-checks) is collected and returned together in
//! [`ConfigErrors`], each naming the file and the full key path. Non-fatal findings (legacy keys, fallbacks) are
//! returned as `warnings` in the same format.

mod duration;
mod main_config;
mod prereg;
mod statsd_options;
mod url;
mod value;

use std::fmt;

pub use duration::parse_duration;
pub use main_config::{
    load_main, Config, DownPolicy, Globals, HashingConfig, HealthConfig, InputConfig, MsgType, OutgoingConfig,
    RingConfig, SectionConfig, SendingMethod, MAX_UDP_RECEIVERS, PEER_ALGOS,
};
pub use prereg::{
    load_prereg, AccTarget, AccumulatorConfig, ApiConfig, Bin, Driver, DriverConfig, Format, Group, Matcher,
    PreRegConfig, Rule, WriterConfig, MAX_SHARDS,
};
pub use statsd_options::{StatsdOptions, STATSD_OPTIONS};
pub(crate) use url::split_host_port;
pub use url::{parse_url_list, DestUrl, IpCidr, Listen, Target};

/// Every error found in a config file, each `<file>: <key path>: <message>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<String>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            f.write_str(e)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

#[cfg(test)]
mod tests {
    use super::*;

    /// The keys spec §3.1 documents for `[default]`, with a valid value other than the default.
    const DEFAULT_KEYS: &[(&str, &str)] = &[
        ("pid_file", "'/tmp/consthash-keys.pid'"),
        ("num_procs", "2"),
        ("cpu_profile", "true"),
        ("stats_tick", "true"),
        ("statsd_server", "'127.0.0.1:8125'"),
        ("statsd_prefix", "'relay'"),
        ("statsd_interval", "5"),
        ("statsd_sample_rate", "0.5"),
        ("statsd_timer_sample_rate", "0.5"),
        ("internal_health_server_listen", "'127.0.0.1:6061'"),
        ("internal_health_server_path", "'/tmp'"),
        ("internal_health_server_points", "7"),
        ("internal_health_server_admin_allow", "['10.0.0.0/8']"),
        ("shutdown_timeout", "3"),
    ];

    /// The per-section keys of spec §3.2 (the `servers` blocks aside), with valid non-default values.
    const SECTION_KEYS: &[(&str, &str)] = &[
        ("listen", "'tcp://127.0.0.1:7001'"),
        ("msg_type", "'regex'"),
        ("msg_regex", r"'^(?P<Key>\S+)'"),
        ("hasher_algo", "'md5'"),
        ("hasher_elter", "'statsd'"),
        ("hasher_vnodes", "40"),
        ("num_dupe_replicas", "2"),
        ("diverse_replicas", "false"),
        ("cache_items", "5"),
        ("heartbeat_time_delay", "20"),
        ("heartbeat_time_timeout", "2"),
        ("failed_heartbeat_count", "4"),
        ("server_down_policy", "'remove_node'"),
        ("sending_method", "'pool'"),
        ("max_pool_connections", "3"),
        ("pool_buffersize", "1400"),
        ("write_timeout", "200"),
        ("runner_timeout", "100"),
        ("workers", "2"),
        ("out_workers", "4"),
        ("read_buffer_size", "4096"),
        ("max_read_buffer_size", "8192"),
        ("max_line_length", "1000"),
        ("out_queue_lines", "10"),
        ("out_block_timeout", "100"),
        ("out_queue_bytes", "1000"),
        ("reconnect_backoff_max", "300"),
        ("internal_health_server_points", "9"),
    ];

    /// The ring keys of spec §3.4.
    const RING: &str = "[[s.servers]]\nservers = ['tcp://127.0.0.1:7002', 'tcp://127.0.0.1:7003']\n\
                        check_servers = ['tcp://127.0.0.1:7012', 'tcp://127.0.0.1:7013']\nhashkeys = ['a', 'b']\n";

    fn main_with_every_key() -> String {
        let mut text = String::from("[default]\n");
        for (k, v) in DEFAULT_KEYS {
            text.push_str(&format!("{k} = {v}\n"));
        }
        text.push_str("[s]\n");
        for (k, v) in SECTION_KEYS {
            text.push_str(&format!("{k} = {v}\n"));
        }
        text + RING + "[b]\nlisten = 'backend_only'\nmsg_type = 'regex'\nmsg_regex = '(?P<Key>.)'\n[[b.servers]]\nservers = ['tcp://127.0.0.1:7004']\n"
    }

    #[test]
    fn every_documented_main_key_is_read() {
        let text = main_with_every_key();
        let c = load_main(&text, "keys.toml").unwrap_or_else(|e| panic!("{e}\n---\n{text}"));
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        // A key set in [default] that a section may inherit is read there too.
        for (k, v) in SECTION_KEYS
            .iter()
            .filter(|(k, _)| !["listen", "msg_type", "msg_regex"].contains(k))
        {
            let text = format!("[default]\n{k} = {v}\n[s]\nmsg_type = 'graphite'\n{RING}");
            let c = load_main(&text, "keys.toml").unwrap_or_else(|e| panic!("{k}: {e}"));
            assert!(c.warnings.is_empty(), "{k}: {:?}", c.warnings);
        }
        // The values arrived where they belong (a sample per group).
        let s = &c.sections[0];
        assert_eq!(c.globals.statsd_prefix, "relay");
        assert_eq!(s.hashing.ring_spec.vnodes, 40);
        assert_eq!(s.health.failed_heartbeat_count, 4);
        assert_eq!(s.outgoing.out_queue_bytes, 1000);
        assert_eq!(s.input.max_line_length, 1000);
        assert_eq!(s.internal_health_server_points, 9);
    }

    /// Every key of spec §4.1–§4.5 once.
    const PREREG_EVERY_KEY: &str = r#"
[g]
listen_server = "s"
default_backend = "s"
  [[g.map]]
  prefix = "a."
  reject = true
  [[g.map]]
  substring = ".b."
  backend = "b"
  [[g.map]]
  regex = "^c"
  [[g.map]]
  noop = "true"
  [g.accumulator]
  backend = "b"
  input_format = "statsd"
  output_format = "graphite"
  accumulate_flush = "5s"
  times = ["5s:1h", "1m"]
  keep_keys = true
  options = [["legacyNamespace", "false"]]
    [[g.accumulator.tags]]
    key = "dc"
    value = "ams"
    [g.accumulator.writer]
    metric_queue_length = 10
    indexer_queue_length = 20
      [g.accumulator.writer.metrics]
      driver = "file"
      dsn = "/tmp/consthash-keys"
        [g.accumulator.writer.metrics.options]
        max_file_size = 1000
      [g.accumulator.writer.indexer]
      driver = "noop"
    [g.accumulator.api]
    listen = "127.0.0.1:8083"
    base_path = "/graphite"
    log_file = "none"
    metrics = { driver = "cassandra", dsn = "127.0.0.1" }
    indexer = { driver = "cassandra", dsn = "127.0.0.1", options = { keyspace = "m" } }
"#;

    #[test]
    fn every_documented_prereg_key_is_read() {
        let main = load_main(&main_with_every_key(), "keys.toml").expect("main config");
        let p = load_prereg(PREREG_EVERY_KEY, "prereg.toml", &main).unwrap_or_else(|e| panic!("{e}"));
        // Only the warnings the spec asks for: tags have no effect.
        assert_eq!(p.warnings, ["prereg.toml: g.accumulator.tags: accepted; no effect"]);
        let acc = p.groups[0].accumulator.as_ref().expect("accumulator");
        assert!(acc.keep_keys);
        assert_eq!(acc.writer.as_ref().expect("writer").indexer_queue_length, 20);
        assert_eq!(acc.api.as_ref().expect("api").base_path, "/graphite/");
    }

    #[test]
    fn a_key_nobody_reads_is_unknown_wherever_it_is() {
        let main = format!(
            "{}[s.nested]\nx = 1\n",
            main_with_every_key().replace("[b]\n", "[b]\nbogus = 1\n")
        );
        let errs = load_main(&main, "keys.toml").expect_err("unknown keys").0;
        assert_eq!(
            errs,
            ["keys.toml: s.nested: unknown key", "keys.toml: b.bogus: unknown key"]
        );
        let main = load_main(&main_with_every_key(), "keys.toml").expect("main config");
        let text = PREREG_EVERY_KEY.replace("driver = \"noop\"", "driver = \"noop\"\n      dns = \"x\"");
        let errs = load_prereg(&text, "prereg.toml", &main).expect_err("unknown key").0;
        assert_eq!(errs, ["prereg.toml: g.accumulator.writer.indexer.dns: unknown key"]);
    }
}
