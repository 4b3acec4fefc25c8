//! Entry points for the criterion benches (`benches/benches/metrics.rs`); not a stable API.

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
    metrics.client_call_finished(slot, Code::Ok, u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX));
}

/// What a server call records: start with the queueing time (no clock read) and finish with
/// the handling time (a monotonic-clock read).
pub fn record_server_call(metrics: &Metrics, method: &str, sent_at_ns: u64, received_at: Instant) {
    let slot = metrics.inner.methods.find(MethodId::from_name(method));
    let started = metrics.server_call_started(slot, sent_at_ns, received_at);
    metrics.server_call_finished(slot, Code::Ok, started);
}
