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
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long an accept loop waits after a failed accept; doubled while accepts keep failing, up to
/// [`ACCEPT_ERROR_PAUSE_MAX`].
pub const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);
pub const ACCEPT_ERROR_PAUSE_MAX: Duration = Duration::from_secs(1);
/// How long an open HTTP request may still run once shutdown began (a client that never finishes its request
/// must not hold the process).
pub const HTTP_SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

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

/// Serves HTTP/1 on `listener` until `stop`: one task per connection on `tracker`, each request answered by
/// `handle(request, peer)`.
pub async fn serve_http<H, F>(
    server: &str,
    listener: TcpListener,
    handle: H,
    tracker: TaskTracker,
    stop: CancellationToken,
) where
    H: Fn(Request<Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    while let Some((sock, peer)) = next(server, &stop, || listener.accept()).await {
        let (handle, stop) = (handle.clone(), stop.clone());
        tracker.spawn(async move {
            let svc = service_fn(move |req| {
                let answer = handle(req, peer);
                async move { Ok::<_, Infallible>(answer.await) }
            });
            let conn = http1::Builder::new().serve_connection(TokioIo::new(sock), svc);
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

    #[tokio::test(start_paused = true)]
    async fn a_stopped_loop_accepts_nothing() {
        let stop = CancellationToken::new();
        stop.cancel();
        let got: Option<()> = next("test", &stop, std::future::pending).await;
        assert_eq!(got, None);
    }
}
