//! The UDP listener: one socket, each datagram framed on `\n` (its last segment is a line too). UDP cannot push
//! back, so batches that do not fit a destination queue are dropped and counted (`queue_full`).

use std::io;
use std::sync::Arc;

use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use crate::framing::frame_all;
use crate::line::WhenFull;
use crate::router::Router;
use crate::section::Section;

/// Largest UDP payload.
const MAX_DATAGRAM: usize = 65_536;

pub async fn bind(addr: &str, read_buffer_size: usize) -> io::Result<UdpSocket> {
    let addr = tokio::net::lookup_host(addr)
        .await?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{addr}: no address")))?;
    let sock = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::DGRAM, None)?;
    if let Err(e) = sock.set_recv_buffer_size(read_buffer_size) {
        tracing::warn!(error = %e, read_buffer_size, "could not set the UDP receive buffer size");
    }
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())?;
    UdpSocket::from_std(sock.into())
}

pub async fn run(sock: UdpSocket, section: Arc<Section>, stop: CancellationToken) {
    let mut router = Router::new(section.clone());
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let received = tokio::select! {
            r = sock.recv(&mut buf) => r,
            _ = stop.cancelled() => return,
        };
        let n = match received {
            Ok(n) => n,
            Err(e) => {
                tracing::debug!(section = %section.name, error = %e, "UDP receive failed");
                continue;
            }
        };
        section.hold_read(n);
        frame_all(&buf[..n], section.max_line_length, |f| router.route(f));
        // Drain whatever else is already waiting before handing batches over: fewer, larger batches.
        let mut more = 0;
        while more < 64 {
            match sock.try_recv(&mut buf) {
                Ok(m) => {
                    section.hold_read(m);
                    frame_all(&buf[..m], section.max_line_length, |f| router.route(f));
                    section.release_read(m);
                    more += 1;
                }
                Err(_) => break,
            }
        }
        router.flush(WhenFull::Drop).await;
        section.release_read(n);
    }
}
