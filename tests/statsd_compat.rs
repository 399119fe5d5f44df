//! Compatibility of the statsd accumulator with the real Etsy statsd 0.9.0 (spec §9.2: "must be checked against it").
//!
//! Each scenario starts `node stats.js config.js` with the graphite backend pointed at an in-test TCP sink, waits for
//! a flush, sends its lines over UDP right after it (so they all land in the next flush window), captures the next
//! flush(es) and compares name → value with what `StatsdState` renders for the same lines and options. Values
//! are compared as exact strings; timestamps and statsd's own metrics (`statsd.*`, `numStats`, `graphiteStats`,
//! `processing_time`, `timestamp_lag`: every name with a `statsd` component) are ignored.
//!
//! statsd is found in `$STATSD_DIR` (default `/work/.cache/statsd`); when missing, `tests/statsd_compat/install.sh`
//! installs it there (`npm install --prefix "$STATSD_DIR" statsd@0.9.0`). Needs `node` and `npm`.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use consthash::accumulator::jsnum::{js_number, js_parse_number};
use consthash::accumulator::statsd::StatsdState;
use consthash::config::{Format, StatsdOptions};
use consthash::line::Record;

type Metrics = BTreeMap<String, String>;

/// The installed statsd package directory (installing it once if needed).
fn statsd_pkg() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = std::env::var("STATSD_DIR").unwrap_or_else(|_| "/work/.cache/statsd".to_string());
        let pkg = Path::new(&base).join("node_modules/statsd");
        if !pkg.join("stats.js").exists() {
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/statsd_compat/install.sh");
            let st = Command::new("bash").arg(&script).env("STATSD_DIR", &base).status();
            assert!(
                st.is_ok_and(|s| s.success()),
                "statsd 0.9.0 is not installed in {base} and {} failed (needs node and npm)",
                script.display()
            );
        }
        let manifest = std::fs::read_to_string(pkg.join("package.json")).expect("statsd package.json");
        assert!(
            manifest.contains("\"version\": \"0.9.0\""),
            "{} is not statsd 0.9.0",
            pkg.display()
        );
        pkg
    })
}

/// A running statsd with its graphite sink; killed on drop.
struct Statsd {
    child: Child,
    udp: UdpSocket,
    port: u16,
    flushes: Receiver<String>,
    interval: Duration,
    dir: tempfile::TempDir,
}

impl Drop for Statsd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .expect("bind udp")
        .local_addr()
        .expect("addr")
        .port()
}

fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind tcp")
        .local_addr()
        .expect("addr")
        .port()
}

fn js_string(s: &str) -> String {
    serde_json::to_string(s).expect("json string")
}

/// The statsd config equivalent to our options (spec §9.2: graphite backend, deleteIdleStats = !keep_keys).
fn statsd_config(sc: &Scenario, udp: u16, graphite: u16) -> String {
    let mut g = Vec::new();
    for (name, value) in sc.options {
        match *name {
            "legacyNamespace" => {
                let b = matches!(*value, "1" | "t" | "T" | "true" | "TRUE" | "True");
                g.push(format!("legacyNamespace: {b}"));
            }
            "percentThreshold" => {}
            // Deviation (§9.2.3): an empty globalSuffix is unset for us; statsd would append a bare ".".
            "globalSuffix" if value.is_empty() => {}
            _ => g.push(format!("{name}: {}", js_string(value))),
        }
    }
    format!(
        "{{\n  port: {udp},\n  address: \"127.0.0.1\",\n  mgmt_port: {mgmt},\n  mgmt_address: \"127.0.0.1\",\n  \
         graphiteHost: \"127.0.0.1\",\n  graphitePort: {graphite},\n  flushInterval: {interval},\n  \
         deleteIdleStats: {delete},\n  percentThreshold: [{pct}],\n  automaticConfigReload: false,\n  \
         graphite: {{ {g} }}\n}}\n",
        mgmt = free_tcp_port(),
        interval = sc.interval_ms,
        delete = !sc.keep_keys,
        pct = sc.statsd_pct,
        g = g.join(", "),
    )
}

impl Statsd {
    fn start(sc: &Scenario) -> Statsd {
        let pkg = statsd_pkg();
        let dir = tempfile::tempdir().expect("tempdir");
        let sink = TcpListener::bind("127.0.0.1:0").expect("bind sink");
        let graphite = sink.local_addr().expect("addr").port();
        let (tx, flushes) = channel();
        std::thread::spawn(move || {
            // statsd's graphite backend opens one connection per flush and closes it after writing.
            for conn in sink.incoming() {
                let Ok(mut conn) = conn else { return };
                let mut s = String::new();
                let _ = conn.read_to_string(&mut s);
                if tx.send(s).is_err() {
                    return;
                }
            }
        });
        let port = free_udp_port();
        let cfg = dir.path().join("config.js");
        std::fs::write(&cfg, statsd_config(sc, port, graphite)).expect("write config");
        let log = std::fs::File::create(dir.path().join("statsd.log")).expect("log");
        let child = Command::new("node")
            .arg(pkg.join("stats.js"))
            .arg(&cfg)
            .current_dir(pkg)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start node (is node installed?)");
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        Statsd {
            child,
            udp,
            port,
            flushes,
            interval: Duration::from_millis(sc.interval_ms),
            dir,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("statsd.log")).unwrap_or_default()
    }

    /// The next flush's metrics, within a deadline.
    fn next_flush(&mut self, within: Duration) -> Metrics {
        match self.flushes.recv_timeout(within) {
            Ok(text) => parse_graphite(&text),
            Err(e) => {
                let status = self.child.try_wait();
                panic!(
                    "no flush from statsd within {within:?} ({e}); process: {status:?}; log:\n{}",
                    self.log()
                )
            }
        }
    }

    /// Sends lines as newline-joined datagrams (each under 8 KB), in order.
    fn send(&self, lines: &[String]) {
        let mut dgram = String::new();
        for l in lines {
            if !dgram.is_empty() && dgram.len() + l.len() + 1 > 8000 {
                self.udp
                    .send_to(dgram.as_bytes(), ("127.0.0.1", self.port))
                    .expect("send");
                dgram.clear();
            }
            if !dgram.is_empty() {
                dgram.push('\n');
            }
            dgram.push_str(l);
        }
        if !dgram.is_empty() {
            self.udp
                .send_to(dgram.as_bytes(), ("127.0.0.1", self.port))
                .expect("send");
        }
    }
}

/// `name value timestamp` lines → name → value (timestamps ignored; duplicate names are an error).
fn parse_graphite(text: &str) -> Metrics {
    let mut m = Metrics::new();
    for l in text.lines().filter(|l| !l.is_empty()) {
        let mut f = l.rsplitn(3, ' ');
        let (_ts, value, name) = (f.next(), f.next().expect("value"), f.next().expect("name"));
        assert!(
            m.insert(name.to_string(), value.to_string()).is_none(),
            "duplicate metric {name} in flush"
        );
    }
    m
}

fn is_self_metric(name: &str) -> bool {
    name.split(';').next().unwrap_or("").split('.').any(|p| p == "statsd")
}

/// statsd's count of lines received in that flush.
fn lines_received(m: &Metrics) -> Option<f64> {
    m.iter()
        .find(|(k, _)| {
            k.contains("statsd.metrics_received")
                && (k.starts_with("stats_counts.") || k.contains("metrics_received.count"))
        })
        .and_then(|(_, v)| v.parse().ok())
}

struct Scenario {
    name: &'static str,
    /// Our options (§9.2.4), mapped to statsd's `graphite` config.
    options: &'static [(&'static str, &'static str)],
    /// statsd's `percentThreshold` array (our option may write fractions).
    statsd_pct: &'static str,
    keep_keys: bool,
    interval_ms: u64,
    /// Lines sent after consecutive flushes; an empty round just takes the next (idle) flush.
    rounds: Vec<Vec<String>>,
    /// Metric names not compared (statsd yields NaN where the spec deviates), per round.
    exclude: &'static [&'static str],
}

impl Scenario {
    fn new(name: &'static str, lines: &[&str]) -> Scenario {
        Scenario {
            name,
            options: &[],
            statsd_pct: "90",
            keep_keys: false,
            interval_ms: 1500,
            rounds: vec![lines.iter().map(|s| s.to_string()).collect()],
            exclude: &[],
        }
    }
}

/// Runs the scenario through statsd and through our accumulator and compares every round's flush.
fn check(sc: Scenario) {
    let mut statsd = Statsd::start(&sc);
    let options = StatsdOptions::from_pairs(sc.options).expect("options");
    let mut ours = StatsdState::new(&options, sc.keep_keys);
    let interval = statsd.interval;
    // statsd's first flush comes within one interval of start-up (plus node's start).
    statsd.next_flush(interval + Duration::from_secs(10));
    let mut failures = Vec::new();
    for (round, lines) in sc.rounds.iter().enumerate() {
        let t0 = Instant::now();
        statsd.send(lines);
        let theirs = statsd.next_flush(interval + Duration::from_secs(3));
        assert!(t0.elapsed() < interval + Duration::from_secs(3));
        let received = lines_received(&theirs);
        assert_eq!(
            received,
            Some(lines.len() as f64),
            "{}: round {round}: statsd counted {received:?} lines in the flush after sending {} (split across flushes?)",
            sc.name,
            lines.len()
        );
        for l in lines {
            ours.add(l.as_bytes());
        }
        let mut out = Vec::new();
        let mut records: Vec<Record> = Vec::new();
        let n = ours.flush(
            sc.interval_ms as f64 / 1000.0,
            0,
            Format::Graphite,
            Some(&mut out),
            &mut records,
        );
        let mine = parse_graphite(std::str::from_utf8(&out).expect("utf8"));
        assert_eq!(n, mine.len(), "line count");
        let keep = |k: &String| !is_self_metric(k) && !sc.exclude.contains(&k.as_str());
        let theirs: Metrics = theirs.into_iter().filter(|(k, _)| keep(k)).collect();
        let mine_cmp: Metrics = mine
            .iter()
            .filter(|(k, _)| keep(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for k in &sc.exclude.iter().map(|s| s.to_string()).collect::<Vec<_>>() {
            assert!(
                mine.contains_key(k),
                "{}: excluded metric {k} is not in our output",
                sc.name
            );
        }
        if theirs != mine_cmp {
            let mut diff = String::new();
            for (k, v) in &theirs {
                match mine_cmp.get(k) {
                    None => diff += &format!("  only statsd: {k} {v}\n"),
                    Some(w) if w != v => diff += &format!("  differ: {k} statsd={v} ours={w}\n"),
                    _ => {}
                }
            }
            for (k, v) in &mine_cmp {
                if !theirs.contains_key(k) {
                    diff += &format!("  only ours: {k} {v}\n");
                }
            }
            failures.push(format!("{}: round {round}:\n{diff}", sc.name));
        }
    }
    assert!(
        failures.is_empty(),
        "statsd 0.9.0 and StatsdAccumulator differ:\n{}",
        failures.join("\n")
    );
}

fn lines(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Deterministic pseudo-random values with a mix of magnitudes and decimals.
fn values(seed: u64, n: usize) -> Vec<String> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|i| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let r = (x >> 33) as f64 / (1u64 << 31) as f64;
            match i % 4 {
                0 => format!("{}", (r * 1000.0).round()),
                1 => format!("{:.3}", r * 250.0),
                2 => format!("{}", r * 7.0),
                _ => format!("{:.1}", r * 100000.0),
            }
        })
        .collect()
}

#[test]
fn counters_rates_and_types() {
    check(Scenario::new(
        "counters",
        &[
            "c1:1|c",
            "c1:2|c|@0.5",
            "c1:3|h",
            "c2:7|kv",
            "c3:1|c|@0.1",
            "c4:0.3|c|@0.3",
            "c5:5|C",
            "c6:1|",
            "c7:0x1f|c",
            "c8:1e2|c|@0.25",
            "c9:-3|c",
            "c10:1.5|c|@0.5e1",
            "c11: 2 |c",
            "c12:1|c|@0.5|extra",
            "c13:0.1|c",
            "c13:0.2|c",
            "c14:1|c|@2",
            "c15:1|c|@.5",
            "bad1:abc|c",
            "bad2:1",
            "bad3",
            "bad4:1|c|@gg",
            "bad5:1|c|0.1",
            "bad6:1|c|@-1",
            "bad7:|c",
            "bad8:1|c|@",
        ],
    ));
}

#[test]
fn gauges_with_deltas() {
    check(Scenario::new(
        "gauges",
        &[
            "g1:5|g",
            "g1:+3|g",
            "g1:-10|g",
            "g2:+4|g",
            "g3:0|g",
            "g3:-2|g",
            "g4:1.5|g|@0.1",
            "g5:-7|g",
            "g5:+0|g",
            "g6:1e3|g",
            "g7:Infinity|g",
            "g8:3|g",
            "g8: +3|g",
            "g9:0.1|g",
            "g9:+0.2|g",
            "bad:x|g",
        ],
    ));
}

#[test]
fn timers_default_threshold() {
    let mut v: Vec<String> = values(1, 37).into_iter().map(|x| format!("t1:{x}|ms")).collect();
    v.extend(lines(&[
        "t2:42|ms",
        "t3:1|ms",
        "t3:2|ms",
        "t4:10|ms|@0.1",
        "t4:20|ms|@0.5",
        "t4:30|ms",
        "t5:0|ms",
        "t6:1e-7|ms",
        "t7:0x10|ms",
        "bad:-1|ms",
        "bad:x|ms",
    ]));
    check(Scenario {
        rounds: vec![v],
        ..Scenario::new("timers-90", &[])
    });
}

#[test]
fn timers_threshold_lists() {
    for (pct, ours) in [
        ("90,99,99.9", "90,99,99.9"),
        ("-10,50", "-10,50"),
        ("95,-10,99.99", "0.95,-0.1,0.9999"),
    ] {
        let mut v: Vec<String> = values(7, 101).into_iter().map(|x| format!("tl:{x}|ms")).collect();
        v.extend(values(8, 9).into_iter().map(|x| format!("ts:{x}|ms|@0.3")));
        v.push("one:3.25|ms".into());
        v.push("two:3|ms:9|ms".into());
        let options: &'static [(&str, &str)] = Box::leak(Box::new([("percentThreshold", ours)]));
        check(Scenario {
            options,
            statsd_pct: pct,
            rounds: vec![v],
            interval_ms: 2000,
            ..Scenario::new("timers-thresholds", &[])
        });
    }
}

#[test]
fn timers_negative_threshold_whole_set_excluded() {
    // k = round(0.8 × 2) = n: statsd reads cumulativeValues[-1] and yields NaN (spec deviation: 0).
    check(Scenario {
        options: &[("percentThreshold", "-80")],
        statsd_pct: "-80",
        exclude: &[
            "stats.timers.two.sum_top80",
            "stats.timers.two.sum_squares_top80",
            "stats.timers.two.mean_top80",
        ],
        ..Scenario::new(
            "timers-top80",
            &["two:3|ms", "two:9|ms", "five:1|ms:2|ms:3|ms:4|ms:5|ms"],
        )
    });
}

#[test]
fn sets() {
    check(Scenario::new(
        "sets",
        &[
            "s1:a|s",
            "s1:b|s",
            "s1:a|s",
            "s2:|s",
            "s2:0|s",
            "s3:x y|s",
            "s4:1|s|@0.5",
            "s5:-1|s",
            "s5:1.0|s",
            "s5:1|s",
        ],
    ));
}

#[test]
fn multi_value_lines() {
    check(Scenario::new(
        "multi",
        &[
            "m1:1|c:2|c:3|ms",
            "m2:1|c:bad|c:4|g",
            "m3:5|ms:6|ms|@0.5",
            "m4:1|s:2|s:1|s",
            "m5:1|c:2|ms:3|g:4|s",
            "m6:+1|g:+2|g",
        ],
    ));
}

#[test]
fn tags() {
    check(Scenario::new(
        "tags",
        &[
            "tg:1|c|#a:b,c",
            "tg2:2|ms|#env:prod,host:x;y",
            "tg3:3|g|#t:1|#zzz",
            "tg4:1|c|#",
            "tg5:1|c:2|c|#k:v",
            "tg6:a|s|#x y:1,z/w",
            "tg7;pre=1:4|g|#q:2",
        ],
    ));
}

#[test]
fn key_sanitizing() {
    check(Scenario::new(
        "sanitize",
        &[
            "a b:1|c",
            "a/b:1|c",
            "a$b%c(d)[e]:1|c",
            "x\ty:1|g",
            "dots.and-dash_ok=1;z:1|c",
            "ü.kéy:1|c",
            "a  b:1|ms",
            "q\"'`:1|c",
            "x\u{a0}y:2|g",
        ],
    ));
}

const MIXED: &[&str] = &["c:3|c|@0.5", "t:2|ms", "t:5|ms", "g:7|g", "s:a|s|#k:v", "t;x=y:1|ms"];

#[test]
fn legacy_namespace_with_suffix() {
    check(Scenario {
        options: &[
            ("legacyNamespace", "true"),
            ("globalSuffix", "sfx"),
            ("prefixCounter", "ignored"),
        ],
        ..Scenario::new("legacy-suffix", MIXED)
    });
}

#[test]
fn non_legacy_namespace_defaults() {
    check(Scenario {
        options: &[("legacyNamespace", "false")],
        ..Scenario::new("non-legacy", MIXED)
    });
}

#[test]
fn non_legacy_custom_prefixes() {
    check(Scenario {
        options: &[
            ("legacyNamespace", "f"),
            ("globalPrefix", "root"),
            ("globalSuffix", "end"),
            ("prefixCounter", "cnt"),
            ("prefixTimer", "tim"),
            ("prefixGauge", "gau"),
            ("prefixSet", "st"),
        ],
        ..Scenario::new("custom-prefixes", MIXED)
    });
    check(Scenario {
        options: &[
            ("legacyNamespace", "False"),
            ("globalPrefix", ""),
            ("prefixCounter", ""),
            ("prefixTimer", "timers"),
            ("prefixGauge", ""),
            ("prefixSet", "s"),
        ],
        ..Scenario::new("empty-prefixes", MIXED)
    });
}

#[test]
fn keep_keys_idle_flush() {
    check(Scenario {
        keep_keys: true,
        rounds: vec![lines(MIXED), vec![], lines(&["g:+2|g", "c:1|c", "t:4|ms"]), vec![]],
        ..Scenario::new("keep-keys", &[])
    });
}

#[test]
fn delete_idle_stats_flushes() {
    check(Scenario {
        rounds: vec![lines(MIXED), vec![], lines(&["g:+2|g", "c:1|c"])],
        ..Scenario::new("delete-idle", &[])
    });
}

/// Our JavaScript number printing and parsing against node itself, on many values.
#[test]
fn js_number_and_parse_match_node() {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut nums: Vec<f64> = Vec::new();
    for i in 0..30000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let v = match i % 5 {
            0 => f64::from_bits(x),
            1 => (x % 1_000_000) as f64 / 1000.0,
            2 => (x >> 11) as f64 * 2f64.powi((x % 140) as i32 - 70),
            3 => ((x % 20000) as f64 - 10000.0) / 7.0,
            _ => 10f64.powi((x % 50) as i32 - 25) * ((x >> 40) % 10 + 1) as f64,
        };
        nums.push(v);
    }
    nums.extend([
        0.0,
        -0.0,
        1e21,
        1e-7,
        1e-6,
        123456789012345680000.0,
        f64::INFINITY,
        f64::NAN,
        5e-324,
    ]);
    let strs = [
        "",
        " ",
        "1",
        " 1 ",
        "+1",
        "-1.5",
        "1.",
        ".5",
        "1e3",
        "1E-3",
        "Infinity",
        "-Infinity",
        "+Infinity",
        "0x10",
        "0XfF",
        "0o17",
        "0b101",
        "0x",
        "-0x10",
        "infinity",
        "NaN",
        "abc",
        ".",
        "+",
        "1e",
        "1.2.3",
        "1_0",
        "0012",
        "0x1fffffffffffffffffff",
        "0.1e-400",
        "1e400",
        "\u{a0}7\u{3000}",
        "12345678901234567890123",
        "0b",
        "0o8",
    ];
    let dir = tempfile::tempdir().expect("tempdir");
    let input: String = nums.iter().map(|v| format!("{}\n", v.to_bits())).collect();
    std::fs::write(dir.path().join("nums"), input).expect("write");
    std::fs::write(
        dir.path().join("strs.json"),
        serde_json::to_string(&strs[..]).expect("json"),
    )
    .expect("write");
    let script = r#"
        const fs = require('fs');
        const buf = Buffer.alloc(8);
        const out = fs.readFileSync('nums', 'utf8').trim().split('\n').map(b => {
            buf.writeBigUInt64BE(BigInt(b)); return String(buf.readDoubleBE(0)); });
        const strs = JSON.parse(fs.readFileSync('strs.json', 'utf8')).map(s => String(Number(s)));
        process.stdout.write(JSON.stringify([out, strs]));
    "#;
    let o = Command::new("node")
        .arg("-e")
        .arg(script)
        .current_dir(dir.path())
        .output()
        .expect("run node");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (want_nums, want_strs): (Vec<String>, Vec<String>) = serde_json::from_slice(&o.stdout).expect("node output");
    for (v, want) in nums.iter().zip(&want_nums) {
        let mut s = String::new();
        js_number(*v, &mut s);
        // Our documented exception: -0 prints as "0", which JavaScript's String(-0) also does.
        assert_eq!(&s, want, "String({v:e}) bits {:x}", v.to_bits());
    }
    for (s, want) in strs.iter().zip(&want_strs) {
        let got = js_parse_number(s.as_bytes()).map_or("NaN".to_string(), |v| {
            let mut o = String::new();
            js_number(v, &mut o);
            o
        });
        assert_eq!(&got, want, "Number({s:?})");
    }
    let _ = std::io::stdout().flush();
}

/// The spec's parse examples and statsd's quirks: raw vs trimmed types, whitespace values, literals, rate forms.
#[test]
fn parse_edge_cases() {
    check(Scenario::new(
        "parse-edges",
        &[
            "k1:1|c",
            "k2:1|ms",
            "k3:3|ms|@0.01",
            "k4:1|h",
            "k5:1|g",
            "k5:+1|g",
            "k6:-5|g",
            "u:abc|s",
            "k7:1|c:2|c",
            "k8:1",
            "k9:3|ms|@gg",
            "k10:-1|ms",
            "k11:abc|c",
            "k12:1|c|0.1",
            "w1:-1| ms",
            "w2:5| s",
            "w3:2| g:+3| g",
            "w4:1|c |@0.5",
            "h1:0x1F|g",
            "h2:0o17|c",
            "h3:0b101|ms",
            "h4:1e-3|c",
            "h5:.5|c",
            "h6:5.|c",
            "h7:-0|g",
            "h8:   |c",
            "h9:1\u{2003}|c",
            "h10:-0|ms",
            "r1:1|c|@1.5e1",
            "r2:1|ms|@0.5",
            "r3:1|c|@5.",
            "r4:1|c|@0.5|@0.1",
            ":5|c",
            "e1:1|c|@1.2.3",
            "e2:Infinity|c",
            "e3:-Infinity|g",
            "e4:1e400|ms",
        ],
    ));
}

/// The lines of `random_mix`: many random lines over a few keys, with rates, gauge deltas, timers and sets.
fn random_mix_lines() -> Vec<String> {
    let mut x: u64 = 42;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let rates = ["", "|@0.1", "|@0.25", "|@0.3", "|@0.5", "|@0.7"];
    let mut v = Vec::new();
    for _ in 0..3000 {
        let r = next();
        let key = format!("rk{}", r % 23);
        let val = match (r >> 8) % 4 {
            0 => format!("{}", (r >> 16) % 1000),
            1 => format!("{:.2}", ((r >> 16) % 100_000) as f64 / 7.0),
            2 => format!("-{}", (r >> 16) % 50),
            _ => format!("{}", ((r >> 16) % 1_000_000) as f64 / 1024.0),
        };
        let rate = rates[((r >> 40) % rates.len() as u64) as usize];
        let line = match (r >> 4) % 4 {
            0 => format!("{key}.c:{val}|c{rate}"),
            1 => format!("{key}.t:{}|ms{rate}", val.trim_start_matches('-')),
            2 if (r >> 50) % 2 == 0 => format!("{key}.g:{val}|g"),
            2 => format!("{key}.g:+{}|g", val.trim_start_matches('-')),
            _ => format!("{key}.s:{}|s", (r >> 20) % 40),
        };
        v.push(line);
    }
    v
}

/// Many random lines over a few keys: bit-exact sums with rates, gauge delta order, timer statistics.
#[test]
fn random_mix() {
    check(Scenario {
        options: &[("percentThreshold", "50,90,95,99,-5")],
        statsd_pct: "50,90,95,99,-5",
        rounds: vec![random_mix_lines()],
        interval_ms: 3000,
        ..Scenario::new("random-mix", &[])
    });
}

/// The same input through the whole relay (UDP listener, PreReg group with a statsd accumulator, graphite output
/// to a backend section, TCP sink) and through statsd: identical metrics. The relay's final flush at shutdown
/// covers the whole input, so its flush window needs no alignment with statsd's.
#[test]
fn random_mix_through_the_relay() {
    let sc = Scenario {
        options: &[("percentThreshold", "50,90,95,99,-5")],
        statsd_pct: "50,90,95,99,-5",
        rounds: vec![random_mix_lines()],
        interval_ms: 3000,
        ..Scenario::new("random-mix-relay", &[])
    };
    let lines = &sc.rounds[0];
    let mut statsd = Statsd::start(&sc);
    statsd.next_flush(statsd.interval + Duration::from_secs(10));
    statsd.send(lines);
    let theirs = statsd.next_flush(statsd.interval + Duration::from_secs(3));
    assert_eq!(
        lines_received(&theirs),
        Some(lines.len() as f64),
        "statsd got the whole input in one flush"
    );

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let ours = rt.block_on(async {
        let sink = TcpListener::bind("127.0.0.1:0").expect("sink");
        let sink_addr = sink.local_addr().expect("addr");
        // health checks connect and close at once: the connection that carries lines is the one to keep
        let received = std::thread::spawn(move || loop {
            let (mut s, _) = sink.accept().expect("relay connects");
            let mut text = String::new();
            s.read_to_string(&mut text).expect("read");
            if !text.is_empty() {
                return text;
            }
        });
        let main = format!(
            "[default]\nshutdown_timeout = 5\n[statsd-in]\nlisten = \"udp://127.0.0.1:0\"\nmsg_type = \"statsd\"\n\
             [[statsd-in.servers]]\nservers = [\"tcp://127.0.0.1:9\"]\n\
             [carbon]\nlisten = \"backend_only\"\nmsg_type = \"graphite\"\nmax_pool_connections = 1\n\
             [[carbon.servers]]\nservers = [\"tcp://{sink_addr}\"]\n"
        );
        let prereg =
            "[g]\nlisten_server = \"statsd-in\"\ndefault_backend = \"statsd-in\"\n[[g.map]]\nnoop = \"true\"\n\
             [g.accumulator]\nbackend = \"carbon\"\ninput_format = \"statsd\"\noutput_format = \"graphite\"\n\
             accumulate_flush = \"3s\"\noptions = [[\"percentThreshold\", \"50,90,95,99,-5\"]]\n";
        let config = consthash::config::load_main(&main, "relay.toml").expect("config");
        let prereg = consthash::config::load_prereg(prereg, "prereg.toml", &config).expect("prereg");
        // Start right after an aligned 3 s tick, so that no periodic flush splits the input.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_millis() as u64;
        tokio::time::sleep(Duration::from_millis(3000 - now % 3000 + 50)).await;
        let relay = consthash::app::Relay::start(&config, Some(&prereg))
            .await
            .expect("relay starts");
        let Some(consthash::listener::Bound::Udp(addr)) = relay.bound("statsd-in").cloned() else {
            panic!("udp bound")
        };
        let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("udp");
        let section = relay.section("statsd-in").expect("section").clone();
        for chunk in lines.chunks(20) {
            sock.send_to(chunk.join("\n").as_bytes(), addr).await.expect("send");
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while section
            .stats
            .accumulated_lines
            .load(std::sync::atomic::Ordering::Relaxed)
            < lines.len() as u64
        {
            assert!(Instant::now() < deadline, "the relay did not receive every line");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let flushes = relay
            .accumulator("statsd-in")
            .expect("accumulator")
            .stats
            .flushes
            .load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(
            flushes, 0,
            "no periodic flush split the input (it took too long: rerun)"
        );
        relay.shutdown().await;
        received.join().expect("sink")
    });
    let mine = parse_graphite(&ours);
    let theirs: Metrics = theirs.into_iter().filter(|(k, _)| !is_self_metric(k)).collect();
    assert!(!mine.is_empty());
    let diff: Vec<String> = theirs
        .iter()
        .filter(|(k, v)| mine.get(*k) != Some(*v))
        .map(|(k, v)| format!("{k}: statsd={v} relay={:?}", mine.get(k)))
        .chain(
            mine.keys()
                .filter(|k| !theirs.contains_key(*k))
                .map(|k| format!("only relay: {k}")),
        )
        .collect();
    assert!(
        diff.is_empty(),
        "statsd 0.9.0 and the relay differ:\n{}",
        diff.join("\n")
    );
}
