//! Relay behaviour end to end: placement, replication, every listener kind, outages and the books, bad input.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use consthash::ring::{Elter, HasherAlgo, Ring, RingSpec};

use crate::sink::Sink;
use crate::{send_tcp, start, tcp_addr, wait_until};

const LONG: Duration = Duration::from_secs(60);

fn graphite_lines(n: usize, keys: usize, tag: &str) -> Vec<String> {
    (0..n)
        .map(|i| format!("{tag}.key{}.value {i} 1700000000", i % keys))
        .collect()
}

fn key_of(line: &str) -> &str {
    line.split(' ').next().unwrap_or(line)
}

/// Sends `lines` over `conns` concurrent TCP connections.
async fn send_parallel(addr: std::net::SocketAddr, lines: &[String], conns: usize) {
    let mut tasks = Vec::new();
    for part in lines.chunks(lines.len().div_ceil(conns)) {
        let part = part.to_vec();
        tasks.push(tokio::spawn(async move { send_tcp(addr, &part).await }));
    }
    for t in tasks {
        t.await.expect("sender");
    }
}

fn servers_toml(sinks: &[&Sink]) -> String {
    let urls: Vec<String> = sinks.iter().map(|s| format!("\"{}\"", s.url())).collect();
    format!("servers = [{}]", urls.join(", "))
}

/// The ring the relay builds for these sinks with the default hasher (crc32/graphite/4, hashkeys = URLs).
fn default_ring(sinks: &[&Sink]) -> Ring {
    let spec = RingSpec::consthash(HasherAlgo::Crc32, Elter::Graphite, 4);
    let members: Vec<(String, u32)> = sinks.iter().enumerate().map(|(i, s)| (s.url(), i as u32)).collect();
    Ring::new(&spec, &members)
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_graphite_lines_arrive_once_at_the_ring_owner() {
    let sinks = [
        Sink::tcp().await,
        Sink::tcp().await,
        Sink::tcp().await,
        Sink::tcp().await,
    ];
    let refs: Vec<&Sink> = sinks.iter().collect();
    let relay = start(&format!(
        "[default]\n[relay]\nlisten = \"tcp://127.0.0.1:0\"\nmsg_type = \"graphite\"\n[[relay.servers]]\n{}\n",
        servers_toml(&refs)
    ))
    .await;
    let lines = graphite_lines(100_000, 10_000, "tcp");
    send_parallel(tcp_addr(&relay, "relay"), &lines, 4).await;
    wait_until("100 000 lines at the sinks", LONG, || {
        sinks.iter().map(Sink::count).sum::<usize>() >= lines.len()
    })
    .await;

    let ring = default_ring(&refs);
    let mut ids = Vec::new();
    let mut received = Vec::new();
    for (i, sink) in sinks.iter().enumerate() {
        let got = sink.lines();
        assert!(
            !got.is_empty(),
            "sink {i} got nothing: the ring should spread 10 000 keys"
        );
        for line in &got {
            ring.get_n(key_of(line).as_bytes(), 1, &mut ids);
            assert_eq!(ids, [i as u32], "{line} arrived at sink {i}");
        }
        received.extend(got);
    }
    assert_eq!(sorted(received), sorted(lines.clone()), "every line exactly once");
    let stats = &relay.section("relay").expect("section").stats;
    assert_eq!(stats.valid_lines.load(Relaxed), 100_000);
    assert_eq!(stats.worker_lines.load(Relaxed), 100_000);
    relay.shutdown().await;
}

/// Relays the §7.7 keys K through three sinks whose ring identities are `hashkeys` (`extra` adds section keys,
/// with two replicas) and checks that each key reached exactly the sinks `want` names (indexes into the sinks).
async fn assert_vector_placement(extra: &str, hashkeys: [&str; 3], want: &[(&str, [usize; 2])]) {
    let sinks = [Sink::tcp().await, Sink::tcp().await, Sink::tcp().await];
    let refs: Vec<&Sink> = sinks.iter().collect();
    let relay = start(&format!(
        "[default]\n[relay]\nlisten = \"tcp://127.0.0.1:0\"\nmsg_type = \"graphite\"\nnum_dupe_replicas = 2\n{extra}\n\
         [[relay.servers]]\n{}\nhashkeys = [\"{}\", \"{}\", \"{}\"]\n",
        servers_toml(&refs),
        hashkeys[0],
        hashkeys[1],
        hashkeys[2]
    ))
    .await;
    let lines: Vec<String> = want.iter().map(|(k, _)| format!("{k} 1 1700000000")).collect();
    send_tcp(tcp_addr(&relay, "relay"), &lines).await;
    wait_until("two copies of each line", LONG, || {
        sinks.iter().map(Sink::count).sum::<usize>() >= 2 * lines.len()
    })
    .await;
    for ((key, members), line) in want.iter().zip(&lines) {
        let at: Vec<usize> = (0..3).filter(|&i| sinks[i].lines().contains(line)).collect();
        let mut members = members.to_vec();
        members.sort();
        assert_eq!(at, members, "{key}");
    }
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placement_matches_the_spec_vectors() {
    // §7.7 C: crc32/graphite/4 with hashkeys tcp://127.0.0.1:6002..6004 (sinks 0..2); the sinks listen elsewhere.
    let hashkeys = ["tcp://127.0.0.1:6002", "tcp://127.0.0.1:6003", "tcp://127.0.0.1:6004"];
    let want = [
        ("moo.goo.org", [2, 1]),
        ("stats.timers.foo", [0, 1]),
        ("servers.main.cpu.load", [2, 1]),
        ("servers.main-01.mem.free", [2, 1]),
        ("statdtest.house.here", [2, 0]),
        ("graphitetest.cow.now.test", [0, 1]),
        ("a.b.c", [2, 0]),
        ("foo.bar.baz", [2, 1]),
        ("consthash.test", [2, 1]),
        ("gorets", [2, 0]),
    ];
    assert_vector_placement("", hashkeys, &want).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_ring_gets_every_line_and_replicas_go_to_distinct_servers() {
    let a = [
        Sink::tcp().await,
        Sink::tcp().await,
        Sink::tcp().await,
        Sink::tcp().await,
    ];
    let b = [Sink::tcp().await, Sink::tcp().await];
    let ra: Vec<&Sink> = a.iter().collect();
    let rb: Vec<&Sink> = b.iter().collect();
    let relay = start(&format!(
        "[default]\n[relay]\nlisten = \"tcp://127.0.0.1:0\"\nmsg_type = \"graphite\"\nnum_dupe_replicas = 2\n\
         [[relay.servers]]\n{}\n[[relay.servers]]\n{}\n",
        servers_toml(&ra),
        servers_toml(&rb)
    ))
    .await;
    let lines = graphite_lines(20_000, 2_000, "rep");
    send_parallel(tcp_addr(&relay, "relay"), &lines, 4).await;
    let want = lines.len() * 4; // 2 replicas in each of 2 rings
    wait_until("all copies", LONG, || {
        a.iter().chain(&b).map(Sink::count).sum::<usize>() >= want
    })
    .await;

    for (ring_sinks, refs) in [(&a[..], &ra), (&b[..], &rb)] {
        let ring = default_ring(refs);
        let mut where_: HashMap<String, Vec<u32>> = HashMap::new();
        for (i, s) in ring_sinks.iter().enumerate() {
            for l in s.lines() {
                where_.entry(l).or_default().push(i as u32);
            }
        }
        assert_eq!(where_.len(), lines.len(), "every line reaches every ring");
        let mut ids = Vec::new();
        for (line, mut at) in where_ {
            ring.get_n(key_of(&line).as_bytes(), 2, &mut ids);
            let mut want = ids.clone();
            want.sort();
            at.sort();
            assert_eq!(at, want, "{line}: two distinct servers, those GetN names");
        }
    }
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statsd_over_udp_several_lines_per_datagram() {
    let sinks = [
        Sink::tcp().await,
        Sink::tcp().await,
        Sink::tcp().await,
        Sink::tcp().await,
    ];
    let refs: Vec<&Sink> = sinks.iter().collect();
    let relay = start(&format!(
        "[default]\n[statsd]\nlisten = \"udp://127.0.0.1:0\"\nmsg_type = \"statsd\"\n[[statsd.servers]]\n{}\n",
        servers_toml(&refs)
    ))
    .await;
    let addr = tcp_addr(&relay, "statsd");
    let lines: Vec<String> = (0..100_000).map(|i| format!("udp.key{}:{i}|c", i % 10_000)).collect();
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let section = relay.section("statsd").expect("section").clone();
    // 10 lines per datagram; pace by what the relay has framed so the socket buffer never overflows.
    for (n, chunk) in lines.chunks(10).enumerate() {
        sock.send_to(chunk.join("\n").as_bytes(), addr).await.expect("send");
        if n % 200 == 199 {
            let sent = (n + 1) * 10;
            wait_until("relay keeps up", LONG, || {
                section.stats.all_lines.load(Relaxed) as usize >= sent
            })
            .await;
        }
    }
    wait_until("100 000 lines at the sinks", LONG, || {
        sinks.iter().map(Sink::count).sum::<usize>() >= lines.len()
    })
    .await;
    let ring = default_ring(&refs);
    let mut ids = Vec::new();
    let mut received = Vec::new();
    for (i, s) in sinks.iter().enumerate() {
        for l in s.lines() {
            ring.get_n(l.split(':').next().unwrap_or("").as_bytes(), 1, &mut ids);
            assert_eq!(ids, [i as u32], "{l}");
            received.push(l);
        }
    }
    assert_eq!(sorted(received), sorted(lines));
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unix_listener_removes_only_a_stale_socket() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = Sink::tcp().await;
    let toml = |listen: &std::path::Path| {
        format!(
            "[default]\n[relay]\nlisten = \"unix://{}\"\nmsg_type = \"graphite\"\n[[relay.servers]]\n{}\n",
            listen.display(),
            servers_toml(&[&sink])
        )
    };
    let start_err = |text: String| async move {
        let config = consthash::config::load_main(&text, "t.toml").expect("valid config");
        match consthash::app::Relay::start(&config, None).await {
            Ok(_) => panic!("started over something that is not a stale socket"),
            Err(e) => e.to_string(),
        }
    };
    let file = dir.path().join("data.txt");
    std::fs::write(&file, b"precious").expect("file");
    let err = start_err(toml(&file)).await;
    assert!(err.contains("not a socket"), "{err}");
    assert_eq!(std::fs::read(&file).expect("kept"), b"precious");

    let listen = dir.path().join("in.sock");
    let running = start(&toml(&listen)).await;
    let err = start_err(toml(&listen)).await;
    assert!(err.contains("running process"), "{err}");
    let mut s = tokio::net::UnixStream::connect(&listen)
        .await
        .expect("the first instance still listens");
    tokio::io::AsyncWriteExt::write_all(&mut s, b"still.mine 1 1700000000\n")
        .await
        .expect("write");
    drop(s);
    wait_until("the line at the sink", LONG, || sink.count() == 1).await;
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_socket_in_and_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sinks = [
        Sink::unix(dir.path().join("a.sock")).await,
        Sink::unix(dir.path().join("b.sock")).await,
    ];
    let refs: Vec<&Sink> = sinks.iter().collect();
    let listen = dir.path().join("in.sock");
    // a socket left by a process that died (nobody listens on it) is replaced
    drop(std::os::unix::net::UnixListener::bind(&listen).expect("stale socket"));
    assert!(listen.exists());
    let relay = start(&format!(
        "[default]\n[relay]\nlisten = \"unix://{}\"\nmsg_type = \"graphite\"\n[[relay.servers]]\n{}\n",
        listen.display(),
        servers_toml(&refs)
    ))
    .await;
    let lines = graphite_lines(20_000, 1_000, "unix");
    let mut s = tokio::net::UnixStream::connect(&listen).await.expect("connect");
    tokio::io::AsyncWriteExt::write_all(&mut s, (lines.join("\n")).as_bytes())
        .await
        .expect("write");
    drop(s); // the last line has no newline: it is processed at EOF
    wait_until("lines at the sinks", LONG, || {
        sinks.iter().map(Sink::count).sum::<usize>() >= lines.len()
    })
    .await;
    let received: Vec<String> = sinks.iter().flat_map(Sink::lines).collect();
    assert_eq!(sorted(received), sorted(lines));
    relay.shutdown().await;
    assert!(!listen.exists(), "the socket file is removed on stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_post_bodies_in_and_out() {
    let sinks = [Sink::http().await, Sink::http().await];
    let refs: Vec<&Sink> = sinks.iter().collect();
    let relay = start(&format!(
        "[default]\n[relay]\nlisten = \"http://127.0.0.1:0/metrics\"\nmsg_type = \"graphite\"\npool_buffersize = 4096\n\
         [[relay.servers]]\n{}\n",
        servers_toml(&refs)
    ))
    .await;
    let url = format!("http://{}/metrics", tcp_addr(&relay, "relay"));
    let client = reqwest::Client::new();
    let lines = graphite_lines(10_000, 500, "http");
    for body in lines.chunks(500) {
        let resp = client
            .post(&url)
            .body(body.join("\n") + "\n\n")
            .send()
            .await
            .expect("POST");
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.text().await.expect("body"), "lines processed 500");
    }
    let resp = client
        .post(format!("http://{}/elsewhere", tcp_addr(&relay, "relay")))
        .body("x 1 2")
        .send()
        .await;
    assert_eq!(resp.expect("POST").status(), 404);
    wait_until("lines at the sinks", LONG, || {
        sinks.iter().map(Sink::count).sum::<usize>() >= lines.len()
    })
    .await;
    let received: Vec<String> = sinks.iter().flat_map(Sink::lines).collect();
    assert_eq!(sorted(received), sorted(lines));
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_destinations_get_whole_lines_packed_per_datagram() {
    let sinks = [Sink::udp().await, Sink::udp().await];
    let refs: Vec<&Sink> = sinks.iter().collect();
    let relay = start(&format!(
        "[default]\n[relay]\nlisten = \"tcp://127.0.0.1:0\"\nmsg_type = \"statsd\"\nmax_pool_connections = 1\n\
         [[relay.servers]]\n{}\n",
        servers_toml(&refs)
    ))
    .await;
    let lines: Vec<String> = (0..2_000).map(|i| format!("udp.out.key{}:{i}|c", i % 100)).collect();
    let addr = tcp_addr(&relay, "relay");
    for chunk in lines.chunks(200) {
        let want = sinks.iter().map(Sink::count).sum::<usize>() + chunk.len();
        send_tcp(addr, chunk).await;
        wait_until("paced UDP delivery", LONG, || {
            sinks.iter().map(Sink::count).sum::<usize>() >= want
        })
        .await;
    }
    let received: Vec<String> = sinks.iter().flat_map(Sink::lines).collect();
    assert_eq!(
        sorted(received),
        sorted(lines),
        "whole lines, none split across datagrams"
    );
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_down_for_two_seconds_gets_every_line_after_restart() {
    let sink = Sink::tcp().await;
    let relay = start(&format!(
        "[default]\nreconnect_backoff_max = 200\n[relay]\nlisten = \"tcp://127.0.0.1:0\"\nmsg_type = \"graphite\"\n\
         [[relay.servers]]\n{}\n",
        servers_toml(&[&sink])
    ))
    .await;
    let addr = tcp_addr(&relay, "relay");
    let before = graphite_lines(1_000, 100, "before");
    send_tcp(addr, &before).await;
    wait_until("first lines delivered", LONG, || sink.count() >= before.len()).await;

    let stopped = sink.stop().await;
    let during = graphite_lines(5_000, 100, "during");
    send_tcp(addr, &during).await;
    let section = relay.section("relay").expect("section").clone();
    wait_until("lines read while the sink is down", LONG, || {
        section.stats.valid_lines.load(Relaxed) as usize >= before.len() + during.len()
    })
    .await;
    // The outage lasts until the sender has re-dialled the dead sink a few times (backing off in between).
    let dest = section.backend.destinations()[0].clone();
    let failed = dest.stats.connect_failures.load(Relaxed);
    wait_until("re-dials of the dead sink", LONG, || {
        dest.stats.connect_failures.load(Relaxed) >= failed + 3
    })
    .await;
    let sink = stopped.restart().await;
    wait_until("every line after the restart", LONG, || {
        sink.count() >= before.len() + during.len()
    })
    .await;

    let got: HashSet<String> = sink.lines().into_iter().collect();
    for l in before.iter().chain(&during) {
        assert!(got.contains(l), "missing {l}");
    }
    let dest = &relay.section("relay").expect("section").backend.destinations()[0];
    assert_eq!(dest.stats.dropped_total(), 0);
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_small_queue_the_books_balance() {
    let sink = Sink::tcp().await;
    let relay = start(&format!(
        "[default]\nreconnect_backoff_max = 200\nout_queue_lines = 100\nout_block_timeout = 200\nshutdown_timeout = 2\n\
         [relay]\nlisten = \"tcp://127.0.0.1:0\"\nmsg_type = \"graphite\"\n[[relay.servers]]\n{}\n",
        servers_toml(&[&sink])
    ))
    .await;
    let addr = tcp_addr(&relay, "relay");
    let stopped = sink.stop().await;
    let lines = graphite_lines(20_000, 100, "books");
    send_tcp(addr, &lines).await;
    let section = relay.section("relay").expect("section").clone();
    wait_until("all lines read", LONG, || {
        section.stats.valid_lines.load(Relaxed) as usize >= lines.len()
    })
    .await;
    let sink = stopped.restart().await;
    let dest = section.backend.destinations()[0].clone();
    wait_until("delivered + dropped = sent", LONG, || {
        sink.count() as u64 + dest.stats.dropped_total() >= lines.len() as u64
    })
    .await;
    relay.shutdown().await;
    let (delivered, dropped) = (sink.count() as u64, dest.stats.dropped_total());
    assert!(dropped > 0, "a 100-line queue cannot hold 20 000 lines");
    assert!(delivered > 0, "what was queued is delivered after the restart");
    assert_eq!(dest.stats.dropped(consthash::telemetry::DropReason::QueueFull), dropped);
    assert_eq!(delivered + dropped, lines.len() as u64, "sent = delivered + dropped");
    assert_eq!(dest.stats.sent_lines.load(Relaxed), delivered);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_input_is_counted_and_the_relay_keeps_serving() {
    let sink = Sink::tcp().await;
    let relay = start(&format!(
        "[default]\nmax_line_length = 100\n[relay]\nlisten = \"tcp://127.0.0.1:0\"\nmsg_type = \"statsd\"\n\
         [[relay.servers]]\n{}\n",
        servers_toml(&[&sink])
    ))
    .await;
    let addr = tcp_addr(&relay, "relay");
    let mut garbage: Vec<u8> = Vec::new();
    garbage.extend_from_slice(b"good.one:1|c\r\n");
    garbage.extend_from_slice(b"no colon here\n");
    garbage.extend_from_slice(&[b'x'; 500]); // overlong
    garbage.extend_from_slice(b"\n\xff\xfe\x00\x01 binary\n"); // binary, no colon: invalid
    garbage.extend_from_slice(b"\xff\x00:1|c\n"); // binary key: valid statsd
    garbage.extend_from_slice(b"\n\n   \n");
    garbage.extend_from_slice(b"half.line:2|c"); // no newline: processed at close
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    tokio::io::AsyncWriteExt::write_all(&mut s, &garbage)
        .await
        .expect("write");
    drop(s);
    let section = relay.section("relay").expect("section").clone();
    wait_until("lines framed", LONG, || section.stats.all_lines.load(Relaxed) >= 6).await;
    wait_until("valid lines delivered", LONG, || sink.count() >= 3).await;
    let invalid: BTreeMap<&str, u64> = consthash::telemetry::InvalidReason::LABELS
        .iter()
        .zip(&section.stats.invalid_lines)
        .map(|(l, c)| (*l, c.load(Relaxed)))
        .collect();
    assert_eq!(invalid["too_long"], 1);
    assert_eq!(invalid["invalid_statsd"], 2);
    assert_eq!(section.stats.valid_lines.load(Relaxed), 3);
    assert_eq!(section.stats.all_lines.load(Relaxed), 6);
    // still serving
    send_tcp(addr, &["after.garbage:1|c".to_string()]).await;
    wait_until("a later line", LONG, || {
        sink.lines().contains(&"after.garbage:1|c".to_string())
    })
    .await;
    let got = sink.lines();
    assert!(got.contains(&"good.one:1|c".to_string()));
    assert!(got.contains(&"half.line:2|c".to_string()));
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_and_single_sending_methods_deliver_every_line() {
    for method in ["pool", "single"] {
        let sinks = [Sink::tcp().await, Sink::tcp().await];
        let refs: Vec<&Sink> = sinks.iter().collect();
        let relay = start(&format!(
            "[default]\nsending_method = \"{method}\"\nmax_pool_connections = 2\n[relay]\nlisten = \"tcp://127.0.0.1:0\"\n\
             msg_type = \"graphite\"\n[[relay.servers]]\n{}\n",
            servers_toml(&refs)
        ))
        .await;
        let lines = graphite_lines(2_000, 100, method);
        send_tcp(tcp_addr(&relay, "relay"), &lines).await;
        wait_until(method, LONG, || {
            sinks.iter().map(Sink::count).sum::<usize>() >= lines.len()
        })
        .await;
        let received: Vec<String> = sinks.iter().flat_map(Sink::lines).collect();
        assert_eq!(sorted(received), sorted(lines), "{method}");
        relay.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_left_at_shutdown_are_counted_as_dropped() {
    let nobody = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    // `nobody` is closed again: connections to it are refused
    let relay = start(&format!(
        "[default]\nshutdown_timeout = 1\nout_block_timeout = 60000\n[relay]\nlisten = \"tcp://127.0.0.1:0\"\n\
         msg_type = \"graphite\"\n[[relay.servers]]\nservers = [\"tcp://{nobody}\"]\n"
    ))
    .await;
    let lines = graphite_lines(5_000, 100, "late");
    send_tcp(tcp_addr(&relay, "relay"), &lines).await;
    let section = relay.section("relay").expect("section").clone();
    wait_until("lines read", LONG, || section.stats.valid_lines.load(Relaxed) >= 5_000).await;
    let dest = section.backend.destinations()[0].clone();
    // the router publishes its counts before it queues; a sender holds the batch only while it dials
    wait_until("queued while the server is unreachable", LONG, || {
        dest.queue.depth().0 == 5_000
    })
    .await;
    relay.shutdown().await;
    assert_eq!(dest.stats.dropped(consthash::telemetry::DropReason::Shutdown), 5_000);
    assert_eq!(dest.stats.sent_lines.load(Relaxed), 0);
    assert_eq!(dest.queue.depth().0, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn carbon_ch_relay_places_keys_as_graphite_carbon_does() {
    // §7.7 A for carbon_ch: hashkeys are carbon DESTINATIONS entries (members a, b, c = sinks 0, 1, 2).
    let hashkeys = [
        "192.168.10.200:2003:a",
        "192.168.10.201:2003:b",
        "192.168.10.202:2003:c",
    ];
    let want = [
        ("moo.goo.org", [1, 2]),
        ("stats.timers.foo", [2, 1]),
        ("servers.main.cpu.load", [0, 2]),
        ("servers.main-01.mem.free", [2, 1]),
        ("statdtest.house.here", [1, 2]),
        ("graphitetest.cow.now.test", [2, 0]),
        ("a.b.c", [1, 2]),
        ("foo.bar.baz", [2, 1]),
        ("consthash.test", [2, 1]),
        ("gorets", [1, 0]),
    ];
    assert_vector_placement("hasher_algo = \"carbon_ch\"", hashkeys, &want).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_healthy_backend_slows_the_readers_and_loses_nothing() {
    use tokio::io::AsyncReadExt;
    // A sink that reads 2 KiB at a time with a pause: far slower than the sender.
    let slow = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = slow.local_addr().expect("addr");
    let received = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = received.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = slow.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    counter.fetch_add(buf[..n].iter().filter(|b| **b == b'\n').count(), Relaxed);
                    tokio::time::sleep(Duration::from_micros(200)).await; // the slowness under test
                }
            });
        }
    });
    let relay = start(&format!(
        "[default]\nout_queue_lines = 200\nmax_pool_connections = 1\nread_buffer_size = 4096\n\
         [relay]\nlisten = \"tcp://127.0.0.1:0\"\nmsg_type = \"graphite\"\n[[relay.servers]]\nservers = [\"tcp://{addr}\"]\n"
    ))
    .await;
    let lines = graphite_lines(50_000, 1_000, "slow");
    send_parallel(tcp_addr(&relay, "relay"), &lines, 2).await;
    wait_until("every line at the slow sink", LONG, || {
        received.load(Relaxed) >= lines.len()
    })
    .await;
    let dest = &relay.section("relay").expect("section").backend.destinations()[0];
    assert_eq!(dest.stats.dropped_total(), 0, "back-pressure, not drops");
    assert_eq!(received.load(Relaxed), lines.len());
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_in_time_with_an_unfinished_http_request() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let sink = Sink::tcp().await;
    let relay = start(&format!(
        "[default]\nshutdown_timeout = 1\ninternal_health_server_listen = \"127.0.0.1:0\"\n\
         [relay]\nlisten = \"http://127.0.0.1:0/in\"\nmsg_type = \"graphite\"\n[[relay.servers]]\n{}\n",
        servers_toml(&[&sink])
    ))
    .await;
    let admin = relay.admin_addr().expect("admin server");
    let mut held = Vec::new();
    for (addr, first) in [
        (
            tcp_addr(&relay, "relay"),
            "POST /in HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 23\r\n\r\nfirst.req 1 1700000000\n",
        ),
        (admin, "GET /ping HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"),
    ] {
        let mut c = tokio::net::TcpStream::connect(addr).await.expect("connect");
        // one whole request answered: the connection is being served
        c.write_all(first.as_bytes()).await.expect("write");
        let mut buf = [0u8; 512];
        let n = c.read(&mut buf).await.expect("answer");
        assert!(
            buf[..n].starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&buf[..n])
        );
        // then a body announced and never finished
        c.write_all(b"POST /in HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\nheld.open 1 1700000000\n")
            .await
            .expect("write");
        held.push(c);
    }
    tokio::time::timeout(Duration::from_secs(20), relay.shutdown())
        .await
        .expect("shutdown finishes although two requests never end");
    assert_eq!(
        sorted(sink.lines()),
        ["first.req 1 1700000000", "held.open 1 1700000000"],
        "the whole request, and the whole line of the unfinished one (bodies stream)"
    );
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_in_time_while_a_reader_waits_for_a_full_queue() {
    // the kernel buffers toward a sink that never reads fill, then the queue, then the reader waits
    let stuck = crate::sink::HoldingSink::new().await;
    let stuck_addr = stuck.addr;
    let relay = start(&format!(
        "[default]\nshutdown_timeout = 1\nout_queue_lines = 100\nmax_pool_connections = 1\nwrite_timeout = \"60s\"\n\
         [relay]\nlisten = \"tcp://127.0.0.1:0\"\nmsg_type = \"graphite\"\n[[relay.servers]]\n\
         servers = [\"tcp://{stuck_addr}\"]\n"
    ))
    .await;
    let addr = tcp_addr(&relay, "relay");
    let client = crate::flood(addr);
    let section = relay.section("relay").expect("section").clone();
    let dest = section.backend.destinations()[0].clone();
    // stuck: the kernel buffers toward the sink are full (nothing is sent any more) and the queue is full
    let (mut last_sent, mut still) = (u64::MAX, 0);
    wait_until("the queue is full and nothing is sent any more", LONG, || {
        let sent = dest.stats.sent_lines.load(Relaxed);
        still = if sent == last_sent && dest.queue.depth().0 >= 100 {
            still + 1
        } else {
            0
        };
        last_sent = sent;
        still >= 50
    })
    .await;
    tokio::time::timeout(Duration::from_secs(20), relay.shutdown())
        .await
        .expect("shutdown finishes although the sink never reads");
    client.abort();
    drop(stuck);
    let valid = section.stats.valid_lines.load(Relaxed);
    let accounted = dest.stats.sent_lines.load(Relaxed) + dest.stats.dropped_total();
    assert_eq!(accounted, valid, "every line read is counted as sent or dropped");
    assert!(
        dest.stats.dropped_total() > 0,
        "what the stuck sink could not take is counted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_bodies_stream_through_whatever_their_size_and_bad_ones_are_refused() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let sink = Sink::tcp().await;
    let relay = start(&format!(
        "[default]\n[relay]\nlisten = \"http://127.0.0.1:0/in\"\nmsg_type = \"graphite\"\n\
         max_read_buffer_size = 1048576\n[[relay.servers]]\n{}\n\
         [limited]\nlisten = \"http://127.0.0.1:0/in\"\nmsg_type = \"graphite\"\nmax_body_size = 1000\n\
         [[limited.servers]]\n{}\n",
        servers_toml(&[&sink]),
        servers_toml(&[&sink])
    ))
    .await;
    let client = reqwest::Client::new();
    // 16 MB through a 1 MB input budget: streamed, not refused
    let lines = graphite_lines(600_000, 1000, "big");
    let body = lines.join("\n") + "\n";
    assert!(body.len() > 16 << 20);
    let url = format!("http://{}/in", tcp_addr(&relay, "relay"));
    let resp = client.post(&url).body(body).send().await.expect("POST");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.expect("body"), "lines processed 600000");
    wait_until("every line of the big body", LONG, || sink.count() >= lines.len()).await;
    assert_eq!(sink.count(), lines.len());

    // max_body_size: what came before the limit is routed, the rest refused with 413
    let small = graphite_lines(100, 10, "small").join("\n") + "\n";
    let resp = client
        .post(format!("http://{}/in", tcp_addr(&relay, "limited")))
        .body(small)
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.status(), 413);
    assert!(resp.text().await.expect("body").contains("max_body_size"));

    // malformed chunked framing: 400, and the listener goes on
    let mut c = tokio::net::TcpStream::connect(tcp_addr(&relay, "relay"))
        .await
        .expect("connect");
    c.write_all(b"POST /in HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\nnot a chunk\r\n")
        .await
        .expect("write");
    let mut answer = vec![0u8; 256];
    let n = c.read(&mut answer).await.expect("answer");
    assert!(
        answer[..n].starts_with(b"HTTP/1.1 400"),
        "{}",
        String::from_utf8_lossy(&answer[..n])
    );
    let resp = client
        .post(&url)
        .body("after.bad 1 1700000000\n")
        .send()
        .await
        .expect("POST");
    assert_eq!(resp.text().await.expect("body"), "lines processed 1");
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_client_that_never_finishes_its_request_head_is_disconnected() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let sink = Sink::tcp().await;
    let relay = start(&format!(
        "[default]\n[relay]\nlisten = \"http://127.0.0.1:0/in\"\nmsg_type = \"graphite\"\n[[relay.servers]]\n{}\n",
        servers_toml(&[&sink])
    ))
    .await;
    let mut c = tokio::net::TcpStream::connect(tcp_addr(&relay, "relay"))
        .await
        .expect("connect");
    c.write_all(b"POST /in HTTP/1.1\r\nHost: x\r\n").await.expect("write");
    // without a header timeout the server would wait for the rest of the head forever
    let mut rest = Vec::new();
    let read = tokio::time::timeout(LONG, c.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the server closed the connection");
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_serves_at_most_max_connections_at_once() {
    use tokio::io::AsyncWriteExt;
    let sink = Sink::tcp().await;
    let relay = start(&format!(
        "[default]\n[relay]\nlisten = \"tcp://127.0.0.1:0\"\nmsg_type = \"graphite\"\nmax_connections = 2\n\
         [[relay.servers]]\n{}\n",
        servers_toml(&[&sink])
    ))
    .await;
    let addr = tcp_addr(&relay, "relay");
    let mut conns = Vec::new();
    for i in 0..3 {
        let mut c = tokio::net::TcpStream::connect(addr)
            .await
            .expect("connect (the backlog takes it)");
        c.write_all(format!("conn{i} 1 1700000000\n").as_bytes())
            .await
            .expect("write");
        conns.push(c);
    }
    wait_until("two connections served", LONG, || sink.count() == 2).await;
    let section = relay.section("relay").expect("section").clone();
    assert_eq!(section.stats.connections_open.load(Relaxed), 2);
    assert!(
        !sink.lines().contains(&"conn2 1 1700000000".to_string()),
        "the third waits"
    );
    drop(conns.remove(0));
    wait_until("the third is served once a slot is free", LONG, || sink.count() == 3).await;
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_lines_held_by_many_connections_count_against_max_read_buffer_size() {
    use tokio::io::AsyncWriteExt;
    let sink = Sink::tcp().await;
    let relay = start(&format!(
        "[default]\n[relay]\nlisten = \"tcp://127.0.0.1:0\"\nmsg_type = \"graphite\"\n\
         max_read_buffer_size = 100000\n[[relay.servers]]\n{}\n",
        servers_toml(&[&sink])
    ))
    .await;
    let addr = tcp_addr(&relay, "relay");
    let section = relay.section("relay").expect("section").clone();
    // ten clients each hold 30 000 bytes of a line they never finish
    let half = "h".repeat(30_000);
    let mut holders = Vec::new();
    for _ in 0..10 {
        let mut c = tokio::net::TcpStream::connect(addr).await.expect("connect");
        c.write_all(half.as_bytes()).await.expect("write");
        holders.push(c);
    }
    wait_until("the half lines fill the budget", LONG, || {
        section.stats.read_buffer_bytes.load(Relaxed) >= 100_000
    })
    .await;
    let held = section.stats.read_buffer_bytes.load(Relaxed);
    let mid_line = 10 * consthash::section::MID_LINE_READ as u64;
    assert!(
        held <= 100_000 + mid_line,
        "reads stop at the budget (plus a little per half line): {held}"
    );
    // a new client waits for room; it is served once the half lines are done
    let mut fresh = tokio::net::TcpStream::connect(addr).await.expect("connect");
    fresh.write_all(b"fresh.line 1 1700000000\n").await.expect("write");
    drop(holders);
    wait_until("the fresh line once the budget is free", LONG, || {
        sink.lines().contains(&"fresh.line 1 1700000000".to_string())
    })
    .await;
    wait_until("nothing held any more", LONG, || {
        section.stats.read_buffer_bytes.load(Relaxed) == 0
    })
    .await;
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_sink_that_keeps_reading_gets_every_line_once() {
    use std::sync::{Arc, Mutex};
    use tokio::io::AsyncReadExt;
    // a sink that takes about 2 MB/s, slower than one 256 KB write may take within write_timeout
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(16 * 1024).expect("rcvbuf");
    socket.bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
    let listener = socket.listen(16).expect("listen");
    let addr = listener.local_addr().expect("addr");
    // what each connection delivered, kept apart (an old connection's tail may arrive after the new one began)
    let got = Arc::new(Mutex::new(Vec::<Arc<Mutex<Vec<u8>>>>::new()));
    let sink = {
        let conns = got.clone();
        tokio::spawn(async move {
            while let Ok((mut c, _)) = listener.accept().await {
                let got = Arc::new(Mutex::new(Vec::new()));
                conns.lock().expect("lock").push(got.clone());
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 8192];
                    while let Ok(n) = c.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        got.lock().expect("lock").extend_from_slice(&buf[..n]);
                        tokio::time::sleep(Duration::from_millis(4)).await; // the sink's pace, not a wait
                    }
                });
            }
        })
    };
    let relay = start(&format!(
        "[default]\nwrite_timeout = 50\nmax_pool_connections = 1\n[relay]\nlisten = \"tcp://127.0.0.1:0\"\n\
         msg_type = \"graphite\"\n[[relay.servers]]\nservers = [\"tcp://{addr}\"]\n"
    ))
    .await;
    let lines = graphite_lines(200_000, 1000, "slow");
    send_tcp(tcp_addr(&relay, "relay"), &lines).await;
    let text_of = |got: &Mutex<Vec<Arc<Mutex<Vec<u8>>>>>| {
        let conns = got.lock().expect("lock");
        conns
            .iter()
            .map(|c| String::from_utf8_lossy(&c.lock().expect("lock")).into_owned() + "\n")
            .collect::<String>()
    };
    let newlines = || {
        let conns = got.lock().expect("lock");
        conns
            .iter()
            .map(|c| c.lock().expect("lock").iter().filter(|b| **b == b'\n').count())
            .sum::<usize>()
    };
    let all_there = || {
        let text = text_of(&got);
        let seen: HashSet<&str> = text.lines().collect();
        lines.iter().all(|l| seen.contains(l.as_str()))
    };
    wait_until("every line at the slow sink", LONG, || {
        newlines() >= lines.len() && all_there()
    })
    .await;
    let text = text_of(&got);
    let dest = relay.section("relay").expect("section").backend.destinations()[0].clone();
    let failures = dest.stats.write_failures.load(Relaxed) as usize;
    assert_eq!(
        dest.stats.sent_lines.load(Relaxed),
        lines.len() as u64,
        "each line counted sent once"
    );
    // a write that stalls past write_timeout keeps what it wrote: only the line it cut is sent again (whole),
    // so the sink sees at most one repeated line and one fragment per failure, not the batch again
    let received: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
    let extra = received.len() - lines.len();
    assert!(
        extra <= 2 * failures,
        "{extra} extra lines for {failures} stalled writes"
    );
    relay.shutdown().await;
    sink.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_http_bodies_read_no_further_than_the_budget_allows() {
    use tokio::io::AsyncWriteExt;
    // a sink that holds everything: the queue fills, routing waits, the bodies' bytes pile up in the budget
    let sink = crate::sink::HoldingSink::new().await;
    let relay = start(&format!(
        "[default]\nout_queue_lines = 100\nwrite_timeout = \"60s\"\nshutdown_timeout = 1\n\
         [relay]\nlisten = \"http://127.0.0.1:0/in\"\nmsg_type = \"graphite\"\nmax_read_buffer_size = 200000\n\
         [[relay.servers]]\nservers = [\"tcp://{}\"]\n",
        sink.addr
    ))
    .await;
    let addr = tcp_addr(&relay, "relay");
    let section = relay.section("relay").expect("section").clone();
    const CLIENTS: usize = 10;
    let body: String = (0..100_000)
        .map(|i| format!("body.k{} {i} 1700000000\n", i % 97))
        .collect();
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let body = body.clone();
        clients.push(tokio::spawn(async move {
            let mut c = tokio::net::TcpStream::connect(addr).await.expect("connect");
            let head = format!(
                "POST /in HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            c.write_all(head.as_bytes()).await.expect("head");
            let _ = c.write_all(body.as_bytes()).await;
        }));
    }
    wait_until("the bodies fill the budget", LONG, || {
        section.stats.read_buffer_bytes.load(Relaxed) >= 200_000
    })
    .await;
    // the most held while the requests push on (every request may be in the middle of a line)
    let mut most = 0;
    for _ in 0..100 {
        most = most.max(section.stats.read_buffer_bytes.load(Relaxed));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let bound = 200_000 + (CLIENTS * consthash::accept::HTTP_READ_PIECE) as u64;
    assert!(
        most <= bound,
        "held {most} bytes, more than the budget and one piece per request ({bound})"
    );
    for c in clients {
        c.abort();
    }
    drop(sink);
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn datagrams_the_kernel_drops_before_a_udp_listener_reads_them_are_counted() {
    let sink = Sink::tcp().await;
    // the smallest receive buffer the kernel grants: a burst overflows it
    let relay = start(&format!(
        "[default]\ninternal_health_server_listen = \"127.0.0.1:0\"\n\
         [relay]\nlisten = \"udp://127.0.0.1:0\"\nmsg_type = \"graphite\"\nread_buffer_size = 1024\n\
         [[relay.servers]]\n{}\n",
        servers_toml(&[&sink])
    ))
    .await;
    let addr = tcp_addr(&relay, "relay");
    const DATAGRAMS: u64 = 200_000;
    tokio::task::spawn_blocking(move || {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        for i in 0..DATAGRAMS {
            s.send_to(format!("burst.k{} {i} 1700000000\n", i % 100).as_bytes(), addr)
                .expect("send");
        }
    })
    .await
    .expect("sender");
    let section = relay.section("relay").expect("section").clone();
    let (received, dropped) = (
        || section.stats.all_lines.load(Relaxed),
        || section.stats.kernel_drops.load(Relaxed),
    );
    wait_until(
        "every datagram received or counted as dropped by the kernel",
        LONG,
        || received() + dropped() == DATAGRAMS,
    )
    .await;
    assert!(dropped() > 0, "the burst overflowed the receive buffer");
    let admin = relay.admin_addr().expect("admin");
    let body = crate::get_body(format!("http://{admin}/metrics")).await;
    assert_eq!(
        crate::metric_value(&body, "consthash_udp_kernel_drops_total{"),
        Some(dropped())
    );
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_udp_listener_with_several_receive_sockets_reads_every_sender() {
    let sink = Sink::tcp().await;
    let relay = start(&format!(
        "[default]\n[relay]\nlisten = \"udp://127.0.0.1:0\"\nmsg_type = \"graphite\"\nudp_receivers = 4\n\
         [[relay.servers]]\n{}\n",
        servers_toml(&[&sink])
    ))
    .await;
    let addr = tcp_addr(&relay, "relay");
    // The kernel picks a receive socket by the sender's address: many senders reach every socket.
    const SENDERS: u64 = 32;
    const PER_SENDER: u64 = 500;
    tokio::task::spawn_blocking(move || {
        let senders: Vec<_> = (0..SENDERS)
            .map(|_| std::net::UdpSocket::bind("127.0.0.1:0").expect("bind"))
            .collect();
        for i in 0..PER_SENDER {
            for (n, s) in senders.iter().enumerate() {
                // two lines per datagram, the last without its newline
                let line = format!("multi.s{n} {i} 1700000000\nmulti.t{n} {i} 1700000000");
                s.send_to(line.as_bytes(), addr).expect("send");
            }
            if i % 50 == 49 {
                // let the receivers keep up with a burst far beyond the default receive buffer
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    })
    .await
    .expect("senders");
    let section = relay.section("relay").expect("section").clone();
    let want = 2 * SENDERS * PER_SENDER;
    wait_until("every line received or counted as dropped by the kernel", LONG, || {
        section.stats.all_lines.load(Relaxed) + 2 * section.stats.kernel_drops.load(Relaxed) == want
    })
    .await;
    wait_until("every received line at the sink", LONG, || {
        sink.count() as u64 == section.stats.all_lines.load(Relaxed)
    })
    .await;
    let lines: HashSet<String> = sink.lines().into_iter().collect();
    assert_eq!(lines.len(), sink.count(), "no line twice");
    for n in 0..SENDERS {
        let prefix = format!("multi.s{n} ");
        assert!(lines.iter().any(|l| l.starts_with(&prefix)), "sender {n} was read");
    }
    relay.shutdown().await;
}
