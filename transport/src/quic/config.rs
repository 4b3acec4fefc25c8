//! quinn's limits set from Volley's configuration, each with the reason (docs/PROTOCOL.md,
//! "QUIC", has them side by side).

use std::sync::Arc;
use std::time::Duration;

use quinn::congestion::CubicConfig;
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{EndpointConfig, IdleTimeout, MtuDiscoveryConfig, TransportConfig, VarInt};

use crate::driver::DriverConfig;
use crate::error::Error;
use crate::tls::{ClientTls, ServerTls};

/// Bidirectional streams a client may open per connection under the one-stream mapping (1):
/// the one that carries Volley's frames. A peer that opens more is refused by QUIC flow control
/// (STREAM_LIMIT_ERROR) before Volley sees it, which also bounds rapid stream open/reset floods
/// at the QUIC layer.
pub const MAX_CLIENT_BIDI_STREAMS: u32 = 1;

/// Bidirectional streams a client may open at once under the per-call mapping: the control
/// stream, plus twice the server's `max_concurrent_calls`, so that the stream of a call that
/// just ended (closed once both sides' FINs are in, and the peer's `MAX_STREAMS` came back) never
/// holds up the next call's Request; at most [`MAX_PER_CALL_BIDI_STREAMS`].
pub fn per_call_bidi_streams(max_concurrent_calls: u32) -> u32 {
    max_concurrent_calls
        .saturating_mul(2)
        .saturating_add(1)
        .min(MAX_PER_CALL_BIDI_STREAMS)
}

/// Upper bound of [`per_call_bidi_streams`] (1,025: 1,024 calls and the control stream). quinn
/// sets up its state for every stream it grants when the connection starts, so the default
/// 4,096 concurrent calls would cost each connection 8,193 stream entries up front; a client
/// past 1,024 calls in flight on one connection waits for stream credit.
pub const MAX_PER_CALL_BIDI_STREAMS: u32 = 1_025;

/// QUIC idle timeout when Volley's own idle timeout is off (clients, or servers with
/// `idle_timeout(None)`): 330 s, past the server's default idle GoAway (300 s) so that Volley's
/// graceful close, not a silent QUIC timeout, ends an idle connection.
pub const DEFAULT_QUIC_IDLE_TIMEOUT: Duration = Duration::from_secs(330);

/// Added to a server's Volley idle timeout for QUIC's (30 s): the GoAway goes first and has time
/// to drain.
const IDLE_MARGIN: Duration = Duration::from_secs(30);

/// Largest UDP payload Volley's endpoints accept (65,527 bytes, quinn's maximum), and the upper
/// bound of MTU discovery on a loopback path. A 1 MiB message then crosses loopback in 17
/// datagrams instead of about 720 at quinn's default upper bound (1,452): each datagram costs a
/// `sendmsg`, a `recvmsg`, an AEAD seal and open, header protection and acknowledgement work,
/// which is what made a 1 MiB echo over QUIC about 10x slower than over TCP.
pub const LOOPBACK_MAX_UDP_PAYLOAD: u16 = 65_527;

/// UDP payload a loopback connection starts with and never goes below (16,336 bytes): the
/// smallest common loopback MTU (macOS, 16,384) less the IPv6 and UDP headers. As quinn's
/// `min_mtu` it keeps black-hole detection, which reads any burst of lost large datagrams as a
/// path that drops them, from falling back to 1,200 bytes for 60 s; MTU discovery still climbs
/// from here towards [`LOOPBACK_MAX_UDP_PAYLOAD`] where the loopback allows it (Linux).
pub const LOOPBACK_MIN_UDP_PAYLOAD: u16 = 16_336;

/// Congestion window a loopback connection starts with (1 MiB): loopback has no bottleneck queue
/// to protect, and quinn's default (14,720 bytes) is less than one loopback datagram. Losses (a
/// full socket buffer) still shrink it as Cubic does.
pub const LOOPBACK_INITIAL_WINDOW: u64 = 1024 * 1024;

/// Kernel send and receive buffers asked for each QUIC endpoint's UDP socket (4 MiB; the kernel
/// caps them at `net.core.wmem_max`/`rmem_max`): a window of datagrams arriving in a burst
/// queues there instead of being dropped at Linux's 208 KiB default.
pub const UDP_SOCKET_BUFFER: usize = 4 * 1024 * 1024;

/// quinn's endpoint settings: datagrams up to [`LOOPBACK_MAX_UDP_PAYLOAD`] are accepted (the
/// transport parameter `max_udp_payload_size`, which bounds what a peer's MTU discovery tries).
pub(crate) fn endpoint_config() -> EndpointConfig {
    let mut endpoint = EndpointConfig::default();
    // In quinn's range (1,200 to 65,527) by construction.
    let _ = endpoint.max_udp_payload_size(LOOPBACK_MAX_UDP_PAYLOAD);
    endpoint
}

/// quinn's transport limits for one side of a Volley connection; `loopback` when the peer's
/// address is a loopback address (the path is this host's loopback interface).
fn transport_config(config: &DriverConfig, server: bool, loopback: bool) -> TransportConfig {
    let settings = &config.connection.settings;
    let mut transport = TransportConfig::default();
    // Only the client opens streams: one, or under the per-call mapping the control stream and
    // a stream per call. Nobody opens unidirectional streams.
    // A server that accepts the per-call mapping grants its streams up front (and takes the
    // credit back from a one-stream peer once ALPN is known, `endpoint::accept`).
    let bidi = match (server, config.quic.accepts_per_call()) {
        (false, _) => 0,
        (true, false) => MAX_CLIENT_BIDI_STREAMS,
        (true, true) => per_call_bidi_streams(settings.max_concurrent_calls),
    };
    transport.max_concurrent_bidi_streams(VarInt::from_u32(bidi));
    transport.max_concurrent_uni_streams(VarInt::from_u32(0));
    // One stream carries every call, or one call's stream may carry a Request as large as the
    // max frame size: each stream's window is Volley's connection window, and so is the
    // connection's, so a peer can make quinn buffer no more than Volley's own flow control lets
    // it send, and the reader, which drains streams continuously, never waits on QUIC credit on
    // a short path.
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
    if loopback {
        let mut mtu = MtuDiscoveryConfig::default();
        mtu.upper_bound(LOOPBACK_MAX_UDP_PAYLOAD);
        transport.mtu_discovery_config(Some(mtu));
        transport.initial_mtu(LOOPBACK_MIN_UDP_PAYLOAD);
        transport.min_mtu(LOOPBACK_MIN_UDP_PAYLOAD);
        // A GSO batch is one UDP send of at most 64 KiB in all: with datagrams this large quinn's
        // batches of up to 10 exceed it and the kernel refuses the whole batch (lost packets).
        transport.enable_segmentation_offload(false);
        let mut cubic = CubicConfig::default();
        cubic.initial_window(LOOPBACK_INITIAL_WINDOW);
        transport.congestion_controller_factory(Arc::new(cubic));
    }
    transport
}

/// A quinn server configuration from the server's TLS configuration and Volley's limits, for
/// clients on loopback addresses (`loopback`) or elsewhere.
pub(crate) fn server_config(tls: &ServerTls, config: &DriverConfig, loopback: bool) -> Result<quinn::ServerConfig, Error> {
    let mut rustls = (*tls.rustls_config()).clone();
    rustls.alpn_protocols = config.quic.server_alpn();
    // QUIC allows 0 or u32::MAX (RFC 9001 section 4.6.1).
    rustls.max_early_data_size = if config.quic.accepts_early_data() { u32::MAX } else { 0 };
    let crypto = QuicServerConfig::try_from(Arc::new(rustls))
        .map_err(|err| Error::Config(format!("QUIC needs a TLS 1.3 AES-128-GCM suite in the server's TLS: {err}")))?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    server.transport_config(Arc::new(transport_config(config, true, loopback)));
    Ok(server)
}

/// The client's rustls configuration with the ALPN ids of its mapping: `volley-quic/2` first
/// when it asked for the per-call mapping, then what its `ClientTls` offers (`volley/1`).
fn client_rustls(tls: &ClientTls, config: &DriverConfig) -> Arc<rustls::ClientConfig> {
    let base = tls.rustls_config();
    let offered = config.quic.client_alpn();
    if base.alpn_protocols.iter().any(|alpn| alpn.as_slice() != crate::tls::ALPN_VOLLEY) {
        // A ClientTls from a rustls config with ALPN ids of its own: used as it is.
        return base;
    }
    let mut rustls = (*base).clone();
    rustls.alpn_protocols = offered;
    rustls.enable_early_data = !config.quic.early_data_methods().is_empty();
    Arc::new(rustls)
}

/// A quinn client configuration from the client's TLS configuration and Volley's limits, for a
/// server on a loopback address (`loopback`) or elsewhere.
pub(crate) fn client_config(tls: &ClientTls, config: &DriverConfig, loopback: bool) -> Result<quinn::ClientConfig, Error> {
    let crypto = QuicClientConfig::try_from(client_rustls(tls, config))
        .map_err(|err| Error::Config(format!("QUIC needs a TLS 1.3 AES-128-GCM suite in the client's TLS: {err}")))?;
    let mut client = quinn::ClientConfig::new(Arc::new(crypto));
    client.transport_config(Arc::new(transport_config(config, false, loopback)));
    Ok(client)
}
