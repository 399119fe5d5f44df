//! The HTTP listener: any method on the configured path (a path ending in `/` matches its subtree, otherwise the
//! exact path); the body is read as lines *as it streams in*, with the same input back-pressure as a TCP
//! connection: each body frame (at most [`HTTP_READ_PIECE`] bytes) is read only once that much of the section's
//! `max_read_buffer_size` is reserved, so memory stays bounded by it whatever the body size and the number of
//! requests (a request in the middle of a line may take one piece beyond it); the answer is
//! `200 lines processed N` (N = valid lines). A body larger than `max_body_size` (when set) is answered `413`, a
//! malformed one (bad chunked framing) `400`, one that stalls for [`HTTP_BODY_IDLE_TIMEOUT`] `408`; the lines of
//! such a body that arrived whole before the problem are routed, and the answer says how many.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::accept::{self, HTTP_BODY_IDLE_TIMEOUT, HTTP_READ_PIECE};
use crate::framing::StreamFramer;
use crate::line::WhenFull;
use crate::router::Router;
use crate::section::{ReadHold, Section, SectionWatch};

pub async fn run(
    l: tokio::net::TcpListener,
    path: String,
    watch: SectionWatch,
    tracker: TaskTracker,
    stop: CancellationToken,
) {
    let path: Arc<str> = path.into();
    let (name, limit) = {
        let s = watch.borrow();
        (s.name.clone(), s.connections.clone())
    };
    // each request routes into the generation current when it starts
    let handler = move |req, _peer| handle(req, watch.borrow().clone(), path.clone());
    accept::serve_http(&name, l, limit, handler, tracker, stop).await;
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
    let mut body = req.into_body();
    let mut router = Router::new(section.clone());
    let mut framer = StreamFramer::new(section.framing);
    let mut buf = BytesMut::new();
    let (mut size, mut valid) = (0usize, 0u64);
    let mut hold = ReadHold::new(&section);
    let refused = loop {
        // room for the largest frame first: the bytes read are within the budget before they exist
        hold.reserve_piece(HTTP_READ_PIECE).await;
        let data = match tokio::time::timeout(HTTP_BODY_IDLE_TIMEOUT, body.frame()).await {
            Err(_) => {
                break Some((
                    StatusCode::REQUEST_TIMEOUT,
                    format!("body stalled for {HTTP_BODY_IDLE_TIMEOUT:?}"),
                ))
            }
            Ok(None) => break None,
            Ok(Some(Err(e))) => break Some((StatusCode::BAD_REQUEST, format!("malformed body: {e}"))),
            Ok(Some(Ok(frame))) => match frame.into_data() {
                Ok(d) => d,
                Err(_) => {
                    hold.unreserve(); // trailers
                    continue;
                }
            },
        };
        size += data.len();
        if section.max_body_size > 0 && size > section.max_body_size {
            let limit = section.max_body_size;
            break Some((
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("body larger than max_body_size ({limit} bytes)"),
            ));
        }
        hold.read(data.len());
        if buf.is_empty() {
            buf = BytesMut::from(data); // no copy when hyper hands over the only reference
        } else {
            buf.extend_from_slice(&data);
        }
        framer.drain(&mut buf, false, |f| router.route(f));
        valid += router.flush(WhenFull::Wait).await;
        hold.keep(buf.len());
    };
    if refused.is_none() {
        framer.drain(&mut buf, true, |f| router.route(f));
        valid += router.flush(WhenFull::Wait).await;
    }
    match refused {
        None => text(StatusCode::OK, format!("lines processed {valid}")),
        Some((status, why)) => text(status, format!("{why}; lines processed {valid}\n")),
    }
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
