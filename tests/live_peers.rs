//! Differential tests against the live relays consthash replaces (issue 13, spec §7.8): the same generated lines go
//! through the real daemon and through the consthash binary, each to the same five sinks (same hosts and ports, one
//! after the other), and what every sink read must be the same: no line on another sink, no name forwarded
//! differently, and every name's lines on one set of sinks.
//!
//! The peers: carbon-c-relay's daemon (Debian `carbon-c-relay`) for `carbon_ch_c_relay`, `fnv1a_ch` and
//! `jump_fnv1a_ch`; carbon-relay (Debian `graphite-carbon`) for `carbon_ch`; statsd 0.9.0's proxy.js (npm
//! `statsd`) for `statsd_hashring`. `tests/peers/install.sh` installs what is missing (`.ci/run` calls it); a
//! missing peer fails the test with that hint. Sinks listen on 127.0.0.11–15 so that replicas have distinct hosts.
//!
//! Readiness and completion are conditions, never sleeps: a relay is ready once a warm-up line sent through it
//! reached a sink (warm-up lines are then ignored), and a run is complete once the sinks hold every expected line.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

const SINKS: usize = 5;
const WARMUP: &[u8] = b"consthash.warmup.";
const DEADLINE: Duration = Duration::from_secs(60);

/// Lines read by each sink, shared with the sink threads.
#[derive(Default)]
struct Received {
    lines: Mutex<Vec<Vec<Vec<u8>>>>,
    changed: Condvar,
}

impl Received {
    fn push(&self, sink: usize, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        // carbon-relay ends its lines with "\r\n"; the other relays forward a "\r" of the input as it came.
        let mut all = self.lines.lock().expect("sink lines");
        all[sink].push(line.to_vec());
        self.changed.notify_all();
    }

    fn count(all: &[Vec<Vec<u8>>]) -> usize {
        all.iter().flatten().filter(|l| !is_warmup(l)).count()
    }

    /// Waits until the sinks hold `n` lines that are not warm-ups; false at the deadline.
    fn wait_for(&self, n: usize, deadline: Instant) -> bool {
        let mut all = self.lines.lock().expect("sink lines");
        while Received::count(&all) < n {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            all = self.changed.wait_timeout(all, deadline - now).expect("sink lines").0;
        }
        true
    }

    fn has_warmup(&self) -> bool {
        self.lines
            .lock()
            .expect("sink lines")
            .iter()
            .flatten()
            .any(|l| is_warmup(l))
    }

    /// Every sink's lines so far (warm-ups left out), and a fresh start.
    fn take(&self) -> Vec<Vec<Vec<u8>>> {
        let mut all = self.lines.lock().expect("sink lines");
        let taken = std::mem::replace(&mut *all, vec![Vec::new(); SINKS]);
        taken
            .into_iter()
            .map(|s| s.into_iter().filter(|l| !is_warmup(l)).collect())
            .collect()
    }
}

fn is_warmup(line: &[u8]) -> bool {
    // proxy.js and consthash forward untrimmed statsd lines, so look past leading spaces.
    let start = line.iter().position(|b| *b != b' ').unwrap_or(line.len());
    line[start..].starts_with(WARMUP)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Proto {
    Graphite,
    Statsd,
}

/// Five sinks on distinct loopback hosts: TCP line receivers for graphite, UDP receivers with a proxy.js-style
/// admin port (answering `health: up`) for statsd.
struct Sinks {
    addrs: Vec<SocketAddr>,
    admin: Vec<SocketAddr>,
    received: Arc<Received>,
}

impl Sinks {
    fn start(proto: Proto) -> Sinks {
        let received = Arc::new(Received::default());
        *received.lines.lock().expect("sink lines") = vec![Vec::new(); SINKS];
        let (mut addrs, mut admin) = (Vec::new(), Vec::new());
        for i in 0..SINKS {
            let host = format!("127.0.0.{}", 11 + i);
            let rx = received.clone();
            match proto {
                Proto::Graphite => {
                    let l = TcpListener::bind((host.as_str(), 0)).expect("bind a graphite sink");
                    addrs.push(l.local_addr().expect("addr"));
                    thread::spawn(move || {
                        for conn in l.incoming().flatten() {
                            let rx = rx.clone();
                            thread::spawn(move || read_lines(conn, |line| rx.push(i, line)));
                        }
                    });
                }
                Proto::Statsd => {
                    let u = UdpSocket::bind((host.as_str(), 0)).expect("bind a statsd sink");
                    addrs.push(u.local_addr().expect("addr"));
                    thread::spawn(move || {
                        let mut buf = vec![0u8; 65_536];
                        while let Ok(n) = u.recv(&mut buf) {
                            for line in buf[..n].split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                                rx.push(i, line);
                            }
                        }
                    });
                    let t = TcpListener::bind((host.as_str(), 0)).expect("bind an admin port");
                    admin.push(t.local_addr().expect("addr"));
                    thread::spawn(move || {
                        for mut conn in t.incoming().flatten() {
                            let mut b = [0u8; 64];
                            let _ = conn.read(&mut b);
                            let _ = conn.write_all(b"health: up\n");
                        }
                    });
                }
            }
        }
        Sinks { addrs, admin, received }
    }
}

fn read_lines(mut conn: TcpStream, mut on: impl FnMut(&[u8])) {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 65_536];
    while let Ok(n) = conn.read(&mut chunk) {
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut start = 0;
        while let Some(nl) = buf[start..].iter().position(|b| *b == b'\n') {
            on(&buf[start..start + nl]);
            start += nl + 1;
        }
        buf.drain(..start);
    }
}

/// A small deterministic generator (xorshift64*), so a failure names lines that can be sent again.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[(self.next() % from.len() as u64) as usize]
    }

    fn word(&mut self) -> String {
        let len = 3 + self.next() % 8;
        (0..len).map(|_| (b'a' + (self.next() % 26) as u8) as char).collect()
    }
}

/// Metric names in each category of the issue, several of each, from a fixed seed.
fn names(g: &mut Gen) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for n in 0..24 {
        let (a, b, c) = (g.word(), g.word(), g.word());
        out.push(("plain", format!("{a}.{b}.{c}{n}")));
        let tags = [format!("host=web{n:02}"), format!("dc={b}"), format!("role={c}")];
        let order = [[0, 1, 2], [2, 0, 1], [1, 2, 0]][n % 3];
        let tagged: Vec<&str> = order.iter().map(|&i| tags[i].as_str()).collect();
        out.push(("tagged", format!("{a}.used;{}", tagged.join(";"))));
        out.push(("tagged", format!("{a}.used;{}", tags.join(";"))));
        let word = g.pick(&["münchen", "東京", "straße", "café", "naïve", "Ωmega", "🙂face"]);
        out.push(("non-ascii", format!("{a}.{word}.{c}")));
        let p = g.pick(&[
            "(", ")", ",", "*", "{", "}", "/", "@", "!", "$", "%", "=", "+", "[", "|", "~", "&", "'",
        ]);
        out.push(("punctuation", format!("{a}.paren{p}{b}{p}.{c}")));
        let dotted = match n % 4 {
            0 => format!(".{a}.{b}"),
            1 => format!("{a}.{b}."),
            2 => format!("{a}..{b}...{c}"),
            _ => format!("..{a}..{b}.."),
        };
        out.push(("dots", dotted));
        let w = g.word();
        out.push(("long", format!("{a}.{}.{n}", w.repeat(600 / w.len() + 1 + n))));
    }
    out
}

/// Graphite lines: two per name, in the categories' spellings (tab-separated, leading spaces, plain).
fn graphite_lines(g: &mut Gen) -> Vec<Vec<u8>> {
    let mut lines = Vec::new();
    for (cat, name) in names(g) {
        for v in 0..2 {
            let ts = 1_700_000_000 + v;
            let line = match (cat, lines.len() % 3) {
                (_, 0) => format!("{name}\t{v}\t{ts}"),
                (_, 1) => format!("   {name} {v} {ts}"),
                _ => format!("{name} {v} {ts}"),
            };
            lines.push(line.into_bytes());
        }
    }
    lines
}

/// statsd lines: two per name, with leading and trailing spaces, lines without `:`, and whitespace-only lines.
fn statsd_lines(g: &mut Gen) -> Vec<Vec<u8>> {
    let mut lines = Vec::new();
    for (i, (_, name)) in names(g).into_iter().enumerate() {
        let name = name.replace(';', "_");
        let line = match i % 5 {
            0 => format!("  {name}:1|c"),
            1 => format!("{name}:2|ms  "),
            2 => name.clone(),
            3 => format!("{name}\t:3|g"),
            _ => format!("{name}:4|c|@0.5"),
        };
        lines.push(line.clone().into_bytes());
        lines.push(line.into_bytes());
    }
    lines.push(b"   ".to_vec());
    lines
}

/// A running relay (the peer or consthash), killed on drop.
struct Running {
    child: Child,
    name: String,
    log: PathBuf,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Running {
    fn start(name: &str, cmd: &mut Command, log: PathBuf) -> Running {
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = cmd
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({e}); install the peers with tests/peers/install.sh"));
        Running {
            child,
            name: name.to_string(),
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// How lines reach a relay: one TCP connection for graphite, datagrams of whole lines for statsd.
fn send(proto: Proto, to: SocketAddr, lines: &[Vec<u8>], received: &Received) {
    match proto {
        Proto::Graphite => {
            let mut c = TcpStream::connect(to).expect("connect to the relay");
            for l in lines {
                c.write_all(l).expect("send");
                c.write_all(b"\n").expect("send");
            }
        }
        Proto::Statsd => {
            // A few datagrams at a time, each chunk read by the sinks before the next: nothing may be lost in a
            // socket buffer, or the books of the two relays would differ for a reason that is not theirs.
            let u = UdpSocket::bind("127.0.0.1:0").expect("bind a client");
            let mut sent = 0;
            for chunk in lines.chunks(8) {
                let mut dgram = Vec::new();
                for l in chunk {
                    dgram.extend_from_slice(l);
                    dgram.push(b'\n');
                }
                u.send_to(&dgram, to).expect("send a datagram");
                sent += chunk.len();
                assert!(
                    received.wait_for(sent, Instant::now() + DEADLINE),
                    "the sinks did not get the lines of a datagram in time"
                );
            }
        }
    }
}

/// Sends warm-up lines until one reaches a sink: the relay listens and its destinations are connected. Err with
/// the relay's exit status and log when it exits first.
fn wait_ready(proto: Proto, relay: &mut Running, to: SocketAddr, received: &Received) -> Result<(), String> {
    let deadline = Instant::now() + DEADLINE;
    let mut n = 0;
    while !received.has_warmup() {
        if let Ok(Some(status)) = relay.child.try_wait() {
            return Err(format!(
                "{} exited ({status}) before it was ready:\n{}",
                relay.name,
                relay.log()
            ));
        }
        assert!(
            Instant::now() < deadline,
            "{} did not forward a warm-up line in time:\n{}",
            relay.name,
            relay.log()
        );
        n += 1;
        let line = match proto {
            Proto::Graphite => format!("consthash.warmup.{n} 1 1700000000\n"),
            Proto::Statsd => format!("consthash.warmup.{n}:1|c\n"),
        };
        match proto {
            Proto::Graphite => {
                if let Ok(mut c) = TcpStream::connect_timeout(&to, Duration::from_millis(200)) {
                    let _ = c.write_all(line.as_bytes());
                }
            }
            Proto::Statsd => {
                let u = UdpSocket::bind("127.0.0.1:0").expect("bind a client");
                let _ = u.send_to(line.as_bytes(), to);
            }
        }
        let mut all = received.lines.lock().expect("sink lines");
        if !all.iter().flatten().any(|l| is_warmup(l)) {
            all = received
                .changed
                .wait_timeout(all, Duration::from_millis(100))
                .expect("sink lines")
                .0;
        }
        drop(all);
    }
    Ok(())
}

/// Starts a relay (`start` picks a free port and spawns it) and waits until it is ready. The port is free when
/// picked but cannot be held for the child, so another test's socket may take it first: a relay that exits
/// because its address is in use is started again on a new port.
fn start_ready(proto: Proto, received: &Received, start: impl Fn() -> (Running, SocketAddr)) -> (Running, SocketAddr) {
    const ATTEMPTS: usize = 3;
    for attempt in 1.. {
        let (mut relay, listen) = start();
        match wait_ready(proto, &mut relay, listen, received) {
            Ok(()) => return (relay, listen),
            Err(why) if attempt < ATTEMPTS && why.to_ascii_lowercase().contains("in use") => continue,
            Err(why) => panic!("{why}"),
        }
    }
    unreachable!("the loop returns or panics")
}

/// Runs `lines` through one relay and returns what each sink read once they hold `want` lines.
fn run_through(
    proto: Proto,
    start: impl Fn() -> (Running, SocketAddr),
    sinks: &Sinks,
    lines: &[Vec<u8>],
    want: usize,
) -> Vec<Vec<Vec<u8>>> {
    let (relay, listen) = start_ready(proto, &sinks.received, start);
    sinks.received.take();
    send(proto, listen, lines, &sinks.received);
    if !sinks.received.wait_for(want, Instant::now() + DEADLINE) {
        let got = Received::count(&sinks.received.lines.lock().expect("sink lines"));
        panic!(
            "{}: the sinks read {got} of {want} lines in time\n{}",
            relay.name,
            relay.log()
        );
    }
    drop(relay);
    sinks.received.take()
}

/// Every received line with the sinks it reached (a multiset: the same line twice counts twice).
fn placement(by_sink: &[Vec<Vec<u8>>]) -> BTreeMap<Vec<u8>, Vec<usize>> {
    let mut m: BTreeMap<Vec<u8>, Vec<usize>> = BTreeMap::new();
    for (sink, lines) in by_sink.iter().enumerate() {
        for l in lines {
            m.entry(l.clone()).or_default().push(sink);
        }
    }
    m.values_mut().for_each(|v| v.sort_unstable());
    m
}

/// The name of a forwarded line: its first field (graphite) or the text before the first `:` (statsd).
fn name_of(proto: Proto, line: &[u8]) -> Vec<u8> {
    let sep = match proto {
        Proto::Graphite => b' ',
        Proto::Statsd => b':',
    };
    line.split(|b| *b == sep).next().unwrap_or_default().to_vec()
}

fn show(l: &[u8]) -> String {
    let s = String::from_utf8_lossy(l);
    if s.len() > 120 {
        format!(
            "{}… ({} bytes)",
            &s[..s.char_indices().nth(100).map_or(s.len(), |c| c.0)],
            l.len()
        )
    } else {
        format!("{s:?}")
    }
}

fn compare(proto: Proto, peer: &str, theirs: &[Vec<Vec<u8>>], ours: &[Vec<Vec<u8>>]) {
    let (theirs, ours) = (placement(theirs), placement(ours));
    let mut diffs = Vec::new();
    for line in theirs.keys().chain(ours.keys()).collect::<BTreeSet<_>>() {
        let (t, o) = (theirs.get(line), ours.get(line));
        if t != o {
            diffs.push(format!("  {}: {peer} sinks {t:?}, consthash sinks {o:?}", show(line)));
        }
    }
    assert!(
        diffs.is_empty(),
        "{} lines placed or named differently than by {peer}:\n{}",
        diffs.len(),
        diffs.iter().take(40).cloned().collect::<Vec<_>>().join("\n")
    );
    // Every name's lines on one set of sinks.
    let mut sets: BTreeMap<Vec<u8>, BTreeSet<Vec<usize>>> = BTreeMap::new();
    for (line, sinks) in &ours {
        let mut s = sinks.clone();
        s.dedup();
        sets.entry(name_of(proto, line)).or_default().insert(s);
    }
    let split: Vec<String> = sets
        .iter()
        .filter(|(_, s)| s.len() > 1)
        .map(|(n, s)| format!("  {}: {s:?}", show(n)))
        .collect();
    assert!(
        split.is_empty(),
        "names whose lines went to different sinks:\n{}",
        split.join("\n")
    );
}

fn consthash_relay(dir: &Path, proto: Proto, algo: &str, replicas: usize, sinks: &Sinks) -> (Running, SocketAddr) {
    let port = free_port();
    let listen: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let (scheme, msg_type) = match proto {
        Proto::Graphite => ("tcp", "graphite"),
        Proto::Statsd => ("udp", "statsd"),
    };
    let servers: Vec<String> = sinks.addrs.iter().map(|a| format!("\"{scheme}://{a}\"")).collect();
    let config = format!(
        "[default]\nshutdown_timeout = 1\n[relay]\nlisten = \"{scheme}://{listen}\"\nmsg_type = \"{msg_type}\"\n\
         hasher_algo = \"{algo}\"\nnum_dupe_replicas = {replicas}\n[[relay.servers]]\nservers = [{}]\n",
        servers.join(", ")
    );
    let path = dir.join("consthash.toml");
    std::fs::write(&path, config).expect("write the consthash config");
    let relay = Running::start(
        "consthash",
        Command::new(env!("CARGO_BIN_EXE_consthash")).arg("--config").arg(&path),
        dir.join("consthash.log"),
    );
    (relay, listen)
}

fn free_port() -> u16 {
    // A port free for TCP and UDP alike (the relays listen on both).
    loop {
        let t = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = t.local_addr().expect("addr").port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn c_relay(dir: &Path, algo: &str, replicas: usize, sinks: &Sinks) -> (Running, SocketAddr) {
    let port = free_port();
    let members: Vec<String> = sinks.addrs.iter().map(|a| a.to_string()).collect();
    // c-relay calls its carbon_ch what consthash calls carbon_ch_c_relay.
    let algo = algo.strip_suffix("_c_relay").unwrap_or(algo);
    let conf = dir.join("c-relay.conf");
    std::fs::write(
        &conf,
        format!(
            "cluster sinks {algo} replication {replicas} {};\nmatch * send to sinks stop;\n",
            members.join(" ")
        ),
    )
    .expect("write the c-relay config");
    let relay = Running::start(
        "carbon-c-relay",
        Command::new("carbon-c-relay")
            .arg("-f")
            .arg(&conf)
            // no -l: its log goes to c-relay.out, which a failure shows
            .args(["-p", &port.to_string(), "-w", "1"]),
        dir.join("c-relay.out"),
    );
    (relay, format!("127.0.0.1:{port}").parse().expect("addr"))
}

fn carbon_relay(dir: &Path, replicas: usize, sinks: &Sinks) -> (Running, SocketAddr) {
    let port = free_port();
    let dests: Vec<String> = sinks.addrs.iter().map(|a| a.to_string()).collect();
    std::fs::write(
        dir.join("carbon.conf"),
        format!(
            "[relay]\nLINE_RECEIVER_INTERFACE = 127.0.0.1\nLINE_RECEIVER_PORT = {port}\nPICKLE_RECEIVER_PORT = {}\n\
             RELAY_METHOD = consistent-hashing\nREPLICATION_FACTOR = {replicas}\nDESTINATION_PROTOCOL = line\n\
             DESTINATIONS = {}\nLOCAL_DATA_DIR = {d}/data\nSTORAGE_DIR = {d}/storage\nLOG_DIR = {d}/log\nPID_DIR = {d}\n\
             MAX_QUEUE_SIZE = 100000\n",
            free_port(),
            dests.join(", "),
            d = dir.display()
        ),
    )
    .expect("write carbon.conf");
    std::fs::write(
        dir.join("storage-schemas.conf"),
        "[default]\npattern = .*\nretentions = 60s:1d\n",
    )
    .expect("write storage-schemas.conf");
    let relay = Running::start(
        "carbon-relay",
        Command::new("carbon-relay")
            .arg(format!("--config={}", dir.join("carbon.conf").display()))
            .args(["--nodaemon", "--debug", "start"]),
        dir.join("carbon-relay.out"),
    );
    (relay, format!("127.0.0.1:{port}").parse().expect("addr"))
}

fn proxy_js(dir: &Path, sinks: &Sinks) -> (Running, SocketAddr) {
    let statsd = PathBuf::from(std::env::var("STATSD_DIR").unwrap_or_else(|_| "/work/.cache/statsd".to_string()))
        .join("node_modules/statsd");
    assert!(
        statsd.join("proxy.js").exists(),
        "statsd 0.9.0 is not installed in {}: run tests/peers/install.sh",
        statsd.display()
    );
    let port = free_port();
    let nodes: Vec<String> = sinks
        .addrs
        .iter()
        .zip(&sinks.admin)
        .map(|(a, m)| format!("{{host: \"{}\", port: {}, adminport: {}}}", a.ip(), a.port(), m.port()))
        .collect();
    let conf = dir.join("proxy-config.js");
    std::fs::write(
        &conf,
        format!(
            "{{nodes: [{}], address: \"127.0.0.1\", port: {port}, mgmt_address: \"127.0.0.1\", mgmt_port: {}, \
             forkCount: 0, checkInterval: 1000, cacheSize: 10000, server: \"./servers/udp\"}}\n",
            nodes.join(", "),
            free_port()
        ),
    )
    .expect("write the proxy.js config");
    let relay = Running::start(
        "statsd proxy.js",
        Command::new("node").arg("proxy.js").arg(&conf).current_dir(&statsd),
        dir.join("proxy.out"),
    );
    (relay, format!("127.0.0.1:{port}").parse().expect("addr"))
}

/// One differential run: the peer, then consthash, over the same sinks and lines.
fn differential(peer: &str, algo: &str, replicas: usize) {
    let proto = if algo == "statsd_hashring" {
        Proto::Statsd
    } else {
        Proto::Graphite
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let sinks = Sinks::start(proto);
    let mut g = Gen(0x9e37_79b9_7f4a_7c15 ^ replicas as u64);
    let mut lines = match proto {
        Proto::Graphite => graphite_lines(&mut g),
        Proto::Statsd => statsd_lines(&mut g),
    };
    // c-relay does not forward a line that is only an untagged name (consthash counts it as `no_value`); first in
    // the stream, so that one forwarded by mistake reaches its sink before the run is complete.
    let unforwarded = if peer == "carbon-c-relay" { 3 } else { 0 };
    for n in 0..unforwarded {
        lines.insert(0, format!("only.a.name{n}").into_bytes());
    }
    let forwarded = (lines.len() - unforwarded) * replicas;
    let peer_relay = || match peer {
        "carbon-c-relay" => c_relay(dir.path(), algo, replicas, &sinks),
        "carbon-relay" => carbon_relay(dir.path(), replicas, &sinks),
        _ => proxy_js(dir.path(), &sinks),
    };
    let theirs = run_through(proto, peer_relay, &sinks, &lines, forwarded);
    let ours_relay = || consthash_relay(dir.path(), proto, algo, replicas, &sinks);
    let ours = run_through(proto, ours_relay, &sinks, &lines, forwarded);
    compare(proto, peer, &theirs, &ours);
}

#[test]
fn c_relay_carbon_ch_replication_1() {
    differential("carbon-c-relay", "carbon_ch_c_relay", 1);
}

#[test]
fn c_relay_carbon_ch_replication_2() {
    differential("carbon-c-relay", "carbon_ch_c_relay", 2);
}

#[test]
fn c_relay_fnv1a_ch_replication_1() {
    differential("carbon-c-relay", "fnv1a_ch", 1);
}

#[test]
fn c_relay_fnv1a_ch_replication_2() {
    differential("carbon-c-relay", "fnv1a_ch", 2);
}

#[test]
fn c_relay_jump_fnv1a_ch_replication_1() {
    differential("carbon-c-relay", "jump_fnv1a_ch", 1);
}

#[test]
fn c_relay_jump_fnv1a_ch_replication_2() {
    differential("carbon-c-relay", "jump_fnv1a_ch", 2);
}

#[test]
fn carbon_relay_carbon_ch_replication_1() {
    differential("carbon-relay", "carbon_ch", 1);
}

#[test]
fn carbon_relay_carbon_ch_replication_2() {
    differential("carbon-relay", "carbon_ch", 2);
}

#[test]
fn proxy_js_statsd_hashring() {
    differential("proxy.js", "statsd_hashring", 1);
}
