//! The one `unsafe` call of consthash, quarantined here so that the main crate keeps `#![forbid(unsafe_code)]`:
//! `ioctl(fd, SIOCOUTQ)`, the bytes written to a connected stream socket that its peer has not taken yet.
//!
//! * TCP: unsent + sent-but-unacknowledged bytes (`write_seq - snd_una`), exact.
//! * Unix stream sockets: the memory of the messages the peer has not read, counted with their overhead, so
//!   never less than the unread bytes: `written - outstanding` is a lower bound of what the peer has read.
//!
//! Either way, bytes written minus this number have certainly reached the peer.

#![deny(unsafe_op_in_unsafe_fn)]

use std::io;
use std::os::fd::AsFd;

/// `SIOCOUTQ` (= `TIOCOUTQ`) on the Linux architectures consthash runs on (x86_64, aarch64, arm, riscv).
#[cfg(target_os = "linux")]
const SIOCOUTQ: rustix::ioctl::Opcode = 0x5411;

/// Bytes written to `socket` (a connected TCP or unix stream socket) that its peer has not taken yet.
#[cfg(target_os = "linux")]
pub fn outstanding(socket: impl AsFd) -> io::Result<usize> {
    // SAFETY: SIOCOUTQ writes one C int through the pointer the Getter provides, which is sized for a c_int.
    let getter = unsafe { rustix::ioctl::Getter::<SIOCOUTQ, std::ffi::c_int>::new() };
    // SAFETY: the opcode and output type above match the kernel's definition of SIOCOUTQ; the fd is borrowed
    // for the duration of the call.
    let n = unsafe { rustix::ioctl::ioctl(socket, getter) }?;
    Ok(usize::try_from(n).unwrap_or(0))
}

/// Elsewhere the kernel does not tell; callers treat every written byte as outstanding.
#[cfg(not(target_os = "linux"))]
pub fn outstanding(_socket: impl AsFd) -> io::Result<usize> {
    Err(io::ErrorKind::Unsupported.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn tcp_bytes_are_outstanding_until_the_peer_acknowledges_them() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let mut c = std::net::TcpStream::connect(l.local_addr().expect("addr")).expect("connect");
        let (mut peer, _) = l.accept().expect("accept");
        assert_eq!(outstanding(&c).expect("ioctl"), 0);
        c.write_all(b"a 1 1\n").expect("write");
        let mut buf = [0u8; 6];
        peer.read_exact(&mut buf).expect("read");
        // the peer's kernel has the bytes: acknowledged (on loopback, by the time the read returns or shortly after)
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while outstanding(&c).expect("ioctl") != 0 {
            assert!(std::time::Instant::now() < deadline, "never acknowledged");
            std::thread::yield_now();
        }
    }

    #[test]
    fn unix_bytes_are_outstanding_until_the_peer_reads_them() {
        let (mut a, mut b) = std::os::unix::net::UnixStream::pair().expect("pair");
        a.write_all(&[b'x'; 1000]).expect("write");
        assert!(
            outstanding(&a).expect("ioctl") >= 1000,
            "unread bytes count, with overhead"
        );
        let mut buf = [0u8; 1000];
        b.read_exact(&mut buf).expect("read");
        assert_eq!(outstanding(&a).expect("ioctl"), 0);
    }
}
