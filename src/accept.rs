//! The accept loops every server of the process shares: the tcp and unix listeners, the HTTP listener and the admin
//! server.
//!
//! Invariants: an accept loop ends when its stop token fires; an accept error (out of file descriptors, a
//! connection reset before it was accepted) is transient: it is logged (at most once a second, with the number of
//! failures) and the loop pauses before accepting again, from [`ACCEPT_ERROR_PAUSE`] doubling up to
//! [`ACCEPT_ERROR_PAUSE_MAX`] while failures go on, so a full descriptor table does not become a busy loop. An HTTP
//! connection that is open when the token fires gets [`HTTP_SHUTDOWN_GRACE`] to finish its request, then closes.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::sync::Arc;

use hyper_util::rt::TokioTimer;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long an accept loop waits after a failed accept; doubled while accepts keep failing, up to
/// [`ACCEPT_ERROR_PAUSE_MAX`].
pub const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);
pub const ACCEPT_ERROR_PAUSE_MAX: Duration = Duration::from_secs(1);
/// TCP keepalive of accepted connections: first probe after this much silence, then every
/// [`KEEPALIVE_INTERVAL`], the connection dropped after [`KEEPALIVE_PROBES`] unanswered probes.
pub const KEEPALIVE_IDLE: Duration = Duration::from_secs(60);
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
pub const KEEPALIVE_PROBES: u32 = 3;
/// An HTTP client must send its request head within this time (slowloris), and each piece of a body within
/// [`HTTP_BODY_IDLE_TIMEOUT`] of the previous one.
pub const HTTP_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
pub const HTTP_BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// The most request bytes hyper buffers per connection, so the most body bytes one frame hands over: the piece
/// of `max_read_buffer_size` an HTTP request reserves before reading on (a request head must fit in it too).
pub const HTTP_READ_PIECE: usize = 64 * 1024;
/// How long an open HTTP request may still run once shutdown began (a client that never finishes its request
/// must not hold the process).
pub const HTTP_SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// A connection slot of a listener (`max_connections`): waits while all are taken; `None` once `stop` fires.
pub async fn slot(limit: &Arc<Semaphore>, stop: &CancellationToken) -> Option<OwnedSemaphorePermit> {
    tokio::select! {
        biased;
        _ = stop.cancelled() => None,
        p = limit.clone().acquire_owned() => p.ok(),
    }
}

/// TCP keepalive on an accepted connection, so that a client that vanished (power loss, a dropped NAT entry)
/// is noticed after [`KEEPALIVE_IDLE`] plus a few probes and its connection freed; idle but live clients stay.
pub fn keepalive(sock: &tokio::net::TcpStream) {
    let ka = socket2::TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_INTERVAL)
        .with_retries(KEEPALIVE_PROBES);
    if let Err(e) = socket2::SockRef::from(sock).set_tcp_keepalive(&ka) {
        tracing::debug!(error = %e, "could not enable TCP keepalive");
    }
}

/// The next accepted connection of `accept`, or `None` once `stop` fires. `server` names the loop in logs.
pub async fn next<T, F>(server: &str, stop: &CancellationToken, mut accept: impl FnMut() -> F) -> Option<T>
where
    F: Future<Output = io::Result<T>>,
{
    let mut pause = ACCEPT_ERROR_PAUSE;
    let mut failed = 0u64;
    let mut last_log: Option<tokio::time::Instant> = None;
    loop {
        let accepted = tokio::select! {
            a = accept() => a,
            _ = stop.cancelled() => return None,
        };
        match accepted {
            Ok(conn) => return Some(conn),
            Err(e) => {
                failed += 1;
                // at most one line a second while accepts keep failing (out of file descriptors, for one)
                if last_log.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                    tracing::warn!(server, error = %e, failed, pause = ?pause, "accept failed");
                    last_log = Some(tokio::time::Instant::now());
                    failed = 0;
                }
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = stop.cancelled() => return None,
                }
                pause = (pause * 2).min(ACCEPT_ERROR_PAUSE_MAX);
            }
        }
    }
}

/// Serves HTTP/1 on `listener` until `stop`: one task per connection on `tracker` (at most `limit` at once), each
/// request answered by `handle(request, peer)`; a request head must arrive within [`HTTP_HEADER_TIMEOUT`].
pub async fn serve_http<H, F>(
    server: &str,
    listener: TcpListener,
    limit: Arc<Semaphore>,
    handle: H,
    tracker: TaskTracker,
    stop: CancellationToken,
) where
    H: Fn(Request<Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    loop {
        let Some(permit) = slot(&limit, &stop).await else { break };
        let Some((sock, peer)) = next(server, &stop, || listener.accept()).await else {
            break;
        };
        keepalive(&sock);
        let (handle, stop) = (handle.clone(), stop.clone());
        tracker.spawn(async move {
            let _slot = permit;
            let svc = service_fn(move |req| {
                let answer = handle(req, peer);
                async move { Ok::<_, Infallible>(answer.await) }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HTTP_HEADER_TIMEOUT)
                .max_buf_size(HTTP_READ_PIECE)
                .serve_connection(TokioIo::new(sock), svc);
            tokio::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                _ = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    match tokio::time::timeout(HTTP_SHUTDOWN_GRACE, conn.as_mut()).await {
                        Ok(r) => r,
                        Err(_) => {
                            tracing::warn!(%peer, "a request was still open {HTTP_SHUTDOWN_GRACE:?} after shutdown began: closed");
                            Ok(())
                        }
                    }
                }
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "HTTP connection ended with an error");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn accept_errors_pause_longer_while_they_go_on_and_the_loop_recovers() {
        let stop = CancellationToken::new();
        let mut attempts = Vec::new();
        let start = tokio::time::Instant::now();
        let got = next("test", &stop, || {
            attempts.push(start.elapsed());
            let n = attempts.len();
            async move {
                if n < 8 {
                    Err(io::Error::from_raw_os_error(24)) // EMFILE
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(got, Some(8), "accepting again once descriptors are free");
        let pauses: Vec<u64> = attempts.windows(2).map(|w| (w[1] - w[0]).as_millis() as u64).collect();
        assert_eq!(pauses, [50, 100, 200, 400, 800, 1000, 1000]);
    }

    #[tokio::test]
    async fn accepted_connections_get_tcp_keepalive() {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let client = tokio::net::TcpStream::connect(l.local_addr().expect("addr"))
            .await
            .expect("connect");
        let (server, _) = l.accept().await.expect("accept");
        keepalive(&server);
        let sock = socket2::SockRef::from(&server);
        assert!(sock.keepalive().expect("SO_KEEPALIVE"));
        assert_eq!(sock.keepalive_time().expect("TCP_KEEPIDLE"), KEEPALIVE_IDLE);
        assert_eq!(sock.keepalive_retries().expect("TCP_KEEPCNT"), KEEPALIVE_PROBES);
        drop(client);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slot_waits_while_all_are_taken() {
        let limit = Arc::new(Semaphore::new(1));
        let stop = CancellationToken::new();
        let first = slot(&limit, &stop).await.expect("a free slot");
        let waited = tokio::time::timeout(Duration::from_secs(3600), slot(&limit, &stop)).await;
        assert!(waited.is_err(), "no second slot while the one is taken");
        drop(first);
        assert!(slot(&limit, &stop).await.is_some(), "the slot once it is free");
        stop.cancel();
        assert!(slot(&limit, &stop).await.is_none(), "a stopped listener takes no slot");
    }

    #[tokio::test(start_paused = true)]
    async fn a_stopped_loop_accepts_nothing() {
        let stop = CancellationToken::new();
        stop.cancel();
        let got: Option<()> = next("test", &stop, std::future::pending).await;
        assert_eq!(got, None);
    }
}
