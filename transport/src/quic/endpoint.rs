//! Opening QUIC connections: a server's endpoint and its handshakes, a client's endpoint and
//! connect, each ending with the one bidirectional stream that carries Volley's frames.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Instant;

use super::{CLOSE_REFUSED, client_config, server_config};
use crate::driver::DriverConfig;
use crate::error::Error;
use crate::net::{Address, QuicStream};
use crate::tls::{ClientTls, ServerTls};

/// Binds a server endpoint on the UDP address `addr`.
pub(crate) fn bind_server(addr: SocketAddr, tls: &ServerTls, config: &DriverConfig) -> Result<quinn::Endpoint, Error> {
    let server = server_config(tls, config)?;
    quinn::Endpoint::server(server, addr).map_err(|source| Error::Bind {
        address: Address::Quic(addr),
        source,
    })
}

/// Completes the QUIC handshake of `incoming` and waits for the client's stream, both before
/// `deadline`. The reason of a failure is for the server's log.
pub(crate) async fn accept(incoming: quinn::Incoming, deadline: Instant) -> Result<QuicStream, String> {
    let connection = match tokio::time::timeout_at(deadline.into(), incoming).await {
        Ok(Ok(connection)) => connection,
        Ok(Err(err)) => return Err(format!("QUIC handshake failed: {err}")),
        Err(_) => return Err("QUIC handshake timed out".to_owned()),
    };
    match tokio::time::timeout_at(deadline.into(), connection.accept_bi()).await {
        Ok(Ok((send, recv))) => Ok(QuicStream::new(connection, send, recv, None)),
        Ok(Err(err)) => Err(format!("the QUIC connection ended before its stream opened: {err}")),
        Err(_) => {
            connection.close(CLOSE_REFUSED, b"no stream within the handshake timeout");
            Err("the client opened no stream within the handshake timeout".to_owned())
        }
    }
}

/// Connects to the server at `addr` from an endpoint of this connection's own (bound to
/// loopback when `addr` is loopback, to the unspecified address otherwise) and opens the stream.
pub(crate) async fn connect(addr: SocketAddr, tls: &ClientTls, config: &DriverConfig, deadline: Instant) -> Result<QuicStream, Error> {
    let address = Address::Quic(addr);
    let failed = |source: io::Error| Error::Connect {
        address: address.clone(),
        source,
    };
    let local: SocketAddr = match (addr.is_ipv4(), addr.ip().is_loopback()) {
        (true, true) => (Ipv4Addr::LOCALHOST, 0).into(),
        (true, false) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        (false, true) => (Ipv6Addr::LOCALHOST, 0).into(),
        (false, false) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let endpoint = quinn::Endpoint::client(local).map_err(failed)?;
    let server_name = tls.server_name(addr.ip());
    let connecting = endpoint
        .connect_with(client_config(tls, config)?, addr, &server_name.to_str())
        .map_err(|err| failed(io::Error::new(io::ErrorKind::InvalidInput, format!("QUIC: {err}"))))?;
    let connection = match tokio::time::timeout_at(deadline.into(), connecting).await {
        Ok(Ok(connection)) => connection,
        Ok(Err(err)) => return Err(failed(connection_error(err))),
        Err(_) => return Err(failed(io::ErrorKind::TimedOut.into())),
    };
    // Opening is local: the server learns of the stream with Volley's preface, sent at once.
    let (send, recv) = connection.open_bi().await.map_err(|err| failed(connection_error(err)))?;
    Ok(QuicStream::new(connection, send, recv, Some(endpoint)))
}

fn connection_error(err: quinn::ConnectionError) -> io::Error {
    let kind = match err {
        quinn::ConnectionError::TimedOut => io::ErrorKind::TimedOut,
        quinn::ConnectionError::ConnectionClosed(_) | quinn::ConnectionError::ApplicationClosed(_) => io::ErrorKind::ConnectionRefused,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, format!("QUIC: {err}"))
}
