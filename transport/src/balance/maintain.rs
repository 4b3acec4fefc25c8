//! The balanced channel's background task: every tick it takes drained connections out of the
//! rotation, starts half-open probes of endpoints whose backoff or ejection is over, refreshes
//! (and every second ages) the latency window hedging reads, and re-resolves on the interval or soon after a connection was
//! lost. It holds the channel weakly and ends when the last clone of the channel is dropped.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::channel::Inner;
use super::endpoint::probe;
use super::picker::random_unit;
use super::resolver::Resolver;

/// How often the resolver is asked again by default (30 s, as gRPC's DNS resolver allows at most).
pub const DEFAULT_RESOLVE_INTERVAL: Duration = Duration::from_secs(30);

/// The background task's tick (50 ms): how soon a drained endpoint leaves the rotation when no
/// call picks it, and the granularity of probes.
const TICK: Duration = Duration::from_millis(50);

/// How often the latency window is aged (1 s): hedging follows the last few seconds.
const AGE_EVERY: Duration = Duration::from_secs(1);

/// Longest a resolution may take (5 s) before the task gives up on it until the next one.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// The shortest time between two resolutions a lost connection asks for (1 s), so a flapping
/// replica cannot make the channel hammer DNS.
const MIN_RESOLVE_GAP: Duration = Duration::from_secs(1);

/// What the task needs besides the endpoints.
#[derive(Debug)]
pub(crate) struct Maintenance {
    resolver: Arc<dyn Resolver>,
    /// Whether to re-resolve at all (a static list does not).
    resolving: bool,
    interval: Duration,
    /// Set by a call that saw a connection lost.
    soon: AtomicBool,
    wake: Arc<Notify>,
}

impl Maintenance {
    pub(crate) fn new(resolver: Arc<dyn Resolver>, resolving: bool, interval: Duration) -> Self {
        Self {
            resolver,
            resolving,
            interval,
            soon: AtomicBool::new(false),
            wake: Arc::new(Notify::new()),
        }
    }

    /// Asks for a resolution soon (a connection was lost).
    pub(crate) fn resolve_soon(&self) {
        if self.resolving && !self.soon.swap(true, Ordering::Relaxed) {
            self.wake.notify_one();
        }
    }
}

/// The task's loop.
pub(crate) async fn run(channel: Weak<Inner>) {
    let start = Instant::now();
    let mut next_resolve = start + interval_of(&channel);
    let mut last_resolve = start;
    let mut next_age = start + AGE_EVERY;
    loop {
        let Some(wake) = channel.upgrade().map(|inner| inner.maintenance.wake.clone()) else {
            return;
        };
        tokio::select! {
            () = tokio::time::sleep(TICK) => {}
            () = wake.notified() => {}
        }
        let Some(inner) = channel.upgrade() else {
            return;
        };
        let now = Instant::now();
        inner.tick_budget_clock(now);
        let mut lost = false;
        for endpoint in inner.set.current().iter() {
            lost |= endpoint.check_connection();
            if endpoint.try_begin_probe(now) {
                tokio::spawn(probe(endpoint.clone(), inner.client.clone(), inner.ejection, random_unit()));
            }
        }
        if lost {
            inner.maintenance.resolve_soon();
        }
        if let Some(quantile) = inner.hedge.and_then(|h| h.quantile()) {
            inner.latencies.refresh(quantile);
        }
        if now >= next_age {
            inner.latencies.age();
            next_age = now + AGE_EVERY;
        }
        let maintenance = &inner.maintenance;
        let asked = maintenance.soon.load(Ordering::Relaxed) && now >= last_resolve + MIN_RESOLVE_GAP;
        if maintenance.resolving && (now >= next_resolve || asked) {
            maintenance.soon.store(false, Ordering::Relaxed);
            match tokio::time::timeout(RESOLVE_TIMEOUT, maintenance.resolver.resolve()).await {
                Ok(Ok(addresses)) if !addresses.is_empty() => {
                    let changes = inner.set.update(&addresses);
                    if changes.added + changes.removed > 0 {
                        tracing::info!(added = changes.added, removed = changes.removed, "resolver changed the endpoints");
                    }
                }
                Ok(Ok(_)) => tracing::warn!("the resolver answered no address; keeping the endpoints"),
                Ok(Err(err)) => tracing::warn!("resolving failed: {err}; keeping the endpoints"),
                Err(_) => tracing::warn!("resolving took over {RESOLVE_TIMEOUT:?}; keeping the endpoints"),
            }
            last_resolve = Instant::now();
            next_resolve = last_resolve + maintenance.interval;
        }
    }
}

fn interval_of(channel: &Weak<Inner>) -> Duration {
    channel
        .upgrade()
        .map_or(DEFAULT_RESOLVE_INTERVAL, |inner| inner.maintenance.interval)
}
