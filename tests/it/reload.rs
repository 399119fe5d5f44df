//! Reload without loss (in process, `Relay::reload`; SIGHUP and `POST /reload` of the binary are in
//! `reload_binary`): destinations that remain keep their queues and connections, listeners their sockets and
//! clients, accumulators their state; removed destinations drain and count the rest; a reload that cannot be
//! applied changes nothing.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use consthash::app::Relay;
use consthash::config::{self, Config, PreRegConfig};
use consthash::telemetry::DropReason;
use tokio::io::AsyncWriteExt;

use crate::binary::{free_port, wait_listening, Running, BIN};
use crate::sink::{HoldingSink, Sink};
use crate::{tcp_addr, wait_until};
use rustix::process::Signal;
use std::process::Command;

const LONG: Duration = Duration::from_secs(60);

fn main_config(text: &str) -> Config {
    config::load_main(text, "test.toml").unwrap_or_else(|e| panic!("invalid:\n{e}\n---\n{text}"))
}

fn prereg_config(text: &str, main: &Config) -> PreRegConfig {
    config::load_prereg(text, "prereg.toml", main).unwrap_or_else(|e| panic!("invalid:\n{e}\n---\n{text}"))
}

/// A graphite section `in` on one TCP listener hashing over `sinks`.
fn relay_toml(sinks: &[&str]) -> String {
    let servers: Vec<String> = sinks.iter().map(|s| format!("\"{s}\"")).collect();
    format!(
        "[default]\nshutdown_timeout = \"5s\"\n\
         [in]\nlisten = \"tcp://127.0.0.1:0\"\nmsg_type = \"graphite\"\nhasher_algo = \"jump_fnv1a_ch\"\n\
         [[in.servers]]\nservers = [{}]\n",
        servers.join(", ")
    )
}

/// Every line read by `sinks`, by its unique value field, with the sink that read it.
fn by_value(sinks: &[&Sink]) -> HashMap<u64, Vec<usize>> {
    let mut seen: HashMap<u64, Vec<usize>> = HashMap::new();
    for (i, s) in sinks.iter().enumerate() {
        for l in s.lines() {
            let v = l.split(' ').nth(1).and_then(|v| v.parse().ok()).expect("value field");
            seen.entry(v).or_default().push(i);
        }
    }
    seen
}

fn dropped(relay: &Relay, section: &str) -> u64 {
    let s = relay.section(section).expect("section");
    s.backend.destinations().iter().map(|d| d.stats.dropped_total()).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchanged_reload_and_an_added_ring_member_under_load_lose_no_line_and_reset_no_client() {
    let (a, b, c) = (Sink::tcp().await, Sink::tcp().await, Sink::tcp().await);
    let mut relay = Relay::start(&main_config(&relay_toml(&[&a.url(), &b.url()])), None)
        .await
        .expect("start");
    let addr = tcp_addr(&relay, "in");
    const LINES: u64 = 400_000;
    // one client connection writing all the time, across the reload
    let mut client = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let writer = tokio::spawn(async move {
        let mut next = 0u64;
        while next < LINES {
            let chunk: String = (next..(next + 2_000).min(LINES))
                .map(|i| format!("reload.key{} {i} 1700000000\n", i % 997))
                .collect();
            client
                .write_all(chunk.as_bytes())
                .await
                .expect("the client is never reset");
            next += 2_000;
        }
        client
    });
    wait_until("traffic flowing before the reload", LONG, || {
        a.count() + b.count() > 20_000
    })
    .await;
    let kept: Vec<_> = relay.section("in").expect("in").backend.destinations();
    // First the same configuration again: nothing changes hands.
    relay
        .reload(&main_config(&relay_toml(&[&a.url(), &b.url()])), None)
        .await
        .expect("reload unchanged");
    let same = relay.section("in").expect("in").backend.destinations();
    assert!(
        same.len() == kept.len() && same.iter().zip(&kept).all(|(s, k)| Arc::ptr_eq(s, k)),
        "an unchanged reload keeps every destination"
    );
    let before = a.count() + b.count();
    wait_until("traffic flowing after the unchanged reload", LONG, || {
        a.count() + b.count() > before + 20_000
    })
    .await;
    // Then a third member.
    let summary = relay
        .reload(&main_config(&relay_toml(&[&a.url(), &b.url(), &c.url()])), None)
        .await
        .expect("reload");
    let after: Vec<_> = relay.section("in").expect("in").backend.destinations();
    for d in &kept {
        assert!(
            after.iter().any(|n| Arc::ptr_eq(n, d)),
            "{} is the same destination (queue, connections) after the reload",
            d.url.raw
        );
    }
    assert_eq!(tcp_addr(&relay, "in"), addr, "the listener kept its socket: {summary}");
    let mut client = writer.await.expect("writer");
    client.shutdown().await.expect("close");
    wait_until("every line delivered", LONG, || {
        (a.count() + b.count() + c.count()) as u64 >= LINES
    })
    .await;
    let seen = by_value(&[&a, &b, &c]);
    assert_eq!(seen.len() as u64, LINES, "every line arrived");
    assert!(seen.values().all(|s| s.len() == 1), "no line arrived twice");
    assert!(c.count() > 0, "the new member took its share after the reload");
    assert_eq!(dropped(&relay, "in"), 0, "nothing dropped");
    let sent: u64 = after.iter().map(|d| d.stats.sent_lines.load(Relaxed)).sum();
    assert_eq!(sent, LINES, "the books: sent = what the sinks read");
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_member_drains_and_counts_the_rest_and_a_removed_section_stops_listening() {
    let (a, held) = (Sink::tcp().await, HoldingSink::new().await);
    let held_url = format!("tcp://{}", held.addr);
    // one connection to the held member, and a queue that takes everything its kernel buffers do not
    let config = |servers: &[&str], timeout: &str| {
        relay_toml(servers).replace(
            "shutdown_timeout = \"5s\"\n",
            &format!("shutdown_timeout = \"{timeout}\"\nmax_pool_connections = 1\nout_queue_lines = 1000000\n"),
        ) + &format!(
            "[gone]\nlisten = \"tcp://127.0.0.1:0\"\nmsg_type = \"graphite\"\n[[gone.servers]]\nservers = [\"{}\"]\n",
            a.url()
        )
    };
    let mut relay = Relay::start(&main_config(&config(&[&held_url], "5s")), None)
        .await
        .expect("start");
    let gone = tcp_addr(&relay, "gone");
    // more than the kernel buffers toward the held member hold, so that some wait in its queue
    const LINES: u64 = 400_000;
    let lines: Vec<String> = (0..LINES)
        .map(|i| format!("drain.key{} {i} 1700000000", i % 5000))
        .collect();
    crate::send_tcp(tcp_addr(&relay, "in"), &lines).await;
    let section = relay.section("in").expect("in").clone();
    wait_until("every line routed", LONG, || {
        section.stats.valid_lines.load(Relaxed) == LINES
    })
    .await;
    let to_held = section.backend.destinations()[0].clone();
    assert!(to_held.queue.depth().0 > 0, "lines wait in the held member's queue");
    let without_gone = config(&[&a.url()], "1s");
    let without_gone = &without_gone[..without_gone.find("[gone]").expect("gone")];
    relay.reload(&main_config(without_gone), None).await.expect("reload");
    drop(section);
    assert!(relay.section("gone").is_none(), "the section is gone");
    wait_until("the removed section's listener closed", LONG, || {
        std::net::TcpStream::connect(gone).is_err()
    })
    .await;
    // the held member drains for shutdown_timeout (1 s), then what it still holds is counted
    wait_until("the removed member's lines are counted", LONG, || {
        to_held.stats.sent_lines.load(Relaxed) + to_held.stats.dropped_total() == LINES
    })
    .await;
    let (sent, dropped) = (
        to_held.stats.sent_lines.load(Relaxed),
        to_held.stats.dropped(DropReason::Shutdown),
    );
    assert!(dropped > 0, "the held member could not drain everything");
    assert_eq!(to_held.stats.dropped_total(), dropped, "every drop counted as shutdown");
    assert_eq!(
        held.held_lines().len() as u64,
        sent,
        "sent = what its kernel acknowledged"
    );
    assert_eq!(to_held.queue.depth().0, 0);
    // the section goes on with its new member
    let more: Vec<String> = (0..100).map(|i| format!("after.key{i} {i} 1700000000")).collect();
    crate::send_tcp(tcp_addr(&relay, "in"), &more).await;
    wait_until("the new member gets the new lines", LONG, || a.count() == 100).await;
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accumulator_that_remains_keeps_its_state_and_a_changed_one_flushes_it() {
    let out = Sink::tcp().await;
    let main = format!(
        "[default]\n[in]\nlisten = \"tcp://127.0.0.1:0\"\nmsg_type = \"statsd\"\n[[in.servers]]\nservers = [\"{0}\"]\n\
         [out]\nlisten = \"backend_only\"\nmsg_type = \"graphite\"\n[[out.servers]]\nservers = [\"{0}\"]\n",
        out.url()
    );
    let prereg = |flush: &str| {
        format!(
            "[g]\nlisten_server = \"in\"\ndefault_backend = \"in\"\n[[g.map]]\nnoop = \"true\"\n\
             [g.accumulator]\nbackend = \"out\"\ninput_format = \"statsd\"\noutput_format = \"graphite\"\n\
             accumulate_flush = \"{flush}\"\n"
        )
    };
    let config = main_config(&main);
    let mut relay = Relay::start(&config, Some(&prereg_config(&prereg("1h"), &config)))
        .await
        .expect("start");
    let addr = tcp_addr(&relay, "in");
    let send = |n: usize| {
        let lines: Vec<String> = (0..n).map(|i| format!("acc.k{}:1|c", i % 10)).collect();
        async move { crate::send_tcp(addr, &lines).await }
    };
    send(1000).await;
    let acc = relay.accumulator("in").expect("accumulator").clone();
    wait_until("1000 samples folded", LONG, || acc.stats.lines.load(Relaxed) == 1000).await;
    relay
        .reload(&config, Some(&prereg_config(&prereg("1h"), &config)))
        .await
        .expect("reload");
    assert!(
        Arc::ptr_eq(relay.accumulator("in").expect("accumulator"), &acc),
        "the same accumulator"
    );
    send(1000).await;
    wait_until("1000 more folded into the kept state", LONG, || {
        acc.stats.lines.load(Relaxed) == 2000
    })
    .await;
    assert_eq!(acc.keys(), 10);
    assert_eq!(out.count(), 0, "nothing flushed yet");
    // a changed accumulator: the old one flushes everything it holds, the new one starts empty
    relay
        .reload(&config, Some(&prereg_config(&prereg("2h"), &config)))
        .await
        .expect("reload");
    assert!(!Arc::ptr_eq(relay.accumulator("in").expect("accumulator"), &acc));
    wait_until("the replaced accumulator's final flush", LONG, || {
        out.lines().iter().filter(|l| l.starts_with("stats_counts.")).count() == 10
    })
    .await;
    let counts: Vec<String> = out
        .lines()
        .into_iter()
        .filter(|l| l.starts_with("stats_counts."))
        .collect();
    for l in &counts {
        assert_eq!(
            l.split(' ').nth(1),
            Some("200"),
            "each key's total across the first reload: {l}"
        );
    }
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_cannot_bind_changes_nothing() {
    let (a, b) = (Sink::tcp().await, Sink::tcp().await);
    let mut relay = Relay::start(&main_config(&relay_toml(&[&a.url()])), None)
        .await
        .expect("start");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let busy = relay_toml(&[&b.url()])
        + &format!(
            "[more]\nlisten = \"tcp://{}\"\nmsg_type = \"graphite\"\n[[more.servers]]\nservers = [\"{}\"]\n",
            taken.local_addr().expect("addr"),
            b.url()
        );
    let err = relay
        .reload(&main_config(&busy), None)
        .await
        .expect_err("address in use");
    assert!(err.to_string().contains("[more]"), "{err}");
    assert!(relay.section("more").is_none());
    let lines: Vec<String> = (0..100).map(|i| format!("still.k{i} {i} 1700000000")).collect();
    crate::send_tcp(tcp_addr(&relay, "in"), &lines).await;
    wait_until("the running config still routes to a", LONG, || a.count() == 100).await;
    assert_eq!(b.count(), 0);
    relay.shutdown().await;
}

/// `[default]` with an admin server on `admin`, and the `in` section on `port` hashing over `sinks`.
fn binary_toml(admin: u16, port: u16, sinks: &[&str]) -> String {
    relay_toml(sinks)
        .replace(
            "[default]\n",
            &format!("[default]\ninternal_health_server_listen = \"127.0.0.1:{admin}\"\n"),
        )
        .replace("127.0.0.1:0", &format!("127.0.0.1:{port}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_and_post_reload_apply_the_files_and_an_invalid_file_changes_nothing() {
    let (a, b) = (Sink::tcp().await, Sink::tcp().await);
    let (admin, port) = (free_port(), free_port());
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("relay.toml");
    std::fs::write(&file, binary_toml(admin, port, &[&a.url()])).expect("write");
    let child = Running::spawn(Command::new(BIN).args(["--config", &file.to_string_lossy(), "--loglevel", "info"]));
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    wait_listening(addr).await;
    let mut client = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let batch = |from: u64| -> String {
        (from..from + 1000)
            .map(|i| format!("hup.key{} {i} 1700000000\n", i % 100))
            .collect()
    };
    client.write_all(batch(0).as_bytes()).await.expect("write");
    wait_until("the first lines on a", LONG, || a.count() == 1000).await;

    // SIGHUP: b joins the ring; the client's connection goes on
    std::fs::write(&file, binary_toml(admin, port, &[&a.url(), &b.url()])).expect("write");
    child.signal(Signal::HUP);
    child
        .wait_log("the reload", |l| l.contains("configuration reloaded"))
        .await;
    client
        .write_all(batch(1000).as_bytes())
        .await
        .expect("the client is not reset");
    wait_until("the second lines on a and b", LONG, || a.count() + b.count() == 2000).await;
    assert!(b.count() > 0, "b is in the ring");

    // an invalid file: every error answered and logged, the running config stays
    let invalid = binary_toml(admin, port, &[&b.url()]).replace("msg_type", "bogus_key = 1\nmsg_type");
    std::fs::write(&file, invalid).expect("write");
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{admin}/reload");
    let r = http
        .post(&url)
        .header("X-Requested-By", "test")
        .send()
        .await
        .expect("POST");
    let status = r.status();
    let body = r.text().await.expect("body");
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("bogus_key") || body.contains("[in]"),
        "the error names the key: {body}"
    );
    let before_b = b.count();
    client.write_all(batch(2000).as_bytes()).await.expect("write");
    wait_until("the third lines still on a and b", LONG, || {
        a.count() + b.count() == 3000
    })
    .await;
    assert!(b.count() > before_b && a.count() > 1000, "still both members");

    // a web page may not reload
    let r = http
        .post(&url)
        .header("Sec-Fetch-Site", "cross-site")
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 403);
    // POST /reload: only b from now on
    std::fs::write(&file, binary_toml(admin, port, &[&b.url()])).expect("write");
    let r = http
        .post(&url)
        .header("X-Requested-By", "test")
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    let a_before = a.count();
    client.write_all(batch(3000).as_bytes()).await.expect("write");
    wait_until("the fourth lines all on b", LONG, || a.count() + b.count() == 4000).await;
    assert_eq!(a.count(), a_before, "a left the ring");
    drop(client);
    let stats: serde_json::Value =
        serde_json::from_str(&crate::get_body(format!("http://127.0.0.1:{admin}/stats")).await).expect("json");
    assert_eq!(stats["in"]["dropped_lines_count"].as_u64().unwrap_or(0), 0, "{stats}");
    child.signal(Signal::TERM);
}
