//! The status page (`GET /` on the admin server) in a real browser: headless Chromium (Debian `chromium`) driven
//! by `tests/status_page/drive.cjs` through npm `playwright-core`, against the relay in process with live traffic
//! and four sinks. `tests/status_page/install.sh` installs both (`.ci/run` calls it).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{ChildStdin, Command};

use crate::sink::Sink;
use crate::{start_with_prereg, tcp_addr};

const HEARTBEAT: Duration = Duration::from_secs(3);
const STEP: Duration = Duration::from_secs(60);

fn playwright_dir() -> PathBuf {
    PathBuf::from(std::env::var("PLAYWRIGHT_DIR").unwrap_or_else(|_| "/work/.cache/playwright".to_string()))
}

/// Installs Chromium and playwright-core when missing (once per test run).
fn installed() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if playwright_dir()
            .join("node_modules/playwright-core/package.json")
            .exists()
            && Path::new("/usr/bin/chromium").exists()
        {
            return;
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/status_page/install.sh");
        let ok = std::process::Command::new("bash")
            .arg(&script)
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "Chromium or playwright-core is missing and {} failed",
            script.display()
        );
    });
}

struct Driver {
    stdin: ChildStdin,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    child: tokio::process::Child,
}

impl Driver {
    async fn tell(&mut self, msg: Value) {
        self.stdin
            .write_all(format!("{msg}\n").as_bytes())
            .await
            .expect("write to the driver");
    }

    /// The driver's next report, which must be `step`.
    async fn report(&mut self, step: &str) -> Value {
        let line = tokio::time::timeout(STEP, self.lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("the browser driver did not report {step} in time"))
            .expect("read the driver")
            .unwrap_or_else(|| panic!("the browser driver exited before {step}"));
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("driver said {line:?}: {e}"));
        assert_eq!(v["step"], step, "driver: {v}");
        v
    }
}

/// Line `i` of a traffic stream.
type LineOf = fn(u64) -> String;

/// Sends graphite and statsd lines every 50 ms until dropped (traffic for the rates, not a synchronisation).
fn traffic(graphite: std::net::SocketAddr, statsd: std::net::SocketAddr) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut n = 0u64;
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        loop {
            tick.tick().await;
            let lines: [(std::net::SocketAddr, LineOf); 2] = [
                (graphite, |i| format!("page.key{} {i} 1700000000\n", i % 100)),
                (statsd, |i| format!("page.count{}:1|c\n", i % 10)),
            ];
            for (addr, line) in lines {
                if let Ok(mut c) = tokio::net::TcpStream::connect(addr).await {
                    let body: String = (n..n + 20).map(line).collect();
                    let _ = c.write_all(body.as_bytes()).await;
                }
            }
            n += 20;
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_shows_sections_members_rates_hashcheck_and_ring_change_previews() {
    installed();
    let sinks = [
        Sink::tcp().await,
        Sink::tcp().await,
        Sink::tcp().await,
        Sink::tcp().await,
    ];
    let urls: Vec<String> = sinks.iter().map(|s| s.url()).collect();
    let quoted: Vec<String> = urls.iter().map(|u| format!("\"{u}\"")).collect();
    let relay = start_with_prereg(
        &format!(
            "[default]\ninternal_health_server_listen = \"127.0.0.1:0\"\nshutdown_timeout = 1\nheartbeat_time_delay = \"{}s\"\n\
             heartbeat_time_timeout = \"1s\"\nfailed_heartbeat_count = 1\n\
             [relay]\nlisten = \"tcp://127.0.0.1:0\"\nmsg_type = \"graphite\"\nhasher_algo = \"jump_fnv1a_ch\"\n\
             [[relay.servers]]\nservers = [{}]\n\
             [statsd]\nlisten = \"tcp://127.0.0.1:0\"\nmsg_type = \"statsd\"\n[[statsd.servers]]\nservers = [{}]\n",
            HEARTBEAT.as_secs(),
            quoted.join(", "),
            quoted[0]
        ),
        "[acc]\nlisten_server = \"statsd\"\ndefault_backend = \"statsd\"\n[[acc.map]]\nnoop = \"true\"\n\
         [acc.accumulator]\nbackend = \"relay\"\ninput_format = \"statsd\"\noutput_format = \"graphite\"\n\
         accumulate_flush = \"1s\"\n",
    )
    .await;
    let base = format!("http://{}", relay.admin_addr().expect("admin server"));
    let load = traffic(tcp_addr(&relay, "relay"), tcp_addr(&relay, "statsd"));

    let shot = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/status-page.png");
    let _ = std::fs::remove_file(&shot);
    let mut child = Command::new("node")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/status_page/drive.cjs"))
        .arg(&base)
        .arg(&shot)
        .env("PLAYWRIGHT_DIR", playwright_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start node with tests/status_page/drive.cjs");
    let mut d = Driver {
        stdin: child.stdin.take().expect("stdin"),
        lines: BufReader::new(child.stdout.take().expect("stdout")).lines(),
        child,
    };

    // Every section and member, with non-zero rates where traffic flows, an accumulator line and charts with text.
    d.tell(json!({"expect": {"sections": ["relay", "statsd"], "members": urls, "busy": ["relay", "statsd"]}}))
        .await;
    let loaded = d.report("loaded").await;
    assert_eq!(loaded["sections"], json!(["relay", "statsd"]));
    for u in &urls {
        assert_eq!(loaded["members"][format!("relay {u}")], "up", "{loaded}");
    }
    assert_eq!(loaded["members"][format!("statsd {}", urls[0])], "up");
    let received = loaded["rates"]["relay"]["received"].as_str().expect("rate text");
    assert!(
        received.starts_with("received ") && received.ends_with("/s"),
        "{received}"
    );
    assert!(
        loaded["accumulators"][0]
            .as_str()
            .is_some_and(|a| a.contains("keys pending")),
        "{loaded}"
    );
    let charts = loaded["charts"].as_array().expect("charts");
    assert_eq!(charts.len(), 2);
    assert!(charts
        .iter()
        .all(|c| c.as_str().is_some_and(|c| c.contains("Lines per second"))));
    assert_eq!(loaded["unlabelled"], json!([]), "every form field has a label");

    // A stopped sink is shown down within two health intervals; the statsd section, whose only member it is,
    // stands out as all down.
    let mut sinks = Vec::from(sinks);
    let gone = sinks.remove(0);
    let gone_url = gone.url();
    let _stopped = gone.stop().await;
    d.tell(json!({ "stopped": gone_url })).await;
    let down = d.report("down").await;
    let after = down["after_ms"].as_u64().expect("ms");
    assert!(
        after <= 2 * HEARTBEAT.as_millis() as u64,
        "member shown down after {after} ms"
    );
    assert_eq!(down["all_down"], json!(["statsd"]), "{down}");
    assert_eq!(down["alerts"], json!(["statsd"]), "{down}");

    // The hashcheck box answers what /hashcheck answers.
    let key = "servers.web01.cpu;dc=ams";
    d.tell(json!({ "hashcheck": key })).await;
    let hc = d.report("hashcheck").await;
    let api: Value =
        serde_json::from_str(&crate::get_body(format!("{base}/hashcheck?key=servers.web01.cpu%3Bdc%3Dams")).await)
            .expect("JSON");
    for s in ["relay", "statsd"] {
        assert_eq!(hc["servers"][s], api[s]["to_servers"], "section {s}");
    }

    // The preview shows the dry run's figures; applying it (confirmed) adds the member.
    let new = Sink::tcp().await;
    let dry: Value = serde_json::from_str(
        &reqwest::Client::new()
            .post(format!("{base}/relay/addserver"))
            .header("X-Requested-By", "test")
            .form(&[("server", new.url().as_str()), ("dry_run", "1")])
            .send()
            .await
            .expect("POST")
            .text()
            .await
            .expect("body"),
    )
    .expect("JSON");
    d.tell(json!({"preview": {"section": "relay", "action": "addserver", "server": new.url()}}))
        .await;
    let preview = d.report("preview").await;
    assert_eq!(
        preview["moved"], dry["key_space"]["moved_fraction"],
        "{preview} vs {dry}"
    );
    let moves: Vec<String> = dry["key_space"]["moves"]
        .as_array()
        .expect("moves")
        .iter()
        .map(|m| {
            format!(
                "{} -> {}",
                m["from"].as_str().unwrap_or("null"),
                m["to"].as_str().unwrap_or("null")
            )
        })
        .collect();
    assert!(!moves.is_empty());
    assert_eq!(preview["moves"], json!(moves));
    d.tell(json!({"apply": true})).await;
    let dialog = d.report("dialog").await;
    assert!(
        dialog["message"].as_str().is_some_and(|m| m.contains(&new.url())),
        "{dialog}"
    );
    let applied = d.report("applied").await;
    assert!(
        applied["answer"].as_str().is_some_and(|a| a.contains("Added")),
        "{applied}"
    );
    let members = relay.section("relay").expect("section").backend.members();
    assert!(
        members[0].iter().any(|m| m.hashkey.contains(&new.url()[6..])),
        "the member is in the ring"
    );

    // Nothing outside the admin server; a screenshot for people.
    d.tell(json!({"done": true})).await;
    let done = d.report("done").await;
    let requests = done["requests"].as_array().expect("requests");
    assert!(requests.len() > 3);
    for r in requests {
        assert!(
            r.as_str().is_some_and(|r| r.starts_with(&format!("{base}/"))),
            "request to {r}"
        );
    }
    assert_eq!(done["errors"], json!([]), "script errors on the page");
    assert!(
        std::fs::metadata(&shot).is_ok_and(|m| m.len() > 10_000),
        "screenshot at {}",
        shot.display()
    );
    drop(d.stdin);
    let _ = tokio::time::timeout(STEP, d.child.wait()).await;
    load.abort();
    relay.shutdown().await;
}
