//! Metrics (feature `metrics`): calls by method and status code, latency histograms, and
//! connection counters, exposed in the Prometheus text format. See `docs/observability.md`.
//!
//! A [`Metrics`] is a cheap, cloneable handle. Attach one to servers and clients with
//! [`crate::server::ServerBuilder::metrics`] and [`crate::client::ClientBuilder::metrics`];
//! read it with [`Metrics::snapshot`] (quantiles in process), [`Metrics::encode`] (Prometheus
//! text), [`Metrics::register`] (into your own `prometheus_client` registry) or
//! [`Metrics::serve_http`] (a small built-in endpoint).
//!
//! Recording never allocates or locks: per-method slots are registered up front (every route
//! of a server when it is built; client methods with [`Metrics::register_client_method`]), and
//! each call adds to relaxed atomics. Without the feature none of this is compiled.
//!
//! ```no_run
//! use volley::metrics::Metrics;
//! use volley::{Client, Request, Server, Status};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let metrics = Metrics::new();
//! let server = Server::builder()
//!     .metrics(metrics.clone())
//!     .unary("/echo.Echo/Say", |request: Request<String>| async move { Ok::<_, Status>(request.into_inner()) })
//!     .build()?
//!     .serve("127.0.0.1:7000")
//!     .await?;
//! let endpoint = metrics.serve_http(volley::metrics::DEFAULT_METRICS_ADDR).await?;
//! println!("scrape http://{}/metrics", endpoint.local_addr());
//!
//! let say = metrics.register_client_method("/echo.Echo/Say");
//! let client = Client::builder().metrics(metrics.clone()).connect("127.0.0.1:7000").await?;
//! # Ok(()) }
//! ```

mod balancers;
#[doc(hidden)]
pub mod bench;
mod connections;
mod exposition;
mod histogram;
mod http;
mod registry;
mod snapshot;

use std::sync::Arc;
use std::time::{Duration, Instant};

pub use balancers::BalancedChannelSnapshot;
pub(crate) use balancers::EndpointSource;
pub(crate) use connections::ConnectionMetrics;
pub use connections::ConnectionTotals;
pub use exposition::CONTENT_TYPE;
pub use histogram::HistogramSnapshot;
pub use http::{DEFAULT_METRICS_ADDR, MetricsEndpoint, serve_registry};
/// The `prometheus-client` crate these metrics are encoded with, for [`Metrics::register`].
pub use prometheus_client;
pub use registry::MAX_METHODS;
pub(crate) use registry::{MethodSlot, Side};
pub use snapshot::{CallCounts, ClientCalls, MethodSnapshot, MetricsSnapshot, ServerCalls};

use self::connections::Connections;
use self::registry::MethodTable;
use crate::protocol::Role;
use crate::stats::{AdmissionCounters, Refusal, Stats};
use crate::status::Code;
use crate::wire::MethodId;

/// Where Volley records what it does: calls, latencies and connections. Cheap to clone; every
/// clone records into the same counters.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    methods: MethodTable,
    connections: Connections,
    /// What servers' admission refused and evicted.
    admission: AdmissionCounters,
    /// Balanced channels whose endpoints are exposed.
    balanced: balancers::BalancedChannels,
}

impl Metrics {
    /// An empty set of metrics, with only the `other` method slot.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a method this process calls, so its client-side metrics get their own series.
    /// Calls to methods registered on neither side of this `Metrics` (a server attached to it
    /// registers the methods it serves) count under `other`. Returns the method's id. Register
    /// before calling: registration takes a lock, calls do not.
    pub fn register_client_method(&self, name: &str) -> MethodId {
        self.inner.methods.register(name, Side::Client);
        MethodId::from_name(name)
    }

    /// Registers a method a server serves; [`crate::server::ServerBuilder::build`] does it for
    /// every route.
    pub(crate) fn register_server_method(&self, name: &str) -> MethodSlot {
        self.inner.methods.register(name, Side::Server)
    }

    /// Every metric now.
    pub fn snapshot(&self) -> MetricsSnapshot {
        crate::clock::wall_clock().resync();
        let methods = self
            .inner
            .methods
            .iter()
            .map(|m| MethodSnapshot {
                name: m.name.clone(),
                server: ServerCalls {
                    registered: m.server.registered.load(std::sync::atomic::Ordering::Relaxed),
                    calls: CallCounts::read(&m.server),
                    handling: m.handling.snapshot(),
                    queueing: m.queueing.snapshot(),
                },
                client: ClientCalls {
                    registered: m.client.registered.load(std::sync::atomic::Ordering::Relaxed),
                    calls: CallCounts::read(&m.client),
                    round_trip: m.round_trip.snapshot(),
                },
            })
            .collect();
        let [client_connections, server_connections] = self.inner.connections.totals();
        MetricsSnapshot {
            methods,
            client_connections,
            server_connections,
            admission: self.inner.admission.snapshot(),
            balanced_channels: self.inner.balanced.snapshot(),
        }
    }

    /// Exposes a balanced channel's endpoints (when the channel is built, not per call);
    /// returns the name its series carry.
    pub(crate) fn register_balanced_channel(&self, name: Option<&str>, source: std::sync::Weak<dyn EndpointSource>) -> String {
        self.inner.balanced.register(name, source)
    }

    /// A server refused a connection at accept (not per call).
    pub(crate) fn connection_refused(&self, refusal: Refusal) {
        self.inner.admission.refused(refusal);
    }

    /// A server closed an idle connection to make room (not per call).
    pub(crate) fn connection_evicted(&self) {
        self.inner.admission.evicted();
    }

    /// Starts tracking a connection (when it opens, not per call).
    pub(crate) fn connection_opened(&self, role: Role, stats: &Arc<Stats>) -> ConnectionMetrics {
        let side = match role {
            Role::Client => Side::Client,
            Role::Server => Side::Server,
        };
        crate::clock::wall_clock().resync();
        self.inner.connections.open(self, side, stats)
    }

    /// Hot path: the client slot of `method` (lock-free lookup), counted as started.
    #[inline]
    pub(crate) fn client_call_started(&self, method: MethodId) -> MethodSlot {
        let slot = self.inner.methods.find(method);
        self.inner.methods.get(slot).client.start();
        slot
    }

    /// Hot path: a client call finished after `elapsed`.
    #[inline]
    pub(crate) fn client_call_finished(&self, slot: MethodSlot, code: Code, elapsed: Duration) {
        let method = self.inner.methods.get(slot);
        method.client.finish(code);
        method.round_trip.record(elapsed);
    }

    /// Hot path: a server call was dispatched; records its queueing time, from `sent_at_ns` (the
    /// client's wall clock, ns since the Unix epoch; 0 means none) to `received_at` (when its
    /// request frame was read).
    #[inline]
    pub(crate) fn server_call_started(&self, slot: MethodSlot, sent_at_ns: u64, received_at: Instant) {
        let method = self.inner.methods.get(slot);
        method.server.start();
        if sent_at_ns != 0 {
            let received_ns = received_unix_ns(received_at);
            // A client clock ahead of ours reads as no queueing at all.
            method.queueing.record_ns(received_ns.saturating_sub(sent_at_ns));
        }
    }

    /// Hot path: a server call finished `elapsed` after its request frame was read.
    #[inline]
    pub(crate) fn server_call_finished(&self, slot: MethodSlot, code: Code, elapsed: Duration) {
        let method = self.inner.methods.get(slot);
        method.server.finish(code);
        method.handling.record(elapsed);
    }
}

/// `received_at` on the wall clock (ns since the Unix epoch). The calls a reader's pass
/// dispatches share that pass's one clock read, so the last conversion is kept per thread and
/// reused while the instant is the same: one conversion per pass, not per call.
#[inline]
fn received_unix_ns(received_at: Instant) -> u64 {
    thread_local! {
        static LAST: std::cell::Cell<Option<(Instant, u64)>> = const { std::cell::Cell::new(None) };
    }
    LAST.with(|last| match last.get() {
        Some((at, ns)) if at == received_at => ns,
        _ => {
            let ns = crate::clock::wall_clock().unix_ns(received_at);
            last.set(Some((received_at, ns)));
            ns
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_to_an_unregistered_method_counts_under_other() {
        let metrics = Metrics::new();
        let said = metrics.register_client_method("/echo.Echo/Say");
        let slot = metrics.client_call_started(MethodId::from_name("/echo.Echo/Shout"));
        metrics.client_call_finished(slot, Code::NotFound, Duration::from_micros(30));
        let slot = metrics.client_call_started(said);
        metrics.client_call_finished(slot, Code::Ok, Duration::from_micros(20));
        let snapshot = metrics.snapshot();
        let other = snapshot.method("other").expect("other");
        assert_eq!(other.client.calls.started, 1);
        assert_eq!(other.client.calls.finished_with(Code::NotFound), 1);
        let say = snapshot.method("/echo.Echo/Say").expect("registered");
        assert!(say.client.registered && !say.server.registered);
        assert_eq!(say.client.calls.finished_with(Code::Ok), 1);
        assert_eq!(say.client.round_trip.count(), 1);
        assert_eq!(say.client.calls.in_flight(), 0);
    }

    #[test]
    fn queueing_is_clamped_at_zero_and_skipped_without_a_timestamp() {
        let metrics = Metrics::new();
        let slot = metrics.register_server_method("/a.B/C");
        metrics.server_call_started(slot, 0, Instant::now());
        metrics.server_call_started(slot, u64::MAX, Instant::now());
        let snapshot = metrics.snapshot();
        let method = snapshot.method("/a.B/C").expect("registered");
        assert_eq!(method.server.calls.started, 2);
        assert_eq!(method.server.queueing.count(), 1, "no timestamp, no value");
        assert_eq!(method.server.queueing.sum(), Duration::ZERO, "a clock ahead of ours reads as zero");
        assert_eq!(method.server.calls.in_flight(), 2);
    }
}
