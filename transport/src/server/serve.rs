//! Serving: the accept loop, the registry of live connections, graceful shutdown.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, UnixListener};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::Server;
use super::admission::{Decision, LiveConnection, decide};
use crate::driver::{Dispatch, Shared, spawn_connection};
use crate::error::Error;
use crate::memory::AfterBursts;
use crate::net::{Address, Stream, ToAddress};
use crate::protocol::Role;
use crate::stats::{AdmissionCounters, AdmissionStats, StatsSnapshot};
use crate::status::Status;
use crate::sync::{Mutex, lock};

#[cfg(feature = "quic")]
mod quic;

/// Live connections of a server, and the totals of those that ended.
#[derive(Debug)]
struct Registry {
    server: Server,
    connections: Mutex<HashMap<u64, Registered>>,
    next_id: AtomicU64,
    ended: Mutex<StatsSnapshot>,
    admission: AdmissionCounters,
    /// Signalled when the last connection ends.
    empty: Notify,
    stop_accepting: Notify,
    /// Returns memory after a burst of connections or calls ends (`crate::memory`).
    memory: AfterBursts,
    /// TLS handshakes that failed (feature `tls`).
    #[cfg(feature = "tls")]
    tls_failures: AtomicU64,
}

/// A connection and the address it came from.
#[derive(Debug)]
struct Registered {
    slot: Slot,
    peer: Option<IpAddr>,
}

/// Where a registered connection is in its life.
#[derive(Debug)]
enum Slot {
    /// Served by its drivers (its Volley handshake may still be running).
    Live(Arc<Shared>),
    /// Its TLS (or QUIC) handshake runs in this task; it counts as handshaking for admission.
    #[cfg(feature = "tls")]
    Handshake(tokio::task::AbortHandle),
}

impl Registered {
    fn live(&self) -> Option<&Arc<Shared>> {
        match &self.slot {
            Slot::Live(shared) => Some(shared),
            #[cfg(feature = "tls")]
            Slot::Handshake(_) => None,
        }
    }

    fn describe(&self, id: u64) -> LiveConnection {
        let Some(shared) = self.live() else {
            return LiveConnection {
                id,
                peer: self.peer,
                handshaking: true,
                idle: false,
                draining: false,
            };
        };
        let state = shared.lock_state();
        let established = state.proto.is_established();
        LiveConnection {
            id,
            peer: self.peer,
            handshaking: !established,
            idle: established && state.proto.open_calls() == 0,
            draining: state.closed.is_some() || state.proto.is_draining(),
        }
    }
}

impl Registry {
    /// Serves one accepted stream from `peer`, unless admission refuses it
    /// (`admission.rs`: per-peer limits, the connection cap, evicting an idle connection of the
    /// address holding the most to make room).
    fn adopt(self: &Arc<Self>, stream: Stream, peer: Option<IpAddr>) -> Option<Arc<Shared>> {
        let mut connections = lock(&self.connections);
        if !self.admit(&mut connections, peer) {
            return None;
        }
        let dispatch: Arc<dyn Dispatch> = self.server.router.clone();
        let shared = spawn_connection(stream, Role::Server, &self.server.config, Some(dispatch));
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        connections.insert(
            id,
            Registered {
                slot: Slot::Live(shared.clone()),
                peer,
            },
        );
        let live = connections.len();
        drop(connections);
        self.memory.handle_live(live);
        self.watch(id, shared.clone());
        Some(shared)
    }

    /// Whether admission takes a connection from `peer` (it may close an idle one to make room).
    fn admit(&self, connections: &mut HashMap<u64, Registered>, peer: Option<IpAddr>) -> bool {
        let total = connections.len();
        let full = total >= self.server.max_connections;
        // Below the cap, only a peer with a per-address limit needs its connections described
        // (each takes that connection's lock): a burst from loopback would otherwise lock every
        // live connection and build a list of them at every accept.
        let same_peer = !full && self.server.admission.limits_peer(peer);
        let live: Vec<LiveConnection> = if full || same_peer {
            connections
                .iter()
                .filter(|(_, registered)| full || registered.peer == peer)
                .map(|(id, registered)| registered.describe(*id))
                .collect()
        } else {
            Vec::new()
        };
        match decide(&self.server.admission, self.server.max_connections, peer, total, &live) {
            Decision::Admit => {}
            Decision::AdmitEvicting(id) => {
                if let Some(victim) = connections.get(&id)
                    && let Some(shared) = victim.live()
                {
                    tracing::info!(?peer, evicted = ?victim.peer, "the server is at max_connections: closing the oldest idle connection of the address holding the most");
                    shared.go_away(
                        "the server is at its connection limit and closed this idle connection to make room; reconnect when needed",
                    );
                }
                self.admission.evicted();
                #[cfg(feature = "metrics")]
                if let Some(metrics) = &self.server.config.metrics {
                    metrics.connection_evicted();
                }
            }
            Decision::Refuse(refusal) => {
                tracing::warn!(?peer, ?refusal, max = self.server.max_connections, "connection refused at accept");
                self.admission.refused(refusal);
                #[cfg(feature = "metrics")]
                if let Some(metrics) = &self.server.config.metrics {
                    metrics.connection_refused(refusal);
                }
                return false;
            }
        }
        true
    }

    /// Removes connection `id` from the registry once it has ended.
    fn watch(self: &Arc<Self>, id: u64, watched: Arc<Shared>) {
        let registry = self.clone();
        tokio::spawn(async move {
            watched.wait_closed().await;
            let mut connections = lock(&registry.connections);
            connections.remove(&id);
            lock(&registry.ended).add(&watched.stats.snapshot());
            if connections.is_empty() {
                registry.empty.notify_waiters();
            }
            let live = connections.len();
            drop(connections);
            registry.memory.handle_live(live);
        });
    }

    /// Serves a TCP connection with TLS: admission first (a connection in its TLS handshake
    /// counts against the per-address handshake budget), then the handshake in a task of its
    /// own, off the accept loop, within the handshake timeout counted from now; the Volley
    /// handshake that follows has what is left of it.
    #[cfg(feature = "tls")]
    fn adopt_tls(self: &Arc<Self>, tcp: tokio::net::TcpStream, peer: Option<IpAddr>, tls: crate::tls::ServerTls) {
        let accepted_at = std::time::Instant::now();
        let mut connections = lock(&self.connections);
        if !self.admit(&mut connections, peer) {
            return;
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let registry = self.clone();
        // The task needs the connections lock to finish, so it finds its entry in place.
        let task = tokio::spawn(async move {
            let timeout = registry.server.config.connection.handshake_timeout;
            let result = crate::tls::accept(tcp, &tls, accepted_at + timeout, timeout).await;
            let stream = result
                .map(|stream| Stream::Tls(Box::new(stream)))
                .map_err(|err| format!("TLS handshake failed: {err}"));
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

    /// Registers the outcome of connection `id`'s TLS or QUIC handshake: its drivers start, or
    /// its slot frees and the failure is counted.
    #[cfg(feature = "tls")]
    fn finish_handshake(self: &Arc<Self>, id: u64, peer: Option<IpAddr>, result: Result<Stream, String>, accepted_at: std::time::Instant) {
        let mut connections = lock(&self.connections);
        let stream = match result {
            Ok(stream) => stream,
            Err(err) => {
                tracing::info!(?peer, "{err}");
                self.tls_failures.fetch_add(1, Ordering::Relaxed);
                connections.remove(&id);
                if connections.is_empty() {
                    self.empty.notify_waiters();
                }
                return;
            }
        };
        if !connections.contains_key(&id) {
            // The server shut down during the handshake.
            return;
        }
        let dispatch: Arc<dyn Dispatch> = self.server.router.clone();
        let shared = crate::driver::spawn_connection_at(stream, Role::Server, &self.server.config, Some(dispatch), accepted_at);
        connections.insert(
            id,
            Registered {
                slot: Slot::Live(shared.clone()),
                peer,
            },
        );
        drop(connections);
        self.watch(id, shared);
    }

    /// Stops every TLS handshake still running (shutdown): those connections have no calls.
    fn abort_handshakes(&self) {
        #[cfg(feature = "tls")]
        {
            let mut connections = lock(&self.connections);
            connections.retain(|_, registered| match &registered.slot {
                Slot::Handshake(task) => {
                    task.abort();
                    false
                }
                Slot::Live(_) => true,
            });
            if connections.is_empty() {
                self.empty.notify_waiters();
            }
        }
    }

    fn live(&self) -> Vec<Arc<Shared>> {
        lock(&self.connections).values().filter_map(Registered::live).cloned().collect()
    }
}

/// A running server: its address, its counters, and the way to stop it.
///
/// [`Server::serve`] returns it as soon as the listener is bound; the server runs in the
/// background on the caller's runtime. A program whose `main` ends after `serve(..).await?`
/// stops at once, so keep the handle and wait on it: [`ServerHandle::run_until`] a signal, or use
/// [`Server::serve_with_shutdown`]. Dropping the handle unused is a warning (`#[must_use]`):
///
/// ```compile_fail
/// #![deny(unused_must_use)]
/// # async fn demo(server: volley::Server) -> Result<(), volley::Error> {
/// server.serve("127.0.0.1:7000").await?; // the handle is dropped: warned, here denied
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[must_use = "the server runs in the background: await `run_until(signal)` or `shutdown()` on the handle, or `main` returns and the server stops with the runtime"]
pub struct ServerHandle {
    registry: Arc<Registry>,
    local_addr: Address,
    accept: JoinHandle<()>,
    unix_path: Option<PathBuf>,
}

impl Server {
    /// Binds `address` (TCP, IPv4 or IPv6, or `unix:/path`), starts accepting on the current
    /// tokio runtime and returns at once.
    pub async fn serve(self, address: impl ToAddress) -> Result<ServerHandle, Error> {
        let address = address.to_address()?;
        let bind_error = |source| Error::Bind {
            address: address.clone(),
            source,
        };
        match &address {
            Address::Tcp(addr) => {
                let socket = if addr.is_ipv4() {
                    tokio::net::TcpSocket::new_v4()
                } else {
                    tokio::net::TcpSocket::new_v6()
                }
                .map_err(bind_error)?;
                socket.set_reuseaddr(true).map_err(bind_error)?;
                if self.config.socket.reuse_port
                    && let Err(err) = socket2::SockRef::from(&socket).set_reuse_port(true)
                {
                    tracing::warn!("socket option SO_REUSEPORT not applied: {err}");
                }
                socket.bind(*addr).map_err(bind_error)?;
                let listener = socket.listen(1024).map_err(bind_error)?;
                Ok(self.serve_tcp_listener(listener))
            }
            #[cfg(feature = "quic")]
            Address::Quic(addr) => {
                let Some(tls) = &self.tls else {
                    return Err(Error::Config(format!(
                        "QUIC always runs TLS 1.3: give the server a certificate with `ServerBuilder::tls` to serve {address}"
                    )));
                };
                let endpoint = crate::quic::bind_server(*addr, tls, &self.config)?;
                Ok(self.serve_quic_endpoint(endpoint))
            }
            Address::Unix(path) => {
                let listener = UnixListener::bind(path).map_err(bind_error)?;
                let mut handle = self.serve_unix_listener(listener);
                handle.unix_path = Some(path.clone());
                handle.local_addr = address.clone();
                Ok(handle)
            }
        }
    }

    /// Serves `address` until `signal` completes, then shuts down gracefully
    /// ([`ServerHandle::shutdown`]) and returns: the form for the end of `main`, like tonic's
    /// `serve_with_shutdown`.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), volley::Error> {
    /// use volley::{Request, Server, Status};
    ///
    /// Server::builder()
    ///     .unary("/echo.Echo/Say", |request: Request<String>| async move { Ok::<_, Status>(request.into_inner()) })
    ///     .build()?
    ///     .serve_with_shutdown("127.0.0.1:7000", async { tokio::signal::ctrl_c().await.ok(); })
    ///     .await
    /// # }
    /// ```
    pub async fn serve_with_shutdown(self, address: impl ToAddress, signal: impl Future<Output = ()>) -> Result<(), Error> {
        self.serve(address).await?.run_until(signal).await;
        Ok(())
    }

    fn registry(self) -> Arc<Registry> {
        let memory = AfterBursts::new(self.memory_return, self.config.pool.clone());
        Arc::new(Registry {
            server: self,
            connections: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            ended: Mutex::new(StatsSnapshot::default()),
            admission: AdmissionCounters::default(),
            empty: Notify::new(),
            stop_accepting: Notify::new(),
            memory,
            #[cfg(feature = "tls")]
            tls_failures: AtomicU64::new(0),
        })
    }

    /// Serves connections accepted from a TCP listener the caller bound.
    pub fn serve_tcp_listener(self, listener: TcpListener) -> ServerHandle {
        let local_addr = listener.local_addr().map(Address::Tcp).unwrap_or(Address::Unix(PathBuf::new()));
        let registry = self.registry();
        let accept = tokio::spawn(accept_loop(registry.clone(), listener));
        ServerHandle {
            registry,
            local_addr,
            accept,
            unix_path: None,
        }
    }

    /// Serves connections accepted from a Unix listener the caller bound.
    pub fn serve_unix_listener(self, listener: UnixListener) -> ServerHandle {
        let local_addr = listener
            .local_addr()
            .ok()
            .and_then(|a| a.as_pathname().map(|p| Address::Unix(p.to_owned())))
            .unwrap_or(Address::Unix(PathBuf::new()));
        let registry = self.registry();
        let accept = tokio::spawn(accept_loop(registry.clone(), listener));
        ServerHandle {
            registry,
            local_addr,
            accept,
            unix_path: None,
        }
    }
}

/// A listener `accept_loop` can take connections from.
trait Listener: Send + 'static {
    type Stream: Accepted;
    fn accept_stream(&self) -> impl std::future::Future<Output = std::io::Result<Self::Stream>> + Send;
}

impl Listener for TcpListener {
    type Stream = tokio::net::TcpStream;
    async fn accept_stream(&self) -> std::io::Result<Self::Stream> {
        self.accept().await.map(|(stream, _)| stream)
    }
}

impl Listener for UnixListener {
    type Stream = tokio::net::UnixStream;
    async fn accept_stream(&self) -> std::io::Result<Self::Stream> {
        self.accept().await.map(|(stream, _)| stream)
    }
}

/// Something `accept_loop` can serve: a socket it splits into owned halves and tunes.
trait Accepted: Send + 'static {
    fn serve(self, registry: &Arc<Registry>);
}

impl Accepted for tokio::net::TcpStream {
    fn serve(self, registry: &Arc<Registry>) {
        let peer = self.peer_addr().ok().map(|address| address.ip().to_canonical());
        let applied = registry.server.config.socket.apply(socket2::SockRef::from(&self));
        tracing::trace!(?applied, ?peer, "accepted a TCP connection");
        #[cfg(feature = "tls")]
        if let Some(tls) = &registry.server.tls {
            registry.adopt_tls(self, peer, tls.clone());
            return;
        }
        registry.adopt(self.into(), peer);
    }
}

impl Accepted for tokio::net::UnixStream {
    fn serve(self, registry: &Arc<Registry>) {
        let applied = registry.server.config.socket.apply_unix(socket2::SockRef::from(&self));
        tracing::trace!(?applied, "accepted a Unix socket connection");
        registry.adopt(self.into(), None);
    }
}

async fn accept_loop<L: Listener>(registry: Arc<Registry>, listener: L) {
    loop {
        let accepted = tokio::select! {
            biased;
            () = registry.stop_accepting.notified() => return,
            accepted = listener.accept_stream() => accepted,
            () = registry.memory.run(|| registry.server.router.calls_in_flight()) => continue,
        };
        match accepted {
            Ok(stream) => stream.serve(&registry),
            Err(err) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!("accept failed: {err}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

impl ServerHandle {
    /// The bound address (with the real port when the server was bound to port 0).
    pub fn local_addr(&self) -> &Address {
        &self.local_addr
    }

    /// Connections open now.
    pub fn connections(&self) -> usize {
        lock(&self.registry.connections).len()
    }

    /// How many times the server returned memory after a burst of connections or calls ended
    /// ([`ServerBuilder::memory_return`](super::ServerBuilder::memory_return)).
    pub fn memory_returns(&self) -> u64 {
        self.registry.memory.returns()
    }

    /// What admission refused at accept, by reason, and the idle connections it closed to make
    /// room ([`ServerBuilder::admission`](super::ServerBuilder::admission)).
    pub fn admission(&self) -> AdmissionStats {
        self.registry.admission.snapshot()
    }

    /// TLS handshakes that failed (feature `tls`): wrong or missing client certificates, wrong
    /// ALPN, plaintext or garbage sent to the TLS port, handshakes past the timeout; with feature
    /// `quic`, QUIC handshakes that failed or opened no stream in time too. Each is
    /// also logged (`tracing`, level info) with the peer's address and the reason.
    #[cfg(feature = "tls")]
    pub fn tls_handshake_failures(&self) -> u64 {
        self.registry.tls_failures.load(Ordering::Relaxed)
    }

    /// Totals over every connection, live and ended.
    pub fn stats(&self) -> StatsSnapshot {
        let mut total = lock(&self.registry.ended).clone();
        for connection in self.registry.live() {
            let mut snapshot = connection.stats.snapshot();
            snapshot.write_queue_bytes = connection.queue.queued_bytes() as u64;
            total.add(&snapshot);
        }
        total
    }

    /// Serves until `signal` completes, then shuts down gracefully ([`ServerHandle::shutdown`]).
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), volley::Error> {
    /// use volley::{Request, Server, Status};
    ///
    /// let handle = Server::builder()
    ///     .unary("/echo.Echo/Say", |request: Request<String>| async move { Ok::<_, Status>(request.into_inner()) })
    ///     .build()?
    ///     .serve("127.0.0.1:0")
    ///     .await?;
    /// println!("listening on {}", handle.local_addr());
    /// handle.run_until(async { tokio::signal::ctrl_c().await.ok(); }).await;
    /// # Ok(()) }
    /// ```
    pub async fn run_until(self, signal: impl Future<Output = ()>) {
        signal.await;
        self.shutdown().await;
    }

    /// Graceful shutdown: stop accepting, send each connection a GoAway naming its last accepted
    /// call, let calls in flight finish within the drain timeout, then close what is left.
    pub async fn shutdown(self) {
        self.registry.stop_accepting.notify_one();
        self.registry.abort_handshakes();
        let drained = {
            let empty = self.registry.empty.notified();
            tokio::pin!(empty);
            empty.as_mut().enable();
            for connection in self.registry.live() {
                let established = connection.lock_state().proto.is_established();
                connection.go_away("the server is shutting down");
                if !established {
                    // A peer still in its handshake has no calls to drain: it gets the GoAway
                    // (every connection does, PROTOCOL.md 6.5) and the connection ends at once.
                    connection.terminate(Status::unavailable("the server shut down during the handshake"));
                }
            }
            self.connections() == 0 || tokio::time::timeout(self.registry.server.drain_timeout, empty).await.is_ok()
        };
        if !drained {
            tracing::warn!(
                remaining = self.connections(),
                "drain timeout passed; closing the remaining connections"
            );
        }
        self.close_all("the server shut down before the call finished");
        let _ = self.accept.await;
    }

    /// Closes every connection at once; calls in flight fail with UNAVAILABLE.
    pub fn abort(self) {
        self.registry.stop_accepting.notify_one();
        self.close_all("the server was stopped");
        self.accept.abort();
    }

    fn close_all(&self, reason: &'static str) {
        self.registry.abort_handshakes();
        for connection in self.registry.live() {
            connection.terminate(Status::unavailable(reason));
        }
        if let Some(path) = &self.unix_path {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Server {
    /// Serves one connection the caller accepted itself (a `TcpStream` or `UnixStream`, say one
    /// handed over by a supervisor). With TLS configured, a TCP stream gets its TLS handshake
    /// first. Returns when the connection ends.
    pub async fn serve_connection(&self, stream: impl Into<Stream>) {
        let stream = stream.into();
        if let Stream::Tcp(tcp) = &stream {
            self.config.socket.apply(socket2::SockRef::from(tcp));
        }
        let started = std::time::Instant::now();
        #[cfg(feature = "tls")]
        let stream = match (stream, &self.tls) {
            (Stream::Tcp(tcp), Some(tls)) => {
                let timeout = self.config.connection.handshake_timeout;
                match crate::tls::accept(tcp, tls, started + timeout, timeout).await {
                    Ok(stream) => Stream::Tls(Box::new(stream)),
                    Err(err) => {
                        tracing::info!("TLS handshake failed: {err}");
                        return;
                    }
                }
            }
            (stream, _) => stream,
        };
        let dispatch: Arc<dyn Dispatch> = self.router.clone();
        let shared = crate::driver::spawn_connection_at(stream, Role::Server, &self.config, Some(dispatch), started);
        shared.wait_closed().await;
    }
}
