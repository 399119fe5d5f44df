//! Runs the real statblast binary against in-test sinks on loopback and checks what arrives.

use std::io::Read;
use std::net::{TcpListener, UdpSocket};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const DEADLINE: Duration = Duration::from_secs(20);

fn statblast(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_statblast"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for the exit within the deadline and collects the output.
fn finish(mut child: Child) -> Output {
    let end = Instant::now() + DEADLINE;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > end {
            let _ = child.kill();
            panic!("statblast did not exit in time");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

fn total_sent(out: &Output) -> u64 {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("TOTAL "))
        .unwrap_or_else(|| panic!("no TOTAL in {stdout:?}"));
    let fields: Vec<&str> = line.split(' ').collect();
    assert_eq!(fields.len(), 5, "{line}");
    let elapsed = fields[2].strip_prefix("elapsed=").unwrap();
    assert_eq!(elapsed.split_once('.').unwrap().1.len(), 3, "{line}");
    let rate = fields[3].strip_prefix("rate=").unwrap();
    assert_eq!(rate.split_once('.').unwrap().1.len(), 2, "{line}");
    let per_send = fields[4].strip_prefix("per_send=").unwrap();
    assert_eq!(per_send.split_once('.').unwrap().1.len(), 2, "{line}");
    fields[1].strip_prefix("sent=").unwrap().parse().unwrap()
}

/// The `per_send=` value of the TOTAL line, as printed.
fn per_send(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().find(|l| l.starts_with("TOTAL ")).unwrap();
    line.rsplit_once("per_send=").unwrap().1.to_string()
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

#[test]
fn no_arguments_prints_defaults_and_exits_zero() {
    let out = Command::new(env!("CARGO_BIN_EXE_statblast")).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "tcp://127.0.0.1:8125",
        "statsd",
        "0.1s",
        "512",
        "test,house,here,there,badline,cow,now",
        "--lines",
        "--keys",
    ] {
        assert!(text.contains(want), "{want} missing from {text}");
    }
}

#[test]
fn sends_exactly_the_requested_graphite_lines_over_tcp() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        // One connection per target, shared by both senders: everything arrives on the first accept.
        let (mut conn, _) = listener.accept().unwrap();
        let mut data = Vec::new();
        conn.read_to_end(&mut data).unwrap();
        let _ = tx.send(data);
    });
    let before = now();
    let target = format!("tcp://127.0.0.1:{port}");
    let child = statblast(&[
        "--servers",
        &target,
        "--lines",
        "1000",
        "--rate",
        "0",
        "--type",
        "graphite",
        "--keys",
        "10",
    ]);
    let out = finish(child);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(total_sent(&out), 1000);

    let data = rx.recv_timeout(DEADLINE).expect("the sink saw end of stream");
    let text = String::from_utf8(data).unwrap();
    assert!(text.ends_with('\n'));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1000);
    for line in lines {
        let parts: Vec<&str> = line.split(' ').collect();
        assert_eq!(parts.len(), 3, "{line}");
        let key: u64 = parts[0].strip_prefix("graphitetest.k").unwrap().parse().unwrap();
        assert!(key < 10, "{line}");
        assert!(parts[1].parse::<u64>().unwrap() < 10_000, "{line}");
        let ts: u64 = parts[2].parse().unwrap();
        assert!(ts >= before && ts <= now(), "{line}");
    }
}

#[test]
fn statsd_over_udp_fits_each_batch_in_the_buffer() {
    let sink = UdpSocket::bind("127.0.0.1:0").unwrap();
    let target = format!("udp://{}", sink.local_addr().unwrap());
    let child = statblast(&[
        "--servers",
        &target,
        "--lines",
        "300",
        "--rate",
        "0",
        "--buffer",
        "256",
        "--forks",
        "3",
    ]);
    sink.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let end = Instant::now() + DEADLINE;
    let mut lines = Vec::new();
    let mut datagrams = 0u64;
    let mut buf = [0u8; 65536];
    while lines.len() < 300 && Instant::now() < end {
        let Ok(n) = sink.recv(&mut buf) else { continue };
        datagrams += 1;
        assert!(n < 256, "datagram of {n} bytes reaches --buffer");
        let text = std::str::from_utf8(&buf[..n]).unwrap();
        assert!(text.ends_with('\n'));
        lines.extend(text.lines().map(str::to_string));
    }
    let out = finish(child);
    assert!(out.status.success());
    assert_eq!(total_sent(&out), 300);
    assert_eq!(lines.len(), 300);
    assert_eq!(per_send(&out), format!("{:.2}", 300.0 / datagrams as f64));
    let words = ["test", "house", "here", "there", "badline", "cow", "now"];
    for line in &lines {
        let (key, rest) = line.split_once(':').unwrap();
        let key: Vec<&str> = key.split('.').collect();
        assert_eq!(key[0], "statdtest", "{line}");
        assert!(key.len() == 4 && key[1..].iter().all(|w| words.contains(w)), "{line}");
        let f: Vec<&str> = rest.split('|').collect();
        assert!(f.len() == 3 && f[0].parse::<u64>().unwrap() < 10_000, "{line}");
        assert!(["c", "g", "ms"].contains(&f[1]), "{line}");
        let rate: f64 = f[2].strip_prefix('@').unwrap().parse().unwrap();
        assert!((0.01..=1.0).contains(&rate) && f[2].len() == 5, "{line}");
    }
}

#[test]
fn sigint_stops_an_unlimited_run_with_a_total() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = format!("tcp://{}", listener.local_addr().unwrap());
    let child = statblast(&["--servers", &target, "--rate", "1ms", "--type", "graphite"]);
    listener.set_nonblocking(true).unwrap();
    let end = Instant::now() + DEADLINE;
    let mut conn = loop {
        match listener.accept() {
            Ok((conn, _)) => break conn,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < end => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(e) => panic!("statblast did not connect: {e}"),
        }
    };
    conn.set_nonblocking(false).unwrap();
    conn.set_read_timeout(Some(DEADLINE)).unwrap();
    // Wait until lines flow, then interrupt.
    let mut buf = [0u8; 4096];
    let mut got = 0;
    while got == 0 {
        got = conn.read(&mut buf).unwrap();
    }
    use rustix::process::{kill_process, Pid, Signal};
    kill_process(Pid::from_child(&child), Signal::INT).expect("SIGINT the child");
    let out = finish(child);
    assert!(out.status.success());
    assert!(total_sent(&out) > 0);
}
