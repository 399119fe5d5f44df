//! The UDP listener: `udp_receivers` sockets bound to one address with `SO_REUSEPORT` (one per runtime worker
//! thread by default), each read by its own task that takes up to [`quinn_udp::BATCH_SIZE`] datagrams per system
//! call (`recvmmsg`, with UDP GRO where the kernel coalesces them) and routes them inline. Each datagram is framed
//! on `\n` (its last segment is a line too). The kernel spreads datagrams over the sockets by their sender's
//! address and port, so each sender's datagrams stay in order on one socket. UDP cannot push back, so batches that
//! do not fit a destination queue are dropped and counted (`queue_full`).
//!
//! Datagrams the kernel drops before a receiver reads them (its receive buffer was full) never reach consthash;
//! [`KernelDrops`] reads each socket's own drop counter from `/proc/net/udp{,6}` every [`KERNEL_DROPS_PERIOD`]
//! and the section's `kernel_drops` is their sum, so that loss is in `/metrics` and `/stats` too. A receive buffer
//! smaller than `read_buffer_size` (the kernel caps it at `net.core.rmem_max`) is a WARN at start.
//!
//! `SO_REUSEPORT` would let a second process of the same user join the port silently and take part of the
//! traffic; [`bind`] refuses a port on which the kernel shows a socket that is not one of the listener's own.

use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use quinn_udp::{RecvMeta, UdpSocketState, BATCH_SIZE};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use crate::config::MAX_UDP_RECEIVERS;
use crate::framing::frame_all;
use crate::line::WhenFull;
use crate::router::Router;
use crate::section::{next_generation, SectionWatch};
use crate::telemetry::SectionStats;

/// Largest UDP payload, and the room for one GRO-coalesced buffer.
const MAX_DATAGRAM: usize = 65_536;

/// Receive calls a receiver makes before it hands its batches to the queues (fewer, larger batches).
const CALLS_PER_FLUSH: usize = 4;

/// How often a listener's kernel drop counter is read.
pub const KERNEL_DROPS_PERIOD: Duration = Duration::from_secs(1);

/// One receive socket of a UDP listener, with the state its batched reads need.
#[derive(Debug)]
pub struct Receiver {
    sock: UdpSocket,
    state: UdpSocketState,
}

impl Receiver {
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock.local_addr()
    }
}

/// The kernel's count of datagrams it dropped for one UDP socket (the `drops` column of `/proc/net/udp`, found by
/// the socket's inode).
#[derive(Clone, Copy, Debug)]
pub struct KernelDrops {
    inode: u64,
    v6: bool,
}

impl KernelDrops {
    pub fn of(r: &Receiver) -> io::Result<KernelDrops> {
        Ok(KernelDrops {
            inode: rustix::fs::fstat(&r.sock)?.st_ino,
            v6: r.sock.local_addr()?.is_ipv6(),
        })
    }

    fn table(v6: bool) -> Option<String> {
        std::fs::read_to_string(if v6 { "/proc/net/udp6" } else { "/proc/net/udp" }).ok()
    }

    /// Datagrams dropped so far by all of `sockets`; `None` when the kernel does not say (no `/proc`, or a socket
    /// is gone).
    pub fn read(sockets: &[KernelDrops]) -> Option<u64> {
        let table = KernelDrops::table(sockets.first()?.v6)?;
        sockets.iter().map(|s| drops_in(&table, s.inode)).sum()
    }
}

/// The rows of a `/proc/net/udp` table: (local port, inode, drops).
fn rows(table: &str) -> impl Iterator<Item = (u16, u64, u64)> + '_ {
    table.lines().skip(1).filter_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let port = u16::from_str_radix(f.get(1)?.rsplit(':').next()?, 16).ok()?;
        Some((port, f.get(9)?.parse().ok()?, f.get(12)?.parse().ok()?))
    })
}

/// The `drops` of the socket with `inode` in a `/proc/net/udp` table.
fn drops_in(table: &str, inode: u64) -> Option<u64> {
    rows(table).find_map(|(_, i, drops)| (i == inode).then_some(drops))
}

/// Inodes of sockets on `port` in a `/proc/net/udp` table that are not in `ours`.
fn strangers(table: &str, port: u16, ours: &[u64]) -> Vec<u64> {
    rows(table)
        .filter(|(p, i, _)| *p == port && !ours.contains(i))
        .map(|(_, i, _)| i)
        .collect()
}

/// Copies the kernel's drop count of a listener's `sockets` into the section's `kernel_drops` until `stop`, and
/// once more then.
pub async fn watch_kernel_drops(
    sockets: Vec<KernelDrops>,
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
        if let Some(n) = KernelDrops::read(&sockets) {
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

/// How many receive sockets `udp_receivers` asks for: 0 = one per worker thread of the running runtime.
pub fn receivers(configured: usize) -> usize {
    crate::section::per_worker(configured, MAX_UDP_RECEIVERS)
}

/// Binds the `count` receive sockets of a listener on `addr`.
pub async fn bind(addr: &str, read_buffer_size: usize, count: usize) -> io::Result<Vec<Receiver>> {
    let first = tokio::net::lookup_host(addr)
        .await?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{addr}: no address")))?;
    let mut socks = vec![bind_one(first, read_buffer_size, count > 1)?];
    // port 0: the others join the port the first one got
    let bound = socks[0]
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::other(format!("{addr}: not an IP socket")))?;
    let granted = socks[0].recv_buffer_size().map_or(0, |n| n / 2); // Linux reports twice the usable size
    if granted < read_buffer_size {
        tracing::warn!(
            addr = %bound, read_buffer_size, granted,
            "the kernel granted a smaller UDP receive buffer than read_buffer_size (raise net.core.rmem_max): \
             bursts beyond it are dropped by the kernel, counted in consthash_udp_kernel_drops_total"
        );
    }
    for _ in 1..count {
        socks.push(bind_one(bound, read_buffer_size, true)?);
    }
    if count > 1 {
        let ours = socks
            .iter()
            .map(|s| rustix::fs::fstat(s).map(|st| st.st_ino))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(table) = KernelDrops::table(bound.is_ipv6()) {
            let others = strangers(&table, bound.port(), &ours);
            if !others.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("{bound}: another socket receives on this port (SO_REUSEPORT; inodes {others:?})"),
                ));
            }
        }
    }
    socks
        .into_iter()
        .map(|s| {
            let sock = UdpSocket::from_std(s.into())?;
            let state = UdpSocketState::new((&sock).into())?;
            Ok(Receiver { sock, state })
        })
        .collect()
}

fn bind_one(addr: SocketAddr, read_buffer_size: usize, reuse_port: bool) -> io::Result<socket2::Socket> {
    let sock = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::DGRAM, None)?;
    if reuse_port {
        sock.set_reuse_port(true)?;
    }
    if let Err(e) = sock.set_recv_buffer_size(read_buffer_size) {
        tracing::warn!(error = %e, read_buffer_size, "could not set the UDP receive buffer size");
    }
    sock.set_nonblocking(true)?;
    sock.bind(&addr.into())?;
    Ok(sock)
}

/// The datagrams of one receive buffer: one, or several of `stride` bytes each (the last may be shorter) that the
/// kernel coalesced (GRO).
fn datagrams(buf: &[u8], stride: usize) -> std::slice::Chunks<'_, u8> {
    buf.chunks(stride.max(1))
}

pub async fn run(r: Receiver, mut watch: SectionWatch, stop: CancellationToken) {
    let mut section = watch.borrow_and_update().clone();
    let mut router = Router::new(section.clone());
    let mut buf = vec![0u8; BATCH_SIZE * MAX_DATAGRAM];
    let mut meta = [RecvMeta::default(); BATCH_SIZE];
    loop {
        let ready = tokio::select! {
            r = r.sock.readable() => r,
            _ = stop.cancelled() => return,
            next = next_generation(&mut watch) => {
                section = next;
                router = Router::new(section.clone());
                continue;
            }
        };
        if let Err(e) = ready {
            tracing::debug!(section = %section.name, error = %e, "UDP socket not readable");
            continue;
        }
        let mut held = 0;
        for _ in 0..CALLS_PER_FLUSH {
            let got = r.sock.try_io(Interest::READABLE, || {
                let mut room = buf.chunks_mut(MAX_DATAGRAM);
                let mut bufs: [IoSliceMut<'_>; BATCH_SIZE] =
                    std::array::from_fn(|_| IoSliceMut::new(room.next().unwrap_or_default()));
                r.state.recv((&r.sock).into(), &mut bufs, &mut meta)
            });
            let n = match got {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    tracing::debug!(section = %section.name, error = %e, "UDP receive failed");
                    break;
                }
            };
            for (m, room) in meta[..n].iter().zip(buf.chunks(MAX_DATAGRAM)) {
                section.hold_read(m.len);
                held += m.len;
                for d in datagrams(&room[..m.len], m.stride) {
                    frame_all(d, section.framing, |f| router.route(f));
                }
            }
        }
        router.flush(WhenFull::Drop).await;
        section.release_read(held);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n  12: 0100007F:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000   0   0 4711 2 0000000000000000 0\n  13: 0100007F:1F90 00000000:0000 07 00000000:00000000 00:00000000 00000000   0   0 4712 2 0000000000000000 93\n  14: 0100007F:1F90 00000000:0000 07 00000000:00000000 00:00000000 00000000   0   0 4713 2 0000000000000000 7\n";

    #[test]
    fn the_drops_of_one_socket_in_a_proc_table() {
        assert_eq!(drops_in(TABLE, 4712), Some(93));
        assert_eq!(drops_in(TABLE, 4711), Some(0));
        assert_eq!(drops_in(TABLE, 9), None);
    }

    #[test]
    fn sockets_on_the_port_that_are_not_the_listener_s_own() {
        // 0x1F90 = 8080
        assert_eq!(strangers(TABLE, 8080, &[4712, 4713]), Vec::<u64>::new());
        assert_eq!(strangers(TABLE, 8080, &[4712]), vec![4713]);
        assert_eq!(strangers(TABLE, 53, &[]), vec![4711]);
    }

    #[test]
    fn a_coalesced_buffer_is_cut_into_its_datagrams() {
        let d: Vec<&[u8]> = datagrams(b"a 1 1\nb 2 2\nc 3", 6).collect();
        assert_eq!(d, [&b"a 1 1\n"[..], b"b 2 2\n", b"c 3"]);
        assert_eq!(datagrams(b"one", 3).count(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn receivers_share_one_port_and_a_stranger_on_it_is_refused() {
        assert_eq!(receivers(0), 2, "one per worker thread");
        assert_eq!(receivers(500), MAX_UDP_RECEIVERS);
        let socks = bind("127.0.0.1:0", 65_536, 3).await.expect("bind");
        let addr = socks[0].local_addr().expect("addr");
        assert!(socks.iter().all(|s| s.local_addr().expect("addr") == addr));
        // a second listener on the same port (same user, SO_REUSEPORT) would take part of the datagrams
        let err = bind(&addr.to_string(), 65_536, 2).await.expect_err("refused");
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{err}");
        // and one without SO_REUSEPORT cannot bind at all
        assert!(bind(&addr.to_string(), 65_536, 1).await.is_err());
    }
}
