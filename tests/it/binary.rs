//! The real `consthash` binary in a test: spawned with its log read as it comes, waited for (its port, its
//! log, its exit) with deadlines, signalled, and killed if a failed test leaves it running.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustix::process::{kill_process, Pid, Signal};

use crate::wait_until;

pub const BIN: &str = env!("CARGO_BIN_EXE_consthash");

/// How long a test waits for the binary to listen, log or exit.
const DEADLINE: Duration = Duration::from_secs(60);

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Waits until something accepts connections on `addr`.
pub async fn wait_listening(addr: SocketAddr) {
    let deadline = std::time::Instant::now() + DEADLINE;
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(std::time::Instant::now() < deadline, "nothing ever listened on {addr}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A running child whose stderr (the log) is collected line by line.
pub struct Running {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    /// Spawns `cmd` with stderr captured (stdout discarded).
    pub fn spawn(cmd: &mut Command) -> Running {
        let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("spawn");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let reader = {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    log.lock().expect("log").push(line);
                }
            })
        };
        Running {
            child,
            log,
            reader: Some(reader),
        }
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, sig: Signal) {
        kill_process(Pid::from_child(&self.child), sig).expect("signal the child");
    }

    /// The exit status, if it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("wait")
    }

    /// Waits for the exit; then the whole log has been read.
    pub async fn exit(&mut self, what: &str) -> ExitStatus {
        let deadline = std::time::Instant::now() + DEADLINE;
        let status = loop {
            if let Some(s) = self.exited() {
                break s;
            }
            assert!(std::time::Instant::now() < deadline, "no exit: {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        if let Some(r) = self.reader.take() {
            r.join().expect("log reader");
        }
        status
    }

    /// The log so far.
    pub fn log(&self) -> String {
        self.log.lock().expect("log").join("\n")
    }

    /// Waits until a line of the log satisfies `cond`.
    pub async fn wait_log(&self, what: &str, cond: impl Fn(&str) -> bool) {
        wait_until(what, DEADLINE, || self.log.lock().expect("log").iter().any(|l| cond(l))).await;
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
