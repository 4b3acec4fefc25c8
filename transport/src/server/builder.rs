//! `ServerBuilder` and `Server`: methods, limits and socket options.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::admission::AdmissionConfig;
use super::load::LoadReports;
use super::router::{Router, Routes, Service};
use super::wrap::HandlerWraps;
use super::{BidiStreamingHandler, ClientStreamingHandler, InlineUnaryHandler, Request, ServerStreamingHandler, UnaryHandler};
use crate::driver::DriverConfig;
use crate::error::Error;
use crate::memory::MemoryReturn;
use crate::method::MethodName;
use crate::net::SocketConfig;
use crate::protocol::ConnectionConfig;
use crate::response::IntoResponse;
use crate::status::Status;
use crate::streaming::{StreamSender, Streaming};

/// Most connections a server holds at once (10,000); more are closed at accept.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

/// How long a graceful shutdown waits for calls in flight (10 s) before closing what is left.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Configures a [`Server`]: its methods, limits and socket options.
#[derive(Debug, Default)]
pub struct ServerBuilder {
    routes: Routes,
    config: DriverConfig,
    max_connections: Option<usize>,
    admission: AdmissionConfig,
    drain_timeout: Option<Duration>,
    memory_return: MemoryReturn,
    #[cfg(feature = "tls")]
    tls: Option<crate::tls::ServerTls>,
    /// When the server reports its load in response heads.
    load_reports: LoadReports,
    /// Interceptors and tower layers, applied to the handlers at `build`.
    pub(crate) wraps: HandlerWraps,
}

impl ServerBuilder {
    /// Serves TLS on TCP listeners (feature `tls`): every accepted TCP connection must complete
    /// a TLS 1.3 handshake with ALPN `volley/1` within the handshake timeout; under mutual TLS
    /// its client certificate is verified and reaches handlers as
    /// [`ConnectionInfo::peer_identity`](super::ConnectionInfo::peer_identity). Unix sockets
    /// stay plaintext. Keep a clone of `tls` to [`reload`](crate::tls::ServerTls::reload) its
    /// certificate later.
    ///
    /// ```no_run
    /// # async fn demo(cert_pem: &[u8], key_pem: &[u8]) -> Result<(), Box<dyn std::error::Error>> {
    /// use volley::tls::ServerTls;
    /// use volley::{Request, Server, Status};
    ///
    /// let tls = ServerTls::builder_from_pem(cert_pem, key_pem)?.build()?;
    /// let handle = Server::builder()
    ///     .unary("/echo.Echo/Say", |request: Request<String>| async move { Ok::<_, Status>(request.into_inner()) })
    ///     .tls(tls)
    ///     .build()?
    ///     .serve("0.0.0.0:7443")
    ///     .await?;
    /// # handle.shutdown().await;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "tls")]
    #[must_use]
    pub fn tls(mut self, tls: crate::tls::ServerTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// QUIC options for `quic://` addresses (feature `quic`): the stream mappings accepted (both
    /// by default: a QUIC stream per call for clients that ask for it, one stream for the others) and the per-call
    /// mapping's partial-frame budget. See [`crate::quic::QuicOptions`].
    #[cfg(all(feature = "quic", not(loom)))]
    #[must_use]
    pub fn quic(mut self, options: crate::quic::QuicOptions) -> Self {
        self.config.quic = options;
        self
    }

    /// Runs `interceptor` before the handler of every method: it sees and may change the call
    /// head, may refuse the call with a [`Status`], and observes the outcome. Interceptors run
    /// in the order they are installed (and, with [`ServerBuilder::layer`], in one order with
    /// the tower layers), whenever they are installed relative to the methods. An inline
    /// handler ([`ServerBuilder::unary_inline`]) behind an interceptor runs on a spawned task.
    /// See [`crate::interceptor`].
    ///
    /// ```
    /// use volley::interceptor::BearerAuth;
    /// use volley::{Request, Server, Status};
    ///
    /// let server = Server::builder()
    ///     .interceptor(BearerAuth::new(|token: &str| token == "s3cret"))
    ///     .unary("/echo.Echo/Say", |request: Request<String>| async move { Ok::<_, Status>(request.into_inner()) })
    ///     .build()?;
    /// # let _ = server;
    /// # Ok::<(), volley::Error>(())
    /// ```
    #[must_use]
    pub fn interceptor(mut self, interceptor: impl crate::interceptor::ServerInterceptor) -> Self {
        self.wraps.push(None, crate::interceptor::intercepted(interceptor));
        self
    }

    /// Adds a service (a generated `FooServer`, or anything implementing [`Service`]).
    #[must_use]
    pub fn add_service(mut self, service: impl Service) -> Self {
        service.register(&mut self.routes);
        self
    }

    /// Adds a unary method served by `f`. `method` is a typed [`crate::Method`] (the compiler
    /// then checks `f`'s messages against it) or the full name (`/package.Service/Method`). `f`
    /// answers with a message, or with a [`crate::Response`] to send metadata with it.
    #[must_use]
    pub fn unary<Req, Resp, F, Fut>(mut self, method: impl MethodName<Req, Resp::Message>, f: F) -> Self
    where
        F: Fn(Request<Req>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Resp, Status>> + Send + 'static,
        Req: prost::Message + Default + 'static,
        Resp: IntoResponse,
    {
        self.routes.add(method.method_name(), UnaryHandler::new(f));
        self
    }

    /// Adds a unary method served by a synchronous function run on the connection's reader task:
    /// no task spawn, no allocation and no thread hop per call, the lowest latency Volley offers.
    /// Use it only for handlers that finish in microseconds and never block: while one runs, no
    /// other call on its connection makes progress.
    #[must_use]
    pub fn unary_inline<Req, Resp, F>(mut self, method: impl MethodName<Req, Resp::Message>, f: F) -> Self
    where
        F: Fn(Request<Req>) -> Result<Resp, Status> + Send + Sync + 'static,
        Req: prost::Message + Default + 'static,
        Resp: IntoResponse,
    {
        self.routes.add(method.method_name(), InlineUnaryHandler::new(f));
        self
    }

    /// Adds a server-streaming method: `f` gets the request and a sender for the responses; the
    /// call ends with the status `f` returns.
    #[must_use]
    pub fn server_streaming<Req, Resp, F, Fut>(mut self, method: impl MethodName<Req, Resp>, f: F) -> Self
    where
        F: Fn(Request<Req>, StreamSender<Resp>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), Status>> + Send + 'static,
        Req: prost::Message + Default + 'static,
        Resp: prost::Message + 'static,
    {
        self.routes.add(method.method_name(), ServerStreamingHandler::new(f));
        self
    }

    /// Adds a client-streaming method: `f` reads the request stream and returns one response.
    #[must_use]
    pub fn client_streaming<Req, Resp, F, Fut>(mut self, method: impl MethodName<Req, Resp::Message>, f: F) -> Self
    where
        F: Fn(Request<Streaming<Req>>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Resp, Status>> + Send + 'static,
        Req: prost::Message + Default + 'static,
        Resp: IntoResponse,
    {
        self.routes.add(method.method_name(), ClientStreamingHandler::new(f));
        self
    }

    /// Adds a bidirectional-streaming method: `f` reads the request stream and sends responses;
    /// the call ends with the status `f` returns.
    #[must_use]
    pub fn bidi_streaming<Req, Resp, F, Fut>(mut self, method: impl MethodName<Req, Resp>, f: F) -> Self
    where
        F: Fn(Request<Streaming<Req>>, StreamSender<Resp>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), Status>> + Send + 'static,
        Req: prost::Message + Default + 'static,
        Resp: prost::Message + 'static,
    {
        self.routes.add(method.method_name(), BidiStreamingHandler::new(f));
        self
    }

    /// Protocol settings, limits and timeouts (max frame size, concurrency, metadata, budgets).
    #[must_use]
    pub fn connection_config(mut self, connection: ConnectionConfig) -> Self {
        self.config.connection = connection;
        self
    }

    /// Most calls one connection may run at once; more are refused with RESOURCE_EXHAUSTED.
    #[must_use]
    pub fn max_concurrent_calls(mut self, calls: u32) -> Self {
        self.config.connection.settings.max_concurrent_calls = calls;
        self
    }

    /// Largest frame (so largest request message) the server accepts.
    #[must_use]
    pub fn max_frame_size(mut self, bytes: u32) -> Self {
        self.config.connection.settings.max_frame_size = bytes;
        self
    }

    /// Largest call metadata block the server accepts.
    #[must_use]
    pub fn max_metadata_size(mut self, bytes: u32) -> Self {
        self.config.connection.settings.max_metadata_size = bytes;
        self
    }

    /// Pings each client after `interval` without traffic and closes its connection (GoAway
    /// UNAVAILABLE) when no pong arrives within `timeout`: a client that vanished without closing
    /// (a pulled cable, a frozen host) is found and its calls' handlers are dropped, rather than
    /// waiting for the idle timeout. Off by default on the server. A client that answers pings
    /// is unaffected; the client's `min_ping_interval_ms` setting must allow `interval`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use volley::Server;
    ///
    /// let builder = Server::builder().keepalive(Duration::from_secs(1), Duration::from_secs(2));
    /// # let _ = builder;
    /// ```
    #[must_use]
    pub fn keepalive(mut self, interval: Duration, timeout: Duration) -> Self {
        self.config.connection.keepalive_interval = Some(interval);
        self.config.connection.keepalive_timeout = timeout;
        self
    }

    /// How long a new connection has to complete its handshake.
    #[must_use]
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.config.connection.handshake_timeout = timeout;
        self
    }

    /// How long a frame may stay partly received with none of its bytes arriving before the
    /// connection is closed; see [`crate::protocol::DEFAULT_PARTIAL_FRAME_TIMEOUT`].
    #[must_use]
    pub fn partial_frame_timeout(mut self, timeout: Duration) -> Self {
        self.config.connection.partial_frame_timeout = timeout;
        self
    }

    /// How long a connection may stay without calls before the server closes it with a graceful
    /// GoAway (`None`: never); see [`crate::protocol::DEFAULT_IDLE_TIMEOUT`].
    #[must_use]
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.config.connection.idle_timeout = timeout;
        self
    }

    /// TCP socket options, applied to every accepted connection.
    #[must_use]
    pub fn socket_config(mut self, socket: SocketConfig) -> Self {
        self.config.socket = socket;
        self
    }

    /// Bytes a connection's write queue may hold (8 MiB by default; 0 keeps the default). At the
    /// cap handlers wait to answer and the server dispatches no new call; it goes on reading until
    /// the calls it holds back carry as many request bytes as the cap, then stops reading from
    /// the connection until the queue has room (docs/PROTOCOL.md, "Write queue cap").
    #[must_use]
    pub fn write_queue_cap(mut self, bytes: usize) -> Self {
        self.config.write_queue_cap = bytes;
        self
    }

    /// How long a client may read nothing while the server has bytes for it before its
    /// connection is closed; see [`crate::driver::DEFAULT_WRITE_STALL_TIMEOUT`].
    #[must_use]
    pub fn write_stall_timeout(mut self, timeout: Duration) -> Self {
        self.config.write_stall_timeout = timeout;
        self
    }

    /// Reads every accepted connection with a dedicated busy-polling thread instead of a tokio
    /// reader task (default: off). Inline handlers ([`ServerBuilder::unary_inline`]) then run
    /// on that thread and their answers are written from it: no wake-up between the bytes
    /// arriving and the answer leaving. Other handlers are still spawned on the runtime. Each
    /// connection costs a thread, and with [`IdleStrategy::Spin`](crate::busy_poll::IdleStrategy::Spin)
    /// a core for as long as it is open: see [`crate::busy_poll`] and `docs/latency.md`.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), volley::Error> {
    /// use volley::busy_poll::{BusyPoll, IdleStrategy};
    /// use volley::{Request, Server, Status};
    ///
    /// let handle = Server::builder()
    ///     .unary_inline("/echo.Echo/Say", |request: Request<String>| Ok::<_, Status>(request.into_inner()))
    ///     .busy_poll(BusyPoll::new(IdleStrategy::Spin).pin_to_cpu(1))
    ///     .build()?
    ///     .serve("127.0.0.1:7000")
    ///     .await?;
    /// # handle.shutdown().await;
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn busy_poll(mut self, busy_poll: crate::busy_poll::BusyPoll) -> Self {
        self.config.busy_poll = Some(busy_poll);
        self
    }

    /// See [`DEFAULT_MAX_CONNECTIONS`].
    #[must_use]
    pub fn max_connections(mut self, connections: usize) -> Self {
        self.max_connections = Some(connections);
        self
    }

    /// Per-address connection limits, so one peer cannot take every slot: by default a remote
    /// address may hold [`DEFAULT_MAX_CONNECTIONS_PER_PEER`](super::DEFAULT_MAX_CONNECTIONS_PER_PEER)
    /// connections, of which [`DEFAULT_MAX_HANDSHAKES_PER_PEER`](super::DEFAULT_MAX_HANDSHAKES_PER_PEER)
    /// in their handshake; loopback addresses have no
    /// per-address limit. At `max_connections`, a new connection closes (GoAway) the oldest idle
    /// connection of the address holding the most, and is refused only when that address has
    /// none idle. See docs/PROTOCOL.md section 9.
    ///
    /// ```
    /// use volley::Server;
    /// use volley::server::{AdmissionConfig, PeerLimits};
    ///
    /// let admission = AdmissionConfig {
    ///     remote: PeerLimits { connections: Some(64), handshakes: Some(8) },
    ///     ..AdmissionConfig::default()
    /// };
    /// let builder = Server::builder().admission(admission);
    /// # let _ = builder;
    /// ```
    #[must_use]
    pub fn admission(mut self, admission: AdmissionConfig) -> Self {
        self.admission = admission;
        self
    }

    /// When the server puts its calls in flight (over every connection) in the `volley-load`
    /// response-head metadata that balancing clients read (docs/PROTOCOL.md section 14):
    /// [`LoadReports::OnRequest`] by default, for the requests that carry the key.
    #[must_use]
    pub fn load_reports(mut self, reports: LoadReports) -> Self {
        self.load_reports = reports;
        self
    }

    /// See [`DEFAULT_DRAIN_TIMEOUT`].
    #[must_use]
    pub fn drain_timeout(mut self, timeout: Duration) -> Self {
        self.drain_timeout = Some(timeout);
        self
    }

    /// When the server returns memory after a burst of connections or calls ends: by default once
    /// its connections have stayed [`DEFAULT_MIN_BURST`](crate::memory::DEFAULT_MIN_BURST) (or its
    /// calls in flight [`DEFAULT_MIN_CALL_BURST`](crate::memory::DEFAULT_MIN_CALL_BURST)) under
    /// their peak for [`DEFAULT_SETTLE`](crate::memory::DEFAULT_SETTLE), it drops the pooled
    /// buffers no connection took meanwhile and trims the allocator ([`crate::memory`]).
    ///
    /// ```
    /// use volley::Server;
    /// use volley::memory::MemoryReturn;
    ///
    /// let builder = Server::builder().memory_return(MemoryReturn { trim_allocator: false, ..MemoryReturn::default() });
    /// # let _ = builder;
    /// ```
    #[must_use]
    pub fn memory_return(mut self, memory_return: MemoryReturn) -> Self {
        self.memory_return = memory_return;
        self
    }

    /// Records this server's calls, latencies and connections in `metrics` (feature `metrics`).
    /// Every method registered by the time of [`ServerBuilder::build`] gets its own series.
    ///
    /// ```
    /// use volley::metrics::Metrics;
    /// use volley::{Request, Server, Status};
    ///
    /// let metrics = Metrics::new();
    /// let server = Server::builder()
    ///     .unary("/echo.Echo/Say", |request: Request<String>| async move { Ok::<_, Status>(request.into_inner()) })
    ///     .metrics(metrics.clone())
    ///     .build()?;
    /// assert!(metrics.snapshot().method("/echo.Echo/Say").is_some_and(|m| m.server.registered));
    /// # Ok::<(), volley::Error>(())
    /// ```
    #[cfg(feature = "metrics")]
    #[must_use]
    pub fn metrics(mut self, metrics: crate::metrics::Metrics) -> Self {
        self.config.metrics = Some(metrics);
        self
    }

    /// Checks the configuration and the method table.
    pub fn build(self) -> Result<Server, Error> {
        self.config
            .connection
            .settings
            .validate()
            .map_err(|err| Error::Config(err.to_string()))?;
        let mut routes = self.routes;
        routes.wrap(&self.wraps)?;
        let mut router = routes.build()?;
        router.set_load_reports(self.load_reports);
        #[cfg(feature = "metrics")]
        if let Some(metrics) = &self.config.metrics {
            router.register_metrics(metrics);
        }
        Ok(Server {
            router: Arc::new(router),
            config: self.config,
            max_connections: self.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS),
            admission: self.admission,
            drain_timeout: self.drain_timeout.unwrap_or(DEFAULT_DRAIN_TIMEOUT),
            memory_return: self.memory_return,
            #[cfg(feature = "tls")]
            tls: self.tls,
        })
    }
}

/// A Volley server: a method table and its configuration, ready to serve.
///
/// It runs on the caller's tokio runtime: it spawns tasks and owns no runtime or thread.
///
/// ```no_run
/// # async fn demo() -> Result<(), volley::Error> {
/// use volley::{Request, Server, Status};
///
/// let server = Server::builder()
///     .unary("/echo.Echo/Say", |request: Request<String>| async move { Ok::<_, Status>(request.into_inner()) })
///     .build()?;
/// let handle = server.serve("127.0.0.1:0").await?;
/// println!("listening on {}", handle.local_addr());
/// handle.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Server {
    pub(crate) router: Arc<Router>,
    pub(crate) config: DriverConfig,
    pub(crate) max_connections: usize,
    pub(crate) admission: AdmissionConfig,
    pub(crate) drain_timeout: Duration,
    pub(crate) memory_return: MemoryReturn,
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<crate::tls::ServerTls>,
}

impl Server {
    /// A builder.
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }
}
