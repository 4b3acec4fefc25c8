//! The connections a [`super::Metrics`] watches: live ones by their [`Stats`], and the final
//! counters of those that ended, so totals count every connection exactly once.
//!
//! Nothing here runs per call: a connection registers when it opens and moves its counters to
//! the ended totals when its state is dropped, both under one lock that scrapes take too.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use super::Metrics;
use super::registry::Side;
use crate::driver::Shared;
use crate::stats::{Stats, StatsSnapshot};
use crate::sync::lock;

/// Connections by id, and the totals of ended ones, per side.
#[derive(Debug, Default)]
pub(crate) struct Connections {
    next_id: AtomicU64,
    inner: Mutex<Tracked>,
}

#[derive(Debug, Default)]
struct Tracked {
    live: HashMap<u64, Live>,
    ended: [StatsSnapshot; 2],
    opened: [u64; 2],
}

#[derive(Debug)]
struct Live {
    side: Side,
    stats: Arc<Stats>,
    /// For the write queue depth and whether the connection has closed; set once the
    /// connection's state exists.
    shared: Weak<Shared>,
}

/// Totals over the connections of one side, live and ended.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ConnectionTotals {
    /// Connections opened so far.
    pub opened: u64,
    /// Connections open now (not yet closed).
    pub open: u64,
    /// Bytes waiting in write queues now.
    pub write_queue_bytes: u64,
    /// Counters summed over every connection, live and ended (the call counts and
    /// `calls_in_flight` included; the per-method series count calls by method instead).
    pub stats: StatsSnapshot,
}

/// A connection's registration; dropped with the connection's state, it moves the connection's
/// final counters to the ended totals.
#[derive(Debug)]
pub(crate) struct ConnectionMetrics {
    pub(crate) metrics: Metrics,
    id: u64,
}

impl Drop for ConnectionMetrics {
    fn drop(&mut self) {
        let mut tracked = lock(&self.metrics.inner.connections.inner);
        if let Some(live) = tracked.live.remove(&self.id) {
            tracked.ended[index(live.side)].add(&live.stats.snapshot());
        }
    }
}

fn index(side: Side) -> usize {
    match side {
        Side::Client => 0,
        Side::Server => 1,
    }
}

impl Connections {
    /// Starts tracking a connection's counters.
    pub(crate) fn open(&self, metrics: &Metrics, side: Side, stats: &Arc<Stats>) -> ConnectionMetrics {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut tracked = lock(&self.inner);
        tracked.opened[index(side)] += 1;
        tracked.live.insert(
            id,
            Live {
                side,
                stats: stats.clone(),
                shared: Weak::new(),
            },
        );
        ConnectionMetrics {
            metrics: metrics.clone(),
            id,
        }
    }

    /// Gives the tracker the connection's state, once it exists.
    pub(crate) fn attach(&self, connection: &ConnectionMetrics, shared: &Arc<Shared>) {
        if let Some(live) = lock(&self.inner).live.get_mut(&connection.id) {
            live.shared = Arc::downgrade(shared);
        }
    }

    /// Totals for the client side (`[0]`) and the server side (`[1]`).
    pub(crate) fn totals(&self) -> [ConnectionTotals; 2] {
        let (live, mut totals) = {
            let tracked = lock(&self.inner);
            let live: Vec<(Side, Arc<Stats>, Weak<Shared>)> =
                tracked.live.values().map(|l| (l.side, l.stats.clone(), l.shared.clone())).collect();
            let totals = [0, 1].map(|i| ConnectionTotals {
                opened: tracked.opened[i],
                stats: tracked.ended[i].clone(),
                ..ConnectionTotals::default()
            });
            (live, totals)
        };
        // Outside the lock: the last reference to a connection's state may be dropped here, and
        // its registration then takes the lock.
        for (side, stats, shared) in live {
            let total = &mut totals[index(side)];
            total.stats.add(&stats.snapshot());
            if let Some(shared) = shared.upgrade() {
                total.write_queue_bytes += shared.queue.queued_bytes() as u64;
                if shared.closed_status().is_none() {
                    total.open += 1;
                }
            }
        }
        totals
    }
}
