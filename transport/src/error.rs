//! Transport errors: what can go wrong outside a call (binding, connecting, configuring).
//! Calls themselves fail with a [`crate::Status`].

use crate::net::Address;
use crate::wire::MethodId;

/// A Volley error outside a single call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Connecting failed at the socket level.
    #[error("could not connect to {address}: {source}; is a Volley server listening there?")]
    Connect {
        /// Where we tried to connect.
        address: Address,
        /// The OS error.
        source: std::io::Error,
    },
    /// The peer answered but the Volley handshake failed (wrong protocol, version mismatch,
    /// timeout).
    #[error("handshake with {address} failed: {reason}")]
    Handshake {
        /// The peer.
        address: Address,
        /// What went wrong, from the protocol.
        reason: String,
    },
    /// The TLS handshake failed, or the connection failed on a TLS error before the Volley
    /// handshake completed (feature `tls`). `source` says which, and what to change.
    #[cfg(all(feature = "tls", not(loom)))]
    #[error("TLS with {address} failed: {source}")]
    Tls {
        /// The peer.
        address: Address,
        /// What went wrong.
        source: crate::tls::TlsError,
    },
    /// Binding a listener failed.
    #[error("could not listen on {address}: {source}; is the port in use or the socket path taken?")]
    Bind {
        /// The address.
        address: Address,
        /// The OS error.
        source: std::io::Error,
    },
    /// Two registered methods hash to the same method id.
    #[error("methods `{first}` and `{second}` share method id {id}; rename one of them (see docs/PROTOCOL.md, Method ids)")]
    MethodIdCollision {
        /// The shared id.
        id: MethodId,
        /// The method registered first.
        first: String,
        /// The method registered second.
        second: String,
    },
    /// The same method was registered twice.
    #[error("method `{0}` is registered twice; register each service once")]
    DuplicateMethod(String),
    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A channel would send credentials (a bearer token) unencrypted to another host.
    #[cfg(not(loom))]
    #[error(transparent)]
    PlaintextCredentials(#[from] crate::interceptor::PlaintextCredentialsError),
    /// A balanced channel's resolver gave no address to start with.
    #[cfg(not(loom))]
    #[error(transparent)]
    Resolve(#[from] crate::balance::ResolveError),
    /// Any other IO error.
    #[error("io error: {0}")]
    Io(#[from] std::io::Error),
}
