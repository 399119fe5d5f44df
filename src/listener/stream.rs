//! tcp and unix stream listeners: one task per connection, newline framing, no idle timeout.

use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::framing::StreamFramer;
use super::READ_CHUNK;
use crate::section::{Router, Section};

pub async fn run_tcp(l: tokio::net::TcpListener, section: Arc<Section>, tracker: TaskTracker, stop: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            a = l.accept() => a,
            _ = stop.cancelled() => return,
        };
        match accepted {
            Ok((sock, peer)) => {
                tracing::debug!(section = %section.name, %peer, "accepted connection");
                tracker.spawn(read_stream(sock, section.clone(), stop.clone()));
            }
            Err(e) => accept_failed(&section, e).await,
        }
    }
}

pub async fn run_unix(
    l: tokio::net::UnixListener,
    path: PathBuf,
    section: Arc<Section>,
    tracker: TaskTracker,
    stop: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            a = l.accept() => a,
            _ = stop.cancelled() => break,
        };
        match accepted {
            Ok((sock, _)) => {
                tracker.spawn(read_stream(sock, section.clone(), stop.clone()));
            }
            Err(e) => accept_failed(&section, e).await,
        }
    }
    if let Err(e) = std::fs::remove_file(&path) {
        tracing::warn!(path = %path.display(), error = %e, "could not remove the unix socket file");
    }
}

/// Accept errors (e.g. out of file descriptors) are transient: log, pause briefly, go on.
async fn accept_failed(section: &Section, e: std::io::Error) {
    tracing::warn!(section = %section.name, error = %e, "accept failed");
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
}

/// Reads one connection until EOF or shutdown, routing every complete line; a final unterminated line is routed.
pub async fn read_stream<S: AsyncRead + Unpin>(mut sock: S, section: Arc<Section>, stop: CancellationToken) {
    section.stats.connections.fetch_add(1, Relaxed);
    section.stats.connections_open.fetch_add(1, Relaxed);
    let mut router = Router::new(section.clone());
    let mut framer = StreamFramer::new(section.max_line_length);
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    loop {
        section.wait_read_room().await;
        buf.reserve(READ_CHUNK);
        let read = tokio::select! {
            r = sock.read_buf(&mut buf) => r,
            _ = stop.cancelled() => Ok(0),
        };
        let (n, eof) = match read {
            Ok(0) => (0, true),
            Ok(n) => (n, false),
            Err(e) => {
                tracing::debug!(section = %section.name, error = %e, "read failed");
                (0, true)
            }
        };
        section.hold_read(n);
        framer.drain(&mut buf, eof, |f| router.route(f));
        router.flush(true).await;
        section.release_read(n);
        if eof {
            break;
        }
    }
    section.stats.connections_open.fetch_sub(1, Relaxed);
}
