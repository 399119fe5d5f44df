//! "Sent" means the peer has it: a sink whose kernel buffers are full, a stalled destination, and a peer that
//! resets its connections. The books balance exactly: lines read = sent + dropped + queued + in flight, and what
//! the sinks hold or read is what the relay counted as sent.

use std::collections::HashSet;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use consthash::backend::Destination;
use consthash::section::Section;
use tokio::time::Instant;

use crate::sink::{HoldingSink, Sink};
use crate::{send_tcp, start, tcp_addr, wait_until};

const LONG: Duration = Duration::from_secs(60);
/// More lines than the kernel buffers between the relay and a sink can hold, so that some wait in the queue.
const LINES: usize = 400_000;

fn lines(tag: &str) -> Vec<String> {
    (0..LINES)
        .map(|i| format!("ack.{tag}.k{} {i} 1700000000", i % 997))
        .collect()
}

fn relay_config(sink: std::net::SocketAddr) -> String {
    format!(
        "[default]\ninternal_health_server_listen = \"127.0.0.1:0\"\n\
         max_pool_connections = 1\nwrite_timeout = 300\nreconnect_backoff_max = 200\n\
         out_queue_lines = 20000\nheartbeat_time_delay = \"200ms\"\nheartbeat_time_timeout = \"100ms\"\n\
         failed_heartbeat_count = 2\n\
         [relay]\nlisten = \"tcp://127.0.0.1:0\"\nmsg_type = \"graphite\"\n[[relay.servers]]\n\
         servers = [\"tcp://{sink}\"]\n"
    )
}

/// Lines read = sent + dropped + queued + in flight, for the section's only destination.
fn assert_books(section: &Section, dest: &Destination) {
    let read = section.stats.valid_lines.load(Relaxed);
    let (sent, dropped) = (dest.stats.sent_lines.load(Relaxed), dest.stats.dropped_total());
    let (queued, in_flight) = (dest.queue.depth().0 as u64, dest.stats.in_flight_lines.load(Relaxed));
    assert_eq!(
        read,
        sent + dropped + queued + in_flight,
        "read {read} = sent {sent} + dropped {dropped} + queued {queued} + in flight {in_flight}"
    );
}

/// Sends [`LINES`] lines at a sink that holds them, and waits until the destination is stalled and the client is
/// done (a stalled destination is down: what does not fit in its queue is dropped, so the client finishes).
/// Returns the relay parts and how long the stall took to be noticed after the last acknowledgement.
async fn stall(sink: &HoldingSink, tag: &str) -> (consthash::app::Relay, Arc<Section>, Arc<Destination>, Duration) {
    let relay = start(&relay_config(sink.addr)).await;
    let addr = tcp_addr(&relay, "relay");
    let sent_lines = lines(tag);
    let client = tokio::spawn(async move { send_tcp(addr, &sent_lines).await });
    let section = relay.section("relay").expect("section").clone();
    let dest = section.backend.destinations()[0].clone();
    // the last time the sent count moved, polled every millisecond, and when the stall was noticed
    let deadline = Instant::now() + LONG;
    let (mut last_sent, mut moved) = (0, Instant::now());
    while !dest.is_stalled() {
        assert!(Instant::now() < deadline, "the destination never stalled");
        let sent = dest.stats.sent_lines.load(Relaxed);
        if sent != last_sent {
            (last_sent, moved) = (sent, Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let detected = moved.elapsed();
    client
        .await
        .expect("the client finishes: a stalled destination drops what does not fit");
    wait_until("every line read", LONG, || {
        section.stats.valid_lines.load(Relaxed) as usize == LINES
    })
    .await;
    (relay, section, dest, detected)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_that_never_reads_has_exactly_what_its_kernel_acknowledged_counted_as_sent() {
    let sink = HoldingSink::new().await;
    let (relay, section, dest, detected) = stall(&sink, "stuck").await;
    assert!(dest.is_down(), "a stalled destination is down for pushes");
    assert!(
        dest.stats.dropped_total() > 0,
        "what did not fit was dropped and counted"
    );
    assert!(
        dest.stats.in_flight_lines.load(Relaxed) > 0,
        "written, not acknowledged"
    );
    assert_eq!(dest.stats.stalled_connections.load(Relaxed), 1);
    // health checks: the sink accepts connections, but a stalled member fails them
    wait_until("the stalled member is down", LONG, || {
        !section.backend.members()[0][0].up
    })
    .await;
    // /metrics and /stats show it
    let admin = relay.admin_addr().expect("admin server");
    let metrics = crate::get_body(format!("http://{admin}/metrics")).await;
    assert_eq!(
        crate::metric_value(&metrics, "consthash_destination_stalled_connections{"),
        Some(1)
    );
    assert!(crate::metric_value(&metrics, "consthash_lines_in_flight{").is_some_and(|n| n > 0));
    let stats: serde_json::Value =
        serde_json::from_str(&crate::get_body(format!("http://{admin}/relay/stats")).await).expect("json");
    assert_eq!(
        stats["servers_stalled"],
        serde_json::json!([format!("tcp://{}", sink.addr)])
    );
    let held = sink.held_lines();
    assert_eq!(
        held.len() as u64,
        dest.stats.sent_lines.load(Relaxed),
        "sent = what the sink's kernel holds, not what was written"
    );
    assert_books(&section, &dest);

    // the sink reads again: the stall ends, the member comes back, everything not dropped arrives once
    let sink = sink.release().await;
    let kept = LINES as u64 - dest.stats.dropped_total();
    wait_until("every kept line read by the sink", LONG, || sink.count() as u64 == kept).await;
    wait_until("the sent count catches up", LONG, || {
        dest.stats.sent_lines.load(Relaxed) == kept
    })
    .await;
    wait_until("the member is up again", LONG, || section.backend.members()[0][0].up).await;
    assert_eq!(dest.stats.stalled_connections.load(Relaxed), 0);
    assert!(!dest.is_stalled());
    let got = sink.lines();
    let distinct: HashSet<&String> = got.iter().collect();
    assert_eq!(distinct.len(), got.len(), "no line twice");
    assert_eq!(dest.stats.resent_lines.load(Relaxed), 0);
    assert_books(&section, &dest);
    eprintln!(
        "faults: stuck sink: lines {LINES}, dropped {}, unaccounted 0, duplicates 0, stall noticed {} ms after \
         the last acknowledgement",
        dest.stats.dropped_total(),
        detected.as_millis()
    );
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_resets_gets_what_it_never_acknowledged_again_on_the_next_connection() {
    let sink = HoldingSink::new().await;
    let (relay, section, dest, _) = stall(&sink, "reset").await;
    let held = sink.held_lines();
    let acknowledged = dest.stats.sent_lines.load(Relaxed);
    assert_eq!(held.len() as u64, acknowledged);
    let in_flight = dest.stats.in_flight_lines.load(Relaxed);
    assert!(in_flight > 0, "written or being written, not acknowledged");

    // the peer resets (its buffers are lost, as in a crash) and a new one comes up on the same port
    let addr = sink.reset().await;
    let next = Sink::tcp_on(addr).await;
    let kept = LINES as u64 - dest.stats.dropped_total();
    wait_until(
        "every kept line not held by the first peer reaches the second",
        LONG,
        || next.count() as u64 + acknowledged == kept,
    )
    .await;
    wait_until("nothing left in flight or queued", LONG, || {
        dest.stats.in_flight_lines.load(Relaxed) == 0 && dest.queue.depth().0 == 0
    })
    .await;
    assert!(
        dest.stats.resent_lines.load(Relaxed) > 0,
        "the lines written and not acknowledged at the reset were queued again"
    );
    let mut all: HashSet<String> = held.into_iter().collect();
    let second = next.lines();
    let overlap = second.iter().filter(|l| all.contains(*l)).count();
    all.extend(second.iter().cloned());
    assert_eq!(
        overlap, 0,
        "a reset peer took nothing it did not acknowledge: no duplicates"
    );
    assert_eq!(
        all.len() as u64,
        kept,
        "every line not dropped is held by one peer or the other"
    );
    assert_eq!(dest.stats.sent_lines.load(Relaxed), kept);
    assert_books(&section, &dest);
    eprintln!(
        "faults: reset peer: lines {LINES}, dropped {}, in flight at the reset {in_flight}, resent {}, \
         unaccounted 0, duplicates {overlap}",
        dest.stats.dropped_total(),
        dest.stats.resent_lines.load(Relaxed)
    );
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_http_sink_gets_smaller_posts_instead_of_the_same_one_again_and_again() {
    // 64 KiB POSTs (one listener read each) to a sink reading 256 KB/s take 250 ms: longer than write_timeout
    let sink = Sink::slow_http(256_000).await;
    let relay = start(&format!(
        "[default]\nmax_pool_connections = 1\nwrite_timeout = 100\nreconnect_backoff_max = 100\n\
         pool_buffersize = 1000000\n\
         [relay]\nlisten = \"tcp://127.0.0.1:0\"\nmsg_type = \"graphite\"\n[[relay.servers]]\n\
         servers = [\"{}\"]\n",
        sink.url()
    ))
    .await;
    let sent_lines: Vec<String> = (0..20_000)
        .map(|i| format!("slow.k{} {i} 1700000000", i % 97))
        .collect();
    send_tcp(tcp_addr(&relay, "relay"), &sent_lines).await;
    let section = relay.section("relay").expect("section").clone();
    let dest = section.backend.destinations()[0].clone();
    wait_until("every line answered by the sink", LONG, || {
        dest.stats.sent_lines.load(Relaxed) as usize == sent_lines.len()
    })
    .await;
    let got = sink.lines();
    let distinct: HashSet<&String> = got.iter().collect();
    assert_eq!(distinct.len(), sent_lines.len(), "every line arrived");
    let duplicates = (got.len() - distinct.len()) as u64;
    assert!(
        duplicates <= dest.stats.resent_lines.load(Relaxed),
        "a line arrives twice only when a POST timed out after the sink had it: {duplicates} duplicates"
    );
    assert!(
        dest.stats.write_failures.load(Relaxed) > 0,
        "the first large POSTs timed out"
    );
    assert_books(&section, &dest);
    relay.shutdown().await;
}
