//! The UDP listener: one socket, each datagram framed on `\n` (its last segment is a line too). UDP cannot push
//! back, so batches that do not fit a destination queue are dropped and counted (`queue_full`).
//!
//! Datagrams the kernel drops before the listener reads them (its receive buffer was full) never reach consthash;
//! [`KernelDrops`] reads the socket's own drop counter from `/proc/net/udp{,6}` every [`KERNEL_DROPS_PERIOD`] into
//! the section's `kernel_drops`, so that loss is in `/metrics` and `/stats` too. A receive buffer smaller than
//! `read_buffer_size` (the kernel caps it at `net.core.rmem_max`) is a WARN at start.

use std::io;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use crate::framing::frame_all;
use crate::line::WhenFull;
use crate::router::Router;
use crate::section::{next_generation, SectionWatch};
use crate::telemetry::SectionStats;

/// Largest UDP payload.
const MAX_DATAGRAM: usize = 65_536;

/// How often a listener's kernel drop counter is read.
pub const KERNEL_DROPS_PERIOD: Duration = Duration::from_secs(1);

/// The kernel's count of datagrams it dropped for one UDP socket (the `drops` column of `/proc/net/udp`, found by
/// the socket's inode).
#[derive(Clone, Copy, Debug)]
pub struct KernelDrops {
    inode: u64,
    v6: bool,
}

impl KernelDrops {
    pub fn of(sock: &UdpSocket) -> io::Result<KernelDrops> {
        let inode = rustix::fs::fstat(sock)?.st_ino;
        Ok(KernelDrops {
            inode,
            v6: sock.local_addr()?.is_ipv6(),
        })
    }

    /// Datagrams dropped so far; `None` when the kernel does not say (no `/proc`, or the socket is gone).
    pub fn read(&self) -> Option<u64> {
        let table = if self.v6 { "/proc/net/udp6" } else { "/proc/net/udp" };
        drops_in(&std::fs::read_to_string(table).ok()?, self.inode)
    }
}

/// The `drops` of the socket with `inode` in a `/proc/net/udp` table.
fn drops_in(table: &str, inode: u64) -> Option<u64> {
    table.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.get(9)?.parse::<u64>().ok()? == inode).then(|| f.get(12)?.parse().ok())?
    })
}

/// Copies the kernel's drop count of `sock` into the section's `kernel_drops` until `stop`, and once more then.
pub async fn watch_kernel_drops(
    drops: KernelDrops,
    section: String,
    stats: Arc<SectionStats>,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(KERNEL_DROPS_PERIOD);
    let log = crate::telemetry::RateLimit::default();
    loop {
        let stopping = tokio::select! {
            _ = tick.tick() => false,
            _ = stop.cancelled() => true,
        };
        if let Some(n) = drops.read() {
            let before = stats.kernel_drops.swap(n, Relaxed);
            if n > before {
                if let Some(suppressed) = log.allow() {
                    tracing::warn!(
                        %section, dropped = n - before, total = n, suppressed,
                        "the kernel dropped UDP datagrams: the receive buffer was full"
                    );
                }
            }
        }
        if stopping {
            return;
        }
    }
}

pub async fn bind(addr: &str, read_buffer_size: usize) -> io::Result<UdpSocket> {
    let addr = tokio::net::lookup_host(addr)
        .await?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{addr}: no address")))?;
    let sock = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::DGRAM, None)?;
    if let Err(e) = sock.set_recv_buffer_size(read_buffer_size) {
        tracing::warn!(error = %e, read_buffer_size, "could not set the UDP receive buffer size");
    }
    // Linux reports twice the usable size it granted
    let granted = sock.recv_buffer_size().map_or(0, |n| n / 2);
    if granted < read_buffer_size {
        tracing::warn!(
            %addr, read_buffer_size, granted,
            "the kernel granted a smaller UDP receive buffer than read_buffer_size (raise net.core.rmem_max): \
             bursts beyond it are dropped by the kernel, counted in consthash_udp_kernel_drops_total"
        );
    }
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())?;
    UdpSocket::from_std(sock.into())
}

pub async fn run(sock: UdpSocket, mut watch: SectionWatch, stop: CancellationToken) {
    let mut section = watch.borrow_and_update().clone();
    let mut router = Router::new(section.clone());
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let received = tokio::select! {
            r = sock.recv(&mut buf) => r,
            _ = stop.cancelled() => return,
            next = next_generation(&mut watch) => {
                section = next;
                router = Router::new(section.clone());
                continue;
            }
        };
        let n = match received {
            Ok(n) => n,
            Err(e) => {
                tracing::debug!(section = %section.name, error = %e, "UDP receive failed");
                continue;
            }
        };
        section.hold_read(n);
        frame_all(&buf[..n], section.framing, |f| router.route(f));
        // Drain whatever else is already waiting before handing batches over: fewer, larger batches.
        let mut more = 0;
        while more < 64 {
            match sock.try_recv(&mut buf) {
                Ok(m) => {
                    section.hold_read(m);
                    frame_all(&buf[..m], section.framing, |f| router.route(f));
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

#[cfg(test)]
mod tests {
    use super::drops_in;

    #[test]
    fn the_drops_of_one_socket_in_a_proc_table() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n  12: 0100007F:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000   0   0 4711 2 0000000000000000 0\n  13: 0100007F:1F90 00000000:0000 07 00000000:00000000 00:00000000 00000000   0   0 4712 2 0000000000000000 93\n";
        assert_eq!(drops_in(table, 4712), Some(93));
        assert_eq!(drops_in(table, 4711), Some(0));
        assert_eq!(drops_in(table, 9), None);
    }
}
