//! The HTTP listener: any method on the configured path (a path ending in `/` matches its subtree, otherwise the
//! exact path); the body is read as lines; the answer is `200 lines processed N` (N = valid lines).

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::accept;
use crate::framing::frame_all;
use crate::line::WhenFull;
use crate::router::Router;
use crate::section::Section;

pub async fn run(
    l: tokio::net::TcpListener,
    path: String,
    section: Arc<Section>,
    tracker: TaskTracker,
    stop: CancellationToken,
) {
    let path: Arc<str> = path.into();
    let name = section.name.clone();
    let handler = move |req, _peer| handle(req, section.clone(), path.clone());
    accept::serve_http(&name, l, handler, tracker, stop).await;
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

async fn handle(req: Request<Incoming>, section: Arc<Section>, path: Arc<str>) -> Response<Full<Bytes>> {
    if !path_matches(&path, req.uri().path()) {
        return text(StatusCode::NOT_FOUND, "not found\n".into());
    }
    let body = match Limited::new(req.into_body(), section.max_read_buffer_size.max(1))
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(e) => return text(StatusCode::PAYLOAD_TOO_LARGE, format!("{e}\n")),
    };
    section.wait_read_room().await;
    section.hold_read(body.len());
    let mut router = Router::new(section.clone());
    frame_all(&body, section.max_line_length, |f| router.route(f));
    let valid = router.flush(WhenFull::Wait).await;
    section.release_read(body.len());
    text(StatusCode::OK, format!("lines processed {valid}"))
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
