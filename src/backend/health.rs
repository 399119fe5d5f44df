//! Health checks (spec §8.2): each ring member's check URL is dialled (tcp, udp, unix) or fetched (http/https,
//! healthy only for a 2xx) at start-up and then every `heartbeat_time_delay`, each check bounded by
//! `heartbeat_time_timeout`. `failed_heartbeat_count` consecutive failures mark the member down; the first
//! passing check marks it up again. Transitions are logged and counted; with `server_down_policy = "remove_node"`
//! the backend rebuilds the ring without down members (and with them again, in their place, when they are back).
//! A member whose destination is stalled (its connections take no bytes, spec §8.3) fails its checks too: a peer
//! that accepts connections and never reads them passes a dial, but is not healthy.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use tokio::time::{timeout, Instant};

use super::Backend;
use crate::config::{DestUrl, DownPolicy, Target};

/// One check of `target`: `Ok` when healthy, else why not.
pub async fn check(target: &DestUrl, limit: Duration, http: &reqwest::Client) -> Result<(), String> {
    let attempt = async {
        match &target.target {
            Target::Tcp(addr) => tokio::net::TcpStream::connect(addr.as_str())
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
            Target::Unix(path) => tokio::net::UnixStream::connect(path)
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
            Target::Udp(addr) => {
                let s = tokio::net::UdpSocket::bind("0.0.0.0:0")
                    .await
                    .map_err(|e| e.to_string())?;
                s.connect(addr.as_str()).await.map_err(|e| e.to_string())
            }
            Target::Http(url) | Target::Https(url) => {
                let resp = http.get(url.as_str()).send().await.map_err(|e| e.to_string())?;
                if resp.status().is_success() {
                    Ok(())
                } else {
                    Err(format!("HTTP status {}", resp.status()))
                }
            }
        }
    };
    timeout(limit, attempt)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {limit:?}")))
}

/// The current outage of a destination: since when its dials fail (lock-free: senders record, listeners ask).
/// A destination whose outage lasts longer than `out_block_timeout` is down for pushes (spec §8.3).
#[derive(Debug)]
pub struct Outage {
    epoch: Instant,
    /// Milliseconds since `epoch` + 1 at the first failed dial of the outage; 0 while reachable.
    since_ms: AtomicU64,
}

impl Default for Outage {
    fn default() -> Outage {
        Outage {
            epoch: Instant::now(),
            since_ms: AtomicU64::new(0),
        }
    }
}

impl Outage {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    /// A dial failed: the outage starts now, unless it already runs.
    pub fn dial_failed(&self) {
        let _ = self.since_ms.compare_exchange(0, self.now_ms(), Relaxed, Relaxed);
    }

    /// A dial succeeded: no outage.
    pub fn dialled(&self) {
        self.since_ms.store(0, Relaxed);
    }

    /// Whether an outage has lasted longer than `limit`.
    pub fn longer_than(&self, limit: Duration) -> bool {
        let since = self.since_ms.load(Relaxed);
        since != 0 && self.now_ms().saturating_sub(since) > limit.as_millis() as u64
    }
}

/// What one check result changes for a member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    /// `failed_heartbeat_count` consecutive failures: the member is down now.
    Down,
    /// The first passing check of a down member: it is up again.
    Up,
}

/// The health of one ring member as its checks see it: up at start; down after `threshold` consecutive failed
/// checks; up again at the first passing one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HealthState {
    up: bool,
    failures: u32,
    threshold: u32,
}

impl HealthState {
    pub fn new(threshold: u32) -> HealthState {
        HealthState {
            up: true,
            failures: 0,
            threshold: threshold.max(1),
        }
    }

    /// Consecutive failed checks so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Records one check; returns the transition it causes, if any.
    pub fn record(&mut self, passed: bool) -> Option<Transition> {
        if passed {
            self.failures = 0;
            return (!std::mem::replace(&mut self.up, true)).then_some(Transition::Up);
        }
        self.failures = self.failures.saturating_add(1);
        if self.up && self.failures >= self.threshold {
            self.up = false;
            return Some(Transition::Down);
        }
        None
    }
}

/// Checks one member every `heartbeat_time_delay` until cancelled by the caller.
/// `up` is the member's state as its checks start (a reload keeps the state of a member that remains).
pub(super) async fn run(backend: &Backend, ring: usize, dest: u32, up: bool, url: &DestUrl, http: &reqwest::Client) {
    let p = backend.health();
    let Some(destination) = backend.destinations().get(dest as usize).cloned() else {
        return;
    };
    let mut state = HealthState::new(p.failed_heartbeat_count);
    if !up {
        state.up = false;
        state.failures = state.threshold;
    }
    loop {
        let result = check(url, p.heartbeat_time_timeout, http).await.and_then(|()| {
            if destination.is_stalled() {
                Err(format!(
                    "stalled: no progress for {:?} (write_timeout)",
                    destination.config.write_timeout
                ))
            } else {
                Ok(())
            }
        });
        match (state.record(result.is_ok()), result) {
            (Some(Transition::Up), _) => {
                backend.set_member_up(ring, dest, true);
                destination.stats.health_up.fetch_add(1, Relaxed);
                tracing::warn!(section = %backend.name, server = %destination.url.raw, check = %url.raw, "server is up again");
            }
            (Some(Transition::Down), Err(e)) => {
                backend.set_member_up(ring, dest, false);
                destination.stats.health_down.fetch_add(1, Relaxed);
                tracing::warn!(
                    section = %backend.name, server = %destination.url.raw, check = %url.raw, error = %e,
                    failures = state.failures(), removed_from_ring = p.server_down_policy == DownPolicy::RemoveNode,
                    "server is down"
                );
            }
            _ => {}
        }
        tokio::time::sleep(p.heartbeat_time_delay).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use crate::config::load_main;

    #[tokio::test(start_paused = true)]
    async fn an_outage_counts_from_its_first_failed_dial() {
        let o = Outage::default();
        let limit = Duration::from_millis(1000);
        assert!(!o.longer_than(limit));
        o.dial_failed();
        tokio::time::advance(Duration::from_millis(600)).await;
        o.dial_failed(); // a later failure does not restart the outage
        tokio::time::advance(Duration::from_millis(400)).await;
        assert!(!o.longer_than(limit), "exactly the limit is not longer");
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(o.longer_than(limit));
        o.dialled();
        assert!(!o.longer_than(limit));
    }

    #[test]
    fn down_after_the_threshold_of_consecutive_failures_up_at_the_first_pass() {
        let mut h = HealthState::new(3);
        assert_eq!(h.record(false), None);
        assert_eq!(h.record(false), None);
        assert_eq!(h.record(true), None, "a pass resets the count");
        assert_eq!(h.record(false), None);
        assert_eq!(h.record(false), None);
        assert_eq!(h.record(false), Some(Transition::Down));
        assert_eq!(h.record(false), None, "already down");
        assert_eq!(h.record(true), Some(Transition::Up));
        assert_eq!(h.record(true), None);
        assert_eq!(HealthState::new(0).record(false), Some(Transition::Down), "0 means 1");
    }

    /// A port nothing listens on.
    fn closed_port() -> u16 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    }

    #[tokio::test(start_paused = true)]
    async fn a_dead_member_leaves_the_ring_after_its_failed_checks_and_not_before() {
        let port = closed_port();
        let text = format!(
            "[default]\n[s]\nmsg_type = 'graphite'\nheartbeat_time_delay = 10\nheartbeat_time_timeout = 2\n\
             failed_heartbeat_count = 3\nserver_down_policy = 'remove_node'\n\
             [[s.servers]]\nservers = ['tcp://127.0.0.1:{port}', 'tcp://127.0.0.1:{}']\n",
            port + 1
        );
        let cfg = load_main(&text, "t.toml").expect("config");
        let backend = Arc::new(Backend::new(&cfg.sections[0]));
        let http = reqwest::Client::new();
        let url = backend.members()[0][0].check.clone();
        let checker = {
            let backend = backend.clone();
            tokio::spawn(async move { run(&backend, 0, 0, true, &url, &http).await })
        };
        let members = || backend.load().rings[0].members();
        // Checks at 0 s, 10 s and 20 s fail; the third one takes the member out.
        tokio::time::sleep(Duration::from_secs(19)).await;
        assert_eq!(members(), 2, "two failed checks: still in the ring");
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(members(), 1, "the third failed check removed it");
        let dest = &backend.destinations()[0];
        assert_eq!(dest.stats.health_down.load(Relaxed), 1);
        assert!(dest.is_down());
        checker.abort();
    }
}
