//! QUIC as a third transport beside TCP and Unix sockets (feature `quic`), with quinn on rustls
//! (ring backend).
//!
//! A server given [`ServerTls`](crate::tls::ServerTls) serves `quic://ip:port` (a UDP port); a
//! client given [`ClientTls`](crate::tls::ClientTls) connects to it. The certificates, ALPN
//! ([`crate::tls::ALPN_VOLLEY`]) and verification are those of the `tls` feature. Everything
//! above the byte stream is unchanged: Volley's frames run on **one bidirectional QUIC stream
//! per connection**, opened by the client, so the sans-IO core keeps every call rule, deadline,
//! budget and window, and generated clients work as they are. That mapping keeps TCP's
//! head-of-line blocking between calls (a lost packet delays every call behind it); a QUIC
//! stream per call is the planned next step. See docs/PROTOCOL.md, "QUIC".
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

pub use config::{
    DEFAULT_QUIC_IDLE_TIMEOUT, LOOPBACK_INITIAL_WINDOW, LOOPBACK_MAX_UDP_PAYLOAD, LOOPBACK_MIN_UDP_PAYLOAD, MAX_CLIENT_BIDI_STREAMS,
    UDP_SOCKET_BUFFER,
};
pub(crate) use config::{client_config, endpoint_config, server_config};
pub(crate) use endpoint::{ServerEndpoint, accept, bind_server, connect};
pub(crate) use handshake_error::tls_error;

/// QUIC application close code of a connection that ended normally: its stream finished and
/// what it carried was acknowledged, or a Volley GoAway said why it ended (docs/PROTOCOL.md,
/// "QUIC").
pub const CLOSE_DONE: quinn::VarInt = quinn::VarInt::from_u32(0x0);

/// QUIC application close (and stream reset) code of a connection Volley abandoned with bytes
/// unsent: the peer stopped reading (write stall) or the connection failed.
pub const CLOSE_ABANDONED: quinn::VarInt = quinn::VarInt::from_u32(0x1);

/// QUIC application close code of a connection the server refused at admission
/// (`ServerBuilder::admission`, `max_connections`) or whose Volley stream never came.
pub const CLOSE_REFUSED: quinn::VarInt = quinn::VarInt::from_u32(0x2);
