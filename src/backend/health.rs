//! Health checks (spec §8.2): each ring member's check URL is dialled (tcp, udp, unix) or fetched (http/https,
//! healthy only for a 2xx) at start-up and then every `heartbeat_time_delay`, each check bounded by
//! `heartbeat_time_timeout`. `failed_heartbeat_count` consecutive failures mark the member down; the first
//! passing check marks it up again. Transitions are logged and counted; with `server_down_policy = "remove_node"`
//! the backend rebuilds the ring without down members (and with them again, in their place, when they are back).

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tokio::time::timeout;

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

/// Checks one member until cancelled by the caller.
pub(super) async fn run(backend: &Backend, ring: usize, dest: u32, url: &DestUrl, http: &reqwest::Client) {
    let p = backend.health;
    let destination = backend.destinations().get(dest as usize).cloned();
    let Some(destination) = destination else { return };
    let (mut up, mut failures) = (true, 0u32);
    loop {
        match check(url, p.heartbeat_time_timeout, http).await {
            Ok(()) => {
                failures = 0;
                if !up {
                    up = true;
                    backend.set_member_up(ring, dest, true);
                    destination.stats.health_up.fetch_add(1, Relaxed);
                    tracing::warn!(section = %backend.name, server = %destination.url.raw, check = %url.raw, "server is up again");
                }
            }
            Err(e) => {
                failures += 1;
                if up && failures >= p.failed_heartbeat_count {
                    up = false;
                    backend.set_member_up(ring, dest, false);
                    destination.stats.health_down.fetch_add(1, Relaxed);
                    tracing::warn!(
                        section = %backend.name, server = %destination.url.raw, check = %url.raw, error = %e,
                        failures, removed_from_ring = p.server_down_policy == DownPolicy::RemoveNode, "server is down"
                    );
                }
            }
        }
        tokio::time::sleep(p.heartbeat_time_delay).await;
    }
}
