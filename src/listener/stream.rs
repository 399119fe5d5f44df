//! tcp and unix stream listeners: one task per connection (at most `max_connections` at once; further clients
//! wait in the backlog), newline framing, TCP keepalive instead of an idle timeout (graphite clients keep idle
//! connections open on purpose; a vanished one is found by the probes).

use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::READ_CHUNK;
use crate::accept;
use crate::framing::StreamFramer;
use crate::line::WhenFull;
use crate::router::Router;
use crate::section::{ReadHold, Section};

pub async fn run_tcp(l: tokio::net::TcpListener, section: Arc<Section>, tracker: TaskTracker, stop: CancellationToken) {
    loop {
        let Some(slot) = accept::slot(&section.connections, &stop).await else {
            break;
        };
        let Some((sock, peer)) = accept::next(&section.name, &stop, || l.accept()).await else {
            break;
        };
        tracing::debug!(section = %section.name, %peer, "accepted connection");
        accept::keepalive(&sock);
        let conn = read_stream(sock, section.clone(), stop.clone());
        tracker.spawn(async move {
            conn.await;
            drop(slot);
        });
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
        let Some(slot) = accept::slot(&section.connections, &stop).await else {
            break;
        };
        let Some((sock, _)) = accept::next(&section.name, &stop, || l.accept()).await else {
            break;
        };
        let conn = read_stream(sock, section.clone(), stop.clone());
        tracker.spawn(async move {
            conn.await;
            drop(slot);
        });
    }
    if let Err(e) = std::fs::remove_file(&path) {
        tracing::warn!(path = %path.display(), error = %e, "could not remove the unix socket file");
    }
}

/// Reads one connection until EOF or shutdown, routing every complete line; a final unterminated line is routed.
pub async fn read_stream<S: AsyncRead + Unpin>(mut sock: S, section: Arc<Section>, stop: CancellationToken) {
    section.stats.connections.fetch_add(1, Relaxed);
    section.stats.connections_open.fetch_add(1, Relaxed);
    let mut router = Router::new(section.clone());
    let mut framer = StreamFramer::new(section.max_line_length);
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut hold = ReadHold::new(section.clone());
    loop {
        hold.room().await;
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
        hold.read(n);
        framer.drain(&mut buf, eof, |f| router.route(f));
        router.flush(WhenFull::Wait).await;
        hold.keep(buf.len());
        if eof {
            break;
        }
    }
    section.stats.connections_open.fetch_sub(1, Relaxed);
}
