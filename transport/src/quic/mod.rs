//! QUIC as a third transport beside TCP and Unix sockets (feature `quic`), with quinn on rustls
//! (ring backend).
//!
//! A server given [`ServerTls`](crate::tls::ServerTls) serves `quic://ip:port` (a UDP port); a
//! client given [`ClientTls`](crate::tls::ClientTls) connects to it. The certificates, ALPN
//! ([`crate::tls::ALPN_VOLLEY`]) and verification are those of the `tls` feature. Everything
//! above the byte stream is unchanged: the sans-IO core keeps every call rule, deadline, budget
//! and window, and generated clients work as they are. Two stream mappings, agreed by ALPN:
//! **one bidirectional stream** carrying every frame as over TCP (`volley/1`, the default, the
//! cheaper per call), or **a QUIC stream per call** plus a control stream (`volley-quic/2`,
//! [`ALPN_VOLLEY_QUIC`], asked for by a client with [`QuicMapping::PerCall`]: a packet lost on
//! one call's stream delays only that call; needed for 0-RTT). Servers accept both unless
//! restricted to one stream. See docs/PROTOCOL.md, "QUIC", for the figures behind the default.
//!
//! ```no_run
//! use volley::tls::{ClientTls, ServerTls};
//! use volley::{Client, Request, Server, Status};
//!
//! # async fn demo(cert_pem: &[u8], key_pem: &[u8], ca_pem: &[u8]) -> Result<(), Box<dyn std::error::Error>> {
//! let server = Server::builder()
//!     .unary("/echo.Echo/Say", |request: Request<String>| async move { Ok::<_, Status>(request.into_inner()) })
//!     .tls(ServerTls::builder_from_pem(cert_pem, key_pem)?.build()?)
//!     .build()?
//!     .serve("quic://127.0.0.1:7443")
//!     .await?;
//!
//! let client_tls = ClientTls::builder().ca_pem(ca_pem)?.server_name("echo.example").build()?;
//! let client = Client::builder().tls(client_tls).connect("quic://127.0.0.1:7443").await?;
//! # drop(client); server.shutdown().await;
//! # Ok(()) }
//! ```

mod config;
mod endpoint;
mod handshake_error;
mod mux;
mod one_stream;
mod options;

pub use config::{
    DEFAULT_QUIC_IDLE_TIMEOUT, LOOPBACK_INITIAL_WINDOW, LOOPBACK_MAX_UDP_PAYLOAD, LOOPBACK_MIN_UDP_PAYLOAD, MAX_CLIENT_BIDI_STREAMS,
    MAX_PER_CALL_BIDI_STREAMS, UDP_SOCKET_BUFFER, per_call_bidi_streams,
};
pub(crate) use config::{client_config, endpoint_config, server_config};
pub(crate) use endpoint::{ServerEndpoint, accept, agreed_per_call, bind_server, connect};
pub(crate) use handshake_error::tls_error;
pub(crate) use mux::MuxStream;
pub use mux::{EARLY_DATA_CAP, MappingError};
pub(crate) use one_stream::{CLOSE_LINGER, OneStream};
pub use options::{ALPN_VOLLEY_QUIC, DEFAULT_PARTIAL_FRAME_BUDGET, QuicMapping, QuicOptions};

/// QUIC application close code of a connection that ended normally: its stream finished and
/// what it carried was acknowledged, or a Volley GoAway said why it ended (docs/PROTOCOL.md,
/// "QUIC").
pub const CLOSE_DONE: quinn::VarInt = quinn::VarInt::from_u32(0x0);

/// QUIC application close (and stream reset) code of a connection Volley abandoned with bytes
/// unsent: the peer stopped reading (write stall) or the connection failed.
pub const CLOSE_ABANDONED: quinn::VarInt = quinn::VarInt::from_u32(0x1);

/// QUIC application close code of a connection whose peer broke a rule of the per-call stream
/// mapping ([`MappingError`]; the close's reason is its text).
pub const CLOSE_MAPPING: quinn::VarInt = quinn::VarInt::from_u32(0x3);

/// QUIC stream error code of a cancelled call, in `RESET_STREAM` and `STOP_SENDING` (per-call
/// mapping): the client resets its half of the call's stream and stops reading the other; the
/// server reads the reset as the call's Cancel frame and resets its own half (docs/PROTOCOL.md,
/// "QUIC").
pub const STREAM_CANCELLED: quinn::VarInt = quinn::VarInt::from_u32(0x4);

/// QUIC application close code of a connection the server refused at admission
/// (`ServerBuilder::admission`, `max_connections`) or whose Volley stream never came.
pub const CLOSE_REFUSED: quinn::VarInt = quinn::VarInt::from_u32(0x2);
