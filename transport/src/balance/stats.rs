//! Per-endpoint counters (calls, errors, latency, retries, hedges, ejections) and the snapshot
//! [`crate::balance::BalancedChannel::endpoints`] returns; with feature `metrics` they also go
//! into the Prometheus exposition.

use std::time::Duration;

use crate::net::Address;
use crate::sync::atomic::{AtomicU64, Ordering};

use super::lifecycle::Phase;

/// Counters one endpoint adds to with relaxed atomics.
#[derive(Debug, Default)]
pub(crate) struct EndpointCounters {
    calls: AtomicU64,
    errors: AtomicU64,
    latency_ns: AtomicU64,
    retries: AtomicU64,
    hedges: AtomicU64,
}

/// How an attempt was sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Attempt {
    First,
    Retry,
    Hedge,
}

impl EndpointCounters {
    pub(crate) fn started(&self, attempt: Attempt) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        match attempt {
            Attempt::First => {}
            Attempt::Retry => {
                self.retries.fetch_add(1, Ordering::Relaxed);
            }
            Attempt::Hedge => {
                self.hedges.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    pub(crate) fn finished(&self, ok: bool, elapsed: Duration) {
        if !ok {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        self.latency_ns.fetch_add(elapsed.as_nanos() as u64, Ordering::Relaxed);
    }
}

/// What an endpoint of a balanced channel has done, and where it stands.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct EndpointSnapshot {
    /// The endpoint's address.
    pub address: Address,
    /// Its lifecycle phase now.
    pub phase: Phase,
    /// Calls from this channel in flight on it now.
    pub in_flight: u32,
    /// Attempts sent to it (first attempts, retries and hedges).
    pub calls: u64,
    /// Attempts that failed (any status but OK, including cancelled hedges).
    pub errors: u64,
    /// Total time of the finished attempts.
    pub latency: Duration,
    /// The latency average the balancer compares now (decayed while the endpoint is idle;
    /// zero before its first answer).
    pub latency_average: Duration,
    /// Retries sent to it.
    pub retries: u64,
    /// Hedged copies sent to it.
    pub hedges: u64,
    /// Times it was ejected.
    pub ejections: u64,
}

impl EndpointSnapshot {
    pub(crate) fn read(
        address: Address,
        phase: Phase,
        in_flight: u32,
        ejections: u64,
        latency_average: Duration,
        counters: &EndpointCounters,
    ) -> Self {
        Self {
            address,
            phase,
            in_flight,
            calls: counters.calls.load(Ordering::Relaxed),
            errors: counters.errors.load(Ordering::Relaxed),
            latency: Duration::from_nanos(counters.latency_ns.load(Ordering::Relaxed)),
            latency_average,
            retries: counters.retries.load(Ordering::Relaxed),
            hedges: counters.hedges.load(Ordering::Relaxed),
            ejections,
        }
    }
}
