//! Listeners: accept or receive bytes, frame them into lines and route them (spec §5).
//!
//! Every listener owns its socket and routes into the section generation its [`SectionWatch`] shows: a reload
//! hands it the next one, which a connection takes between two reads (or while idle), so that a socket and its
//! connections outlive a reload. It stops when its token fires: stream listeners stop accepting and
//! their connections stop reading, route what they already read (a final unterminated line included) and end.
//! Stream listeners (tcp, unix, http) wait for room in destination queues (back-pressure reaches the client);
//! the UDP listener cannot wait and drops what does not fit (counted).

mod http;
mod stream;
mod udp;

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{InputConfig, Listen};
use crate::section::SectionWatch;

/// Size of one read from a stream socket.
pub const READ_CHUNK: usize = 64 * 1024;

/// Where a listener ended up listening (port 0 resolved).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Bound {
    Tcp(SocketAddr),
    Udp(SocketAddr),
    Unix(PathBuf),
    Http(SocketAddr),
    None,
}

impl Bound {
    /// The socket address of a tcp, udp or http listener.
    pub fn addr(&self) -> Option<SocketAddr> {
        match self {
            Bound::Tcp(a) | Bound::Udp(a) | Bound::Http(a) => Some(*a),
            Bound::Unix(_) | Bound::None => None,
        }
    }
}

/// A bound listening socket whose loop is not running yet (a reload binds every new socket before it changes
/// anything, so that a socket it cannot bind refuses the whole reload).
#[derive(Debug)]
pub enum Socket {
    Tcp(tokio::net::TcpListener),
    Unix(tokio::net::UnixListener, PathBuf),
    Udp(Vec<udp::Receiver>),
    Http(tokio::net::TcpListener, String),
    None,
}

/// Binds the socket (for UDP the `udp_receivers` sockets) of `listen`.
pub async fn bind(listen: &Listen, input: &InputConfig) -> io::Result<Socket> {
    let read_buffer_size = input.read_buffer_size;
    Ok(match listen {
        Listen::Tcp(addr) => Socket::Tcp(tokio::net::TcpListener::bind(addr.as_str()).await?),
        Listen::Unix(path) => {
            remove_stale_socket(path)?;
            Socket::Unix(tokio::net::UnixListener::bind(path)?, path.clone())
        }
        Listen::Udp(addr) => Socket::Udp(udp::bind(addr, read_buffer_size, udp::receivers(input.udp_receivers)).await?),
        Listen::Http { addr, path } => Socket::Http(tokio::net::TcpListener::bind(addr.as_str()).await?, path.clone()),
        Listen::BackendOnly => Socket::None,
    })
}

impl Socket {
    /// Where it is bound (port 0 resolved).
    pub fn bound(&self) -> io::Result<Bound> {
        Ok(match self {
            Socket::Tcp(l) => Bound::Tcp(l.local_addr()?),
            Socket::Unix(_, path) => Bound::Unix(path.clone()),
            Socket::Udp(s) => Bound::Udp(
                s.first()
                    .ok_or_else(|| io::Error::other("no UDP socket"))?
                    .local_addr()?,
            ),
            Socket::Http(l, _) => Bound::Http(l.local_addr()?),
            Socket::None => Bound::None,
        })
    }

    /// Spawns its accept/receive loop on `tracker`, routing into the section generation `section` shows.
    pub fn spawn(self, section: SectionWatch, tracker: &TaskTracker, stop: &CancellationToken) {
        match self {
            Socket::Tcp(l) => {
                tracker.spawn(stream::run_tcp(l, section, tracker.clone(), stop.clone()));
            }
            Socket::Unix(l, path) => {
                tracker.spawn(stream::run_unix(l, path, section, tracker.clone(), stop.clone()));
            }
            Socket::Udp(receivers) => {
                match receivers
                    .iter()
                    .map(udp::KernelDrops::of)
                    .collect::<io::Result<Vec<_>>>()
                {
                    Ok(drops) => {
                        let current = section.borrow().clone();
                        tracker.spawn(udp::watch_kernel_drops(
                            drops,
                            current.name.clone(),
                            current.stats.clone(),
                            stop.clone(),
                        ));
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot read the kernel's UDP drop counter"),
                }
                for r in receivers {
                    tracker.spawn(udp::run(r, section.clone(), stop.clone()));
                }
            }
            Socket::Http(l, path) => {
                tracker.spawn(http::run(l, path, section, tracker.clone(), stop.clone()));
            }
            Socket::None => {}
        }
    }
}

/// Makes way for a unix listener at `path`: removes a socket nobody listens on any more (left by a process that
/// died), and refuses anything else there: a socket in use (another instance) or a file that is not a socket.
fn remove_stale_socket(path: &std::path::Path) -> io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let meta = match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        other => other?,
    };
    if !meta.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists and is not a socket: not removed", path.display()),
        ));
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("{} is the socket of a running process", path.display()),
        )),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => std::fs::remove_file(path),
        Err(e) => Err(e),
    }
}
