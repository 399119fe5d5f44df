//! Runs the real echoserver binary on loopback, sends it lines over real sockets and checks what it prints.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(20);

fn free_tcp_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A running echoserver whose stderr lines arrive on a channel.
struct Server {
    child: Child,
    stderr: Receiver<String>,
}

impl Server {
    fn start(args: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_echoserver"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Server { child, stderr: rx }
    }

    /// Waits until `n` stderr lines containing `needle` have been seen (counting from the last call).
    fn wait_for(&self, needle: &str, n: usize) {
        let end = Instant::now() + DEADLINE;
        let mut seen = 0;
        while seen < n {
            let left = end.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) if line.contains(needle) => seen += 1,
                Ok(_) => {}
                Err(e) => panic!("waiting for {n} x {needle:?} (saw {seen}): {e}"),
            }
        }
    }

    /// SIGTERM, wait for the exit, return the exit status and stdout.
    fn terminate(mut self) -> (ExitStatus, String) {
        use rustix::process::{kill_process, Pid, Signal};
        kill_process(Pid::from_child(&self.child), Signal::TERM).expect("SIGTERM the child");
        let end = Instant::now() + DEADLINE;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < end, "echoserver did not exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(10));
        };
        let mut out = String::new();
        self.child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
        (status, out)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of `key=` on the line starting with `prefix`.
fn field<'a>(out: &'a str, prefix: &str, key: &str) -> &'a str {
    let line = out
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} in {out:?}"));
    line.split(' ')
        .find_map(|kv| kv.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
}

fn assert_decimals(value: &str, places: usize) {
    let (int, frac) = value
        .split_once('.')
        .unwrap_or_else(|| panic!("{value:?} has no decimals"));
    assert!(
        int.parse::<u64>().is_ok() && frac.len() == places && frac.parse::<u64>().is_ok(),
        "{value:?}"
    );
}

#[test]
fn no_arguments_prints_defaults_and_exits_zero() {
    let out = Command::new(env!("CARGO_BIN_EXE_echoserver")).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for want in ["--servers", "tcp://127.0.0.1:6002", "--quiet", "--count", "--profile"] {
        assert!(text.contains(want), "{want} missing from {text}");
    }
}

#[test]
fn count_mode_over_tcp_prints_totals_on_sigterm() {
    let url = format!("tcp://127.0.0.1:{}", free_tcp_port());
    let server = Server::start(&["--count", "--servers", &url]);
    server.wait_for("Listening", 1);

    let mut payload = Vec::new();
    for i in 0..1000 {
        payload.extend_from_slice(format!("metric.{i} {i} 1700000000\n").as_bytes());
    }
    payload.extend_from_slice(b"   \n\r\n\t\n  last unterminated line  ");
    let mut conn = TcpStream::connect(url.trim_start_matches("tcp://")).unwrap();
    // Odd chunk sizes so lines straddle reads.
    for chunk in payload.chunks(777) {
        conn.write_all(chunk).unwrap();
    }
    drop(conn);
    server.wait_for("Close connection", 1);

    let (status, out) = server.terminate();
    assert!(status.success(), "{status:?}");
    let bytes = payload.len().to_string();
    assert_eq!(field(&out, &format!("LISTENER {url} "), "lines"), "1001");
    assert_eq!(field(&out, &format!("LISTENER {url} "), "bytes"), bytes);
    assert_eq!(field(&out, &format!("LISTENER {url} "), "connections"), "1");
    assert_eq!(field(&out, "TOTAL ", "lines"), "1001");
    assert_eq!(field(&out, "TOTAL ", "bytes"), bytes);
    assert_eq!(field(&out, "TOTAL ", "connections"), "1");
    assert_decimals(field(&out, "TOTAL ", "elapsed"), 3);
    assert_decimals(field(&out, "TOTAL ", "rate"), 2);
}

#[test]
fn print_mode_echoes_udp_and_http_lines() {
    let udp = format!("udp://127.0.0.1:{}", free_udp_port());
    let http = format!("http://127.0.0.1:{}/metrics/", free_tcp_port());
    let server = Server::start(&["--servers", &format!("{udp},{http}")]);
    server.wait_for("Listening", 2);

    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.send_to(
        b"udp.a 1 2\n \nudp.b 3 4\r\n  udp.c 5 6",
        udp.trim_start_matches("udp://"),
    )
    .unwrap();
    server.wait_for(&format!("[ECHO from {udp}] udp.c 5 6"), 1);

    let http_addr = http.trim_start_matches("http://").trim_end_matches("/metrics/");
    let post = |request: &str| -> String {
        let mut conn = TcpStream::connect(http_addr).unwrap();
        conn.write_all(request.as_bytes()).unwrap();
        let mut response = String::new();
        conn.read_to_string(&mut response).unwrap();
        response
    };
    let body = "http.x 1 2\n\nhttp.y 3 4";
    let response = post(&format!(
        "POST /metrics/graphite HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ));
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let response = post(
        "PUT /metrics/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhttp.\r\n7\r\nz 5 6\n\n\r\n0\r\n\r\n",
    );
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let response = post("GET /elsewhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(response.starts_with("HTTP/1.1 404"), "{response}");
    server.wait_for(&format!("[ECHO from {http}] http.z 5 6"), 1);

    let (status, out) = server.terminate();
    assert!(status.success(), "{status:?}");
    assert_eq!(field(&out, &format!("LISTENER {udp} "), "lines"), "3");
    assert_eq!(field(&out, &format!("LISTENER {http} "), "lines"), "3");
    assert_eq!(field(&out, &format!("LISTENER {http} "), "connections"), "3");
    assert_eq!(field(&out, "TOTAL ", "lines"), "6");
}

#[test]
fn unix_listener_counts_and_removes_its_socket_file() {
    let path = std::env::temp_dir().join(format!("echoserver-test-{}.sock", std::process::id()));
    let url = format!("unix://{}", path.display());
    let server = Server::start(&["--quiet", "--servers", &url]);
    server.wait_for("Listening", 1);
    let mut conn = std::os::unix::net::UnixStream::connect(&path).unwrap();
    conn.write_all(b"a 1 2\nb 3 4\nc 5 6").unwrap();
    drop(conn);
    server.wait_for("Close connection", 1);
    let (status, out) = server.terminate();
    assert!(status.success());
    assert_eq!(field(&out, "TOTAL ", "lines"), "3");
    assert!(!path.exists(), "socket file left behind");
}
