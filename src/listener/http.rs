//! The HTTP listener: any method on the configured path (a path ending in `/` matches its subtree, otherwise the
//! exact path); the body is read as lines; the answer is `200 lines processed N` (N = valid lines).

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::framing::frame_all;
use crate::section::{Router, Section};

pub async fn run(
    l: tokio::net::TcpListener,
    path: String,
    section: Arc<Section>,
    tracker: TaskTracker,
    stop: CancellationToken,
) {
    let path: Arc<str> = path.into();
    loop {
        let accepted = tokio::select! {
            a = l.accept() => a,
            _ = stop.cancelled() => return,
        };
        let (sock, _) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(section = %section.name, error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let (section, path, stop) = (section.clone(), path.clone(), stop.clone());
        tracker.spawn(async move {
            let svc = service_fn(move |req| handle(req, section.clone(), path.clone()));
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

pub fn path_matches(configured: &str, requested: &str) -> bool {
    if configured.ends_with('/') {
        requested.starts_with(configured) || requested == configured.trim_end_matches('/')
    } else {
        requested == configured
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r
}

async fn handle(
    req: Request<Incoming>,
    section: Arc<Section>,
    path: Arc<str>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if !path_matches(&path, req.uri().path()) {
        return Ok(text(StatusCode::NOT_FOUND, "not found\n".into()));
    }
    let body = match Limited::new(req.into_body(), section.max_read_buffer_size.max(1))
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(e) => return Ok(text(StatusCode::PAYLOAD_TOO_LARGE, format!("{e}\n"))),
    };
    section.wait_read_room().await;
    section.hold_read(body.len());
    let mut router = Router::new(section.clone());
    frame_all(&body, section.max_line_length, |f| router.route(f));
    let valid = router.flush(true).await;
    section.release_read(body.len());
    Ok(text(StatusCode::OK, format!("lines processed {valid}")))
}

#[cfg(test)]
mod tests {
    use super::path_matches;

    #[test]
    fn paths() {
        assert!(path_matches("/", "/"));
        assert!(path_matches("/", "/anything/below"));
        assert!(path_matches("/stats", "/stats"));
        assert!(!path_matches("/stats", "/stats/x"));
        assert!(path_matches("/in/", "/in/x"));
        assert!(path_matches("/in/", "/in"));
        assert!(!path_matches("/in/", "/inx"));
    }
}
