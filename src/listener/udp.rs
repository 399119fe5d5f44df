//! The UDP listener: `udp_receive_sockets` sockets on one address (`SO_REUSEPORT`; one per worker thread by
//! default), each read by its own task, many datagrams per system call (`recvmmsg` through `quinn-udp`); each
//! datagram is framed on `\n` (its last segment is a line too) and routed inline. UDP cannot push back, so
//! batches that do not fit a destination queue are dropped and counted (`queue_full`).
//!
//! Datagrams the kernel drops before the listener reads them (its receive buffer was full) never reach consthash;
//! [`KernelDrops`] reads the socket's own drop counter from `/proc/net/udp{,6}` every [`KERNEL_DROPS_PERIOD`] into
//! the section's `kernel_drops`, so that loss is in `/metrics` and `/stats` too. A receive buffer smaller than
//! `read_buffer_size` (the kernel caps it at `net.core.rmem_max`) is a WARN at start.

use std::io;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use std::io::IoSliceMut;

use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use crate::framing::frame_all;
use crate::line::WhenFull;
use crate::router::Router;
use crate::section::Section;

/// Largest UDP payload (and GRO buffer).
const MAX_DATAGRAM: usize = 65_536;
/// Receive calls between two hand-overs of the routed batches: fewer, larger batches under load.
const CALLS_PER_FLUSH: usize = 8;

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

/// Copies the kernel's drop count of a listener's sockets (summed) into the section's `kernel_drops` until
/// `stop`, and once more then.
pub async fn watch_kernel_drops(drops: Vec<KernelDrops>, section: Arc<Section>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(KERNEL_DROPS_PERIOD);
    let log = crate::telemetry::RateLimit::default();
    loop {
        let stopping = tokio::select! {
            _ = tick.tick() => false,
            _ = stop.cancelled() => true,
        };
        let n: u64 = drops.iter().filter_map(KernelDrops::read).sum();
        let before = section.stats.kernel_drops.swap(n, Relaxed);
        if n > before {
            if let Some(suppressed) = log.allow() {
                tracing::warn!(
                    section = %section.name, dropped = n - before, total = n, suppressed,
                    "the kernel dropped UDP datagrams: the receive buffer was full"
                );
            }
        }
        if stopping {
            return;
        }
    }
}

/// Binds `sockets` receive sockets on `addr`, all with `SO_REUSEPORT` (the kernel spreads senders over them by
/// their address), each with a receive buffer of `read_buffer_size`. Port 0 means the port the first one got.
pub async fn bind(addr: &str, read_buffer_size: usize, sockets: usize) -> io::Result<Vec<UdpSocket>> {
    let mut addr = tokio::net::lookup_host(addr)
        .await?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{addr}: no address")))?;
    let mut out = Vec::new();
    for _ in 0..sockets.max(1) {
        let sock = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::DGRAM, None)?;
        sock.set_reuse_port(true)?;
        if let Err(e) = sock.set_recv_buffer_size(read_buffer_size) {
            tracing::warn!(error = %e, read_buffer_size, "could not set the UDP receive buffer size");
        }
        sock.set_nonblocking(true)?;
        sock.bind(&addr.into())?;
        let sock = UdpSocket::from_std(sock.into())?;
        addr = sock.local_addr()?;
        out.push(sock);
    }
    // Linux reports twice the usable size it granted
    let granted = socket2::SockRef::from(&out[0]).recv_buffer_size().map_or(0, |n| n / 2);
    if granted < read_buffer_size {
        tracing::warn!(
            %addr, read_buffer_size, granted,
            "the kernel granted a smaller UDP receive buffer than read_buffer_size (raise net.core.rmem_max): \
             bursts beyond it are dropped by the kernel, counted in consthash_udp_kernel_drops_total"
        );
    }
    Ok(out)
}

/// Reads one receive socket until `stop`: up to [`quinn_udp::BATCH_SIZE`] datagrams per system call
/// (`recvmmsg`), each framed and routed inline; the batches go to the queues after at most [`CALLS_PER_FLUSH`]
/// calls, or when the socket is empty.
pub async fn run(sock: UdpSocket, section: Arc<Section>, stop: CancellationToken) {
    let state = match quinn_udp::UdpSocketState::new((&sock).into()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(section = %section.name, error = %e, "cannot set up the UDP receive socket");
            return;
        }
    };
    let mut router = Router::new(section.clone());
    let mut bufs: Vec<Vec<u8>> = (0..quinn_udp::BATCH_SIZE).map(|_| vec![0u8; MAX_DATAGRAM]).collect();
    let mut meta = vec![quinn_udp::RecvMeta::default(); quinn_udp::BATCH_SIZE];
    loop {
        tokio::select! {
            r = sock.readable() => if let Err(e) = r {
                tracing::debug!(section = %section.name, error = %e, "UDP socket not readable");
                continue;
            },
            _ = stop.cancelled() => return,
        }
        for _ in 0..CALLS_PER_FLUSH {
            let mut slices: Vec<IoSliceMut<'_>> = bufs.iter_mut().map(|b| IoSliceMut::new(b)).collect();
            let received = sock.try_io(Interest::READABLE, || {
                state.recv((&sock).into(), &mut slices, &mut meta)
            });
            drop(slices);
            let n = match received {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    tracing::debug!(section = %section.name, error = %e, "UDP receive failed");
                    break;
                }
            };
            for (buf, m) in bufs.iter().zip(&meta).take(n) {
                section.hold_read(m.len);
                // a GRO buffer holds several datagrams of `stride` bytes (the last one may be shorter)
                for datagram in buf[..m.len].chunks(m.stride.max(1)) {
                    frame_all(datagram, section.max_line_length, |f| router.route(f));
                }
                section.release_read(m.len);
            }
        }
        router.flush(WhenFull::Drop).await;
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
