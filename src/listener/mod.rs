//! Listeners: accept or receive bytes, frame them into lines and route them (spec §5).
//!
//! Every listener owns its socket and stops when the shutdown token fires: stream listeners stop accepting and
//! their connections stop reading, route what they already read (a final unterminated line included) and end.
//! Stream listeners (tcp, unix, http) wait for room in destination queues (back-pressure reaches the client);
//! the UDP listener cannot wait and drops what does not fit (counted).

mod http;
mod stream;
mod udp;

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Listen;
use crate::section::Section;

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

/// Binds the section's socket and spawns its accept/receive loop on `tracker`.
pub async fn start(
    listen: &Listen,
    section: Arc<Section>,
    read_buffer_size: usize,
    tracker: &TaskTracker,
    stop: &CancellationToken,
) -> io::Result<Bound> {
    Ok(match listen {
        Listen::Tcp(addr) => {
            let l = tokio::net::TcpListener::bind(addr.as_str()).await?;
            let bound = l.local_addr()?;
            tracker.spawn(stream::run_tcp(l, section, tracker.clone(), stop.clone()));
            Bound::Tcp(bound)
        }
        Listen::Unix(path) => {
            remove_stale_socket(path)?;
            let l = tokio::net::UnixListener::bind(path)?;
            tracker.spawn(stream::run_unix(
                l,
                path.clone(),
                section,
                tracker.clone(),
                stop.clone(),
            ));
            Bound::Unix(path.clone())
        }
        Listen::Udp(addr) => {
            let s = udp::bind(addr, read_buffer_size).await?;
            let bound = s.local_addr()?;
            match udp::KernelDrops::of(&s) {
                Ok(drops) => {
                    tracker.spawn(udp::watch_kernel_drops(drops, section.clone(), stop.clone()));
                }
                Err(e) => tracing::warn!(%bound, error = %e, "cannot read the kernel's UDP drop counter"),
            }
            tracker.spawn(udp::run(s, section, stop.clone()));
            Bound::Udp(bound)
        }
        Listen::Http { addr, path } => {
            let l = tokio::net::TcpListener::bind(addr.as_str()).await?;
            let bound = l.local_addr()?;
            tracker.spawn(http::run(l, path.clone(), section, tracker.clone(), stop.clone()));
            Bound::Http(bound)
        }
        Listen::BackendOnly => Bound::None,
    })
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
