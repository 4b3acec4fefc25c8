//! A connected socket shared by a connection's reader, writer and callers through `&self`
//! readiness and non-blocking calls, so a caller that finds the writer idle can write its frame
//! itself instead of waking another task.

use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::net::Shutdown;
use std::task::{Context, Poll};

use bytes::BytesMut;
use tokio::io::Interest;
use tokio::net::{TcpStream, UnixStream};

use super::Address;

/// A connected TCP or Unix stream, or (feature `tls`) a TCP connection after its TLS handshake,
/// or (feature `quic`) a QUIC connection's one bidirectional stream.
#[derive(Debug)]
pub enum Stream {
    /// A TCP connection.
    Tcp(TcpStream),
    /// A Unix domain socket connection.
    Unix(UnixStream),
    /// A TLS connection over TCP (see `net/tls.rs` for how it shares the socket).
    #[cfg(feature = "tls")]
    Tls(Box<super::tls::TlsStream>),
    /// One bidirectional stream of a QUIC connection (see `net/quic.rs`).
    #[cfg(feature = "quic")]
    Quic(Box<super::quic::QuicStream>),
    /// A TCP or Unix socket read by a busy-poll thread, registered with the reactor for write
    /// readiness only (see `net/polled.rs` and [`crate::busy_poll`]).
    Polled(Box<super::polled::PolledStream>),
}

impl From<TcpStream> for Stream {
    fn from(stream: TcpStream) -> Self {
        Self::Tcp(stream)
    }
}

impl From<UnixStream> for Stream {
    fn from(stream: UnixStream) -> Self {
        Self::Unix(stream)
    }
}

impl Stream {
    /// The stream for the busy-poll mode: a plain TCP or Unix socket moves to write-only
    /// registration ([`Stream::Polled`]); TLS and QUIC streams, and a socket tokio could not
    /// move, stay as they are (their connection keeps its reader task).
    pub(crate) fn into_polled(self) -> Self {
        if !matches!(self, Self::Tcp(_) | Self::Unix(_)) {
            return self;
        }
        match super::polled::PolledStream::from_stream(self) {
            Ok(polled) => Self::Polled(Box::new(polled)),
            Err((err, stream)) => {
                tracing::warn!("socket not moved to the busy-poll mode ({err}); its connection uses the reader task");
                stream
            }
        }
    }

    /// The peer's address: its socket address over TCP, its path over a Unix socket if it
    /// bound one (clients usually do not).
    pub(crate) fn peer_address(&self) -> Option<Address> {
        match self {
            Self::Tcp(s) => s.peer_addr().ok().map(Address::Tcp),
            #[cfg(feature = "tls")]
            Self::Tls(s) => s.tcp().peer_addr().ok().map(Address::Tcp),
            #[cfg(feature = "quic")]
            Self::Quic(s) => Some(Address::Quic(s.remote_address())),
            Self::Unix(s) => s
                .peer_addr()
                .ok()
                .and_then(|addr| addr.as_pathname().map(|path| Address::Unix(path.to_path_buf()))),
            Self::Polled(s) => s.peer_address(),
        }
    }

    /// Whether this is a Unix domain socket (read by the reader task or a busy-poll thread).
    pub(crate) fn is_unix(&self) -> bool {
        match self {
            Self::Unix(_) => true,
            Self::Polled(s) => !s.is_tcp(),
            _ => false,
        }
    }

    /// Reads what is available into `buf`, or `WouldBlock`.
    ///
    /// A read that leaves room in `buf` took everything the socket held, so it also clears the
    /// socket's readiness: the next wait goes to the reactor instead of costing a `recv` that
    /// can only say `EAGAIN` (one syscall per read pass saved). Clearing goes through `try_io`,
    /// which clears only the readiness observed before this read: data arriving during or after
    /// it raises a new readiness event and is never missed.
    pub(crate) fn try_read_buf(&self, buf: &mut BytesMut) -> io::Result<usize> {
        match self {
            Self::Tcp(s) => read_draining(buf, |f| s.try_io(Interest::READABLE, f), |buf| s.try_read_buf(buf)),
            Self::Unix(s) => read_draining(buf, |f| s.try_io(Interest::READABLE, f), |buf| s.try_read_buf(buf)),
            #[cfg(feature = "tls")]
            Self::Tls(s) => s.try_read_buf(buf),
            #[cfg(feature = "quic")]
            Self::Quic(s) => s.try_read_buf(buf),
            Self::Polled(s) => s.try_read_buf(buf),
        }
    }

    /// Reads what is available into `buf`, or `WouldBlock` (which clears the readiness).
    pub(crate) fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Tcp(s) => s.try_read(buf),
            Self::Unix(s) => s.try_read(buf),
            // Only the lingering close reads this way, to discard: ciphertext is as good.
            #[cfg(feature = "tls")]
            Self::Tls(s) => s.tcp().try_read(buf),
            #[cfg(feature = "quic")]
            Self::Quic(s) => s.try_read(buf),
            Self::Polled(s) => s.try_read(buf),
        }
    }

    /// Writes what the socket takes now, or `WouldBlock`.
    pub(crate) fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Self::Tcp(s) => s.try_write_vectored(bufs),
            Self::Unix(s) => s.try_write_vectored(bufs),
            #[cfg(feature = "tls")]
            Self::Tls(s) => s.try_write_vectored(bufs),
            #[cfg(feature = "quic")]
            Self::Quic(s) => s.try_write_vectored(bufs),
            Self::Polled(s) => s.try_write_vectored(bufs),
        }
    }

    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Self::Tcp(s) => s.poll_read_ready(cx),
            Self::Unix(s) => s.poll_read_ready(cx),
            #[cfg(feature = "tls")]
            Self::Tls(s) => s.poll_read_ready(cx),
            #[cfg(feature = "quic")]
            Self::Quic(s) => s.poll_read_ready(cx),
            Self::Polled(s) => s.poll_read_ready(cx),
        }
    }

    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Self::Tcp(s) => s.poll_write_ready(cx),
            Self::Unix(s) => s.poll_write_ready(cx),
            #[cfg(feature = "tls")]
            Self::Tls(s) => s.tcp().poll_write_ready(cx),
            #[cfg(feature = "quic")]
            Self::Quic(s) => s.poll_write_ready(cx),
            Self::Polled(s) => s.poll_write_ready(cx),
        }
    }

    /// Waits until the socket may be readable. Only the reader task calls this, and the writer
    /// task's lingering close once the reader has stopped.
    pub(crate) async fn readable(&self) -> io::Result<()> {
        poll_fn(|cx| self.poll_read_ready(cx)).await
    }

    /// Waits until the socket may be writable. Only the writer task calls this.
    pub(crate) async fn writable(&self) -> io::Result<()> {
        poll_fn(|cx| self.poll_write_ready(cx)).await
    }

    /// Sends FIN: the peer reads end-of-stream after everything written so far.
    pub(crate) fn shutdown_write(&self) {
        let result = match self {
            Self::Tcp(s) => socket2::SockRef::from(s).shutdown(Shutdown::Write),
            Self::Unix(s) => socket2::SockRef::from(s).shutdown(Shutdown::Write),
            #[cfg(feature = "tls")]
            Self::Tls(s) => {
                s.close_notify();
                socket2::SockRef::from(s.tcp()).shutdown(Shutdown::Write)
            }
            #[cfg(feature = "quic")]
            Self::Quic(s) => {
                s.finish();
                Ok(())
            }
            Self::Polled(s) => s.socket().shutdown(Shutdown::Write),
        };
        if let Err(err) = result {
            tracing::trace!("shutdown(SHUT_WR) failed: {err}");
        }
    }

    /// Makes the coming close a reset (TCP: `SO_LINGER` 0) instead of a FIN, discarding what the
    /// socket still holds unsent: for a peer that stopped reading, whose bytes would otherwise
    /// wait in the kernel for minutes. What already reached the peer stays readable there.
    /// Unix sockets have no reset; their close is unchanged.
    pub(crate) fn reset_on_close(&self) {
        let tcp = match self {
            Self::Tcp(s) => s,
            #[cfg(feature = "tls")]
            Self::Tls(s) => s.tcp(),
            #[cfg(feature = "quic")]
            Self::Quic(s) => {
                s.reset_on_close();
                return;
            }
            Self::Polled(s) if s.is_tcp() => {
                if let Err(err) = s.socket().set_linger(Some(std::time::Duration::ZERO)) {
                    tracing::trace!("setsockopt(SO_LINGER, 0) failed: {err}");
                }
                return;
            }
            Self::Unix(_) | Self::Polled(_) => return,
        };
        if let Err(err) = socket2::SockRef::from(tcp).set_linger(Some(std::time::Duration::ZERO)) {
            tracing::trace!("setsockopt(SO_LINGER, 0) failed: {err}");
        }
    }
}

/// Reads with `read` inside `try_io`; a short read (room left in `buf`, not end of stream)
/// reports `WouldBlock` to `try_io` so that it clears the readiness, and still returns the bytes.
fn read_draining(
    buf: &mut BytesMut,
    try_io: impl FnOnce(&mut dyn FnMut() -> io::Result<usize>) -> io::Result<usize>,
    mut read: impl FnMut(&mut BytesMut) -> io::Result<usize>,
) -> io::Result<usize> {
    let space = buf.capacity() - buf.len();
    let mut short_read = None;
    let result = try_io(&mut || {
        let n = read(buf)?;
        if n > 0 && n < space {
            short_read = Some(n);
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    });
    match (result, short_read) {
        (Err(err), Some(n)) if err.kind() == io::ErrorKind::WouldBlock => Ok(n),
        (result, _) => result,
    }
}
