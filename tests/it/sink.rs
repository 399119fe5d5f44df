//! In-test sinks: servers that record every line they receive, and can be stopped and restarted on their port.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tokio::io::AsyncBufReadExt;
use tokio::task::JoinSet;

/// Where a sink listens, as a destination URL for a config.
#[derive(Clone, Debug)]
pub enum SinkAddr {
    Tcp(SocketAddr),
    Udp(SocketAddr),
    Unix(PathBuf),
    Http(SocketAddr),
}

impl SinkAddr {
    pub fn url(&self) -> String {
        match self {
            SinkAddr::Tcp(a) => format!("tcp://{a}"),
            SinkAddr::Udp(a) => format!("udp://{a}"),
            SinkAddr::Unix(p) => format!("unix://{}", p.display()),
            SinkAddr::Http(a) => format!("http://{a}/in"),
        }
    }
}

/// A running sink. Lines are kept in arrival order.
pub struct Sink {
    pub addr: SinkAddr,
    lines: Arc<Mutex<Vec<String>>>,
    tasks: JoinSet<()>,
}

fn record(lines: &Mutex<Vec<String>>, buf: &[u8]) {
    let mut l = lines.lock().expect("sink lock");
    for line in buf.split(|b| *b == b'\n') {
        let line = String::from_utf8_lossy(line).trim().to_string();
        if !line.is_empty() {
            l.push(line);
        }
    }
}

impl Sink {
    pub async fn tcp() -> Sink {
        Sink::tcp_at("127.0.0.1:0".parse().expect("addr"), Arc::default()).await
    }

    /// A TCP sink on a port another sink used before.
    pub async fn tcp_on(addr: SocketAddr) -> Sink {
        Sink::tcp_at(addr, Arc::default()).await
    }

    async fn tcp_at(addr: SocketAddr, lines: Arc<Mutex<Vec<String>>>) -> Sink {
        let l = tokio::net::TcpListener::bind(addr).await.expect("bind tcp sink");
        let addr = l.local_addr().expect("local addr");
        let tasks = serve_streams(l, lines.clone());
        Sink {
            addr: SinkAddr::Tcp(addr),
            lines,
            tasks,
        }
    }

    pub async fn unix(path: PathBuf) -> Sink {
        let l = tokio::net::UnixListener::bind(&path).expect("bind unix sink");
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let tasks = serve_streams(l, lines.clone());
        Sink {
            addr: SinkAddr::Unix(path),
            lines,
            tasks,
        }
    }

    pub async fn udp() -> Sink {
        let s = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("bind udp sink");
        let sock = socket2::SockRef::from(&s);
        sock.set_recv_buffer_size(8 << 20).expect("rcvbuf");
        let addr = s.local_addr().expect("local addr");
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let mut tasks = JoinSet::new();
        let ls = lines.clone();
        tasks.spawn(async move {
            let mut buf = vec![0u8; 65536];
            while let Ok(n) = s.recv(&mut buf).await {
                record(&ls, &buf[..n]);
            }
        });
        Sink {
            addr: SinkAddr::Udp(addr),
            lines,
            tasks,
        }
    }

    pub async fn http() -> Sink {
        Sink::http_reading(None).await
    }

    /// An HTTP sink that reads request bodies at about `bytes_per_sec` and records a body's lines only once it
    /// has all of it (a POST given up by its client records nothing).
    pub async fn slow_http(bytes_per_sec: u64) -> Sink {
        Sink::http_reading(Some(bytes_per_sec)).await
    }

    async fn http_reading(rate: Option<u64>) -> Sink {
        use hyper::service::service_fn;
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind http sink");
        let addr = l.local_addr().expect("local addr");
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let mut tasks = JoinSet::new();
        let ls = lines.clone();
        tasks.spawn(async move {
            let mut conns = JoinSet::new();
            while let Ok((s, _)) = l.accept().await {
                let ls = ls.clone();
                conns.spawn(async move {
                    let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let ls = ls.clone();
                        async move {
                            let mut body = req.into_body();
                            let mut got = Vec::new();
                            while let Some(frame) = body.frame().await {
                                let Ok(data) = frame.map(|f| f.into_data().unwrap_or_default()) else {
                                    got.clear();
                                    break;
                                };
                                if let Some(rate) = rate {
                                    let pause = data.len() as u64 * 1_000_000 / rate;
                                    tokio::time::sleep(std::time::Duration::from_micros(pause)).await;
                                }
                                got.extend_from_slice(&data);
                            }
                            record(&ls, &got);
                            Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(Bytes::new())))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                        .await;
                });
            }
        });
        Sink {
            addr: SinkAddr::Http(addr),
            lines,
            tasks,
        }
    }

    pub fn url(&self) -> String {
        self.addr.url()
    }

    pub fn count(&self) -> usize {
        self.lines.lock().expect("sink lock").len()
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().expect("sink lock").clone()
    }

    /// Stops listening and closes every connection; keeps what was received.
    pub async fn stop(mut self) -> StoppedSink {
        self.tasks.shutdown().await;
        let SinkAddr::Tcp(addr) = self.addr else {
            panic!("only tcp sinks restart")
        };
        StoppedSink {
            addr,
            lines: self.lines.clone(),
        }
    }
}

/// A stopped TCP sink that can be restarted on its port, keeping its lines.
pub struct StoppedSink {
    addr: SocketAddr,
    lines: Arc<Mutex<Vec<String>>>,
}

impl StoppedSink {
    pub async fn restart(self) -> Sink {
        Sink::tcp_at(self.addr, self.lines).await
    }
}

/// A stream listener of a sink: TCP or unix.
trait StreamListener: Send + Sync + 'static {
    type Stream: tokio::io::AsyncRead + Unpin + Send + 'static;
    fn accept_one(&self) -> impl std::future::Future<Output = Option<Self::Stream>> + Send;
}

impl StreamListener for tokio::net::TcpListener {
    type Stream = tokio::net::TcpStream;
    async fn accept_one(&self) -> Option<Self::Stream> {
        self.accept().await.ok().map(|(s, _)| s)
    }
}

impl StreamListener for tokio::net::UnixListener {
    type Stream = tokio::net::UnixStream;
    async fn accept_one(&self) -> Option<Self::Stream> {
        self.accept().await.ok().map(|(s, _)| s)
    }
}

/// Accepts connections and records the lines of each; stopping the returned set closes them all.
fn serve_streams<L: StreamListener>(l: L, lines: Arc<Mutex<Vec<String>>>) -> JoinSet<()> {
    let mut tasks = JoinSet::new();
    tasks.spawn(async move {
        let mut conns = JoinSet::new();
        while let Some(s) = l.accept_one().await {
            conns.spawn(read_lines(s, lines.clone()));
        }
    });
    tasks
}

async fn read_lines<S: tokio::io::AsyncRead + Unpin>(s: S, lines: Arc<Mutex<Vec<String>>>) {
    let mut r = tokio::io::BufReader::new(s);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match r.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => record(&lines, &buf),
        }
    }
}

/// A TCP sink that accepts connections and does not read them until released: its kernel acknowledges what fits
/// in its receive buffers and then nothing (the buffers toward it fill, then the relay's queue), so what the relay
/// counts as sent must be exactly what those buffers hold ([`HoldingSink::held_lines`] peeks at them without
/// taking anything). Stops accepting when dropped.
pub struct HoldingSink {
    pub addr: SocketAddr,
    held: Arc<Mutex<Vec<std::net::TcpStream>>>,
    accept: tokio::task::JoinHandle<tokio::net::TcpListener>,
    stop: Arc<tokio::sync::Notify>,
}

impl HoldingSink {
    pub async fn new() -> HoldingSink {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr");
        let held: Arc<Mutex<Vec<std::net::TcpStream>>> = Arc::default();
        let stop = Arc::new(tokio::sync::Notify::new());
        let (h, st) = (held.clone(), stop.clone());
        let accept = tokio::spawn(async move {
            loop {
                tokio::select! {
                    r = l.accept() => match r {
                        Ok((c, _)) => h.lock().expect("lock").push(c.into_std().expect("std stream")),
                        Err(_) => continue,
                    },
                    _ = st.notified() => return l,
                }
            }
        });
        HoldingSink {
            addr,
            held,
            accept,
            stop,
        }
    }

    /// The lines waiting in the receive buffers of every connection, taking nothing.
    pub fn held_lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 64 << 20];
        for c in self.held.lock().expect("lock").iter() {
            let n = match c.peek(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
                Err(e) => panic!("peek: {e}"),
            };
            let lines = Mutex::new(Vec::new());
            // only whole lines: a line cut by the buffer's end is not the relay's to count yet
            let end = buf[..n].iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            record(&lines, &buf[..end]);
            out.extend(lines.into_inner().expect("lock"));
        }
        out
    }

    async fn stop_accepting(&mut self) -> tokio::net::TcpListener {
        self.stop.notify_one();
        (&mut self.accept).await.expect("accept task")
    }

    /// Resets every connection, as a crashing peer does (what their buffers held is lost), and stops listening.
    pub async fn reset(mut self) -> SocketAddr {
        drop(self.stop_accepting().await);
        for c in self.held.lock().expect("lock").drain(..) {
            socket2::SockRef::from(&c)
                .set_linger(Some(std::time::Duration::ZERO))
                .expect("linger");
        }
        self.addr
    }

    /// Starts reading every held connection and every new one: a normal sink from now on.
    pub async fn release(mut self) -> Sink {
        let l = self.stop_accepting().await;
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let mut tasks = serve_streams(l, lines.clone());
        for c in self.held.lock().expect("lock").drain(..) {
            let c = tokio::net::TcpStream::from_std(c).expect("tokio stream");
            tasks.spawn(read_lines(c, lines.clone()));
        }
        Sink {
            addr: SinkAddr::Tcp(self.addr),
            lines,
            tasks,
        }
    }
}

impl Drop for HoldingSink {
    fn drop(&mut self) {
        self.accept.abort();
    }
}
