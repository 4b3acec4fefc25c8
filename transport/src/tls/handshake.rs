//! The TLS handshakes: tokio-rustls drives them (they are rare and short), then the connection
//! becomes a [`TlsStream`] that fits Volley's shared-socket model.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::{ALPN_VOLLEY, ClientTls, PeerIdentity, ServerTls, TlsError};
use crate::net::TlsStream;
use crate::wire::PREFACE_MAGIC;

/// How long a server keeps reading (and discarding) after a failed TLS handshake (1 s), so the
/// alert it sent is not wiped out by a reset: closing with the peer's bytes unread makes the
/// kernel answer with RST (see `driver/linger.rs`).
const FAILED_HANDSHAKE_LINGER: Duration = Duration::from_secs(1);

/// Bytes discarded at most while lingering after a failed handshake (64 KiB).
const FAILED_HANDSHAKE_LINGER_BYTES: usize = 64 * 1024;

/// Runs the client handshake over `tcp` until `deadline`: verifies the server's certificate
/// against `tls`'s CAs for `tls`'s server name (or `ip`), and requires ALPN `volley/1`.
pub(crate) async fn connect(
    tcp: TcpStream,
    tls: &ClientTls,
    ip: std::net::IpAddr,
    deadline: Instant,
    timeout: Duration,
) -> Result<TlsStream, TlsError> {
    let connector = tokio_rustls::TlsConnector::from(tls.rustls_config());
    let handshake = connector.connect(tls.server_name(ip), Sniff::new(tcp)).into_fallible();
    let stream = match tokio::time::timeout_at(deadline.into(), handshake).await {
        Err(_) => return Err(TlsError::Timeout(timeout)),
        Ok(Err((err, sniff))) if sniff.saw_volley_preface() => {
            tracing::debug!("TLS handshake failed against a plaintext server: {err}");
            return Err(TlsError::PlaintextServer);
        }
        Ok(Err((err, _))) => return Err(TlsError::from_io(err)),
        Ok(Ok(stream)) => stream,
    };
    let (sniff, conn) = stream.into_inner();
    if conn.alpn_protocol() != Some(ALPN_VOLLEY) {
        return Err(TlsError::Alpn(format!("the server chose {}", describe_alpn(conn.alpn_protocol()))));
    }
    let peer = peer_identity(conn.peer_certificates());
    Ok(TlsStream::new(sniff.tcp, rustls::Connection::Client(conn), peer))
}

/// Runs the server handshake over `tcp` until `deadline` with the certificate current now;
/// under mutual TLS verifies the client's certificate. A failure sends the alert rustls chose,
/// then lingers briefly so that the client reads it.
pub(crate) async fn accept(tcp: TcpStream, tls: &ServerTls, deadline: Instant, timeout: Duration) -> Result<TlsStream, TlsError> {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.rustls_config());
    let handshake = acceptor.accept(Sniff::new(tcp)).into_fallible();
    let (err, sniff) = match tokio::time::timeout_at(deadline.into(), handshake).await {
        Err(_) => return Err(TlsError::Timeout(timeout)),
        Ok(Err((err, sniff))) => {
            let err = if sniff.saw_volley_preface() {
                TlsError::PlaintextClient
            } else {
                TlsError::from_io(err)
            };
            (err, sniff)
        }
        Ok(Ok(stream)) => {
            let (sniff, conn) = stream.into_inner();
            if conn.alpn_protocol() == Some(ALPN_VOLLEY) {
                let peer = peer_identity(conn.peer_certificates());
                return Ok(TlsStream::new(sniff.tcp, rustls::Connection::Server(conn), peer));
            }
            let err = TlsError::Alpn(format!("the client offered {}", describe_alpn(conn.alpn_protocol())));
            (err, sniff)
        }
    };
    linger_closed(&sniff.tcp).await;
    Err(err)
}

fn describe_alpn(alpn: Option<&[u8]>) -> String {
    match alpn {
        Some(id) => format!("`{}`", String::from_utf8_lossy(id)),
        None => "no ALPN protocol".to_owned(),
    }
}

fn peer_identity(certificates: Option<&[rustls::pki_types::CertificateDer<'static>]>) -> Option<Arc<PeerIdentity>> {
    certificates
        .and_then(|chain| chain.first())
        .map(|leaf| Arc::new(PeerIdentity::from_certificate(leaf)))
}

/// Sends FIN and reads until the peer's EOF, [`FAILED_HANDSHAKE_LINGER`] or
/// [`FAILED_HANDSHAKE_LINGER_BYTES`].
async fn linger_closed(tcp: &TcpStream) {
    let _ = socket2::SockRef::from(tcp).shutdown(std::net::Shutdown::Write);
    let discard = async {
        let mut scratch = [0u8; 4096];
        let mut discarded = 0;
        while discarded < FAILED_HANDSHAKE_LINGER_BYTES {
            if tcp.readable().await.is_err() {
                return;
            }
            match tcp.try_read(&mut scratch) {
                Ok(0) => return,
                Ok(n) => discarded += n,
                Err(err) if matches!(err.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {}
                Err(_) => return,
            }
        }
    };
    let _ = tokio::time::timeout(FAILED_HANDSHAKE_LINGER, discard).await;
}

/// The TCP stream during a handshake, remembering the first bytes the peer sent: a Volley
/// preface there means the peer speaks plaintext Volley, which a TLS error would not say.
#[derive(Debug)]
struct Sniff {
    tcp: TcpStream,
    first: [u8; 4],
    seen: usize,
}

impl Sniff {
    fn new(tcp: TcpStream) -> Self {
        Self {
            tcp,
            first: [0; 4],
            seen: 0,
        }
    }

    fn saw_volley_preface(&self) -> bool {
        self.seen > 0 && self.first[..self.seen] == PREFACE_MAGIC[..self.seen]
    }
}

impl AsyncRead for Sniff {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.tcp).poll_read(cx, buf))?;
        let new = &buf.filled()[before..];
        let take = new.len().min(this.first.len() - this.seen);
        this.first[this.seen..this.seen + take].copy_from_slice(&new[..take]);
        this.seen += take;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Sniff {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}
