//! A QUIC connection in the shared-socket model of [`super::Stream`] (feature `quic`): the
//! driver reads and writes one byte stream, which is one QUIC stream under the `volley/1`
//! mapping ([`crate::quic`]'s `one_stream`) or a control stream plus a stream per call under
//! `volley-quic/2` (its `mux`). Which one was agreed by ALPN during the handshake.

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::task::{Context, Poll};

use bytes::BytesMut;

use crate::quic::{CLOSE_LINGER, MuxStream, OneStream, QuicMapping};

/// A QUIC connection as [`super::Stream::Quic`] holds it. Volley makes one when a QUIC handshake
/// succeeds; it has no public constructor.
pub struct QuicStream {
    connection: quinn::Connection,
    /// Kept so that a client's endpoint (one per connection) lives as long as the connection.
    endpoint: Option<quinn::Endpoint>,
    io: Io,
    /// The connection's first bytes went in 0-RTT data (client) or arrived as such (server).
    early: bool,
}

enum Io {
    One(OneStream),
    PerCall(Box<MuxStream>),
}

impl std::fmt::Debug for QuicStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuicStream")
            .field("remote", &self.connection.remote_address())
            .field("mapping", &self.mapping())
            .finish_non_exhaustive()
    }
}

impl QuicStream {
    /// The one-stream mapping over `send`/`recv`.
    pub(crate) fn one_stream(
        connection: quinn::Connection,
        send: quinn::SendStream,
        recv: quinn::RecvStream,
        endpoint: Option<quinn::Endpoint>,
    ) -> Self {
        Self {
            io: Io::One(OneStream::new(connection.clone(), send, recv)),
            connection,
            endpoint,
            early: false,
        }
    }

    /// The per-call mapping with `send`/`recv` as its control stream.
    pub(crate) fn per_call(connection: quinn::Connection, mux: MuxStream, endpoint: Option<quinn::Endpoint>, early: bool) -> Self {
        Self {
            io: Io::PerCall(Box::new(mux)),
            connection,
            endpoint,
            early,
        }
    }

    /// The stream mapping the peers agreed on.
    pub fn mapping(&self) -> QuicMapping {
        match self.io {
            Io::One(_) => QuicMapping::OneStream,
            Io::PerCall(_) => QuicMapping::PerCall,
        }
    }

    /// Whether the connection began with 0-RTT data.
    pub fn is_early(&self) -> bool {
        self.early
    }

    /// The peer's verified certificate identity, as for TLS over TCP: a client's under mutual
    /// TLS (on the server), the server's (on a client); `None` when the peer presented none.
    pub(crate) fn peer_identity(&self) -> Option<std::sync::Arc<crate::tls::PeerIdentity>> {
        // quinn's rustls session hands the verified chain over as `Vec<CertificateDer>`.
        let chain = self
            .connection
            .peer_identity()?
            .downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
            .ok()?;
        let leaf = chain.first()?;
        Some(std::sync::Arc::new(crate::tls::PeerIdentity::from_certificate(leaf)))
    }

    /// The QUIC connection (a client reads why it closed when its Volley handshake fails).
    pub(crate) fn connection(&self) -> &quinn::Connection {
        &self.connection
    }

    /// The peer's UDP address.
    pub(crate) fn remote_address(&self) -> SocketAddr {
        self.connection.remote_address()
    }

    pub(crate) fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &self.io {
            Io::One(s) => s.poll_read_ready(cx),
            Io::PerCall(s) => s.poll_read_ready(cx),
        }
    }

    /// Copies what quinn holds into `buf`'s spare capacity; `Ok(0)` at the end of the stream,
    /// `WouldBlock` when nothing is here.
    pub(crate) fn try_read_buf(&self, buf: &mut BytesMut) -> io::Result<usize> {
        match &self.io {
            Io::One(s) => s.try_read_buf(buf),
            Io::PerCall(s) => s.try_read_buf(buf),
        }
    }

    /// Like [`Self::try_read_buf`] into a slice (the lingering close reads this way, to discard).
    pub(crate) fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        match &self.io {
            Io::One(s) => s.try_read(buf),
            Io::PerCall(s) => s.try_read(buf),
        }
    }

    /// Hands `bufs` to quinn as far as flow control allows; `WouldBlock` when it takes nothing.
    pub(crate) fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match &self.io {
            Io::One(s) => s.try_write_vectored(bufs),
            Io::PerCall(s) => s.try_write_vectored(bufs),
        }
    }

    pub(crate) fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &self.io {
            Io::One(s) => s.poll_write_ready(cx),
            Io::PerCall(s) => s.poll_write_ready(cx),
        }
    }

    /// Finishes the stream(s): the peer reads end-of-stream after everything written so far.
    pub(crate) fn finish(&self) {
        match &self.io {
            Io::One(s) => s.finish(),
            Io::PerCall(s) => s.finish(),
        }
    }

    /// Makes the coming close a reset: unsent bytes are discarded.
    pub(crate) fn reset_on_close(&self) {
        match &self.io {
            Io::One(s) => s.reset_on_close(),
            Io::PerCall(s) => s.reset_on_close(),
        }
    }
}

impl Drop for QuicStream {
    fn drop(&mut self) {
        let endpoint = self.endpoint.take();
        match &mut self.io {
            Io::One(s) => s.close(endpoint),
            Io::PerCall(s) => s.close(CLOSE_LINGER, endpoint),
        }
    }
}
