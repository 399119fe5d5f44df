//! A cluster of real `consthash` nodes run by `examples/cluster/*.sh` for a test (shared by `tests/it/cluster.rs`
//! and the Cassandra replica test in `tests/storage`): free ports, the scripts with the test's settings, the
//! nodes' ports and pids, and `stop.sh` when the test ends, failed or not.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::binary::{free_port, BIN};

/// A cluster directory and port range, with the environment the scripts get.
pub struct Cluster {
    _tmp: tempfile::TempDir,
    pub dir: PathBuf,
    pub base: u16,
    pub nodes: usize,
    env: Vec<(String, String)>,
}

/// A base port with the ports of `nodes` nodes (and of one more) above it free a moment ago, below the
/// kernel's ephemeral range (from 32768), so that the port-0 binds of tests running meanwhile cannot take them.
fn free_base(nodes: usize) -> u16 {
    for _ in 0..100 {
        // spread by the ephemeral port the kernel hands out, so that concurrent runs pick different bases
        let base = 20_000 + free_port() % 12_000 / 10 * 10;
        let all_free = (1..=(nodes as u16 + 1) * 10).all(|o| {
            std::net::TcpListener::bind(("127.0.0.1", base + o)).is_ok()
                && std::net::UdpSocket::bind(("127.0.0.1", base + o)).is_ok()
        });
        if all_free {
            return base;
        }
    }
    panic!("no free range of ports for {nodes} nodes");
}

impl Cluster {
    /// A cluster of `nodes` nodes with replica factor `replicas` and `flush`, not started yet; `env` adds or
    /// overrides the scripts' variables (`CONSTHASH_OUTPUT`, `CONSTHASH_CASSANDRA`, …).
    pub fn new(nodes: usize, replicas: usize, flush: &str, env: &[(&str, &str)]) -> Cluster {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("cluster");
        let base = free_base(nodes);
        let mut all: Vec<(String, String)> = [
            ("CONSTHASH_CLUSTER_DIR", dir.display().to_string()),
            ("CONSTHASH_BASE_PORT", base.to_string()),
            ("CONSTHASH_NODE_COUNT", nodes.to_string()),
            ("CONSTHASH_REPLICA_FACTOR", replicas.to_string()),
            ("CONSTHASH_FLUSH", flush.to_string()),
            ("CONSTHASH_BIN", BIN.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        all.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Cluster {
            _tmp: tmp,
            dir,
            base,
            nodes,
            env: all,
        }
    }

    /// Runs one of the cluster scripts; its output, or a panic with it.
    pub fn script(&self, name: &str) -> String {
        let (ok, text) = self.run(name);
        assert!(ok, "{name} failed:\n{text}");
        text
    }

    fn run(&self, name: &str) -> (bool, String) {
        let out = Command::new("bash")
            .arg(
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("examples/cluster")
                    .join(name),
            )
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("run the script");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    /// Node `i`'s (1-based) port at `offset` (1 admin, 3 graphite TCP, 4 statsd UDP, 5 and 6 accumulating).
    pub fn port(&self, i: usize, offset: u16) -> u16 {
        self.base + 10 * (i as u16 - 1) + offset
    }

    /// A URL on node `i`'s admin server.
    pub fn admin(&self, i: usize, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port(i, 1))
    }

    /// Node `i`'s pid from its pid file, if it has one.
    pub fn pid(&self, i: usize) -> Option<i32> {
        std::fs::read_to_string(self.dir.join(format!("node{i}/pid")))
            .ok()
            .and_then(|p| p.trim().parse().ok())
    }

    /// Whether node `i`'s process is alive.
    pub fn running(&self, i: usize) -> bool {
        self.pid(i).is_some_and(|p| Path::new(&format!("/proc/{p}")).exists())
    }

    /// Kills node `i` with SIGKILL (no shutdown, no final flush: a crash).
    pub fn kill(&self, i: usize) {
        let pid = self.pid(i).expect("node has a pid");
        let ok = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill node {i} (pid {pid})");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let (ok, text) = self.run("stop.sh");
        if !ok {
            eprintln!("stop.sh failed:\n{text}");
        }
    }
}
