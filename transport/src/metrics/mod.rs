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
//! each call adds to counters its thread owns (a shard of the `Metrics` per thread, summed at a
//! snapshot), with plain adds rather than locked ones. Without the feature none of this is
//! compiled.
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
mod local;
mod pass;
mod registry;
pub(crate) mod shards;
mod snapshot;
mod stamp;

use std::sync::Arc;
use std::time::Instant;

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
pub(crate) use stamp::Stamp;

use self::connections::Connections;
use self::local::{Shard, with_shard};
use self::pass::{Answer, with_waiting};
use self::registry::MethodTable;
use self::shards::ShardPool;
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
    /// Each recording thread's counters (`local.rs`); `methods` holds what was recorded
    /// without one.
    shards: ShardPool<Shard>,
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

    /// Every metric now: the shared counters plus every thread's shard. Exact for every call
    /// recorded before it (on this thread, or on a thread that handed its calls' end over to
    /// this one: a joined thread, an awaited call); calls ending meanwhile may show in part.
    pub fn snapshot(&self) -> MetricsSnapshot {
        crate::clock::wall_clock().resync();
        // Answers this thread gave in a reader pass it is still dispatching (`pass.rs`).
        self.record_waiting_answers(Stamp::now);
        let shards = self.inner.shards.shards();
        let methods = self
            .inner
            .methods
            .iter_slots()
            .map(|(slot, m)| {
                let mut server = ServerCalls {
                    registered: m.server.registered.load(std::sync::atomic::Ordering::Relaxed),
                    handling: m.handling.snapshot(),
                    queueing: m.queueing.snapshot(),
                    ..ServerCalls::default()
                };
                let mut client = ClientCalls {
                    registered: m.client.registered.load(std::sync::atomic::Ordering::Relaxed),
                    round_trip: m.round_trip.snapshot(),
                    ..ClientCalls::default()
                };
                // Finished calls first, then started ones: a call seen finished was started.
                server.calls.add_finished(&m.server.calls);
                client.calls.add_finished(&m.client.calls);
                for shard in &shards {
                    if let Some(own) = shard.server_read(slot) {
                        server.calls.add_finished(&own.calls);
                        server.handling.add(&own.handling);
                        server.queueing.add(&own.queueing);
                    }
                    if let Some(own) = shard.client_read(slot) {
                        client.calls.add_finished(&own.calls);
                        client.round_trip.add(&own.round_trip);
                    }
                }
                server.calls.add_started(&m.server.calls);
                client.calls.add_started(&m.client.calls);
                for shard in &shards {
                    if let Some(own) = shard.server_read(slot) {
                        server.calls.add_started(&own.calls);
                    }
                    if let Some(own) = shard.client_read(slot) {
                        client.calls.add_started(&own.calls);
                    }
                }
                MethodSnapshot {
                    name: m.name.clone(),
                    server,
                    client,
                }
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
        if !with_shard(&self.inner, |shard| shard.client(slot).calls.start()) {
            self.inner.methods.get(slot).client.calls.start();
        }
        slot
    }

    /// Hot path: a client call finished `elapsed_ns` after it started.
    #[inline]
    pub(crate) fn client_call_finished(&self, slot: MethodSlot, code: Code, elapsed_ns: u64) {
        let recorded = with_shard(&self.inner, |shard| {
            let own = shard.client(slot);
            own.calls.finish(code);
            own.round_trip.record_ns(elapsed_ns);
        });
        if !recorded {
            let method = self.inner.methods.get(slot);
            method.client.calls.finish(code);
            method.round_trip.record_ns(elapsed_ns);
        }
    }

    /// Hot path: a server call was dispatched; records its queueing time, from `sent_at_ns` (the
    /// client's wall clock, ns since the Unix epoch; 0 means none) to `received_at` (when its
    /// request frame was read). Returns `received_at` as a stamp, the start of its handling
    /// time: converted once per reader pass, which every call of the pass shares.
    #[inline]
    pub(crate) fn server_call_started(&self, slot: MethodSlot, sent_at_ns: u64, received_at: Instant) -> Stamp {
        let received = Stamp::of_pass(received_at);
        // A client clock ahead of ours reads as no queueing at all.
        let queued_ns = (sent_at_ns != 0).then(|| received.unix_ns().saturating_sub(sent_at_ns));
        let recorded = with_shard(&self.inner, |shard| {
            let own = shard.server(slot);
            own.calls.start();
            if let Some(ns) = queued_ns {
                own.queueing.record_ns(ns);
            }
        });
        if !recorded {
            let method = self.inner.methods.get(slot);
            method.server.calls.start();
            if let Some(ns) = queued_ns {
                method.queueing.record_ns(ns);
            }
        }
        received
    }

    /// Hot path: a server call that started at `started` (its request's read) was answered now.
    /// While this thread dispatches a reader pass's calls ([`Metrics::begin_pass_answers`]) the
    /// answer waits for the clock read that ends the dispatch, when the pass's answers leave
    /// together; elsewhere it reads the clock.
    #[inline]
    pub(crate) fn server_call_finished(&self, slot: MethodSlot, code: Code, started: Stamp) {
        let key = self.key();
        let waits = with_waiting(|waiting| {
            if !waiting.is_for(key) {
                return false;
            }
            let answer = Answer { slot, code, started };
            if !waiting.push(answer) {
                // Full: the 64 waiting share a clock read now, and this one starts the next lot.
                self.record_waiting(waiting, Stamp::now());
                waiting.push(answer);
            }
            true
        });
        if waits != Some(true) {
            self.record_server_finished(slot, code, Stamp::now().ns_since(started));
        }
    }

    /// A server call finished after `elapsed_ns` of handling.
    #[inline]
    fn record_server_finished(&self, slot: MethodSlot, code: Code, elapsed_ns: u64) {
        let recorded = with_shard(&self.inner, |shard| {
            let own = shard.server(slot);
            own.calls.finish(code);
            own.handling.record_ns(elapsed_ns);
        });
        if !recorded {
            let method = self.inner.methods.get(slot);
            method.server.calls.finish(code);
            method.handling.record_ns(elapsed_ns);
        }
    }

    /// This `Metrics`' identity on the hot path: its state's address (never 0).
    #[inline]
    fn key(&self) -> usize {
        Arc::as_ptr(&self.inner) as usize
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_call_to_an_unregistered_method_counts_under_other() {
        let metrics = Metrics::new();
        let said = metrics.register_client_method("/echo.Echo/Say");
        let slot = metrics.client_call_started(MethodId::from_name("/echo.Echo/Shout"));
        metrics.client_call_finished(slot, Code::NotFound, 30_000);
        let slot = metrics.client_call_started(said);
        metrics.client_call_finished(slot, Code::Ok, 20_000);
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
    fn a_snapshot_after_calls_on_threads_that_ended_sees_every_call() {
        let metrics = Metrics::new();
        let say = metrics.register_client_method("/echo.Echo/Say");
        let server_slot = metrics.register_server_method("/echo.Echo/Say");
        const THREADS: u64 = 4;
        const CALLS: u64 = 1_000;
        for round in 0..2 {
            let threads: Vec<_> = (0..THREADS)
                .map(|_| {
                    let metrics = metrics.clone();
                    std::thread::spawn(move || {
                        for _ in 0..CALLS {
                            let slot = metrics.client_call_started(say);
                            metrics.client_call_finished(slot, Code::Ok, 20_000);
                            metrics.server_call_started(server_slot, 0, Instant::now());
                            metrics.server_call_finished(server_slot, Code::Internal, Stamp::now().minus_ns(10_000));
                        }
                    })
                })
                .collect();
            for thread in threads {
                thread.join().expect("recorder");
            }
            let n = THREADS * CALLS * (round + 1);
            let snapshot = metrics.snapshot();
            let method = snapshot.method("/echo.Echo/Say").expect("registered");
            assert_eq!(method.client.calls.started, n);
            assert_eq!(method.client.calls.finished_with(Code::Ok), n);
            assert_eq!(method.client.round_trip.count(), n);
            assert_eq!(method.client.round_trip.sum(), Duration::from_micros(20) * n as u32);
            assert_eq!(method.server.calls.started, n);
            assert_eq!(method.server.calls.finished_with(Code::Internal), n);
            assert_eq!(method.server.handling.count(), n);
            assert_eq!(method.server.queueing.count(), 0, "no timestamps sent");
        }
        assert!(
            metrics.inner.shards.shards().len() <= 2 * THREADS as usize,
            "threads that ended hand their shards to the next ones"
        );
    }

    #[test]
    fn a_call_recorded_while_its_thread_exits_is_counted() {
        /// Records a client call when its thread's storage is torn down, possibly after the
        /// thread's shards were handed back.
        struct RecordOnExit(Metrics, MethodId);
        impl Drop for RecordOnExit {
            fn drop(&mut self) {
                let slot = self.0.client_call_started(self.1);
                self.0.client_call_finished(slot, Code::Cancelled, 5_000);
            }
        }
        thread_local! {
            static ON_EXIT: std::cell::RefCell<Option<RecordOnExit>> = const { std::cell::RefCell::new(None) };
        }
        let metrics = Metrics::new();
        let say = metrics.register_client_method("/echo.Echo/Say");
        let recorder = metrics.clone();
        std::thread::spawn(move || {
            // Registered before the shard's storage, so torn down after it.
            ON_EXIT.with(|slot| *slot.borrow_mut() = Some(RecordOnExit(recorder.clone(), say)));
            let slot = recorder.client_call_started(say);
            recorder.client_call_finished(slot, Code::Ok, 5_000);
        })
        .join()
        .expect("recorder");
        let snapshot = metrics.snapshot();
        let method = snapshot.method("/echo.Echo/Say").expect("registered");
        assert_eq!(method.client.calls.started, 2);
        assert_eq!(method.client.calls.finished_with(Code::Ok), 1);
        assert_eq!(method.client.calls.finished_with(Code::Cancelled), 1);
        assert_eq!(method.client.round_trip.count(), 2);
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

    #[test]
    fn answers_given_in_a_pass_are_recorded_at_its_end_with_one_end_for_all() {
        let metrics = Metrics::new();
        let slot = metrics.register_server_method("/a.B/C");
        let received = Instant::now();
        assert!(metrics.begin_pass_answers());
        assert!(!metrics.begin_pass_answers(), "a pass already dispatching keeps its end");
        // More than a list holds: the 65th answer records the first 64.
        const ANSWERS: u64 = 100;
        for _ in 0..ANSWERS {
            let started = metrics.server_call_started(slot, 0, received);
            metrics.server_call_finished(slot, Code::Ok, started);
        }
        let other = metrics.clone();
        let elsewhere = std::thread::spawn(move || other.snapshot()).join().expect("scraper");
        let seen = elsewhere.method("/a.B/C").expect("registered").server.calls.finished_with(Code::Ok);
        assert_eq!(seen, 64, "another thread sees the answers recorded so far, not those waiting");
        let here = metrics.snapshot();
        let method = here.method("/a.B/C").expect("registered");
        assert_eq!(
            method.server.calls.finished_with(Code::Ok),
            ANSWERS,
            "this thread's snapshot records what waits"
        );
        assert_eq!(method.server.handling.count(), ANSWERS);
        metrics.end_pass_answers(false);
        // After the pass an answer records at once.
        let started = metrics.server_call_started(slot, 0, received);
        metrics.server_call_finished(slot, Code::Internal, started);
        let other = metrics.clone();
        let elsewhere = std::thread::spawn(move || other.snapshot()).join().expect("scraper");
        let method = elsewhere.method("/a.B/C").expect("registered");
        assert_eq!(method.server.calls.finished_with(Code::Ok), ANSWERS);
        assert_eq!(method.server.calls.finished_with(Code::Internal), 1);
        assert_eq!(method.server.handling.count(), ANSWERS + 1);
        assert_eq!(method.server.calls.in_flight(), 0);
    }

    #[test]
    fn a_pass_ended_by_a_panic_records_its_answers_without_reading_the_clock() {
        let metrics = Metrics::new();
        let slot = metrics.register_server_method("/a.B/C");
        let first = Instant::now();
        let second = first + Duration::from_micros(40);
        assert!(metrics.begin_pass_answers());
        for received in [first, second] {
            let started = metrics.server_call_started(slot, 0, received);
            metrics.server_call_finished(slot, Code::Ok, started);
        }
        metrics.end_pass_answers(true);
        let snapshot = metrics.snapshot();
        let method = snapshot.method("/a.B/C").expect("registered");
        assert_eq!(method.server.handling.count(), 2);
        assert_eq!(
            method.server.handling.sum(),
            Duration::from_micros(40),
            "both end at the latest start"
        );
        assert!(metrics.begin_pass_answers(), "the pass's end was released");
        metrics.end_pass_answers(false);
    }

    #[test]
    fn a_pass_holds_only_the_answers_of_its_own_metrics() {
        let metrics = Metrics::new();
        let other = Metrics::new();
        let slot = metrics.register_server_method("/a.B/C");
        let other_slot = other.register_server_method("/a.B/C");
        assert!(metrics.begin_pass_answers());
        assert!(!other.begin_pass_answers(), "one pass at a time per thread");
        let started = other.server_call_started(other_slot, 0, Instant::now());
        other.server_call_finished(other_slot, Code::Ok, started);
        let seen = std::thread::spawn(move || other.snapshot()).join().expect("scraper");
        assert_eq!(
            seen.method("/a.B/C").expect("registered").server.handling.count(),
            1,
            "recorded at once"
        );
        let started = metrics.server_call_started(slot, 0, Instant::now());
        metrics.server_call_finished(slot, Code::Ok, started);
        metrics.end_pass_answers(false);
        let snapshot = metrics.snapshot();
        assert_eq!(snapshot.method("/a.B/C").expect("registered").server.handling.count(), 1);
    }
}
