//! Opening a connection: socket, options, TLS (feature `tls`), drivers, handshake.

use std::sync::Arc;
use std::time::Instant;

use tokio::net::{TcpStream, UnixStream};

use crate::driver::{DriverConfig, Shared, spawn_connection};
use crate::error::Error;
use crate::net::{Address, AppliedSocketOptions, Stream};
use crate::protocol::Role;

/// Connects to `address`, applies socket options, runs the TLS handshake if `tls` is set and
/// completes the Volley handshake.
pub(crate) async fn connect(
    address: &Address,
    config: &DriverConfig,
    #[cfg(feature = "tls")] tls: Option<&crate::tls::ClientTls>,
) -> Result<(Arc<Shared>, AppliedSocketOptions), Error> {
    let deadline = Instant::now() + config.connection.handshake_timeout;
    let connect_error = |source| Error::Connect {
        address: address.clone(),
        source,
    };
    let timed_out = || Error::Connect {
        address: address.clone(),
        source: std::io::ErrorKind::TimedOut.into(),
    };
    #[cfg(feature = "tls")]
    let mut tls_failure = None;
    #[cfg(feature = "quic")]
    let mut quic_connection = None;
    let (shared, applied) = match address {
        Address::Tcp(addr) => {
            let stream = tokio::time::timeout_at(deadline.into(), TcpStream::connect(addr))
                .await
                .map_err(|_| timed_out())?
                .map_err(connect_error)?;
            let applied = config.socket.apply(socket2::SockRef::from(&stream));
            #[cfg(feature = "tls")]
            let stream: Stream = match tls {
                Some(tls) => {
                    let stream = crate::tls::connect(stream, tls, addr.ip(), deadline, config.connection.handshake_timeout)
                        .await
                        .map_err(|source| Error::Tls {
                            address: address.clone(),
                            source,
                        })?;
                    tls_failure = Some(stream.failure());
                    Stream::Tls(Box::new(stream))
                }
                None => stream.into(),
            };
            #[cfg(not(feature = "tls"))]
            let stream: Stream = stream.into();
            (spawn_connection(stream, Role::Client, config, None), applied)
        }
        #[cfg(feature = "quic")]
        Address::Quic(addr) => {
            let Some(tls) = tls else {
                return Err(Error::Config(format!(
                    "QUIC always runs TLS 1.3: give the client the server's CA with `ClientBuilder::tls` to connect to {address}"
                )));
            };
            let stream = crate::quic::connect(*addr, tls, config, deadline).await?;
            quic_connection = Some(stream.connection().clone());
            let early = stream.is_early();
            let shared = spawn_connection(Stream::Quic(Box::new(stream)), Role::Client, config, None);
            if early {
                // 0-RTT: calls go before the server's Settings (docs/PROTOCOL.md section 3 allows
                // it), which is the point; a failed handshake fails them instead of `connect`.
                return Ok((shared, AppliedSocketOptions::default()));
            }
            (shared, AppliedSocketOptions::default())
        }
        Address::Unix(path) => {
            #[cfg(feature = "tls")]
            if tls.is_some() {
                return Err(Error::Config(format!(
                    "TLS runs over TCP only, and {address} is a Unix socket: connect to the server's TCP address, or without TLS (a Unix socket never leaves the host)"
                )));
            }
            let stream = tokio::time::timeout_at(deadline.into(), UnixStream::connect(path))
                .await
                .map_err(|_| timed_out())?
                .map_err(connect_error)?;
            let applied = config.socket.apply_unix(socket2::SockRef::from(&stream));
            (spawn_connection(stream.into(), Role::Client, config, None), applied)
        }
    };
    wait_established(&shared, deadline).await.map_err(|reason| {
        shared.terminate(crate::Status::unavailable(reason.clone()));
        // A TLS error after the handshake (a server that refused our client certificate says
        // so with an alert on the first read) is the real reason.
        #[cfg(feature = "tls")]
        if let Some(err) = tls_failure.and_then(|failure| crate::sync::lock(&failure).take()) {
            return Error::Tls {
                address: address.clone(),
                source: crate::tls::TlsError::from_rustls(err),
            };
        }
        // Over QUIC too (mutual TLS: the server's alert closes the connection after our side
        // of the handshake is done).
        #[cfg(feature = "quic")]
        if let Some(source) = quic_connection
            .and_then(|connection| connection.close_reason())
            .and_then(|err| crate::quic::tls_error(&err, config.connection.handshake_timeout))
        {
            return Error::Tls {
                address: address.clone(),
                source,
            };
        }
        Error::Handshake {
            address: address.clone(),
            reason,
        }
    })?;
    Ok((shared, applied))
}

/// Waits for the server's settings, or for the connection to fail.
async fn wait_established(shared: &Shared, deadline: Instant) -> Result<(), String> {
    loop {
        let notified = shared.established.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        {
            let state = shared.lock_state();
            if let Some(status) = &state.closed {
                return Err(status.message().to_owned());
            }
            if state.proto.is_established() {
                return Ok(());
            }
        }
        if tokio::time::timeout_at(deadline.into(), notified).await.is_err() {
            return Err("the server did not complete the handshake in time; is it a Volley server?".to_owned());
        }
    }
}
