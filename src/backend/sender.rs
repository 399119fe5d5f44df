//! The connections of one destination: a pool of sender tasks pulling from the destination's queue.
//!
//! Each sender dials lazily (when it has something to write), writes, and on any failure returns the unsent
//! lines to the head of the queue, closes its connection and re-dials after a [`Backoff`] (100 ms doubling up to
//! `reconnect_backoff_max`, jittered): delivery is at-least-once. A stream write fails when it makes no progress
//! for `write_timeout` (a slow sink that takes bytes keeps its connection), and what it wrote is kept: the whole
//! lines that reached the connection are not sent again, only a line cut in the middle is (whole).
//! Connections older than [`MAX_CONNECTION_AGE`] are re-dialled. On a hard stop (shutdown deadline) a sender
//! returns what it holds to the queue, whose remainder the caller counts as dropped (`shutdown`).
//!
//! What one write carries depends on `sending_method` and the transport: `bufferedpool` writes everything queued
//! (up to [`STREAM_WRITE_MAX`] bytes, one `writev`) on tcp/unix, and whole lines packed up to `pool_buffersize`
//! per datagram (udp) or POST body (http/https); `pool` writes one line per write; `single` dials, writes one line
//! and closes.

use std::io::{self, IoSlice};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket, UnixStream};
use tokio::time::{timeout, Instant};
use tokio_util::sync::CancellationToken;

use super::backoff::Backoff;
use super::destination::Destination;
use crate::config::{SendingMethod, Target};
use crate::line::Batch;
use crate::telemetry::RateLimit;

pub const DIAL_TIMEOUT: Duration = Duration::from_secs(5);
pub const MAX_CONNECTION_AGE: Duration = Duration::from_secs(300);
/// Most bytes a stream sender gathers from the queue for one write.
pub const STREAM_WRITE_MAX: usize = 256 * 1024;

enum Conn {
    Tcp(TcpStream),
    Unix(UnixStream),
    Udp(UdpSocket),
    Http(reqwest::Client, String),
}

impl Conn {
    async fn dial(target: &Target, http: &reqwest::Client) -> io::Result<Conn> {
        Ok(match target {
            Target::Tcp(addr) => {
                let s = TcpStream::connect(addr.as_str()).await?;
                s.set_nodelay(true)?;
                Conn::Tcp(s)
            }
            Target::Unix(path) => Conn::Unix(UnixStream::connect(path).await?),
            Target::Udp(addr) => {
                let peer = tokio::net::lookup_host(addr.as_str())
                    .await?
                    .next()
                    .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address"))?;
                let local = if peer.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
                let s = UdpSocket::bind(local).await?;
                s.connect(peer).await?;
                Conn::Udp(s)
            }
            Target::Http(url) | Target::Https(url) => Conn::Http(http.clone(), url.clone()),
        })
    }

    /// A stream whose peer closed (or reset) is detected before writing, so no batch is written into a dead
    /// connection's kernel buffer. Relay destinations never send data; anything they send is discarded.
    fn peer_closed(&self) -> bool {
        let mut sink = [0u8; 256];
        loop {
            let r = match self {
                Conn::Tcp(s) => s.try_read(&mut sink),
                Conn::Unix(s) => s.try_read(&mut sink),
                _ => return false,
            };
            match r {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(_) => return true,
            }
        }
    }

    /// Writes `batches`; a stream write fails only when it makes no progress for `stall` (a slow sink that takes
    /// bytes keeps its connection). The error carries how many bytes were written before it.
    async fn write_all(&mut self, batches: &[Batch], stall: Duration) -> Result<(), WriteError> {
        // datagrams and POSTs are delivered whole or not at all
        let nothing_written = |error| WriteError { error, written: 0 };
        match self {
            Conn::Tcp(s) => write_all_vectored(s, batches, stall).await,
            Conn::Unix(s) => write_all_vectored(s, batches, stall).await,
            Conn::Udp(s) => {
                for b in batches {
                    within(stall, s.send(&b.data)).await.map_err(nothing_written)?;
                }
                Ok(())
            }
            Conn::Http(client, url) => within(stall, Self::post(client, url, batches))
                .await
                .map_err(nothing_written),
        }
    }

    /// One POST per piece (`pool_buffersize` bytes at most); a 2xx answer is delivery.
    async fn post(client: &reqwest::Client, url: &str, batches: &[Batch]) -> io::Result<()> {
        for b in batches {
            let resp = client
                .post(url)
                .header("Content-Type", "text/plain")
                .body(b.data.clone())
                .send()
                .await
                .map_err(io::Error::other)?;
            if !resp.status().is_success() {
                return Err(io::Error::other(format!("HTTP status {}", resp.status())));
            }
        }
        Ok(())
    }
}

/// `write` unless it takes longer than `stall`: then a `TimedOut` error.
async fn within<T>(stall: Duration, write: impl std::future::Future<Output = io::Result<T>>) -> io::Result<T> {
    timeout(stall, write)
        .await
        .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "write timeout: no progress")))
}

/// A failed write and how far it got.
struct WriteError {
    error: io::Error,
    /// Bytes of the batches written before the error.
    written: usize,
}

async fn write_all_vectored<W: AsyncWriteExt + Unpin>(
    w: &mut W,
    batches: &[Batch],
    stall: Duration,
) -> Result<(), WriteError> {
    let (mut i, mut off, mut written) = (0, 0, 0);
    let fail = |error: io::Error, written: usize| WriteError { error, written };
    while i < batches.len() {
        let slices: Vec<IoSlice<'_>> = std::iter::once(&batches[i].data[off..])
            .chain(batches[i + 1..].iter().map(|b| &b.data[..]))
            .take(64)
            .map(IoSlice::new)
            .collect();
        let mut n = match within(stall, w.write_vectored(&slices)).await {
            Err(e) => return Err(fail(e, written)),
            Ok(0) => return Err(fail(io::ErrorKind::WriteZero.into(), written)),
            Ok(n) => n,
        };
        written += n;
        while i < batches.len() && n >= batches[i].data.len() - off {
            n -= batches[i].data.len() - off;
            i += 1;
            off = 0;
        }
        off += n;
    }
    w.flush().await.map_err(|e| fail(e, written))
}

/// Removes from the front of `pending` the whole lines among its first `written` bytes (they reached the
/// connection) and returns their (lines, bytes); a line only partly written stays, to be sent again whole.
fn take_written(pending: &mut Vec<Batch>, written: usize) -> (usize, usize) {
    let (mut whole, mut left) = (0, written);
    while whole < pending.len() && left >= pending[whole].len() {
        left -= pending[whole].len();
        whole += 1;
    }
    let (mut lines, mut bytes) = pending
        .drain(..whole)
        .fold((0, 0), |(l, b), x| (l + x.lines, b + x.len()));
    // the whole lines within the written part of the next batch
    if let Some(first) = pending.first_mut() {
        if let Some(end) = memchr::memrchr(b'\n', &first.data[..left]) {
            let head = first.split_front(usize::MAX, end + 1);
            (lines, bytes) = (lines + head.lines, bytes + head.len());
        }
    }
    (lines, bytes)
}

/// Runs one pooled sender until the queue is closed and empty, or until `stop` (the shutdown deadline).
pub async fn run(dest: Arc<Destination>, http: reqwest::Client, stop: CancellationToken) {
    let mut sender = Sender {
        backoff: Backoff::new(dest.config.reconnect_backoff_max),
        dest,
        http,
        conn: None,
        dialled: Instant::now(),
    };
    let fail_log = RateLimit::default();
    loop {
        let first = tokio::select! {
            b = sender.dest.queue.pop() => b,
            _ = stop.cancelled() => return,
        };
        let Some(first) = first else { return };
        let mut pending = sender.gather(first);
        let outcome = tokio::select! {
            r = sender.deliver(&mut pending) => r,
            _ = stop.cancelled() => Err(io::Error::other("shutdown deadline")),
        };
        if let Err(e) = outcome {
            for b in pending.into_iter().rev() {
                sender.dest.queue.push_front(b);
            }
            sender.conn = None;
            if let Some(suppressed) = fail_log.allow() {
                tracing::warn!(section = %sender.dest.section, server = %sender.dest.url.raw, error = %e, suppressed, "send failed");
            }
            if stop.is_cancelled() || sender.dest.is_purged() {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(sender.backoff.failed()) => {},
                _ = stop.cancelled() => return,
            }
        }
    }
}

struct Sender {
    dest: Arc<Destination>,
    http: reqwest::Client,
    conn: Option<Conn>,
    dialled: Instant,
    backoff: Backoff,
}

impl Sender {
    /// What the next write(s) carry, per the sending method and the transport.
    /// Buffered stream senders write everything gathered in one `writev`; all others write one piece at a time.
    fn coalesces(&self) -> bool {
        self.dest.config.sending_method == SendingMethod::BufferedPool
            && matches!(self.dest.url.target, Target::Tcp(_) | Target::Unix(_))
    }

    /// What the next write(s) carry, per the sending method and the transport.
    fn gather(&self, first: Batch) -> Vec<Batch> {
        let piece_max = match self.dest.config.sending_method {
            SendingMethod::BufferedPool => self.dest.config.pool_buffersize,
            SendingMethod::Pool | SendingMethod::Single => 0,
        };
        let mut out = Vec::new();
        let mut rest = first;
        if self.coalesces() {
            let mut total = rest.len();
            out.push(rest);
            while total < STREAM_WRITE_MAX {
                let Some(b) = self.dest.queue.try_pop() else { break };
                total += b.len();
                out.push(b);
            }
            return out;
        }
        while !rest.is_empty() {
            out.push(rest.split_lines_to(piece_max));
        }
        out
    }

    /// Writes `pending` front to back, removing what was delivered; on error `pending` holds the undelivered part.
    async fn deliver(&mut self, pending: &mut Vec<Batch>) -> io::Result<()> {
        let single = self.dest.config.sending_method == SendingMethod::Single;
        let take = if self.coalesces() { pending.len() } else { 1 };
        while !pending.is_empty() {
            self.connect().await?;
            let conn = self.conn.as_mut().expect("connect() leaves a connection");
            let result = conn.write_all(&pending[..take], self.dest.config.write_timeout).await;
            // what reached the connection leaves `pending`; after a failure the rest is sent again
            let written = match &result {
                Ok(()) => pending[..take].iter().map(Batch::len).sum(),
                Err(e) => e.written,
            };
            let (lines, bytes) = take_written(pending, written);
            self.dest.stats.sent_lines.fetch_add(lines as u64, Relaxed);
            self.dest.stats.sent_bytes.fetch_add(bytes as u64, Relaxed);
            if let Err(WriteError { error, .. }) = result {
                self.dest.stats.write_failures.fetch_add(1, Relaxed);
                return Err(error);
            }
            self.backoff.succeeded();
            if single {
                self.conn = None;
            }
        }
        Ok(())
    }

    async fn connect(&mut self) -> io::Result<()> {
        if let Some(c) = &self.conn {
            if self.dialled.elapsed() < MAX_CONNECTION_AGE && !c.peer_closed() {
                return Ok(());
            }
            self.conn = None;
        }
        match timeout(DIAL_TIMEOUT, Conn::dial(&self.dest.url.target, &self.http)).await {
            Ok(Ok(c)) => {
                self.conn = Some(c);
                self.dialled = Instant::now();
                self.dest.mark_reachable();
                Ok(())
            }
            Ok(Err(e)) => {
                self.dest.mark_unreachable();
                self.dest.stats.connect_failures.fetch_add(1, Relaxed);
                Err(e)
            }
            Err(_) => {
                self.dest.mark_unreachable();
                self.dest.stats.connect_failures.fetch_add(1, Relaxed);
                Err(io::Error::new(io::ErrorKind::TimedOut, "dial timeout"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn a_failed_write_keeps_the_whole_lines_it_wrote() {
        let batch = |s: &'static str| Batch::from_lines(bytes::Bytes::from_static(s.as_bytes()));
        let mut pending = vec![batch("a 1\nb 2\n"), batch("c 3\nd 4\n")];
        assert_eq!(take_written(&mut pending, 0), (0, 0));
        assert_eq!(
            take_written(&mut pending, 10),
            (2, 8),
            "the first batch, and half of c: c stays"
        );
        assert_eq!(pending, [batch("c 3\nd 4\n")]);
        assert_eq!(take_written(&mut pending, 5), (1, 4));
        assert_eq!(pending, [batch("d 4\n")]);
        assert_eq!(take_written(&mut pending, 4), (1, 4));
        assert!(pending.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_dead_destination_is_redialled_with_capped_backoff_and_keeps_its_lines() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let cfg = crate::config::load_main(
            &format!(
                "[default]\n[s]\nmsg_type = 'graphite'\nreconnect_backoff_max = 400\n\
                 [[s.servers]]\nservers = ['tcp://127.0.0.1:{port}']\n"
            ),
            "t.toml",
        )
        .expect("config");
        let s = &cfg.sections[0];
        let dest = Arc::new(Destination::new("s", s.rings[0].servers[0].clone(), s.outgoing));
        dest.queue
            .try_push(Batch::from_lines(Bytes::from_static(b"a 1 1\nb 2 2\n")))
            .expect("room");
        let stop = CancellationToken::new();
        let sender = tokio::spawn(run(dest.clone(), reqwest::Client::new(), stop.clone()));
        tokio::time::sleep(Duration::from_secs(10)).await;
        // Waits of 100, 200, then 400 ms each, jittered into [d/2, d]: between 10/0.4 and 10/0.2 re-dials.
        let dials = dest.stats.connect_failures.load(Relaxed);
        assert!((24..=54).contains(&dials), "{dials} dials in 10 s");
        assert_eq!(dest.queue.depth().0, 2, "the lines wait in the queue");
        assert!(dest.is_down(), "unreachable for longer than out_block_timeout");
        stop.cancel();
        sender.await.expect("sender ends");
    }
}
