//! The listeners: bind, accept or receive, frame, and count into per-listener atomics (once per read).

use std::convert::Infallible;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use anyhow::Context;
use http_body_util::{BodyExt, Empty};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::{TcpListener, UdpSocket, UnixListener};

use crate::lines::{LineCounter, LineSplitter};
use crate::log;
use consthash::config::Listen as Endpoint;

/// Read buffer of stream connections: large so count mode makes few syscalls per megabyte.
const READ_BUF: usize = 256 * 1024;
/// Largest UDP datagram.
const UDP_BUF: usize = 64 * 1024;

/// Cumulative counters of one listener.
#[derive(Debug, Default)]
pub struct Stats {
    pub lines: AtomicU64,
    pub bytes: AtomicU64,
    /// Connections accepted so far (tcp, unix, http); udp has none.
    pub connections: AtomicU64,
    pub open: AtomicU64,
}

impl Stats {
    #[inline]
    fn add(&self, lines: u64, bytes: usize) {
        if lines > 0 {
            self.lines.fetch_add(lines, Relaxed);
        }
        if bytes > 0 {
            self.bytes.fetch_add(bytes as u64, Relaxed);
        }
    }
}

/// One listen URL and what happens to its lines.
#[derive(Debug)]
pub struct Listener {
    pub url: String,
    pub endpoint: Endpoint,
    /// Print every line to stderr (false with `--quiet` or `--count`).
    pub print: bool,
    pub stats: Stats,
}

/// Where the bytes of one connection, datagram or request body go.
enum Sink<'a> {
    Count(LineCounter),
    Print {
        split: LineSplitter,
        url: &'a str,
        out: Vec<u8>,
    },
}

impl Sink<'_> {
    fn feed(&mut self, buf: &[u8]) -> u64 {
        match self {
            Sink::Count(c) => c.feed(buf),
            Sink::Print { split, url, out } => {
                let stamp = log::stamp();
                let n = split.feed(buf, |l| push_echo(out, &stamp, url, l));
                flush_echo(out);
                n
            }
        }
    }

    fn finish(&mut self) -> u64 {
        match self {
            Sink::Count(c) => c.finish(),
            Sink::Print { split, url, out } => {
                let stamp = log::stamp();
                let n = split.finish(|l| push_echo(out, &stamp, url, l));
                flush_echo(out);
                n
            }
        }
    }
}

/// Appends `<stamp> [ECHO from <url>] <line>\n`; one read's lines go to stderr in one write.
fn push_echo(out: &mut Vec<u8>, stamp: &str, url: &str, line: &[u8]) {
    out.extend_from_slice(stamp.as_bytes());
    out.extend_from_slice(b" [ECHO from ");
    out.extend_from_slice(url.as_bytes());
    out.extend_from_slice(b"] ");
    out.extend_from_slice(line);
    out.push(b'\n');
}

fn flush_echo(out: &mut Vec<u8>) {
    if !out.is_empty() {
        // stderr gone is not a reason to stop counting.
        let _ = std::io::stderr().lock().write_all(out);
        out.clear();
    }
}

impl Listener {
    fn sink(&self) -> Sink<'_> {
        if self.print {
            Sink::Print {
                split: LineSplitter::default(),
                url: &self.url,
                out: Vec::new(),
            }
        } else {
            Sink::Count(LineCounter::default())
        }
    }

    /// Binds the socket now (so bind errors stop start-up) and returns the task that serves it.
    pub async fn bind(self: Arc<Self>) -> anyhow::Result<tokio::task::JoinHandle<()>> {
        let what = || format!("{}: bind", self.url);
        let task = match &self.endpoint {
            Endpoint::Tcp(addr) => {
                let l = TcpListener::bind(addr).await.with_context(what)?;
                tokio::spawn(self.clone().serve_tcp(l))
            }
            Endpoint::Http { addr, path } => {
                let l = TcpListener::bind(addr).await.with_context(what)?;
                tokio::spawn(self.clone().serve_http(l, Arc::from(path.as_str())))
            }
            Endpoint::Udp(addr) => {
                let s = UdpSocket::bind(addr).await.with_context(what)?;
                tokio::spawn(self.clone().serve_udp(s))
            }
            Endpoint::Unix(path) => {
                remove_stale_socket(path);
                let l = UnixListener::bind(path).with_context(what)?;
                tokio::spawn(self.clone().serve_unix(l))
            }
            Endpoint::BackendOnly => anyhow::bail!("{}: not an address", self.url),
        };
        log::line(format_args!("[{}] Listening", self.url));
        Ok(task)
    }

    /// Removes the socket file of a unix listener (at stop).
    pub fn cleanup(&self) {
        if let Endpoint::Unix(path) = &self.endpoint {
            let _ = std::fs::remove_file(path);
        }
    }

    async fn serve_tcp(self: Arc<Self>, l: TcpListener) {
        loop {
            match l.accept().await {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(self.clone().connection(stream, peer.to_string()));
                }
                Err(e) => accept_error(&self.url, e).await,
            }
        }
    }

    async fn serve_unix(self: Arc<Self>, l: UnixListener) {
        loop {
            match l.accept().await {
                Ok((stream, peer)) => {
                    let peer = peer
                        .as_pathname()
                        .map_or_else(|| "unix".to_string(), |p| p.display().to_string());
                    tokio::spawn(self.clone().connection(stream, peer));
                }
                Err(e) => accept_error(&self.url, e).await,
            }
        }
    }

    async fn connection<R: AsyncRead + Unpin>(self: Arc<Self>, mut stream: R, peer: String) {
        self.opened(&peer);
        let mut buf = vec![0u8; READ_BUF];
        let mut sink = self.sink();
        loop {
            match stream.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => {
                    let lines = sink.feed(&buf[..n]);
                    self.stats.add(lines, n);
                }
                Err(e) => {
                    log::line(format_args!("[{}] Read error from {peer}: {e}", self.url));
                    break;
                }
            }
        }
        self.stats.add(sink.finish(), 0);
        self.closed(&peer);
    }

    fn opened(&self, peer: &str) {
        self.stats.connections.fetch_add(1, Relaxed);
        self.stats.open.fetch_add(1, Relaxed);
        log::line(format_args!("[{}] Accepted connection from {peer}", self.url));
    }

    fn closed(&self, peer: &str) {
        self.stats.open.fetch_sub(1, Relaxed);
        log::line(format_args!("[{}] Close connection from {peer}", self.url));
    }

    async fn serve_udp(self: Arc<Self>, sock: UdpSocket) {
        let mut buf = vec![0u8; UDP_BUF];
        loop {
            match sock.recv_from(&mut buf).await {
                Ok((n, _)) => {
                    let datagram = &buf[..n];
                    let lines = if self.print {
                        let mut sink = self.sink();
                        sink.feed(datagram) + sink.finish()
                    } else {
                        LineCounter::count_all(datagram)
                    };
                    self.stats.add(lines, n);
                }
                Err(e) => log::line(format_args!("[{}] Receive error: {e}", self.url)),
            }
        }
    }

    async fn serve_http(self: Arc<Self>, l: TcpListener, path: Arc<str>) {
        loop {
            let (stream, peer) = match l.accept().await {
                Ok(x) => x,
                Err(e) => {
                    accept_error(&self.url, e).await;
                    continue;
                }
            };
            let me = self.clone();
            let path = path.clone();
            tokio::spawn(async move {
                let peer = peer.to_string();
                me.opened(&peer);
                let svc = {
                    let me = me.clone();
                    hyper::service::service_fn(move |req| me.clone().request(req, path.clone()))
                };
                let conn = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc);
                if let Err(e) = conn.await {
                    log::line(format_args!("[{}] HTTP error from {peer}: {e}", me.url));
                }
                me.closed(&peer);
            });
        }
    }

    async fn request(
        self: Arc<Self>,
        req: Request<Incoming>,
        path: Arc<str>,
    ) -> Result<Response<Empty<Bytes>>, Infallible> {
        let got = req.uri().path();
        let matches = if path.ends_with('/') {
            got.starts_with(&*path)
        } else {
            got == &*path
        };
        if !matches {
            return Ok(status(StatusCode::NOT_FOUND));
        }
        let mut body = req.into_body();
        let mut sink = self.sink();
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(frame) => {
                    if let Some(data) = frame.data_ref() {
                        let lines = sink.feed(data);
                        self.stats.add(lines, data.len());
                    }
                }
                Err(_) => break,
            }
        }
        self.stats.add(sink.finish(), 0);
        Ok(status(StatusCode::OK))
    }
}

fn status(code: StatusCode) -> Response<Empty<Bytes>> {
    let mut r = Response::new(Empty::new());
    *r.status_mut() = code;
    r
}

/// Accept fails when out of file descriptors: say so and back off instead of spinning.
async fn accept_error(url: &str, e: std::io::Error) {
    log::line(format_args!("[{url}] Accept error: {e}"));
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
}

fn remove_stale_socket(path: &PathBuf) {
    use std::os::unix::fs::FileTypeExt;
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if meta.file_type().is_socket() {
            let _ = std::fs::remove_file(path);
        }
    }
}
