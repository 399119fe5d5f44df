//! Health checks, the admin/stats API, /metrics, self-stats and `consthash hashcheck`.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use consthash::ring::Ring;
use serde_json::Value;

use crate::sink::Sink;
use crate::{send_tcp, start, tcp_addr, wait_until};

const LONG: Duration = Duration::from_secs(60);

fn lines(n: usize, tag: &str) -> Vec<String> {
    (0..n)
        .map(|i| format!("{tag}.key{}.v {i} 1700000000", i % 500))
        .collect()
}

fn key_of(line: &str) -> &str {
    line.split(' ').next().unwrap_or(line)
}

fn urls(sinks: &[&Sink]) -> String {
    sinks
        .iter()
        .map(|s| format!("\"{}\"", s.url()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A fresh ring with the section's spec over these members (hashkeys = URLs, ids = index in `all`).
fn fresh_ring(relay: &consthash::app::Relay, members: &[usize], all: &[String]) -> Ring {
    let spec = relay.section("relay").expect("section").backend.spec();
    let m: Vec<(String, u32)> = members.iter().map(|&i| (all[i].clone(), i as u32)).collect();
    Ring::new(&spec, &m)
}

/// Every line of `sent` found at a sink is at the sink `ring` names for its key; returns how many were found.
fn assert_placement(ring: &Ring, received: &[Vec<String>], sent: &[String]) -> usize {
    let sent: std::collections::HashSet<&String> = sent.iter().collect();
    let mut ids = Vec::new();
    let mut checked = 0;
    for (i, got) in received.iter().enumerate() {
        for l in got.iter().filter(|l| sent.contains(l)) {
            ring.get_n(key_of(l).as_bytes(), 1, &mut ids);
            assert_eq!(ids, [i as u32], "{l} arrived at sink {i}");
            checked += 1;
        }
    }
    checked
}

/// A form POST as a script sends it: with the `X-Requested-By` header that a cross-site web form cannot send.
async fn post(url: &str, form: &[(&str, &str)]) -> (u16, String) {
    let r = reqwest::Client::new()
        .post(url)
        .header("X-Requested-By", "tests")
        .form(form)
        .send()
        .await
        .expect("POST");
    (r.status().as_u16(), r.text().await.expect("body"))
}

async fn get(url: &str) -> (u16, String) {
    let r = reqwest::get(url).await.expect("GET");
    (r.status().as_u16(), r.text().await.expect("body"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_server_leaves_the_ring_and_comes_back_in_its_place() {
    let (s0, s1, s2) = (Sink::tcp().await, Sink::tcp().await, Sink::tcp().await);
    let all = [s0.url(), s1.url(), s2.url()];
    let relay = start(&format!(
        "[default]\nheartbeat_time_delay = \"1s\"\nheartbeat_time_timeout = \"400ms\"\nfailed_heartbeat_count = 2\n\
         server_down_policy = \"remove_node\"\nreconnect_backoff_max = 200\n\
         [relay]\nlisten = \"tcp://127.0.0.1:0\"\nmsg_type = \"graphite\"\nhasher_algo = \"md5\"\nhasher_vnodes = 100\n\
         [[relay.servers]]\nservers = [\"{}\", \"{}\", \"{}\"]\n",
        all[0], all[1], all[2]
    ))
    .await;
    let addr = tcp_addr(&relay, "relay");
    let section = relay.section("relay").expect("section").clone();
    let dest1 = section.backend.destinations()[1].clone();
    let total = |a: &Sink, b: &Sink, c: &Sink| a.count() + b.count() + c.count();

    let phase1 = lines(3_000, "one");
    send_tcp(addr, &phase1).await;
    wait_until("phase 1 delivered", LONG, || total(&s0, &s1, &s2) >= 3_000).await;
    assert_eq!(
        assert_placement(
            &fresh_ring(&relay, &[0, 1, 2], &all),
            &[s0.lines(), s1.lines(), s2.lines()],
            &phase1
        ),
        3_000
    );

    let stopped = s1.stop().await;
    // lines sent before the checks notice: those for the dead server wait in its queue
    let gap = lines(1_000, "gap");
    send_tcp(addr, &gap).await;
    wait_until("the stopped server is marked down", LONG, || {
        dest1.stats.health_down.load(Relaxed) == 1
    })
    .await;
    assert!(!section.backend.members()[0][1].up);
    assert_eq!(section.backend.load().rings[0].members(), 2);

    let phase2 = lines(3_000, "two");
    send_tcp(addr, &phase2).await;
    let on_live = |l: &[String]| l.iter().filter(|x| x.starts_with("two.")).count();
    wait_until("phase 2 delivered to the live servers", LONG, || {
        on_live(&s0.lines()) + on_live(&s2.lines()) >= 3_000
    })
    .await;
    let without = fresh_ring(&relay, &[0, 2], &all);
    assert_eq!(
        assert_placement(&without, &[s0.lines(), Vec::new(), s2.lines()], &phase2),
        3_000
    );

    let s1 = stopped.restart().await;
    wait_until("the server is back up", LONG, || {
        dest1.stats.health_up.load(Relaxed) == 1
    })
    .await;
    assert_eq!(section.backend.load().rings[0].members(), 3);
    let phase3 = lines(3_000, "three");
    send_tcp(addr, &phase3).await;
    let sent = 3_000 + 1_000 + 3_000 + 3_000;
    wait_until("every line delivered or counted", LONG, || {
        total(&s0, &s1, &s2) as u64 + dest1.stats.dropped_total() >= sent as u64
    })
    .await;
    let received = [s0.lines(), s1.lines(), s2.lines()];
    assert_eq!(
        assert_placement(&fresh_ring(&relay, &[0, 1, 2], &all), &received, &phase3),
        3_000,
        "placement is back"
    );
    assert_eq!(
        assert_placement(&fresh_ring(&relay, &[0, 1, 2], &all), &received, &gap),
        1_000,
        "queued gap lines arrive"
    );
    assert_eq!(total(&s0, &s1, &s2), sent, "nothing lost, nothing duplicated");
    relay.shutdown().await;
}

async fn api_relay(extra_default: &str, sinks: &[&Sink]) -> (consthash::app::Relay, String) {
    let relay = start(&format!(
        "[default]\ninternal_health_server_listen = \"127.0.0.1:0\"\n{extra_default}\n\
         [relay]\nlisten = \"tcp://127.0.0.1:0\"\nmsg_type = \"graphite\"\nhasher_algo = \"md5\"\nhasher_vnodes = 100\n\
         [[relay.servers]]\nservers = [{}]\n",
        urls(sinks)
    ))
    .await;
    let base = format!("http://{}", relay.admin_addr().expect("admin server"));
    (relay, base)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn addserver_then_purgeserver_equal_a_fresh_start_with_that_member_list() {
    let (a, b, c) = (Sink::tcp().await, Sink::tcp().await, Sink::tcp().await);
    let all = [a.url(), b.url(), c.url()];
    let (relay, base) = api_relay("", &[&a, &b]).await;
    let addr = tcp_addr(&relay, "relay");

    // dry run first: nothing changes, about a third of the key space would move to the new server
    let (code, body) = post(
        &format!("{base}/relay/addserver"),
        &[("server", &all[2]), ("dry_run", "1")],
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let report: Value = serde_json::from_str(&body).expect("JSON");
    let moved = report["key_space"]["moved_fraction"].as_f64().expect("fraction");
    assert!(
        moved > 0.15 && moved < 0.5,
        "adding a third server moves about a third of the keys: {report}"
    );
    for m in report["key_space"]["moves"].as_array().expect("moves") {
        assert_eq!(
            m["to"],
            Value::from(all[2].clone()),
            "keys only move to the new server: {m}"
        );
    }
    assert_eq!(
        relay.section("relay").expect("s").backend.load().rings[0].members(),
        2,
        "a dry run changes nothing"
    );

    let (code, body) = post(&format!("{base}/relay/addserver"), &[("server", &all[2])]).await;
    assert_eq!(
        (code, body.as_str()),
        (200, format!("Server {} Added", all[2]).as_str())
    );
    let one = lines(3_000, "added");
    send_tcp(addr, &one).await;
    wait_until("delivered after addserver", LONG, || {
        a.count() + b.count() + c.count() >= 3_000
    })
    .await;
    assert_eq!(
        assert_placement(
            &fresh_ring(&relay, &[0, 1, 2], &all),
            &[a.lines(), b.lines(), c.lines()],
            &one
        ),
        3_000
    );

    let (code, body) = post(&format!("{base}/relay/purgeserver"), &[("server", &all[0])]).await;
    assert_eq!(
        (code, body.as_str()),
        (200, format!("Server {} Purged", all[0]).as_str())
    );
    let two = lines(3_000, "purged");
    send_tcp(addr, &two).await;
    wait_until("delivered after purgeserver", LONG, || {
        b.count() + c.count() >= 3_000 + one.len() - a.count()
    })
    .await;
    assert_eq!(
        assert_placement(
            &fresh_ring(&relay, &[1, 2], &all),
            &[a.lines(), b.lines(), c.lines()],
            &two
        ),
        3_000
    );

    // /hashcheck agrees with the rings
    let (code, body) = get(&format!("{base}/hashcheck?key=purged.key7.v")).await;
    assert_eq!(code, 200);
    let hc: Value = serde_json::from_str(&body).expect("JSON");
    let mut ids = Vec::new();
    fresh_ring(&relay, &[1, 2], &all).get_n(b"purged.key7.v", 1, &mut ids);
    assert_eq!(hc["relay"]["to_servers"], serde_json::json!([all[ids[0] as usize]]));
    assert_eq!(hc["relay"]["hash_key"], "purged.key7.v");
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutations_need_post_from_an_allowed_client_and_valid_parameters() {
    let a = Sink::tcp().await;
    let (relay, base) = api_relay("", &[&a]).await;
    let add = format!("{base}/relay/addserver");
    let r = reqwest::get(&add).await.expect("GET");
    assert_eq!(r.status().as_u16(), 405);
    assert_eq!(r.headers()["allow"], "POST, PUT");
    for (form, want) in [
        (vec![("server", "nonsense")], "Not a valid server URL"),
        (vec![], "Not a valid server URL"),
        (
            vec![("server", "tcp://127.0.0.1:9"), ("check_server", "::bad")],
            "Not a valid Check server URL",
        ),
        (
            vec![("server", "tcp://127.0.0.1:9"), ("check_server", "udp://127.0.0.1:9")],
            "Check server can only be TCP or HTTP",
        ),
        (
            vec![("server", "tcp://127.0.0.1:9"), ("replica", "x")],
            "Replica index is not an int",
        ),
        (
            vec![("server", "tcp://127.0.0.1:9"), ("replica", "1")],
            "Replica index Too large",
        ),
        (
            vec![("server", "tcp://127.0.0.1:9"), ("replica", "-1")],
            "Replica index Too small",
        ),
    ] {
        assert_eq!(post(&add, &form).await, (400, want.to_string()), "{form:?}");
    }
    assert_eq!(
        post(&format!("{base}/nosuch/addserver"), &[("server", "tcp://127.0.0.1:9")])
            .await
            .0,
        400
    );
    let put = reqwest::Client::new()
        .put(format!("{add}?server=tcp://127.0.0.1:9"))
        .send()
        .await
        .expect("PUT");
    assert_eq!(put.status().as_u16(), 200, "query parameters and PUT work too");
    relay.shutdown().await;

    let (relay, base) = api_relay("internal_health_server_admin_allow = [\"10.0.0.0/8\"]", &[&a]).await;
    let (code, _) = post(&format!("{base}/relay/purgeserver"), &[("server", &a.url())]).await;
    assert_eq!(code, 403);
    assert_eq!(
        relay.section("relay").expect("s").backend.load().rings[0].members(),
        1,
        "nothing changed"
    );
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_section_cannot_get_its_own_listener_as_a_ring_member() {
    let a = Sink::tcp().await;
    let (relay, base) = api_relay("", &[&a]).await;
    let port = tcp_addr(&relay, "relay").port();
    for own in [format!("tcp://127.0.0.1:{port}"), format!("tcp://localhost:{port}")] {
        let (code, body) = post(&format!("{base}/relay/addserver"), &[("server", &own)]).await;
        assert_eq!(code, 400, "{body}");
        assert!(body.contains("own listener"), "{body}");
    }
    let ring = relay.section("relay").expect("s").backend.load();
    assert_eq!(ring.rings[0].members(), 1, "nothing changed");
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_pages_cannot_read_the_stats_or_change_the_rings() {
    let a = Sink::tcp().await;
    let (relay, base) = api_relay("internal_health_server_hosts = [\"relay.example.org\"]", &[&a]).await;
    let members = || relay.section("relay").expect("s").backend.load().rings[0].members();
    let client = reqwest::Client::new();
    let get_as = |host: &'static str| client.get(format!("{base}/stats")).header("Host", host).send();
    // DNS rebinding: a page on evil.example.com resolving to 127.0.0.1 sends its own name as Host
    assert_eq!(
        get_as("evil.example.com:6061").await.expect("GET").status().as_u16(),
        403
    );
    for host in ["relay.example.org", "localhost:6061", "127.0.0.1"] {
        assert_eq!(get_as(host).await.expect("GET").status().as_u16(), 200, "{host}");
    }
    // jsonp must be a callback name, not script
    let (code, body) = get(&format!("{base}/stats?jsonp=alert(document.cookie)//")).await;
    assert_eq!(code, 400, "{body}");
    assert!(!body.contains("alert"), "nothing of the callback is reflected: {body}");

    let add = format!("{base}/relay/addserver");
    let form = [("server", "tcp://127.0.0.1:9")];
    // what a cross-site <form method=post> sends
    let r = client.post(&add).form(&form).send().await.expect("POST");
    assert_eq!(r.status().as_u16(), 403);
    let r = client
        .post(&add)
        .header("X-Requested-By", "page")
        .header("Origin", "http://evil.example.com")
        .form(&form)
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status().as_u16(), 403, "another origin");
    let r = client
        .post(format!("{add}?server=tcp://127.0.0.1:9"))
        .header("Sec-Fetch-Site", "cross-site")
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status().as_u16(), 403, "a cross-site fetch");
    assert_eq!(members(), 1, "nothing changed");

    let own = base.trim_start_matches("http://").to_string();
    let r = client
        .post(&add)
        .header("Origin", format!("http://{own}"))
        .header("X-Requested-By", "ops")
        .form(&form)
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status().as_u16(), 200, "the server's own origin with the header");
    assert_eq!(members(), 2);
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_is_built_in_and_overview_counts_what_its_members_got() {
    let (a, b) = (Sink::tcp().await, Sink::tcp().await);
    let (relay, base) = api_relay("", &[&a, &b]).await;
    let page = reqwest::get(format!("{base}/")).await.expect("GET /");
    assert_eq!(page.status().as_u16(), 200);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .expect("csp")
        .to_string();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"),
        "{csp}"
    );
    let body = page.text().await.expect("body");
    assert!(
        body.len() < 200 * 1024 && body.contains("/overview"),
        "{} bytes",
        body.len()
    );
    let outside = body.replace("http://www.w3.org/2000/svg", "");
    assert!(
        !outside.contains("http://") && !outside.contains("https://"),
        "the page links nothing outside"
    );
    assert_eq!(get(&format!("{base}/no/such/page")).await.0, 404);

    send_tcp(tcp_addr(&relay, "relay"), &lines(300, "ov")).await;
    wait_until("delivered", LONG, || a.count() + b.count() >= 300).await;
    // A line counts as sent once the sink's kernel acknowledged it: shortly after the sink read it.
    let deadline = tokio::time::Instant::now() + LONG;
    let o = loop {
        let o: Value = serde_json::from_str(&get(&format!("{base}/overview")).await.1).expect("JSON");
        if o["sections"][0]["totals"]["sent"] == 300 {
            break o;
        }
        assert!(tokio::time::Instant::now() < deadline, "sent never reached 300: {o}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let s = &o["sections"][0];
    assert_eq!(s["name"], "relay");
    assert_eq!(s["totals"]["received"], 300);
    let members = s["rings"][0].as_array().expect("members");
    let got = |url: &str| members.iter().find(|m| m["url"] == url).expect("member")["sent"].clone();
    assert_eq!(members.len(), 2);
    assert!(members
        .iter()
        .all(|m| m["state"] == "up" && m["queued"] == 0 && m["dropped"] == 0));
    assert_eq!(got(&a.url()), a.count() as u64);
    assert_eq!(got(&b.url()), b.count() as u64);
    assert!(s["accumulator"].is_null());
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placement_is_the_same_on_relays_with_the_same_members_and_follows_health() {
    let sinks = [
        Sink::tcp().await,
        Sink::tcp().await,
        Sink::tcp().await,
        Sink::tcp().await,
    ];
    let config = format!(
        "[default]\ninternal_health_server_listen = \"127.0.0.1:0\"\nheartbeat_time_delay = \"1s\"\n\
         heartbeat_time_timeout = \"200ms\"\nfailed_heartbeat_count = 1\nserver_down_policy = \"remove_node\"\n\
         [relay]\nlisten = \"tcp://127.0.0.1:0\"\nmsg_type = \"graphite\"\nhasher_algo = \"jump_fnv1a_ch\"\n\
         num_dupe_replicas = 2\n[[relay.servers]]\nservers = [{}]\n",
        urls(&sinks.iter().collect::<Vec<_>>())
    );
    let (one, two) = (start(&config).await, start(&config).await);
    let placement = |relay: &consthash::app::Relay| {
        let url = format!("http://{}/placement", relay.admin_addr().expect("admin"));
        async move { serde_json::from_str::<Value>(&get(&url).await.1).expect("JSON") }
    };
    let p = placement(&one).await;
    assert_eq!(p, placement(&two).await, "the same member list, the same answer");
    let s = &p["relay"];
    assert_eq!(s["replica_factor"], 2);
    let members = s["rings"][0].as_array().expect("members");
    assert_eq!(members.len(), 4);
    let sum = |k: &str, ms: &[Value]| ms.iter().map(|m| m[k].as_f64().expect("share")).sum::<f64>();
    assert!((sum("first", members) - 1.0).abs() < 1e-9, "{s}");
    assert!((sum("further", members) - 1.0).abs() < 1e-9, "{s}");
    for m in members {
        assert_eq!(m["up"], true);
        let first = m["first"].as_f64().expect("share");
        assert!((0.2..0.3).contains(&first), "jump spreads evenly: {m}");
    }
    // A dead member is out of the ring (remove_node): no share; the others own the whole key space.
    let mut sinks = Vec::from(sinks);
    let stopping = sinks.remove(2);
    let dead = stopping.url();
    let _stopped = stopping.stop().await;
    let deadline = tokio::time::Instant::now() + LONG;
    let p = loop {
        let p = placement(&one).await;
        let all_down = p["relay"]["rings"][0]
            .as_array()
            .expect("members")
            .iter()
            .all(|m| m["up"] == false);
        if p["relay"]["rings"][0]
            .as_array()
            .expect("members")
            .iter()
            .any(|m| m["url"] == dead && m["up"] == false)
            && !all_down
        {
            break p;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the dead member never went down: {p}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let members = p["relay"]["rings"][0].as_array().expect("members");
    let gone = members.iter().find(|m| m["url"] == dead).expect("still listed");
    assert_eq!(
        (gone["first"].as_f64(), gone["further"].as_f64()),
        (Some(0.0), Some(0.0))
    );
    assert!((sum("first", members) - 1.0).abs() < 1e-9, "{p}");
    one.shutdown().await;
    two.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_endpoints() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("index.html"), "<h1>consthash</h1>").expect("index");
    let a = Sink::tcp().await;
    let (relay, base) = api_relay(
        &format!("internal_health_server_path = \"{}\"", dir.path().display()),
        &[&a],
    )
    .await;
    send_tcp(tcp_addr(&relay, "relay"), &lines(100, "ro")).await;
    wait_until("delivered", LONG, || a.count() >= 100).await;

    for p in [
        "/ping",
        "/status",
        "/ops/status",
        "/relay/ping",
        "/relay/ops/status",
        "/relay/status",
    ] {
        let r = reqwest::get(format!("{base}{p}")).await.expect("GET");
        assert_eq!(r.status().as_u16(), 200, "{p}");
        assert_eq!(r.headers()["cache-control"], "private, max-age=0, no-cache", "{p}");
        assert_eq!(r.text().await.expect("body"), "ok");
    }
    assert_eq!(get(&format!("{base}/")).await, (200, "<h1>consthash</h1>".to_string()));
    assert_eq!(
        get(&format!("{base}/no/such/page")).await.0,
        200,
        "unknown paths serve the index"
    );
    assert_eq!(
        get(&format!("{base}/nosuch/stats")).await,
        (400, "Invalid server name".to_string())
    );
    assert_eq!(
        get(&format!("{base}/relay/accumulator")).await,
        (501, "No accumulators defined".to_string())
    );
    assert_eq!(
        get(&format!("{base}/hashcheck")).await,
        (404, "Please provide a 'key' to process".to_string())
    );

    let (code, body) = get(&format!("{base}/stats")).await;
    assert_eq!(code, 200);
    let stats: Value = serde_json::from_str(&body).expect("JSON");
    let s = &stats["relay"];
    assert_eq!(s["valid_line_count"], 100);
    assert_eq!(s["all_lines_count"], 100);
    assert_eq!(s["worker_line_count"], 100);
    assert_eq!(s["success_send_count"], 100);
    assert_eq!(s["servers_up"], serde_json::json!([a.url()]));
    assert_eq!(s["servers_down"], serde_json::json!([]));
    assert!(s["listening"]
        .as_str()
        .expect("listening")
        .starts_with("tcp://127.0.0.1:"));
    for k in [
        "valid_line_count_list",
        "ticks_list",
        "go_routines_list",
        "current_valid_line_count",
        "uptime_sec",
        "bytes_read",
    ] {
        assert!(!s[k].is_null(), "ServerStats has {k}");
    }
    assert_eq!(get(&format!("{base}/relay/stats")).await.0, 200);
    let (code, body) = get(&format!("{base}/stats?jsonp=cb")).await;
    assert!(
        code == 200 && body.starts_with("cb({") && body.ends_with("})"),
        "{body}"
    );
    let (_, servers) = get(&format!("{base}/servers")).await;
    let servers: Value = serde_json::from_str(&servers).expect("JSON");
    assert_eq!(servers["relay"][0], "/relay");
    assert_eq!(servers["relay"].as_array().map(Vec::len), Some(7));

    // the last member purged: the section reports all servers down
    assert_eq!(
        post(&format!("{base}/relay/purgeserver"), &[("server", &a.url())])
            .await
            .0,
        200
    );
    assert_eq!(
        get(&format!("{base}/relay/ops/status")).await,
        (503, "all servers down".to_string())
    );
    let hc: Value = serde_json::from_str(&get(&format!("{base}/hashcheck?key=x")).await.1).expect("JSON");
    assert_eq!(hc["relay"]["to_servers"], Value::Null);
    relay.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_as_prometheus_text_and_count_what_was_sent() {
    let a = Sink::tcp().await;
    let (relay, base) = api_relay("max_line_length = 50", &[&a]).await;
    let mut batch = lines(1_000, "prom");
    batch.push("x".repeat(80)); // too long
    send_tcp(tcp_addr(&relay, "relay"), &batch).await;
    wait_until("delivered", LONG, || a.count() >= 1_000).await;
    let (code, body) = get(&format!("{base}/metrics")).await;
    assert_eq!(code, 200);
    let parsed = parse_prometheus(&body);
    let want = |name: &str, labels: &[(&str, &str)]| -> f64 {
        parsed
            .iter()
            .find(|(n, l, _)| n == name && labels.iter().all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v)))
            .map(|(_, _, v)| *v)
            .unwrap_or_else(|| panic!("no sample {name} {labels:?} in\n{body}"))
    };
    assert_eq!(
        want(
            "consthash_lines_received_total",
            &[("section", "relay"), ("proto", "tcp")]
        ),
        1_001.0
    );
    assert_eq!(
        want(
            "consthash_lines_invalid_total",
            &[("section", "relay"), ("reason", "too_long")]
        ),
        1.0
    );
    assert_eq!(
        want(
            "consthash_lines_sent_total",
            &[("section", "relay"), ("destination", &a.url())]
        ),
        1_000.0
    );
    assert_eq!(
        want(
            "consthash_lines_dropped_total",
            &[
                ("section", "relay"),
                ("destination", &a.url()),
                ("reason", "queue_full")
            ]
        ),
        0.0
    );
    assert_eq!(
        want("consthash_ring_members", &[("section", "relay"), ("ring", "0")]),
        1.0
    );
    assert_eq!(
        want(
            "consthash_destination_up",
            &[("section", "relay"), ("destination", &a.url())]
        ),
        1.0
    );
    let bytes: usize = batch.iter().map(|l| l.len() + 1).sum();
    assert_eq!(
        want("consthash_bytes_read_total", &[("section", "relay")]),
        bytes as f64
    );
    relay.shutdown().await;
}

/// Parses exposition text with the Prometheus reference client's parser (Python `prometheus_client`):
/// (sample name, labels, value) per sample.
fn parse_prometheus(text: &str) -> Vec<(String, HashMap<String, String>, f64)> {
    let has_parser = || {
        std::process::Command::new("python3")
            .args(["-c", "import prometheus_client"])
            .status()
            .is_ok_and(|s| s.success())
    };
    if !has_parser() {
        let installed = std::process::Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "prometheus-client"])
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            installed && has_parser(),
            "cannot install the Prometheus parser: `python3 -m pip install prometheus-client`"
        );
    }
    let script = "import sys, json\nfrom prometheus_client.parser import text_string_to_metric_families\n\
                  out = [[s.name, s.labels, s.value] for f in text_string_to_metric_families(sys.stdin.read()) for s in f.samples]\n\
                  print(json.dumps(out))";
    let mut child = std::process::Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("parser output");
    assert!(
        out.status.success(),
        "the Prometheus parser rejected /metrics (install it with `pip install prometheus-client`; .ci/run does):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("parser JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_stats_reach_the_statsd_server() {
    let statsd = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let a = Sink::tcp().await;
    let relay = start(&format!(
        "[default]\nstatsd_server = \"{}\"\nstatsd_prefix = \"ch\"\nstatsd_interval = 1\n\
         [relay]\nlisten = \"tcp://127.0.0.1:0\"\nmsg_type = \"graphite\"\n[[relay.servers]]\nservers = [\"{}\"]\n",
        statsd.local_addr().expect("addr"),
        a.url()
    ))
    .await;
    send_tcp(tcp_addr(&relay, "relay"), &lines(500, "self")).await;
    wait_until("delivered", LONG, || a.count() >= 500).await;
    let mut valid = 0u64;
    let mut buf = vec![0u8; 65536];
    let deadline = tokio::time::Instant::now() + LONG;
    while valid < 500 {
        let n = tokio::time::timeout_at(deadline, statsd.recv(&mut buf))
            .await
            .expect("self-stats in time")
            .expect("recv");
        for line in String::from_utf8_lossy(&buf[..n]).lines() {
            assert!(line.starts_with("ch."), "prefixed: {line}");
            if let Some(v) = line
                .split_once(".success.valid-lines:")
                .and_then(|(_, r)| r.strip_suffix("|c"))
            {
                valid += v.parse::<u64>().expect("count");
            }
        }
    }
    assert_eq!(valid, 500);
    relay.shutdown().await;
}
