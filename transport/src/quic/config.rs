//! quinn's limits set from Volley's configuration, each with the reason (docs/PROTOCOL.md,
//! "QUIC", has them side by side).

use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{IdleTimeout, TransportConfig, VarInt};

use crate::driver::DriverConfig;
use crate::error::Error;
use crate::tls::{ClientTls, ServerTls};

/// Bidirectional streams a client may open per connection (1): the one that carries Volley's
/// frames. A peer that opens more is refused by QUIC flow control (STREAM_LIMIT_ERROR) before
/// Volley sees it, which also bounds rapid stream open/reset floods at the QUIC layer.
pub const MAX_CLIENT_BIDI_STREAMS: u32 = 1;

/// QUIC idle timeout when Volley's own idle timeout is off (clients, or servers with
/// `idle_timeout(None)`): 330 s, past the server's default idle GoAway (300 s) so that Volley's
/// graceful close, not a silent QUIC timeout, ends an idle connection.
pub const DEFAULT_QUIC_IDLE_TIMEOUT: Duration = Duration::from_secs(330);

/// Added to a server's Volley idle timeout for QUIC's (30 s): the GoAway goes first and has time
/// to drain.
const IDLE_MARGIN: Duration = Duration::from_secs(30);

/// quinn's transport limits for one side of a Volley connection.
fn transport_config(config: &DriverConfig, server: bool) -> TransportConfig {
    let settings = &config.connection.settings;
    let mut transport = TransportConfig::default();
    // Only the client opens a stream, and only one; nobody opens unidirectional streams.
    let bidi = if server { MAX_CLIENT_BIDI_STREAMS } else { 0 };
    transport.max_concurrent_bidi_streams(VarInt::from_u32(bidi));
    transport.max_concurrent_uni_streams(VarInt::from_u32(0));
    // The stream carries every call, so its window is Volley's connection window: a peer can
    // make quinn buffer no more than Volley's own flow control lets it send, and the reader,
    // which drains the stream continuously, never waits on QUIC credit on a short path.
    let window = VarInt::from_u32(settings.initial_connection_window);
    transport.stream_receive_window(window);
    transport.receive_window(window);
    transport.send_window(config.write_queue_cap().max(settings.initial_connection_window as usize) as u64);
    let idle = config
        .connection
        .idle_timeout
        .map_or(DEFAULT_QUIC_IDLE_TIMEOUT, |idle| idle + IDLE_MARGIN);
    transport.max_idle_timeout(IdleTimeout::try_from(idle).ok());
    // Liveness is Volley's keepalive ping (on the stream, so it also keeps QUIC alive).
    transport.keep_alive_interval(None);
    transport.datagram_receive_buffer_size(None);
    transport
}

/// A quinn server configuration from the server's TLS configuration and Volley's limits.
pub(crate) fn server_config(tls: &ServerTls, config: &DriverConfig) -> Result<quinn::ServerConfig, Error> {
    let crypto = QuicServerConfig::try_from(tls.rustls_config())
        .map_err(|err| Error::Config(format!("QUIC needs a TLS 1.3 AES-128-GCM suite in the server's TLS: {err}")))?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    server.transport_config(Arc::new(transport_config(config, true)));
    Ok(server)
}

/// A quinn client configuration from the client's TLS configuration and Volley's limits.
pub(crate) fn client_config(tls: &ClientTls, config: &DriverConfig) -> Result<quinn::ClientConfig, Error> {
    let crypto = QuicClientConfig::try_from(tls.rustls_config())
        .map_err(|err| Error::Config(format!("QUIC needs a TLS 1.3 AES-128-GCM suite in the client's TLS: {err}")))?;
    let mut client = quinn::ClientConfig::new(Arc::new(crypto));
    client.transport_config(Arc::new(transport_config(config, false)));
    Ok(client)
}
