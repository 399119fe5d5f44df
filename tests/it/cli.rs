//! The real binary: usage, version, config checking, a relay run with signals and the pid file.

use std::process::Command;
use std::time::Duration;

use rustix::process::Signal;

use crate::binary::{free_port, wait_listening, Running, BIN};
use crate::sink::{HoldingSink, Sink};
use crate::{flood, metric_value, wait_until};

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).output().expect("runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
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
    let mut child =
        Running::spawn(Command::new(BIN).args(["--config", &config.to_string_lossy(), "--loglevel", "info"]));
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    wait_listening(addr).await;
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
        child.id().to_string(),
        "the relay wrote its pid"
    );

    child.signal(Signal::HUP); // logged and ignored
    child.signal(Signal::TERM);
    assert_eq!(child.exit("after SIGTERM").await.code(), Some(0));
    let err = child.log();
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
fn hashcheck_answers_with_each_sections_name_rules() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("c.toml");
    let section = |name: &str, algo: &str| {
        format!(
            "[{name}]\nlisten = \"tcp://127.0.0.1:{}\"\nmsg_type = \"graphite\"\nhasher_algo = \"{algo}\"\n\
             [[{name}.servers]]\nservers = [\"tcp://127.0.0.2:6002\", \"tcp://127.0.0.3:6002\", \"tcp://127.0.0.4:6002\"]\n",
            free_port()
        )
    };
    let text = format!(
        "[default]\n{}{}{}",
        section("go", "crc32"),
        section("cr", "jump_fnv1a_ch"),
        section("carbon", "carbon_ch")
    );
    std::fs::write(&path, text).expect("write");
    let names = ["disk.used;host=web01;dc=ams", "disk.used", "a..b(c)"];
    let mut args = vec!["hashcheck", "--config", path.to_str().expect("utf-8 path")];
    args.extend(names);
    let (code, out, err) = run(&args);
    assert_eq!(code, 0, "{err}");
    let docs: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).expect("JSON")).collect();
    // c-relay names: a tagged name is hashed on its untagged part, so it goes where that part goes.
    assert_eq!(docs[0]["cr"]["name"], names[0]);
    assert_eq!(docs[0]["cr"]["hash_key"], "disk.used");
    assert_eq!(docs[0]["cr"]["to_servers"], docs[1]["cr"]["to_servers"]);
    assert_eq!(docs[2]["cr"]["name"], "a.b_c_");
    // The Go relay's rewrite hashes the whole (tagged) name; carbon forwards names as written.
    assert_eq!(docs[0]["go"]["hash_key"], names[0]);
    assert_eq!(docs[2]["go"]["name"], "a.b_c_");
    assert_eq!(docs[2]["carbon"]["name"], "a..b(c)");
    assert_eq!(docs[2]["carbon"]["hash_key"], "a..b(c)");
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
    // a sink that never reads, so that the shutdown would wait shutdown_timeout for the queue
    let stuck = HoldingSink::new().await;
    let (port, admin) = (free_port(), free_port());
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("relay.toml");
    std::fs::write(
        &config,
        format!(
            "[default]\nshutdown_timeout = 600\nwrite_timeout = \"500ms\"\ninternal_health_server_listen = \"127.0.0.1:{admin}\"\n\
             [relay]\nlisten = \"tcp://127.0.0.1:{port}\"\nmsg_type = \"graphite\"\n\
             [[relay.servers]]\nservers = [\"tcp://{}\"]\n",
            stuck.addr
        ),
    )
    .expect("write config");
    let mut child = Running::spawn(Command::new(BIN).args(["--config", &config.to_string_lossy()]));
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    wait_listening(addr).await;
    let client = flood(addr);
    // (lines queued, stalled connections) from /metrics
    let books = || async {
        let body = reqwest::get(format!("http://127.0.0.1:{admin}/metrics"))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        Some((
            metric_value(&body, "consthash_out_queue_lines{")?,
            metric_value(&body, "consthash_destination_stalled_connections{")?,
        ))
    };
    // stuck: the sink takes no bytes (its connection is stalled) and lines are queued
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        assert!(std::time::Instant::now() < deadline, "the sink never stalled");
        if let Some((queued, stalled)) = books().await {
            if queued > 0 && stalled > 0 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.signal(Signal::TERM);
    child
        .wait_log("the shutdown began", |l| l.contains("shutting down"))
        .await;
    if let Some(status) = child.exited() {
        panic!(
            "exited ({status}) instead of draining into the stuck sink:\n{}",
            child.log()
        );
    }
    child.signal(Signal::TERM);
    assert_eq!(child.exit("after the second SIGTERM").await.code(), Some(1));
    let err = child.log();
    assert!(err.contains("second signal"), "{err}");
    client.abort();
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
    // 64 descriptors, soft and hard: the relay cannot raise the limit (prlimit is util-linux)
    let mut child =
        Running::spawn(Command::new("prlimit").args(["--nofile=64:64", BIN, "--config", &config.to_string_lossy()]));
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    wait_listening(addr).await;
    // more clients than descriptors: accept fails with EMFILE while they are connected
    let mut clients = Vec::new();
    for _ in 0..100 {
        clients.push(
            tokio::net::TcpStream::connect(addr)
                .await
                .expect("connect (the backlog takes it)"),
        );
    }
    // not a busy loop: the pause grows to its 1 s cap, and one log line reports several failures
    let backed_off = |l: &str| {
        let failed = l
            .split("failed=")
            .nth(1)
            .and_then(|f| f.split(' ').next()?.parse::<u64>().ok());
        l.contains("accept failed") && l.contains("pause=1s") && failed.is_some_and(|n| n > 1)
    };
    child
        .wait_log("accept errors logged with a 1 s pause and a count", backed_off)
        .await;
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
    child.signal(Signal::TERM);
    assert_eq!(child.exit("after SIGTERM").await.code(), Some(0));
}
