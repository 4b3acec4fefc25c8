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

mod connections;
mod exposition;
mod histogram;
mod http;
mod registry;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub(crate) use connections::ConnectionMetrics;
pub use connections::ConnectionTotals;
pub use exposition::CONTENT_TYPE;
pub use histogram::HistogramSnapshot;
pub use http::{DEFAULT_METRICS_ADDR, MetricsEndpoint};
/// The `prometheus-client` crate these metrics are encoded with, for [`Metrics::register`].
pub use prometheus_client;
pub use registry::MAX_METHODS;
pub(crate) use registry::{MethodSlot, Side};

use self::connections::Connections;
use self::registry::{MethodTable, SideCalls};
use crate::protocol::Role;
use crate::stats::Stats;
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
    clock: WallClock,
}

/// The wall clock read off the monotonic clock: `wall(t) = offset + (t - base)`, so queueing
/// times cost no clock read per call (the request's read instant is known already). Both clocks
/// run at the same NTP-disciplined rate and differ only after a step of the wall clock, which
/// [`WallClock::resync`] picks up: on every connection open and every snapshot (scrape).
#[derive(Debug)]
struct WallClock {
    base: Instant,
    offset_ns: std::sync::atomic::AtomicU64,
}

impl Default for WallClock {
    fn default() -> Self {
        let clock = Self {
            base: Instant::now(),
            offset_ns: std::sync::atomic::AtomicU64::new(0),
        };
        clock.resync();
        clock
    }
}

impl WallClock {
    fn resync(&self) {
        let now = Instant::now();
        let wall = unix_ns(SystemTime::now());
        let since_base = u64::try_from(now.duration_since(self.base).as_nanos()).unwrap_or(u64::MAX);
        self.offset_ns
            .store(wall.wrapping_sub(since_base), std::sync::atomic::Ordering::Relaxed);
    }

    /// Nanoseconds since the Unix epoch at `at`.
    #[inline]
    fn unix_ns(&self, at: Instant) -> u64 {
        let since_base = u64::try_from(at.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX);
        self.offset_ns.load(std::sync::atomic::Ordering::Relaxed).wrapping_add(since_base)
    }
}

fn unix_ns(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Every metric at one moment: see [`Metrics::snapshot`].
#[derive(Clone, Debug, Default)]
pub struct MetricsSnapshot {
    /// Per method, `other` (calls to unregistered methods) first.
    pub methods: Vec<MethodSnapshot>,
    /// Client connections.
    pub client_connections: ConnectionTotals,
    /// Server connections.
    pub server_connections: ConnectionTotals,
}

impl MetricsSnapshot {
    /// The method with full name `name`, or `"other"` for unregistered methods.
    pub fn method(&self, name: &str) -> Option<&MethodSnapshot> {
        self.methods.iter().find(|m| m.name == name)
    }
}

/// One method's metrics.
#[derive(Clone, Debug, Default)]
pub struct MethodSnapshot {
    /// The full name (`/package.Service/Method`), or `other`.
    pub name: String,
    /// Calls served here.
    pub server: ServerCalls,
    /// Calls made from here.
    pub client: ClientCalls,
}

/// Calls of one method on the server side.
#[derive(Clone, Debug, Default)]
pub struct ServerCalls {
    /// Whether a server registered the method. A side's series are exposed once the method is
    /// registered there or has calls there.
    pub registered: bool,
    /// Calls counted.
    pub calls: CallCounts,
    /// From reading the request frame to queueing the call's final frame, one value per
    /// finished call.
    pub handling: HistogramSnapshot,
    /// From the client's send timestamp (in the call head) to the server reading the request
    /// frame: the client's write queue, the network and the server's socket buffer. One value per
    /// call with a timestamp; across hosts it includes the clocks' offset (negative values count
    /// as zero).
    pub queueing: HistogramSnapshot,
}

/// Calls of one method on the client side.
#[derive(Clone, Debug, Default)]
pub struct ClientCalls {
    /// Whether the method was registered with [`Metrics::register_client_method`].
    pub registered: bool,
    /// Calls counted.
    pub calls: CallCounts,
    /// From starting the call to its outcome, one value per finished call.
    pub round_trip: HistogramSnapshot,
}

/// Call counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallCounts {
    /// Calls started.
    pub started: u64,
    /// Calls finished, by status code (index = the code's wire byte, as [`Code::as_u8`]).
    pub finished: [u64; 17],
}

impl CallCounts {
    /// Calls finished with any code.
    pub fn finished_total(&self) -> u64 {
        self.finished.iter().sum()
    }

    /// Calls finished with `code`.
    pub fn finished_with(&self, code: Code) -> u64 {
        self.finished[code.as_u8() as usize]
    }

    /// Calls started and not yet finished.
    pub fn in_flight(&self) -> u64 {
        self.started.saturating_sub(self.finished_total())
    }

    fn read(calls: &SideCalls) -> Self {
        use std::sync::atomic::Ordering::Relaxed;
        // Finished first: a call counted finished was counted started before.
        let mut finished = [0; 17];
        for (out, counter) in finished.iter_mut().zip(&calls.finished) {
            *out = counter.load(Relaxed);
        }
        Self {
            started: calls.started.load(Relaxed),
            finished,
        }
    }
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
        self.inner.clock.resync();
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
        }
    }

    /// Starts tracking a connection (when it opens, not per call).
    pub(crate) fn connection_opened(&self, role: Role, stats: &Arc<Stats>) -> ConnectionMetrics {
        let side = match role {
            Role::Client => Side::Client,
            Role::Server => Side::Server,
        };
        self.inner.clock.resync();
        self.inner.connections.open(self, side, stats)
    }

    /// Hands the tracker the state of a connection it tracks.
    pub(crate) fn connection_attached(&self, connection: &ConnectionMetrics, shared: &Arc<crate::driver::Shared>) {
        self.inner.connections.attach(connection, shared);
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
            let received_ns = self.inner.clock.unix_ns(received_at);
            // A client clock ahead of ours reads as no queueing at all.
            method.queueing.record_ns(received_ns.saturating_sub(sent_at_ns));
        }
    }

    /// Hot path: a server call finished; `started` is when its request frame was read.
    #[inline]
    pub(crate) fn server_call_finished(&self, slot: MethodSlot, code: Code, started: Instant) {
        let method = self.inner.methods.get(slot);
        method.server.finish(code);
        method.handling.record(started.elapsed());
    }
}

/// Entry points for the criterion benches (`benches/benches/metrics.rs`); not a stable API.
#[doc(hidden)]
pub mod bench {
    use std::time::{Duration, Instant};

    use super::Metrics;
    use crate::status::Code;
    use crate::wire::MethodId;

    /// A standalone latency histogram.
    #[derive(Debug, Default)]
    pub struct Histogram(super::histogram::Histogram);

    impl Histogram {
        /// Records one value.
        pub fn record(&self, value: Duration) {
            self.0.record(value);
        }

        /// Values recorded.
        pub fn count(&self) -> u64 {
            self.0.snapshot().count()
        }
    }

    /// What a client call records: slot lookup, start, finish and round trip (with its clock
    /// read).
    pub fn record_client_call(metrics: &Metrics, method: MethodId, started: Instant) {
        let slot = metrics.client_call_started(method);
        metrics.client_call_finished(slot, Code::Ok, started.elapsed());
    }

    /// What a server call records: start with the queueing time (no clock read) and finish with
    /// the handling time (a monotonic-clock read).
    pub fn record_server_call(metrics: &Metrics, method: &str, sent_at_ns: u64, received_at: Instant) {
        let slot = metrics.inner.methods.find(MethodId::from_name(method));
        metrics.server_call_started(slot, sent_at_ns, received_at);
        metrics.server_call_finished(slot, Code::Ok, received_at);
    }
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
    fn the_wall_clock_read_off_the_monotonic_one_matches_the_system_clock() {
        let clock = WallClock::default();
        std::thread::sleep(Duration::from_millis(20));
        let now = Instant::now();
        let wall = unix_ns(SystemTime::now());
        let derived = clock.unix_ns(now);
        assert!(derived.abs_diff(wall) < 1_000_000, "derived {derived}, system {wall}");
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
