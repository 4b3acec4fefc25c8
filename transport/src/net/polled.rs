//! `PolledStream`: a TCP or Unix socket read by a busy-poll thread (`driver/poller.rs`) and
//! registered with tokio's reactor for write readiness only, so bytes arriving wake no runtime
//! thread: on a core shared with the poller, that wake-up would preempt the poller once per
//! message.
//!
//! Writes keep the `&self` readiness model of [`Stream`](super::Stream): callers write with
//! `try_write_vectored` and the writer task waits for `writable`. Reads bypass the reactor (the
//! poller calls `recv` itself), and there is no read readiness: `readable` fails at once, so
//! a lingering close ends at once (the poller keeps reading until the connection ends).
//! Over TCP an ACK raises write readiness only when a write had found the buffer full; over a
//! Unix socket every read by the peer does, so there the reactor still wakes per message.

use std::io::{self, IoSlice, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::task::{Context, Poll};

use bytes::BytesMut;
use socket2::SockRef;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// A socket in the busy-poll mode; see the module documentation.
#[derive(Debug)]
pub struct PolledStream {
    fd: AsyncFd<Socket>,
}

#[derive(Debug)]
enum Socket {
    Tcp(std::net::TcpStream),
    Unix(UnixStream),
}

impl AsRawFd for Socket {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            Self::Tcp(s) => s.as_raw_fd(),
            Self::Unix(s) => s.as_raw_fd(),
        }
    }
}

impl PolledStream {
    /// Moves a tokio TCP or Unix stream to write-only registration: its socket is duplicated
    /// (`dup`, the same socket under a second descriptor) and registered anew, and the tokio
    /// stream is dropped (deregistered, its descriptor closed; the socket stays open). On
    /// failure (no descriptor left) the stream comes back unchanged.
    pub(crate) fn from_stream(stream: super::Stream) -> Result<Self, (io::Error, super::Stream)> {
        let duplicate = match &stream {
            super::Stream::Tcp(s) => SockRef::from(s).try_clone().map(|socket| Socket::Tcp(socket.into())),
            super::Stream::Unix(s) => SockRef::from(s).try_clone().map(|socket| Socket::Unix(socket.into())),
            _ => return Err((io::ErrorKind::Unsupported.into(), stream)),
        };
        let registered = duplicate.and_then(|socket| register_writable(socket).map_err(io::Error::from));
        match registered {
            Ok(fd) => Ok(Self { fd }),
            Err(err) => Err((err, stream)),
        }
    }

    /// The socket, for options and `recv`.
    pub(crate) fn socket(&self) -> SockRef<'_> {
        match self.fd.get_ref() {
            Socket::Tcp(s) => SockRef::from(s),
            Socket::Unix(s) => SockRef::from(s),
        }
    }

    /// Whether it is a TCP socket.
    pub(crate) fn is_tcp(&self) -> bool {
        matches!(self.fd.get_ref(), Socket::Tcp(_))
    }

    pub(crate) fn peer_address(&self) -> Option<super::Address> {
        match self.fd.get_ref() {
            Socket::Tcp(s) => s.peer_addr().ok().map(super::Address::Tcp),
            Socket::Unix(s) => s
                .peer_addr()
                .ok()
                .and_then(|addr| addr.as_pathname().map(|path| super::Address::Unix(path.to_path_buf()))),
        }
    }

    /// One non-blocking `recv` into the spare capacity of `buf`, straight to the kernel.
    pub(crate) fn try_read_buf(&self, buf: &mut BytesMut) -> io::Result<usize> {
        let n = self.socket().recv_with_flags(buf.spare_capacity_mut(), libc::MSG_DONTWAIT)?;
        let len = buf.len() + n;
        debug_assert!(len <= buf.capacity());
        // SAFETY: `recv` initialised the first `n` bytes of the spare capacity, and `n` is at
        // most its length, so `len` bytes of `buf` are initialised and within its capacity.
        #[allow(unsafe_code)]
        unsafe {
            buf.set_len(len);
        }
        Ok(n)
    }

    /// Reads what is available into `buf`, or `WouldBlock`.
    pub(crate) fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self.fd.get_ref() {
            Socket::Tcp(s) => (&*s).read(buf),
            Socket::Unix(s) => (&*s).read(buf),
        }
    }

    /// Writes what the socket takes now, or `WouldBlock` (which clears the write readiness).
    pub(crate) fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.fd.try_io(Interest::WRITABLE, |socket| match socket {
            Socket::Tcp(s) => (&*s).write_vectored(bufs),
            Socket::Unix(s) => (&*s).write_vectored(bufs),
        })
    }

    /// No read readiness is registered: the poller reads.
    pub(crate) fn poll_read_ready(&self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "a busy-polled socket is read by its poller thread",
        )))
    }

    pub(crate) fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.fd.poll_write_ready(cx).map_ok(|_guard| ())
    }
}

#[allow(unsafe_code)]
fn register_writable(socket: Socket) -> Result<AsyncFd<Socket>, tokio::io::unix::AsyncFdRegisterError<Socket>> {
    // SAFETY: `Socket` owns its descriptor (a std stream), which stays open, refers to the same
    // socket and is what `as_raw_fd` returns until the `AsyncFd` drops it; nothing exchanges it.
    unsafe { AsyncFd::register_with_interest(socket, Interest::WRITABLE) }
}
