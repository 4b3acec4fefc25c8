//! Opening QUIC connections: a server's endpoint and its handshakes, a client's endpoint and
//! connect, each ending with the stream mapping ALPN agreed on: the one stream that carries
//! Volley's frames, or the per-call mapping's control stream.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use super::mux::EarlyData;
use super::{
    ALPN_VOLLEY_QUIC, CLOSE_REFUSED, MAX_CLIENT_BIDI_STREAMS, MuxStream, QuicMapping, UDP_SOCKET_BUFFER, client_config, endpoint_config,
    server_config, tls_error,
};
use crate::driver::DriverConfig;
use crate::error::Error;
use crate::net::{Address, QuicStream};
use crate::tls::{ClientTls, ServerTls, TlsError};

/// A server's QUIC endpoint and the configuration it gives clients on loopback addresses.
#[derive(Debug)]
pub(crate) struct ServerEndpoint {
    /// The endpoint, with the configuration for clients elsewhere as its default.
    pub(crate) endpoint: quinn::Endpoint,
    /// For clients on a loopback address (larger datagrams, a larger first window).
    loopback: Arc<quinn::ServerConfig>,
    /// Calls in 0-RTT data are served at once (0.5-RTT): accepted, and no client certificate
    /// to wait for.
    serve_early: bool,
}

/// Binds a server endpoint on the UDP address `addr`.
pub(crate) fn bind_server(addr: SocketAddr, tls: &ServerTls, config: &DriverConfig) -> Result<ServerEndpoint, Error> {
    let remote = server_config(tls, config, false)?;
    let loopback = Arc::new(server_config(tls, config, true)?);
    let endpoint = udp_socket(addr)
        .and_then(|socket| quinn::Endpoint::new(endpoint_config(), Some(remote), socket, Arc::new(quinn::TokioRuntime)))
        .map_err(|source| Error::Bind {
            address: Address::Quic(addr),
            source,
        })?;
    Ok(ServerEndpoint {
        endpoint,
        loopback,
        serve_early: config.quic.accepts_early_data() && !tls.is_mutual(),
    })
}

/// A UDP socket bound to `addr` with [`UDP_SOCKET_BUFFER`]-sized kernel buffers (as far as the
/// kernel allows; a refusal leaves its defaults). IPv6 sockets take IPv4 too where they can.
fn udp_socket(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        let _ = socket.set_only_v6(false);
    }
    let _ = socket.set_recv_buffer_size(UDP_SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(UDP_SOCKET_BUFFER);
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// Completes the QUIC handshake of `incoming` and waits for the client's stream, both before
/// `deadline` (`timeout` after the attempt arrived). The reason of a failure is for the
/// server's log, as a [`TlsError`] where it is one.
pub(crate) async fn accept(
    endpoint: &ServerEndpoint,
    incoming: quinn::Incoming,
    config: &DriverConfig,
    deadline: Instant,
    timeout: Duration,
) -> Result<QuicStream, String> {
    let failed = |err: quinn::ConnectionError| match tls_error(&err, timeout) {
        Some(tls) => format!("QUIC handshake failed: {tls}"),
        None => format!("QUIC handshake failed: {err}"),
    };
    let connecting = if incoming.remote_address().ip().to_canonical().is_loopback() {
        incoming.accept_with(endpoint.loopback.clone())
    } else {
        incoming.accept()
    };
    let mut connecting = connecting.map_err(failed)?;
    let connection = if endpoint.serve_early {
        // The ClientHello is in (ALPN chosen); the client's 0-RTT streams are read and answered
        // at once, before its Finished arrives. A handshake failure then ends the connection.
        match tokio::time::timeout_at(deadline.into(), connecting.handshake_data()).await {
            Ok(Ok(_)) => {}
            Ok(Err(err)) => return Err(failed(err)),
            Err(_) => return Err(format!("QUIC handshake failed: {}", TlsError::Timeout(timeout))),
        }
        match connecting.into_0rtt() {
            Ok((connection, _)) => connection,
            Err(_) => unreachable!("a server's into_0rtt always succeeds (quinn)"),
        }
    } else {
        match tokio::time::timeout_at(deadline.into(), connecting).await {
            Ok(Ok(connection)) => connection,
            Ok(Err(err)) => return Err(failed(err)),
            Err(_) => return Err(format!("QUIC handshake failed: {}", TlsError::Timeout(timeout))),
        }
    };
    let per_call = agreed_per_call(&connection);
    if !per_call {
        // A one-stream peer opens one stream; take back the per-call mapping's stream credit.
        connection.set_max_concurrent_bi_streams(quinn::VarInt::from_u32(MAX_CLIENT_BIDI_STREAMS));
    }
    match tokio::time::timeout_at(deadline.into(), connection.accept_bi()).await {
        Ok(Ok((send, recv))) if per_call => {
            let mux = per_call_mux(&connection, false, (send, recv), config, None);
            let early = recv_is_early(&mux);
            Ok(QuicStream::per_call(connection, mux, None, early))
        }
        Ok(Ok((send, recv))) => Ok(QuicStream::one_stream(connection, send, recv, None)),
        Ok(Err(err)) => Err(format!("the QUIC connection ended before its stream opened: {err}")),
        Err(_) => {
            connection.close(CLOSE_REFUSED, b"no stream within the handshake timeout");
            Err("the client opened no stream within the handshake timeout".to_owned())
        }
    }
}

/// Connects to the server at `addr` from an endpoint of this connection's own (bound to
/// loopback when `addr` is loopback, to the unspecified address otherwise) and opens the stream.
///
/// A handshake that fails on TLS (an alert either way) or runs out of time is an
/// [`Error::Tls`], as over TCP; a refusal or a lost path an [`Error::Connect`].
pub(crate) async fn connect(addr: SocketAddr, tls: &ClientTls, config: &DriverConfig, deadline: Instant) -> Result<QuicStream, Error> {
    let address = Address::Quic(addr);
    let timeout = config.connection.handshake_timeout;
    let failed = |source: io::Error| Error::Connect {
        address: address.clone(),
        source,
    };
    let lost = |err: quinn::ConnectionError| match tls_error(&err, timeout) {
        Some(source) => Error::Tls {
            address: address.clone(),
            source,
        },
        None => failed(connection_error(err)),
    };
    let local: SocketAddr = match (addr.is_ipv4(), addr.ip().is_loopback()) {
        (true, true) => (Ipv4Addr::LOCALHOST, 0).into(),
        (true, false) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        (false, true) => (Ipv6Addr::LOCALHOST, 0).into(),
        (false, false) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let endpoint = udp_socket(local)
        .and_then(|socket| quinn::Endpoint::new(endpoint_config(), None, socket, Arc::new(quinn::TokioRuntime)))
        .map_err(failed)?;
    let server_name = tls.server_name(addr.ip());
    let loopback = addr.ip().to_canonical().is_loopback();
    let connecting = endpoint
        .connect_with(client_config(tls, config, loopback)?, addr, &server_name.to_str())
        .map_err(|err| failed(io::Error::new(io::ErrorKind::InvalidInput, format!("QUIC: {err}"))))?;
    let connecting = match try_early(connecting, config) {
        Ok((connection, accepted)) => {
            // A resumed session: the control stream, the preface, Settings and the first
            // replay-safe calls go in 0-RTT data; `connect` does not wait for the handshake.
            let (send, recv) = connection.open_bi().await.map_err(lost)?;
            let early = EarlyData {
                accepted,
                methods: config.quic.early_data_methods().to_vec(),
            };
            let mux = per_call_mux(&connection, true, (send, recv), config, Some(early));
            return Ok(QuicStream::per_call(connection, mux, Some(endpoint), true));
        }
        Err(connecting) => connecting,
    };
    let connection = match tokio::time::timeout_at(deadline.into(), connecting).await {
        Ok(Ok(connection)) => connection,
        Ok(Err(err)) => return Err(lost(err)),
        Err(_) => return Err(lost(quinn::ConnectionError::TimedOut)),
    };
    // Opening is local: the server learns of the stream with Volley's preface, sent at once.
    let (send, recv) = connection.open_bi().await.map_err(lost)?;
    if agreed_per_call(&connection) {
        let mux = per_call_mux(&connection, true, (send, recv), config, None);
        return Ok(QuicStream::per_call(connection, mux, Some(endpoint), false));
    }
    Ok(QuicStream::one_stream(connection, send, recv, Some(endpoint)))
}

/// 0-RTT for a client that marked methods for it, on the per-call mapping, when quinn has a
/// session to resume; the connecting attempt back otherwise.
fn try_early(
    connecting: quinn::Connecting,
    config: &DriverConfig,
) -> Result<(quinn::Connection, quinn::ZeroRttAccepted), quinn::Connecting> {
    if config.quic.early_data_methods().is_empty() || config.quic.mapping_offered() != QuicMapping::PerCall {
        return Err(connecting);
    }
    connecting.into_0rtt()
}

/// Server: whether the client's control stream arrived in 0-RTT data.
/// The per-call mapping over `connection`, its control stream `(send, recv)` given, with the
/// limits of `config`.
fn per_call_mux(
    connection: &quinn::Connection,
    client: bool,
    (send, recv): (quinn::SendStream, quinn::RecvStream),
    config: &DriverConfig,
    early: Option<EarlyData>,
) -> MuxStream {
    MuxStream::new(
        connection.clone(),
        client,
        send,
        recv,
        config.connection.settings.max_frame_size,
        config.quic.partial_frame_budget_bytes(),
        early,
    )
}

fn recv_is_early(mux: &MuxStream) -> bool {
    mux.control_is_early()
}

/// Whether the handshake agreed on the per-call mapping (ALPN `volley-quic/2`).
pub(crate) fn agreed_per_call(connection: &quinn::Connection) -> bool {
    connection
        .handshake_data()
        .and_then(|data| data.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
        .and_then(|data| data.protocol)
        .is_some_and(|alpn| alpn == ALPN_VOLLEY_QUIC)
}

fn connection_error(err: quinn::ConnectionError) -> io::Error {
    let kind = match err {
        quinn::ConnectionError::TimedOut => io::ErrorKind::TimedOut,
        quinn::ConnectionError::ConnectionClosed(_) | quinn::ConnectionError::ApplicationClosed(_) => io::ErrorKind::ConnectionRefused,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, format!("QUIC: {err}"))
}
