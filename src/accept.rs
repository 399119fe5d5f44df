//! The accept loops every server of the process shares: the tcp and unix listeners, the HTTP listener and the admin
//! server.
//!
//! Invariants: an accept loop ends when its stop token fires; an accept error (out of file descriptors, a
//! connection reset before it was accepted) is transient: it is logged and the loop pauses [`ACCEPT_ERROR_PAUSE`]
//! before accepting again, so a full descriptor table does not become a busy loop. An HTTP connection that is open
//! when the token fires finishes its request (graceful shutdown) and closes.

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

/// How long an accept loop waits after a failed accept.
pub const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// The next accepted connection of `accept`, or `None` once `stop` fires. `server` names the loop in logs.
pub async fn next<T, F>(server: &str, stop: &CancellationToken, mut accept: impl FnMut() -> F) -> Option<T>
where
    F: Future<Output = io::Result<T>>,
{
    loop {
        let accepted = tokio::select! {
            a = accept() => a,
            _ = stop.cancelled() => return None,
        };
        match accepted {
            Ok(conn) => return Some(conn),
            Err(e) => {
                tracing::warn!(server, error = %e, "accept failed");
                tokio::select! {
                    _ = tokio::time::sleep(ACCEPT_ERROR_PAUSE) => {}
                    _ = stop.cancelled() => return None,
                }
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
                    conn.await
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
    async fn accept_errors_pause_and_the_loop_goes_on() {
        let stop = CancellationToken::new();
        let mut attempts = Vec::new();
        let start = tokio::time::Instant::now();
        let got = next("test", &stop, || {
            attempts.push(start.elapsed());
            let n = attempts.len();
            async move {
                if n < 3 {
                    Err(io::Error::other("EMFILE"))
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(got, Some(3));
        assert_eq!(attempts, [Duration::ZERO, ACCEPT_ERROR_PAUSE, ACCEPT_ERROR_PAUSE * 2]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stopped_loop_accepts_nothing() {
        let stop = CancellationToken::new();
        stop.cancel();
        let got: Option<()> = next("test", &stop, std::future::pending).await;
        assert_eq!(got, None);
    }
}
