//! A connected socket shared by a connection's reader, writer and callers through `&self`
//! readiness and non-blocking calls, so a caller that finds the writer idle can write its frame
//! itself instead of waking another task.

use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::net::Shutdown;
use std::task::{Context, Poll};

use bytes::BytesMut;
use tokio::net::{TcpStream, UnixStream};

use super::Address;

/// A connected TCP or Unix stream.
#[derive(Debug)]
pub enum Stream {
    /// A TCP connection.
    Tcp(TcpStream),
    /// A Unix domain socket connection.
    Unix(UnixStream),
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
    /// The peer's address: its socket address over TCP, its path over a Unix socket if it
    /// bound one (clients usually do not).
    pub(crate) fn peer_address(&self) -> Option<Address> {
        match self {
            Self::Tcp(s) => s.peer_addr().ok().map(Address::Tcp),
            Self::Unix(s) => s
                .peer_addr()
                .ok()
                .and_then(|addr| addr.as_pathname().map(|path| Address::Unix(path.to_path_buf()))),
        }
    }

    /// Reads what is available into `buf`, or `WouldBlock`.
    pub(crate) fn try_read_buf(&self, buf: &mut BytesMut) -> io::Result<usize> {
        match self {
            Self::Tcp(s) => s.try_read_buf(buf),
            Self::Unix(s) => s.try_read_buf(buf),
        }
    }

    /// Writes what the socket takes now, or `WouldBlock`.
    pub(crate) fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Self::Tcp(s) => s.try_write_vectored(bufs),
            Self::Unix(s) => s.try_write_vectored(bufs),
        }
    }

    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Self::Tcp(s) => s.poll_read_ready(cx),
            Self::Unix(s) => s.poll_read_ready(cx),
        }
    }

    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Self::Tcp(s) => s.poll_write_ready(cx),
            Self::Unix(s) => s.poll_write_ready(cx),
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
        };
        if let Err(err) = result {
            tracing::trace!("shutdown(SHUT_WR) failed: {err}");
        }
    }
}
