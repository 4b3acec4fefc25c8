//! The gateway's own metrics, exposed beside Volley's on one Prometheus endpoint.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::proto::RejectReason;

/// Labels of the accepted-command counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CommandLabel {
    command: &'static str,
}

/// Labels of the reject counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

/// Every metric the gateway records. Cheap to clone (each metric is an `Arc` inside).
#[derive(Clone, Debug)]
pub struct GatewayMetrics {
    accepted: Family<CommandLabel, Counter>,
    rejects: Family<ReasonLabel, Counter>,
    order_to_ack: Histogram,
    fsync: Histogram,
    fills: Counter,
    subscribers: Gauge,
    runaway_halts: Counter,
    /// Volley's transport metrics (calls, latency, connections, write syscalls).
    pub transport: volley::metrics::Metrics,
}

impl Default for GatewayMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl GatewayMetrics {
    /// Empty metrics.
    pub fn new() -> Self {
        // 1 µs to about 1 s in factors of 2.
        let latency_buckets = || exponential_buckets(1e-6, 2.0, 21);
        Self {
            accepted: Family::default(),
            rejects: Family::default(),
            order_to_ack: Histogram::new(latency_buckets()),
            fsync: Histogram::new(latency_buckets()),
            fills: Counter::default(),
            subscribers: Gauge::default(),
            runaway_halts: Counter::default(),
            transport: volley::metrics::Metrics::new(),
        }
    }

    /// A registry holding every gateway metric and Volley's, for the HTTP endpoint.
    pub fn registry(&self) -> Arc<Registry> {
        let mut root = Registry::default();
        self.transport.register(&mut root);
        let registry = root.sub_registry_with_prefix("gateway");
        registry.register(
            "commands_accepted",
            "Commands accepted and journaled, by kind",
            self.accepted.clone(),
        );
        registry.register("rejects", "Commands rejected, by reason", self.rejects.clone());
        registry.register_with_unit(
            "order_to_ack",
            "Time from a command's arrival to its acknowledgement (journal durable included)",
            Unit::Seconds,
            self.order_to_ack.clone(),
        );
        registry.register_with_unit("journal_fsync", "Duration of each journal fsync", Unit::Seconds, self.fsync.clone());
        registry.register("fills", "Fills (one per order side of each trade)", self.fills.clone());
        registry.register("subscribers", "Open report and market-data streams", self.subscribers.clone());
        registry.register(
            "runaway_halts",
            "Accounts halted automatically for sending too many messages in a window (alert on any)",
            self.runaway_halts.clone(),
        );
        Arc::new(root)
    }

    /// A command of `kind` ("new", "cancel", "replace", ...) was accepted.
    pub fn accepted(&self, kind: &'static str) {
        self.accepted.get_or_create(&CommandLabel { command: kind }).inc();
    }

    /// A command was rejected for `reason`.
    pub fn rejected(&self, reason: RejectReason) {
        self.rejects
            .get_or_create(&ReasonLabel {
                reason: reason.as_str_name(),
            })
            .inc();
    }

    /// How long one command took from arrival to acknowledgement.
    pub fn order_to_ack(&self, elapsed: Duration) {
        self.order_to_ack.observe(elapsed.as_secs_f64());
    }

    /// How long one journal fsync took.
    pub fn fsync(&self, elapsed: Duration) {
        self.fsync.observe(elapsed.as_secs_f64());
    }

    /// `n` fills were reported.
    pub fn fills(&self, n: u64) {
        self.fills.inc_by(n);
    }

    /// An account was halted as a runaway.
    pub fn runaway_halt(&self) {
        self.runaway_halts.inc();
    }

    /// How many accounts were halted as runaways.
    pub fn runaway_halts(&self) -> u64 {
        self.runaway_halts.get()
    }

    /// A stream subscriber came (`+1`) or went (`-1`).
    pub fn subscribers(&self, delta: i64) {
        self.subscribers.inc_by(delta);
    }
}
