//! tcp and unix stream listeners: one task per connection (at most `max_connections` at once; further clients
//! wait in the backlog), newline framing, TCP keepalive instead of an idle timeout (graphite clients keep idle
//! connections open on purpose; a vanished one is found by the probes).

use std::io;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::READ_CHUNK;
use crate::accept;
use crate::framing::StreamFramer;
use crate::line::WhenFull;
use crate::router::Router;
use crate::section::{next_generation, ReadHold, SectionWatch};

/// The connection limit and the name of the section generation a listener serves now (an accept loop holds no
/// generation while it waits).
fn current(watch: &SectionWatch) -> (Arc<tokio::sync::Semaphore>, String) {
    let s = watch.borrow();
    (s.connections.clone(), s.name.clone())
}

pub async fn run_tcp(l: tokio::net::TcpListener, watch: SectionWatch, tracker: TaskTracker, stop: CancellationToken) {
    let (limit, _) = current(&watch);
    loop {
        let Some(slot) = accept::slot(&limit, &stop).await else {
            break;
        };
        let name = current(&watch).1;
        let Some((sock, peer)) = accept::next(&name, &stop, || l.accept()).await else {
            break;
        };
        tracing::debug!(section = %name, %peer, "accepted connection");
        accept::keepalive(&sock);
        let conn = read_stream(sock, watch.clone(), stop.clone());
        tracker.spawn(async move {
            conn.await;
            drop(slot);
        });
    }
}

pub async fn run_unix(
    l: tokio::net::UnixListener,
    path: PathBuf,
    watch: SectionWatch,
    tracker: TaskTracker,
    stop: CancellationToken,
) {
    let (limit, _) = current(&watch);
    loop {
        let Some(slot) = accept::slot(&limit, &stop).await else {
            break;
        };
        let name = current(&watch).1;
        let Some((sock, _)) = accept::next(&name, &stop, || l.accept()).await else {
            break;
        };
        let conn = read_stream(sock, watch.clone(), stop.clone());
        tracker.spawn(async move {
            conn.await;
            drop(slot);
        });
    }
    if let Err(e) = std::fs::remove_file(&path) {
        tracing::warn!(path = %path.display(), error = %e, "could not remove the unix socket file");
    }
}

/// A connected stream socket read without blocking once it is readable, so that a read's room in the input
/// budget is taken only while bytes are there to read (an idle connection holds none).
pub trait StreamSocket {
    fn readable(&self) -> impl std::future::Future<Output = io::Result<()>> + Send;
    fn try_read_buf<B: BufMut>(&self, buf: &mut B) -> io::Result<usize>;
}

impl StreamSocket for tokio::net::TcpStream {
    fn readable(&self) -> impl std::future::Future<Output = io::Result<()>> + Send {
        tokio::net::TcpStream::readable(self)
    }
    fn try_read_buf<B: BufMut>(&self, buf: &mut B) -> io::Result<usize> {
        tokio::net::TcpStream::try_read_buf(self, buf)
    }
}

impl StreamSocket for tokio::net::UnixStream {
    fn readable(&self) -> impl std::future::Future<Output = io::Result<()>> + Send {
        tokio::net::UnixStream::readable(self)
    }
    fn try_read_buf<B: BufMut>(&self, buf: &mut B) -> io::Result<usize> {
        tokio::net::UnixStream::try_read_buf(self, buf)
    }
}

/// Reads one connection until EOF or shutdown, routing every complete line; a final unterminated line is routed.
/// Each read takes at most the room left in the section's input budget ([`ReadHold::reserve`]). A new section
/// generation (a reload) is taken between two reads: the router has handed everything over by then.
pub async fn read_stream<S: StreamSocket>(sock: S, mut watch: SectionWatch, stop: CancellationToken) {
    let mut section = watch.borrow_and_update().clone();
    section.stats.connections.fetch_add(1, Relaxed);
    section.stats.connections_open.fetch_add(1, Relaxed);
    let mut router = Router::new(section.clone());
    let mut framer = StreamFramer::new(section.framing);
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut hold = ReadHold::new(&section);
    loop {
        let ready = tokio::select! {
            r = sock.readable() => r,
            _ = stop.cancelled() => Err(io::ErrorKind::Interrupted.into()),
            next = next_generation(&mut watch) => {
                section = next;
                router = Router::new(section.clone());
                framer.set_framing(section.framing);
                continue;
            }
        };
        let read = match ready {
            Err(e) => Err(e),
            Ok(()) => {
                let room = tokio::select! {
                    r = hold.reserve(READ_CHUNK) => r,
                    _ = stop.cancelled() => 0,
                };
                buf.reserve(room);
                match sock.try_read_buf(&mut (&mut buf).limit(room)) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        hold.unreserve();
                        continue;
                    }
                    // room 0: shutdown began while waiting for room
                    r => r,
                }
            }
        };
        let (n, eof) = match read {
            Ok(0) => (0, true),
            Ok(n) => (n, false),
            Err(e) => {
                if e.kind() != io::ErrorKind::Interrupted {
                    tracing::debug!(section = %section.name, error = %e, "read failed");
                }
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
