//! The connections of one destination: a pool of sender tasks pulling from the destination's queue.
//!
//! Each sender dials lazily (when it has something to write), writes, and counts a line as *sent* only when the
//! peer has it: for tcp and unix once the peer's kernel acknowledged its bytes ([`Unacked`], `SIOCOUTQ`), for
//! http on a 2xx answer, for udp when the datagram is handed to the kernel (udp has no acknowledgement).
//! Written lines wait in [`Unacked`] for their acknowledgement; when a connection fails (write error, peer closed
//! or reset) they go back to the head of the queue with the unsent lines and are sent again (at-least-once,
//! counted as `resent`), and the sender re-dials after a [`Backoff`] (100 ms doubling up to
//! `reconnect_backoff_max`, jittered).
//!
//! Progress is bytes written or acknowledged. A connection without progress for `write_timeout` while it has
//! bytes to deliver is *stalled* ([`Destination::is_stalled`]: the destination is down and fails its health
//! checks); it stays open and keeps waiting, since a new connection would hand a stuck peer another buffer full
//! of lines and the old one may still deliver. A stalled connection older than [`MAX_CONNECTION_AGE`] is given
//! up (a peer host that vanished never answers; TCP alone would wait for ~15 minutes). Healthy connections older
//! than that are retired: the sender waits for their acknowledgements, then re-dials. On a hard stop (shutdown
//! deadline) a sender returns what it holds to the queue, whose remainder the caller counts as dropped
//! (`shutdown`).
//!
//! What one write carries depends on `sending_method` and the transport: `bufferedpool` writes everything queued
//! (up to [`STREAM_WRITE_MAX`] bytes, one `writev`) on tcp/unix, and whole lines packed up to `pool_buffersize`
//! per datagram (udp) or POST body (http/https; smaller after a POST timed out, see [`PostSize`]); `pool` writes
//! one line per write; `single` dials, writes one line, waits for its acknowledgement and closes.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpStream, UdpSocket, UnixStream};
use tokio::time::{sleep, timeout, Instant};
use tokio_util::sync::CancellationToken;

use super::backoff::Backoff;
use super::destination::Destination;
use super::unacked::{Acked, Unacked};
use crate::config::{SendingMethod, Target};
use crate::line::Batch;
use crate::telemetry::DropReason;

pub const DIAL_TIMEOUT: Duration = Duration::from_secs(5);
pub const MAX_CONNECTION_AGE: Duration = Duration::from_secs(300);
/// Most bytes a stream sender gathers from the queue for one write.
pub const STREAM_WRITE_MAX: usize = 256 * 1024;
/// How often a sender looks at the acknowledgements of a connection that has unacknowledged bytes.
const ACK_POLL: Duration = Duration::from_millis(10);

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

    /// Bytes written that the peer has not taken (`None` when the count cannot be trusted), and whether the peer
    /// closed. A unix peer that closed frees its unread messages, so its count is read before asking whether it
    /// closed, and dropped if so; TCP's count stays exact after a close or reset (acknowledged stays
    /// acknowledged), so right after a successful write (`wrote`) a TCP connection is not asked: a closed peer
    /// shows at the next write or the next idle look.
    fn outstanding(&self, wrote: bool) -> (Option<usize>, bool) {
        let (n, unix) = match self {
            Conn::Tcp(s) => (outq::outstanding(s), false),
            Conn::Unix(s) => (outq::outstanding(s), true),
            _ => return (Some(0), false),
        };
        let closed = (unix || !wrote) && self.peer_closed();
        (n.ok().filter(|_| !(unix && closed)), closed)
    }

    fn is_stream(&self) -> bool {
        matches!(self, Conn::Tcp(_) | Conn::Unix(_))
    }

    fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.try_write_vectored(bufs),
            Conn::Unix(s) => s.try_write_vectored(bufs),
            _ => Err(io::ErrorKind::Unsupported.into()),
        }
    }

    async fn writable(&self) -> io::Result<()> {
        match self {
            Conn::Tcp(s) => s.writable().await,
            Conn::Unix(s) => s.writable().await,
            _ => Ok(()),
        }
    }

    /// One datagram or one POST: delivered whole (acknowledged) or not at all.
    async fn send_whole(&self, batch: &Batch, stall: Duration) -> io::Result<()> {
        match self {
            Conn::Udp(s) => within(stall, s.send(&batch.data)).await.map(drop),
            Conn::Http(client, url) => within(stall, post(client, url, batch)).await,
            Conn::Tcp(_) | Conn::Unix(_) => Err(io::ErrorKind::Unsupported.into()),
        }
    }
}

/// One POST of a piece (`pool_buffersize` bytes at most); a 2xx answer is delivery.
async fn post(client: &reqwest::Client, url: &str, batch: &Batch) -> io::Result<()> {
    let resp = client
        .post(url)
        .header("Content-Type", "text/plain")
        .body(batch.data.clone())
        .send()
        .await
        .map_err(io::Error::other)?;
    if !resp.status().is_success() {
        return Err(io::Error::other(format!("HTTP status {}", resp.status())));
    }
    Ok(())
}

/// `write` unless it takes longer than `stall`: then a `TimedOut` error.
async fn within<T>(stall: Duration, write: impl std::future::Future<Output = io::Result<T>>) -> io::Result<T> {
    timeout(stall, write)
        .await
        .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "write timeout: no progress")))
}

/// One open connection and what it owes.
struct Link {
    conn: Conn,
    dialled: Instant,
    /// Written lines not acknowledged yet (streams only).
    unacked: Unacked,
    /// When the connection last wrote or had bytes acknowledged.
    progress: Instant,
    /// No progress for `write_timeout` while it had bytes to deliver.
    stalled: bool,
}

/// Runs one pooled sender until the queue is closed and empty, or until `stop` (the shutdown deadline).
pub async fn run(dest: Arc<Destination>, http: reqwest::Client, stop: CancellationToken) {
    run_aged(dest, http, stop, MAX_CONNECTION_AGE).await;
}

/// [`run`] with connections retired (or, stalled, given up) at `max_age`.
async fn run_aged(dest: Arc<Destination>, http: reqwest::Client, stop: CancellationToken, max_age: Duration) {
    let mut sender = Sender {
        max_age,
        backoff: Backoff::new(dest.config.reconnect_backoff_max),
        post_size: PostSize::new(dest.config.pool_buffersize),
        dest,
        http,
        link: None,
    };
    loop {
        let awaiting = sender.link.as_ref().is_some_and(|l| !l.unacked.is_empty());
        let next = tokio::select! {
            b = sender.dest.queue.pop() => Some(b),
            _ = sleep(ACK_POLL), if awaiting => None,
            _ = stop.cancelled() => {
                sender.close_link();
                return;
            }
        };
        let (pending, outcome) = match next {
            // only acknowledgements to wait for
            None => (VecDeque::new(), sender.look(false)),
            // the queue is closed and drained: the last acknowledgements, then done
            Some(None) => {
                let outcome = tokio::select! {
                    r = sender.settle() => r,
                    _ = stop.cancelled() => Err(io::Error::other("shutdown deadline")),
                };
                if let Err(e) = outcome {
                    sender.fail(VecDeque::new(), e);
                }
                sender.close_link();
                return;
            }
            Some(Some(first)) => {
                let mut pending = sender.gather(first);
                let outcome = tokio::select! {
                    r = sender.deliver(&mut pending) => r,
                    _ = stop.cancelled() => Err(io::Error::other("shutdown deadline")),
                };
                (pending, outcome)
            }
        };
        if let Err(e) = outcome {
            sender.fail(pending, e);
            if stop.is_cancelled() || sender.dest.is_purged() {
                return;
            }
            tokio::select! {
                _ = sleep(sender.backoff.failed()) => {},
                _ = stop.cancelled() => return,
            }
        }
    }
}

/// The largest POST body a sender tries: `pool_buffersize`, halved after a POST that was not answered within
/// `write_timeout`, doubled back after [`PostSize::GROW_AFTER`] answered in a row. A slow sink that does read gets
/// bodies small enough to answer in time, instead of one large body sent again from its start forever.
#[derive(Debug)]
struct PostSize {
    max: usize,
    now: usize,
    answered: u32,
}

impl PostSize {
    const GROW_AFTER: u32 = 8;

    fn new(max: usize) -> PostSize {
        PostSize {
            max: max.max(1),
            now: max.max(1),
            answered: 0,
        }
    }

    fn limit(&self) -> usize {
        self.now
    }

    /// A POST of `len` bytes got no answer in time.
    fn timed_out(&mut self, len: usize) {
        self.now = (len / 2).clamp(1, self.max);
        self.answered = 0;
    }

    fn answered(&mut self) {
        self.answered += 1;
        if self.answered >= Self::GROW_AFTER {
            self.now = self.now.saturating_mul(2).min(self.max);
            self.answered = 0;
        }
    }
}

struct Sender {
    dest: Arc<Destination>,
    http: reqwest::Client,
    link: Option<Link>,
    post_size: PostSize,
    /// [`MAX_CONNECTION_AGE`] (shorter in tests).
    max_age: Duration,
    backoff: Backoff,
}

impl Sender {
    /// Buffered stream senders write everything gathered in one `writev`; all others write one piece at a time.
    fn coalesces(&self) -> bool {
        self.dest.config.sending_method == SendingMethod::BufferedPool
            && matches!(self.dest.url.target, Target::Tcp(_) | Target::Unix(_))
    }

    /// What the next write(s) carry, per the sending method and the transport. From here until they are
    /// acknowledged or given back, the lines count as in flight.
    fn gather(&self, first: Batch) -> VecDeque<Batch> {
        let out = self.split(first);
        let lines: usize = out.iter().map(|b| b.lines).sum();
        self.dest.stats.in_flight_lines.fetch_add(lines as u64, Relaxed);
        out
    }

    fn split(&self, first: Batch) -> VecDeque<Batch> {
        let piece_max = match self.dest.config.sending_method {
            SendingMethod::BufferedPool => self.dest.config.pool_buffersize,
            SendingMethod::Pool | SendingMethod::Single => 0,
        };
        let mut out = VecDeque::new();
        let mut rest = first;
        if self.coalesces() {
            let mut total = rest.len();
            out.push_back(rest);
            while total < STREAM_WRITE_MAX {
                let Some(b) = self.dest.queue.try_pop() else { break };
                total += b.len();
                out.push_back(b);
            }
            return out;
        }
        while !rest.is_empty() {
            out.push_back(rest.split_lines_to(piece_max));
        }
        out
    }

    /// Writes `pending` front to back, removing what was written; on error `pending` holds the unwritten part.
    async fn deliver(&mut self, pending: &mut VecDeque<Batch>) -> io::Result<()> {
        let single = self.dest.config.sending_method == SendingMethod::Single;
        while !pending.is_empty() {
            self.connect().await?;
            let link = self.link.as_mut().expect("connect() leaves a connection");
            if link.conn.is_stream() {
                let count = if self.coalesces() { pending.len() } else { 1 };
                self.write_stream(pending, count).await?;
            } else {
                let http = matches!(link.conn, Conn::Http(..));
                if http && pending[0].len() > self.post_size.limit() {
                    let head = pending[0].split_lines_to(self.post_size.limit());
                    pending.push_front(head);
                }
                let piece = pending.front().expect("not empty");
                match link.conn.send_whole(piece, self.dest.config.write_timeout).await {
                    Ok(()) if http => self.post_size.answered(),
                    Ok(()) => {}
                    Err(e) => {
                        if http && e.kind() == io::ErrorKind::TimedOut {
                            // the peer may have the lines: sent again, at-least-once
                            self.dest.stats.resent_lines.fetch_add(piece.lines as u64, Relaxed);
                            self.post_size.timed_out(piece.len());
                        }
                        return Err(e);
                    }
                }
                let piece = pending.pop_front().expect("not empty");
                self.credit(piece.lines, piece.len());
            }
            self.backoff.succeeded();
            if single {
                self.retire().await;
            }
        }
        Ok(())
    }

    /// Writes the first `count` batches of `pending` into the stream connection; each batch whose bytes are all
    /// in moves to [`Unacked`] (so a cancelled write loses nothing). While the connection takes no bytes, its
    /// acknowledgements are looked at every [`ACK_POLL`].
    async fn write_stream(&mut self, pending: &mut VecDeque<Batch>, mut count: usize) -> io::Result<()> {
        let mut off = 0;
        while count > 0 {
            let link = self.link.as_mut().expect("a connection");
            let slices: Vec<IoSlice<'_>> = std::iter::once(&pending[0].data[off..])
                .chain(pending.iter().take(count).skip(1).map(|b| &b.data[..]))
                .take(64)
                .map(IoSlice::new)
                .collect();
            let result = link.conn.try_write_vectored(&slices);
            drop(slices);
            match result {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(mut n) => {
                    link.unacked.wrote(n);
                    while n > 0 && n >= pending[0].len() - off {
                        n -= pending[0].len() - off;
                        off = 0;
                        let b = pending.pop_front().expect("not empty");
                        link.unacked.push(b);
                        count -= 1;
                        if count == 0 {
                            break;
                        }
                    }
                    off += n;
                    self.look(true)?;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let ready = tokio::select! {
                        r = link.conn.writable() => { r?; true }
                        _ = sleep(ACK_POLL) => false,
                    };
                    if !ready {
                        self.look(false)?;
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Looks at the connection's acknowledgements: counts the newly acknowledged lines as sent, and notes
    /// progress (`wrote`: a write just put bytes in) or its absence. Fails when the peer closed the connection,
    /// when the destination was purged, and when a stalled connection is older than [`MAX_CONNECTION_AGE`].
    fn look(&mut self, wrote: bool) -> io::Result<()> {
        let Some(link) = self.link.as_mut() else { return Ok(()) };
        let (outstanding, closed) = link.conn.outstanding(wrote);
        let acked = match outstanding {
            Some(n) => link.unacked.acknowledged(n),
            None => Acked::default(),
        };
        let progressed = wrote || acked.progressed;
        if progressed {
            link.progress = Instant::now();
            self.dest.progressed();
            if std::mem::take(&mut link.stalled) {
                self.dest.connection_unstalled();
                tracing::info!(section = %self.dest.section, server = %self.dest.url.raw, "connection takes bytes again");
            }
        } else if !link.stalled && link.unacked.waiting() && link.progress.elapsed() >= self.dest.config.write_timeout {
            link.stalled = true;
            self.dest.connection_stalled();
            tracing::warn!(
                section = %self.dest.section, server = %self.dest.url.raw, timeout = ?self.dest.config.write_timeout,
                in_flight = link.unacked.lines(), "connection stalled: the peer takes no bytes"
            );
        }
        let (stalled, old) = (link.stalled, link.dialled.elapsed() >= self.max_age);
        self.credit(acked.lines, acked.bytes);
        if closed {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "peer closed the connection",
            ));
        }
        if self.dest.is_purged() {
            return Err(io::Error::other("destination purged"));
        }
        if stalled && old {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "stalled connection given up"));
        }
        Ok(())
    }

    /// The peer has these lines: they leave flight as sent.
    fn credit(&self, lines: usize, bytes: usize) {
        self.dest.stats.in_flight_lines.fetch_sub(lines as u64, Relaxed);
        self.dest.stats.sent_lines.fetch_add(lines as u64, Relaxed);
        self.dest.stats.sent_bytes.fetch_add(bytes as u64, Relaxed);
    }

    /// Waits until every written line is acknowledged, or the connection stalls or fails.
    async fn settle(&mut self) -> io::Result<()> {
        loop {
            self.look(false)?;
            match &self.link {
                Some(l) if l.unacked.waiting() && !l.stalled => sleep(ACK_POLL).await,
                _ => return Ok(()),
            }
        }
    }

    /// Closes the connection once what it carries is acknowledged (or it stalls or fails: the rest is resent).
    async fn retire(&mut self) {
        if let Err(e) = self.settle().await {
            tracing::debug!(section = %self.dest.section, server = %self.dest.url.raw, error = %e, "retired connection failed");
        }
        self.close_link();
    }

    /// Drops the connection; what it had not had acknowledged goes back to the head of the queue.
    fn close_link(&mut self) {
        let Some(mut link) = self.link.take() else { return };
        if link.stalled {
            self.dest.connection_unstalled();
        }
        let lines = link.unacked.lines() as u64;
        self.dest.stats.resent_lines.fetch_add(lines, Relaxed);
        self.give_back(link.unacked.take());
    }

    /// Returns lines in flight to the head of the queue (oldest first), or counts them as purged.
    fn give_back(&self, batches: VecDeque<Batch>) {
        let lines: usize = batches.iter().map(|b| b.lines).sum();
        self.dest.stats.in_flight_lines.fetch_sub(lines as u64, Relaxed);
        if self.dest.is_purged() {
            self.dest.drop_batch(DropReason::Purged, lines);
            return;
        }
        for b in batches.into_iter().rev() {
            self.dest.queue.push_front(b);
        }
    }

    /// A write, dial or connection failed: the connection closes, its unacknowledged lines and `pending` go back.
    fn fail(&mut self, pending: VecDeque<Batch>, e: io::Error) {
        self.dest.stats.write_failures.fetch_add(1, Relaxed);
        self.give_back(pending);
        self.close_link();
        if let Some(suppressed) = self.dest.send_failure_log(e.kind()) {
            tracing::warn!(section = %self.dest.section, server = %self.dest.url.raw, error = %e, suppressed, "send failed");
        }
    }

    async fn connect(&mut self) -> io::Result<()> {
        if let Some(link) = &self.link {
            if link.dialled.elapsed() < self.max_age {
                // a closed peer: `look` counts what it acknowledged before closing, then fails
                return if link.conn.peer_closed() {
                    self.look(false)
                } else {
                    Ok(())
                };
            }
            self.retire().await;
        }
        let dialled = match timeout(DIAL_TIMEOUT, Conn::dial(&self.dest.url.target, &self.http)).await {
            Ok(r) => r,
            Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "dial timeout")),
        };
        match dialled {
            Ok(conn) => {
                let now = Instant::now();
                self.link = Some(Link {
                    conn,
                    dialled: now,
                    unacked: Unacked::default(),
                    progress: now,
                    stalled: false,
                });
                self.dest.mark_reachable();
                Ok(())
            }
            Err(e) => {
                self.dest.mark_unreachable();
                self.dest.stats.connect_failures.fetch_add(1, Relaxed);
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn post_bodies_halve_after_a_timeout_and_grow_back_after_answers() {
        let mut p = PostSize::new(4096);
        assert_eq!(p.limit(), 4096);
        p.timed_out(3000);
        assert_eq!(p.limit(), 1500, "half of what timed out");
        p.timed_out(1);
        assert_eq!(p.limit(), 1, "never below one byte: one line at a time");
        for _ in 0..PostSize::GROW_AFTER - 1 {
            p.answered();
        }
        assert_eq!(p.limit(), 1);
        p.answered();
        assert_eq!(p.limit(), 2);
        for _ in 0..20 * PostSize::GROW_AFTER {
            p.answered();
        }
        assert_eq!(p.limit(), 4096, "back to pool_buffersize, not beyond");
    }

    fn destination(extra: &str, port: u16) -> Arc<Destination> {
        let cfg = crate::config::load_main(
            &format!(
                "[default]\n[s]\nmsg_type = 'graphite'\n{extra}\n\
                 [[s.servers]]\nservers = ['tcp://127.0.0.1:{port}']\n"
            ),
            "t.toml",
        )
        .expect("config");
        let s = &cfg.sections[0];
        Arc::new(Destination::new("s", s.rings[0].servers[0].clone(), s.outgoing))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stalled_connection_is_given_up_at_its_age_limit_and_its_lines_resent() {
        // a peer that accepts and never reads (a vanished host looks the same: nothing is acknowledged)
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = l.local_addr().expect("addr").port();
        let accepted = Arc::new(std::sync::Mutex::new(Vec::new()));
        let held = accepted.clone();
        std::thread::spawn(move || {
            for c in l.incoming().flatten() {
                held.lock().expect("lock").push(c);
            }
        });
        let dest = destination(
            "write_timeout = 100\nmax_pool_connections = 1\nout_queue_lines = 10000000",
            port,
        );
        for _ in 0..1000 {
            let lines = Bytes::from("stalled.key 1 1700000000\n".repeat(1000));
            dest.queue.try_push(Batch::from_lines(lines)).expect("room");
        }
        let stop = CancellationToken::new();
        let sender = tokio::spawn(run_aged(
            dest.clone(),
            reqwest::Client::new(),
            stop.clone(),
            Duration::from_secs(1),
        ));
        let deadline = Instant::now() + Duration::from_secs(30);
        while accepted.lock().expect("lock").len() < 2 {
            assert!(Instant::now() < deadline, "the stalled connection was never given up");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(dest.stats.stalls.load(Relaxed) >= 1);
        assert!(
            dest.stats.resent_lines.load(Relaxed) > 0,
            "its unacknowledged lines were queued again"
        );
        stop.cancel();
        sender.await.expect("sender ends");
        let books = dest.stats.sent_lines.load(Relaxed) + dest.queue.depth().0 as u64;
        assert_eq!(
            books, 1_000_000,
            "after the stop, every line is sent or back in the queue"
        );
        assert_eq!(dest.stats.in_flight_lines.load(Relaxed), 0);
        assert_eq!(dest.stats.stalled_connections.load(Relaxed), 0);
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
