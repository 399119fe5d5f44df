//! Targets: the URL forms and one shared connection per target, re-dialled on write errors.

use std::io;
use std::io::Write as _;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket, UnixStream};
use tokio::sync::Mutex;

use crate::log;

/// Longest wait for a connection to a target.
const DIAL_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause between failed dials.
const REDIAL_PAUSE: Duration = Duration::from_secs(1);

pub use consthash::config::Listen as Endpoint;

/// One open connection.
enum Conn {
    Tcp(TcpStream),
    Unix(UnixStream),
    Udp(UdpSocket),
    /// `head` is the request head up to the Content-Length value; `req` and `resp` are reused between posts.
    Http {
        stream: TcpStream,
        head: String,
        req: Vec<u8>,
        resp: Vec<u8>,
    },
}

/// A target and its connection, shared by all the senders of that target.
pub struct Target {
    pub url: String,
    endpoint: Endpoint,
    conn: Mutex<Option<Conn>>,
}

impl Target {
    pub fn new(url: String, endpoint: Endpoint) -> Target {
        Target {
            url,
            endpoint,
            conn: Mutex::new(None),
        }
    }

    /// Writes one batch in one write (one datagram, one POST). Stream targets retry the batch on a new
    /// connection until it is written; a UDP send error or an HTTP error status drops it. Returns whether the
    /// batch was delivered.
    pub async fn send(&self, batch: &[u8]) -> bool {
        let mut guard = self.conn.lock().await;
        loop {
            let conn = match guard.as_mut() {
                Some(c) => c,
                None => match self.dial().await {
                    Ok(c) => guard.insert(c),
                    Err(e) => {
                        log::line(format_args!("[{}] dial failed: {e}", self.url));
                        tokio::time::sleep(REDIAL_PAUSE).await;
                        continue;
                    }
                },
            };
            match self.write(conn, batch).await {
                Ok(delivered) => return delivered,
                Err(e) => {
                    log::line(format_args!("[{}] write failed, re-dialling: {e}", self.url));
                    *guard = None;
                    if matches!(self.endpoint, Endpoint::Udp(_)) {
                        return false;
                    }
                }
            }
        }
    }

    /// Shuts the connection down cleanly so the receiver sees end of stream after the last batch.
    pub async fn close(&self) {
        let conn = self.conn.lock().await.take();
        let result = match conn {
            Some(Conn::Tcp(mut s)) | Some(Conn::Http { stream: mut s, .. }) => s.shutdown().await,
            Some(Conn::Unix(mut s)) => s.shutdown().await,
            Some(Conn::Udp(_)) | None => Ok(()),
        };
        if let Err(e) = result {
            log::line(format_args!("[{}] close: {e}", self.url));
        }
    }

    async fn dial(&self) -> io::Result<Conn> {
        let dial = async {
            Ok(match &self.endpoint {
                Endpoint::Tcp(addr) => Conn::Tcp(TcpStream::connect(addr).await?),
                Endpoint::Unix(path) => Conn::Unix(UnixStream::connect(path).await?),
                Endpoint::Udp(addr) => {
                    let to = tokio::net::lookup_host(addr)
                        .await?
                        .next()
                        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address"))?;
                    let local = if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
                    let sock = UdpSocket::bind(local).await?;
                    sock.connect(to).await?;
                    Conn::Udp(sock)
                }
                Endpoint::Http { addr, path } => {
                    let stream = TcpStream::connect(addr).await?;
                    stream.set_nodelay(true)?;
                    let head =
                        format!("POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: text/plain\r\nContent-Length: ");
                    Conn::Http {
                        stream,
                        head,
                        req: Vec::new(),
                        resp: Vec::new(),
                    }
                }
                Endpoint::BackendOnly => return Err(io::Error::new(io::ErrorKind::InvalidInput, "not an address")),
            })
        };
        tokio::time::timeout(DIAL_TIMEOUT, dial)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "dial timed out after 2s"))?
    }

    async fn write(&self, conn: &mut Conn, batch: &[u8]) -> io::Result<bool> {
        match conn {
            Conn::Tcp(s) => s.write_all(batch).await.map(|()| true),
            Conn::Unix(s) => s.write_all(batch).await.map(|()| true),
            Conn::Udp(s) => s.send(batch).await.map(|_| true),
            Conn::Http {
                stream,
                head,
                req,
                resp,
            } => {
                req.clear();
                write!(req, "{head}{}\r\n\r\n", batch.len())?;
                req.extend_from_slice(batch);
                stream.write_all(req).await?;
                let status = read_response(stream, resp).await?;
                if (200..300).contains(&status) {
                    Ok(true)
                } else {
                    log::line(format_args!("[{}] HTTP status {status}: batch dropped", self.url));
                    Ok(false)
                }
            }
        }
    }
}

/// Reads one HTTP/1.1 response (Content-Length or chunked body) and returns its status code.
async fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<u16> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("bad HTTP response: {what}"));
    buf.clear();
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if stream.read_buf(buf).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| bad("status line"))?;
    let (mut length, mut chunked, mut close) = (0usize, false, false);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = value.parse().map_err(|_| bad("content-length"))?,
            "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
            "connection" => close = value.eq_ignore_ascii_case("close"),
            _ => {}
        }
    }
    // Bodies here are tiny ("lines processed N" at most): wait for the whole of it.
    loop {
        let body = &buf[head_end..];
        let done = if chunked {
            body.ends_with(b"0\r\n\r\n")
        } else {
            body.len() >= length
        };
        if done {
            break;
        }
        if stream.read_buf(buf).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
    if close {
        return Err(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "server closes the connection",
        ));
    }
    Ok(status)
}

/// Parses a comma-separated target list, ignoring empty items and surrounding spaces.
pub fn parse_list(list: &str) -> anyhow::Result<Vec<Target>> {
    let targets = consthash::config::parse_url_list(list).map_err(|e| anyhow::anyhow!("--servers: {e}"))?;
    Ok(targets.into_iter().map(|(url, e)| Target::new(url, e)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_targets() {
        let t = parse_list("tcp://a:1,,udp://b:2 , http://h:80/stats").expect("valid");
        assert_eq!(t.len(), 3);
        assert!(parse_list(" , ").is_err());
        assert!(parse_list("gopher://h:1").is_err());
    }
}
