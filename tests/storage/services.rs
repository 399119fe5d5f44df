//! The database servers of these tests, started once per test run through the project's scripts
//! (`tests/services/*.sh`, which install what is missing). A server that cannot be started fails the test that
//! needs it, loudly, with the script's output and the command to run by hand.

use std::process::Command;
use std::sync::OnceLock;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Runs `tests/services/<script> <args>` with `env`; its stdout, or a panic that says how to start it by hand.
pub fn script(script: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    let path = format!("{ROOT}/tests/services/{script}");
    let out = Command::new("bash")
        .arg(&path)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {path}: {e}"));
    if !out.status.success() {
        panic!(
            "{script} {} failed ({}):\n{}{}\nrun it by hand with: bash tests/services/{script} {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            args.join(" ")
        );
    }
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The shared MariaDB: its DSN (go-sql-driver form).
pub fn mariadb() -> &'static str {
    static DSN: OnceLock<String> = OnceLock::new();
    DSN.get_or_init(|| script("mariadb.sh", &["start"], &[]))
}

/// The shared Cassandra: its contact point `host:port`.
pub fn cassandra() -> &'static str {
    static ADDR: OnceLock<String> = OnceLock::new();
    ADDR.get_or_init(|| script("cassandra.sh", &["start"], &[]))
}

/// A Graphite front end (`graphite.sh api|web`) whose cyanite finder reads the given consthash readers.
pub struct FrontEnd {
    child: crate::Running,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl FrontEnd {
    /// `kind` is `api` (graphite-api 1.1.3) or `web` (graphite-web 1.1.10); answers once this returns.
    pub async fn start(kind: &str, readers: &[String]) -> FrontEnd {
        static INSTALLED: OnceLock<String> = OnceLock::new();
        INSTALLED.get_or_init(|| script("graphite.sh", &["install"], &[]));
        let dir = tempfile::tempdir().expect("tempdir");
        let port = crate::free_port();
        let mut cmd = Command::new("bash");
        cmd.arg(format!("{ROOT}/tests/services/graphite.sh"))
            .arg(kind)
            .arg(dir.path())
            .arg(port.to_string())
            .args(readers);
        let mut fe = FrontEnd {
            child: crate::Running::spawn(&mut cmd),
            port,
            _dir: dir,
        };
        let url = format!("http://127.0.0.1:{port}/metrics/find?query=nothing.here");
        let what = format!("graphite-{kind} answering on port {port}");
        let deadline = std::time::Instant::now() + crate::LONG;
        loop {
            if let Ok(r) = reqwest::get(&url).await {
                assert!(r.status().is_success(), "{what}: {}", r.status());
                break;
            }
            if let Some(status) = fe.child.exited() {
                panic!("{what}: exited with {status}:\n{}", fe.child.log());
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {what}:\n{}",
                fe.child.log()
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        fe
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for FrontEnd {
    /// gunicorn's workers go with their master on SIGTERM; a SIGKILL would leave them running.
    fn drop(&mut self) {
        self.child.signal(rustix::process::Signal::TERM);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while self.child.exited().is_none() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

/// A MariaDB of one test's own (its port and directory), for tests that stop and start the server.
pub struct PrivateMariadb {
    env: Vec<(&'static str, String)>,
    pub dsn: String,
}

impl PrivateMariadb {
    pub fn start(port: u16, name: &str) -> PrivateMariadb {
        let env = vec![
            ("MARIADB_PORT", port.to_string()),
            ("SERVICES_DIR", format!("{ROOT}/target/services/{name}")),
        ];
        let mut m = PrivateMariadb {
            env,
            dsn: String::new(),
        };
        m.dsn = m.run("start");
        m
    }

    fn run(&self, what: &str) -> String {
        let env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        script("mariadb.sh", &[what], &env)
    }

    pub fn stop(&self) {
        self.run("stop");
    }

    pub fn restart(&self) {
        self.run("start");
    }
}

impl Drop for PrivateMariadb {
    fn drop(&mut self) {
        let env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let _ = Command::new("bash")
            .arg(format!("{ROOT}/tests/services/mariadb.sh"))
            .arg("stop")
            .envs(env)
            .output();
    }
}
