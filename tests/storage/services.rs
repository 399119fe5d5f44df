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
            "{script} {} failed ({}):\n{}{}\nstart it by hand with: bash tests/services/{script} start",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
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
