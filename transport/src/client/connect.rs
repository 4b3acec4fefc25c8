//! Opening a connection: socket, options, drivers, handshake.

use std::sync::Arc;
use std::time::Instant;

use tokio::net::{TcpStream, UnixStream};

use crate::driver::{DriverConfig, Shared, spawn_connection};
use crate::error::Error;
use crate::net::{Address, AppliedSocketOptions};
use crate::protocol::Role;

/// Connects to `address`, applies socket options and completes the Volley handshake.
pub(crate) async fn connect(address: &Address, config: &DriverConfig) -> Result<(Arc<Shared>, AppliedSocketOptions), Error> {
    let deadline = Instant::now() + config.connection.handshake_timeout;
    let connect_error = |source| Error::Connect {
        address: address.clone(),
        source,
    };
    let timed_out = || Error::Connect {
        address: address.clone(),
        source: std::io::ErrorKind::TimedOut.into(),
    };
    let (shared, applied) = match address {
        Address::Tcp(addr) => {
            let stream = tokio::time::timeout_at(deadline.into(), TcpStream::connect(addr))
                .await
                .map_err(|_| timed_out())?
                .map_err(connect_error)?;
            let applied = config.socket.apply(socket2::SockRef::from(&stream));
            (spawn_connection(stream.into(), Role::Client, config, None), applied)
        }
        Address::Unix(path) => {
            let stream = tokio::time::timeout_at(deadline.into(), UnixStream::connect(path))
                .await
                .map_err(|_| timed_out())?
                .map_err(connect_error)?;
            (
                spawn_connection(stream.into(), Role::Client, config, None),
                AppliedSocketOptions::default(),
            )
        }
    };
    wait_established(&shared, deadline).await.map_err(|reason| {
        shared.terminate(crate::Status::unavailable(reason.clone()));
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
