//! TLS 1.3 and mutual TLS over TCP (feature `tls`), with rustls on the ring backend.
//!
//! A server takes a [`ServerTls`] (its certificate chain and key, and optionally the CAs whose
//! client certificates it accepts); a client a [`ClientTls`] (the CAs it trusts, the server's
//! name, optionally its own certificate). Both sides offer and require the ALPN id
//! [`ALPN_VOLLEY`] (`volley/1`). See `docs/security.md` for the threat model.
//!
//! ```no_run
//! use volley::tls::{ClientTls, ServerTls};
//! use volley::{Client, Request, Server, Status};
//!
//! # async fn demo(cert_pem: &[u8], key_pem: &[u8], ca_pem: &[u8]) -> Result<(), Box<dyn std::error::Error>> {
//! let tls = ServerTls::builder_from_pem(cert_pem, key_pem)?.build()?;
//! let server = Server::builder()
//!     .unary("/echo.Echo/Say", |request: Request<String>| async move { Ok::<_, Status>(request.into_inner()) })
//!     .tls(tls.clone())
//!     .build()?
//!     .serve("127.0.0.1:7443")
//!     .await?;
//!
//! let client_tls = ClientTls::builder().ca_pem(ca_pem)?.server_name("echo.example").build()?;
//! let client = Client::builder().tls(client_tls).connect("127.0.0.1:7443").await?;
//! # drop(client); server.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! The backend is ring: it builds from Rust and a little C and assembly with `cc`, where
//! aws-lc-rs needs CMake (and on some targets NASM or bindgen) and takes several times longer to
//! build; both are fast enough that a Volley connection's cost is elsewhere (see
//! docs/BENCHMARKS.md, "TLS").

mod config;
mod error;
mod handshake;
mod identity;

pub use config::{ClientTls, ClientTlsBuilder, ServerTls, ServerTlsBuilder};
pub use error::TlsError;
pub(crate) use handshake::{accept, connect};
pub use identity::PeerIdentity;
pub use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The ALPN protocol id of Volley version 1 (`volley/1`), offered by clients and required by
/// servers; see docs/PROTOCOL.md, "TLS".
pub const ALPN_VOLLEY: &[u8] = b"volley/1";
