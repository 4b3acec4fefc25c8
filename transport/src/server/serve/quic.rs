//! Serving QUIC (feature `quic`): the endpoint's accept loop and each attempt's admission and
//! handshake, registered like TCP connections in the parent's registry.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::{Registered, Registry, ServerHandle, Slot};
use crate::net::{Address, Stream};
use crate::quic::ServerEndpoint;
use crate::server::Server;
use crate::sync::lock;

impl Registry {
    /// Serves a QUIC connection attempt: admission first (refused ones get a QUIC refusal
    /// before any handshake work), then the QUIC handshake and the wait for the client's stream
    /// in a task of its own, within the handshake timeout counted from now.
    fn adopt_quic(self: &Arc<Self>, endpoint: &Arc<ServerEndpoint>, incoming: quinn::Incoming) {
        let accepted_at = std::time::Instant::now();
        let peer = Some(incoming.remote_address().ip().to_canonical());
        let mut connections = lock(&self.connections);
        if !self.admit(&mut connections, peer) {
            incoming.refuse();
            return;
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let registry = self.clone();
        let endpoint = endpoint.clone();
        let task = tokio::spawn(async move {
            let timeout = registry.server.config.connection.handshake_timeout;
            let result = crate::quic::accept(&endpoint, incoming, &registry.server.config, accepted_at + timeout, timeout).await;
            let stream = result.map(|stream| Stream::Quic(Box::new(stream)));
            registry.finish_handshake(id, peer, stream, accepted_at);
        });
        connections.insert(
            id,
            Registered {
                slot: Slot::Handshake(task.abort_handle()),
                peer,
            },
        );
    }
}

impl Server {
    /// Serves QUIC connections arriving at `endpoint` (feature `quic`); [`Server::serve`] with a
    /// `quic://` address binds one with the server's TLS and limits.
    pub(super) fn serve_quic_endpoint(self, endpoint: ServerEndpoint) -> ServerHandle {
        let local_addr = endpoint
            .endpoint
            .local_addr()
            .map(Address::Quic)
            .unwrap_or(Address::Unix(PathBuf::new()));
        let registry = self.registry();
        let accept = tokio::spawn(quic_accept_loop(registry.clone(), endpoint));
        ServerHandle {
            registry,
            local_addr,
            accept,
            unix_path: None,
        }
    }
}

/// Takes QUIC connection attempts until the server stops accepting; then the endpoint drops its
/// server configuration, so quinn answers no new attempt (it keeps serving the connections it has).
async fn quic_accept_loop(registry: Arc<Registry>, endpoint: ServerEndpoint) {
    let endpoint = Arc::new(endpoint);
    loop {
        let incoming = tokio::select! {
            biased;
            () = registry.stop_accepting.notified() => break,
            incoming = endpoint.endpoint.accept() => incoming,
        };
        match incoming {
            Some(incoming) => registry.adopt_quic(&endpoint, incoming),
            None => break,
        }
    }
    endpoint.endpoint.set_server_config(None);
}
