//! The connection a call came in on, as a handler sees it.

use std::sync::Arc;

use crate::driver::Identity;
use crate::net::Address;

/// The connection a call came in on: its id, its peer, and its end. Get it from
/// [`CallContext::connection`](super::CallContext::connection).
///
/// Handlers use it to tie state to a session, for example to cancel a trader's open orders when
/// the connection that entered them drops (cancel-on-disconnect). Keeping a `ConnectionInfo` keeps
/// only these few fields alive, not the connection or its buffers.
///
/// ```no_run
/// use volley::{Request, Server, Status};
///
/// # async fn run() -> Result<(), volley::Error> {
/// let server = Server::builder().unary("/demo.Session/Hello", |request: Request<()>| async move {
///     if let Some(connection) = request.context().connection() {
///         let connection = connection.clone();
///         tokio::spawn(async move {
///             connection.closed().await;
///             println!("connection {} from {:?} ended", connection.id(), connection.peer_addr());
///         });
///     }
///     Ok::<_, Status>(())
/// });
/// server.build()?.serve("127.0.0.1:0").await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct ConnectionInfo {
    identity: Arc<Identity>,
}

impl ConnectionInfo {
    pub(crate) fn new(identity: Arc<Identity>) -> Self {
        Self { identity }
    }

    /// The connection's id: unique among the connections of this process, never reused.
    pub fn id(&self) -> u64 {
        self.identity.id()
    }

    /// The peer's address: its IP and port over TCP, its socket path over a Unix socket if the
    /// peer bound one (clients usually do not, so this is mostly `None` there).
    pub fn peer_addr(&self) -> Option<&Address> {
        self.identity.peer()
    }

    /// The peer's verified identity under TLS (feature `tls`): what the client certificate it
    /// presented names. `None` over plaintext and for TLS clients that presented no certificate
    /// (possible only with [`ServerTlsBuilder::optional_client_certificate`](crate::tls::ServerTlsBuilder::optional_client_certificate)).
    /// See [`PeerIdentity`](crate::tls::PeerIdentity) for an example.
    #[cfg(feature = "tls")]
    pub fn peer_identity(&self) -> Option<&crate::tls::PeerIdentity> {
        self.identity.tls_peer()
    }

    /// Whether the connection has ended.
    pub fn is_closed(&self) -> bool {
        self.identity.is_closed()
    }

    /// Whether the server is closing the connection gracefully (it sent a GoAway: a shutdown
    /// began) or the connection has ended.
    pub fn is_draining(&self) -> bool {
        self.identity.is_draining()
    }

    /// Resolves once the server starts closing the connection gracefully (a shutdown began:
    /// [`ServerHandle::shutdown`](crate::ServerHandle::shutdown)) or the connection has ended;
    /// at once if either happened already. See [`CallContext::shutdown`](super::CallContext::shutdown).
    pub async fn draining(&self) {
        self.identity.draining().await;
    }

    /// Resolves once the connection has ended, however it ended (the peer closed or reset it, a
    /// protocol error, a keepalive timeout, a server shutdown); at once if it already has.
    pub async fn closed(&self) {
        self.identity.closed().await;
    }
}
