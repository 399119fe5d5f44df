//! The real binary: usage, version, config checking, a relay run with signals and the pid file.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rustix::process::{kill_process, Pid, Signal};

use crate::sink::Sink;
use crate::wait_until;

const BIN: &str = env!("CARGO_BIN_EXE_consthash");

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).output().expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

#[test]
fn no_arguments_print_the_flags_and_exit_1() {
    let (code, _, err) = run(&[]);
    assert_eq!(code, 1);
    for flag in [
        "--config",
        "--prereg",
        "--loglevel",
        "--version",
        "--check-config",
        "config.toml",
    ] {
        assert!(err.contains(flag), "usage names {flag}: {err}");
    }
}

#[test]
fn version() {
    let (code, out, _) = run(&["--version"]);
    assert_eq!(code, 0);
    assert_eq!(out.trim(), format!("ConstHash version {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn every_shipped_config_validates() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/configs");
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).expect("configs/") {
        let path = entry.expect("entry").path();
        let name = path.to_string_lossy().into_owned();
        if !name.ends_with(".toml") || name.ends_with("-prereg.toml") {
            continue;
        }
        let prereg = name.replace(".toml", "-prereg.toml");
        let mut args = vec!["--check-config", "--config", &name];
        if std::path::Path::new(&prereg).exists() {
            args.extend(["--prereg", &prereg]);
        }
        let (code, out, err) = run(&args);
        assert_eq!(code, 0, "{name}: {out}{err}");
        assert!(out.contains("configuration OK"), "{name}: {out}");
        checked += 1;
    }
    assert!(checked >= 5, "configs/ holds the example configs");
}

#[test]
fn a_bad_config_prints_every_error_with_its_key_path_and_starts_nothing() {
    let port = free_port();
    let held = std::net::TcpListener::bind(("127.0.0.1", port)).expect("hold the port");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        format!(
            "[default]\nheartbeat_time_delay = 2\n\
             [good]\nlisten = \"tcp://127.0.0.1:{port}\"\nmsg_type = \"graphite\"\n[[good.servers]]\nservers = [\"tcp://127.0.0.1:1\"]\n\
             [typo]\nlisten = \"tcp://127.0.0.1:0\"\nmsg_type = \"graphite\"\nsevrers = 1\n[[typo.servers]]\nservers = [\"tcp://127.0.0.1:1\"]\n\
             [kind]\nlisten = \"udp://127.0.0.1:0\"\nmsg_type = \"carbon\"\n[[kind.servers]]\nservers = [\"tcp://127.0.0.1:1\"]\n\
             [keys]\nlisten = \"udp://127.0.0.1:0\"\nmsg_type = \"statsd\"\n[[keys.servers]]\nservers = [\"tcp://a:1\", \"tcp://b:1\"]\nhashkeys = [\"x\"]\n"
        ),
    )
    .expect("write");
    let p = path.to_string_lossy().into_owned();
    for extra in [&[][..], &["--check-config"][..]] {
        let mut args = vec!["--config", p.as_str()];
        args.extend_from_slice(extra);
        let (code, _, err) = run(&args);
        assert_eq!(code, 1, "{err}");
        for want in [
            "typo.sevrers",
            "kind.msg_type",
            "keys.servers[0].hashkeys",
            "heartbeat_time_delay",
        ] {
            assert!(
                err.lines().any(|l| l.contains("bad.toml") && l.contains(want)),
                "an error names {want}:\n{err}"
            );
        }
        assert!(
            !err.contains("listening") && !err.contains("in use"),
            "nothing was started:\n{err}"
        );
    }
    drop(held);
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn signal(child: &Child, sig: Signal) {
    kill_process(Pid::from_child(child), sig).expect("signal the child");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_relays_and_stops_cleanly_on_sigterm() {
    let sink = Sink::tcp().await;
    let port = free_port();
    let dir = tempfile::tempdir().expect("tempdir");
    let pid_file = dir.path().join("consthash.pid");
    std::fs::write(&pid_file, format!("{}\n", std::process::id())).expect("a live pid in the pid file");
    let config = dir.path().join("relay.toml");
    std::fs::write(
        &config,
        format!(
            "[default]\npid_file = \"{}\"\n[relay]\nlisten = \"tcp://127.0.0.1:{port}\"\nmsg_type = \"graphite\"\n\
             [[relay.servers]]\nservers = [\"{}\"]\n",
            pid_file.display(),
            sink.url()
        ),
    )
    .expect("write config");
    let child = Command::new(BIN)
        .args(["--config", &config.to_string_lossy(), "--loglevel", "info"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut child = Running(child);
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let mut connected = None;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while connected.is_none() {
        assert!(std::time::Instant::now() < deadline, "the relay never listened");
        connected = tokio::net::TcpStream::connect(addr).await.ok();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(connected);
    let lines: Vec<String> = (0..5_000)
        .map(|i| format!("bin.key{} {i} 1700000000", i % 50))
        .collect();
    crate::send_tcp(addr, &lines).await;
    wait_until("lines through the binary", Duration::from_secs(30), || {
        sink.count() >= lines.len()
    })
    .await;
    assert_eq!(
        std::fs::read_to_string(&pid_file).expect("pid file").trim(),
        child.0.id().to_string(),
        "the relay wrote its pid"
    );

    signal(&child.0, Signal::HUP); // logged and ignored
    signal(&child.0, Signal::TERM);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.0.try_wait().expect("wait") {
            break s;
        }
        assert!(std::time::Instant::now() < deadline, "no exit after SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(status.code(), Some(0));
    let mut err = String::new();
    child
        .0
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err)
        .expect("read stderr");
    assert!(
        err.contains(&format!("Process {} is already running", std::process::id())),
        "{err}"
    );
    assert!(err.contains("SIGHUP"), "{err}");
    assert!(!pid_file.exists(), "the pid file is removed on exit");
    let mut got = sink.lines();
    got.sort();
    let mut want = lines;
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn hashcheck_prints_the_placement_without_starting_anything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("c.toml");
    let port = free_port();
    let held = std::net::TcpListener::bind(("127.0.0.1", port)).expect("hold the listen port");
    // §7.7 C: crc32/graphite/4 over 6002..6004
    std::fs::write(
        &path,
        format!(
            "[default]\n[relay]\nlisten = \"tcp://127.0.0.1:{port}\"\nmsg_type = \"graphite\"\n[[relay.servers]]\n\
             servers = [\"tcp://127.0.0.1:6002\", \"tcp://127.0.0.1:6003\", \"tcp://127.0.0.1:6004\"]\n"
        ),
    )
    .expect("write");
    let (code, out, err) = run(&[
        "hashcheck",
        "--config",
        &path.to_string_lossy(),
        "moo.goo.org",
        "stats.timers.foo",
    ]);
    assert_eq!(code, 0, "{err}");
    let docs: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).expect("JSON")).collect();
    assert_eq!(
        docs[0]["relay"]["to_servers"],
        serde_json::json!(["tcp://127.0.0.1:6004"])
    );
    assert_eq!(docs[0]["relay"]["hash_value"], serde_json::json!([3731202008u32]));
    assert_eq!(
        docs[1]["relay"]["to_servers"],
        serde_json::json!(["tcp://127.0.0.1:6002"])
    );
    drop(held);
}

#[test]
fn a_listen_address_in_use_stops_the_start_with_exit_2() {
    let held = std::net::TcpListener::bind("127.0.0.1:0").expect("hold a port");
    let port = held.local_addr().expect("addr").port();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("busy.toml");
    std::fs::write(
        &path,
        format!(
            "[default]\nshutdown_timeout = 60\n[first]\nlisten = \"udp://127.0.0.1:0\"\nmsg_type = \"statsd\"\n[[first.servers]]\nservers = [\"tcp://127.0.0.1:9\"]\n\
             [busy]\nlisten = \"tcp://127.0.0.1:{port}\"\nmsg_type = \"graphite\"\n[[busy.servers]]\nservers = [\"tcp://127.0.0.1:9\"]\n"
        ),
    )
    .expect("write");
    let started = std::time::Instant::now();
    let (code, _, err) = run(&["--config", &path.to_string_lossy()]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("[busy] listen tcp://127.0.0.1:") && err.contains("in use"),
        "{err}"
    );
    // what had started (the first section's senders) is stopped, not left to run out shutdown_timeout
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "did not wait out the 60 s drain"
    );
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sigterm_cuts_a_long_shutdown_short() {
    // a sink that accepts and never reads, so that the shutdown would wait shutdown_timeout for the queue
    let stuck = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let stuck_addr = stuck.local_addr().expect("addr");
    let held = tokio::spawn(async move {
        let mut conns = Vec::new();
        while let Ok((c, _)) = stuck.accept().await {
            conns.push(c);
        }
    });
    let (port, admin) = (free_port(), free_port());
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("relay.toml");
    std::fs::write(
        &config,
        format!(
            "[default]\nshutdown_timeout = 600\nwrite_timeout = \"600s\"\ninternal_health_server_listen = \"127.0.0.1:{admin}\"\n\
             [relay]\nlisten = \"tcp://127.0.0.1:{port}\"\nmsg_type = \"graphite\"\n\
             [[relay.servers]]\nservers = [\"tcp://{stuck_addr}\"]\n"
        ),
    )
    .expect("write config");
    let child = Command::new(BIN)
        .args(["--config", &config.to_string_lossy()])
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut child = Running(child);
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(std::time::Instant::now() < deadline, "the relay never listened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let client = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let mut c = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let chunk: String = (0..10_000)
            .map(|i| format!("stuck.key{} {i} 1700000000\n", i % 50))
            .collect();
        // until the relay stops reading: more than the kernel buffers toward the stuck sink hold
        while c.write_all(chunk.as_bytes()).await.is_ok() {}
    });
    // (lines queued, lines sent) from /metrics
    let books = || async {
        let body = reqwest::get(format!("http://127.0.0.1:{admin}/metrics"))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        let value = |family: &str| {
            body.lines()
                .find(|l| l.starts_with(family))
                .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        };
        Some((
            value("consthash_out_queue_lines{")?,
            value("consthash_lines_sent_total{")?,
        ))
    };
    // stuck: the kernel buffers toward the sink are full (nothing is sent any more) and lines are queued
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let (mut last_sent, mut still) = (u64::MAX, 0);
    while still < 25 {
        assert!(std::time::Instant::now() < deadline, "the sink never looked stuck");
        let (queued, sent) = books().await.unwrap_or((0, 0));
        still = if queued > 0 && sent == last_sent { still + 1 } else { 0 };
        last_sent = sent;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    signal(&child.0, Signal::TERM);
    // the shutdown has begun once the listener is gone
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(addr).await.is_ok() {
        assert!(std::time::Instant::now() < deadline, "the listener never stopped");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if let Some(status) = child.0.try_wait().expect("wait") {
        let mut err = String::new();
        let _ = child.0.stderr.take().expect("stderr").read_to_string(&mut err);
        panic!("exited ({status}) instead of draining into the stuck sink:\n{err}");
    }
    signal(&child.0, Signal::TERM);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.0.try_wait().expect("wait") {
            break s;
        }
        assert!(std::time::Instant::now() < deadline, "no exit after the second SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(status.code(), Some(1));
    let mut err = String::new();
    child
        .0
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err)
        .expect("read stderr");
    assert!(err.contains("second signal"), "{err}");
    client.abort();
    held.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_file_descriptors_the_relay_backs_off_logs_little_and_recovers() {
    let sink = Sink::tcp().await;
    let port = free_port();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("relay.toml");
    std::fs::write(
        &config,
        format!(
            "[default]\n[relay]\nlisten = \"tcp://127.0.0.1:{port}\"\nmsg_type = \"graphite\"\n\
             [[relay.servers]]\nservers = [\"{}\"]\n",
            sink.url()
        ),
    )
    .expect("write config");
    // 64 descriptors, soft and hard: the relay cannot raise the limit
    let child = Command::new("prlimit")
        .args(["--nofile=64:64", BIN, "--config", &config.to_string_lossy()])
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn under prlimit (util-linux)");
    let mut child = Running(child);
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(std::time::Instant::now() < deadline, "the relay never listened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // more clients than descriptors: accept fails with EMFILE while they are connected
    let mut clients = Vec::new();
    for _ in 0..100 {
        clients.push(
            tokio::net::TcpStream::connect(addr)
                .await
                .expect("connect (the backlog takes it)"),
        );
    }
    let exhausted = std::time::Instant::now();
    let deadline = exhausted + Duration::from_secs(20);
    // keep the descriptors exhausted for 3 s: a busy accept loop would have logged thousands of lines by then
    while exhausted.elapsed() < Duration::from_secs(3) {
        assert!(std::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(clients);
    // descriptors free again: a new client is served
    let line = "after.emfile 1 1700000000".to_string();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !sink.lines().contains(&line) {
        assert!(std::time::Instant::now() < deadline, "the relay never accepted again");
        if let Ok(mut c) = tokio::net::TcpStream::connect(addr).await {
            use tokio::io::AsyncWriteExt;
            let _ = c.write_all(format!("{line}\n").as_bytes()).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    signal(&child.0, Signal::TERM);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while child.0.try_wait().expect("wait").is_none() {
        assert!(std::time::Instant::now() < deadline, "no exit after SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut err = String::new();
    child
        .0
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err)
        .expect("read stderr");
    let warnings = err.lines().filter(|l| l.contains("accept failed")).count();
    assert!(warnings >= 1, "the exhaustion is logged:\n{err}");
    assert!(
        warnings <= 10,
        "at most about one line a second, not a busy loop: {warnings} lines"
    );
}
