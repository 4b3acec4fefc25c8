//! The connections a [`super::Metrics`] watches: live ones by their [`Stats`], and the final
//! counters of those that ended, so totals count every connection exactly once.
//!
//! Nothing here runs per call: a connection registers when it opens and moves its counters to
//! the ended totals when its state is dropped, both under one lock that scrapes take too.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::Metrics;
use super::registry::Side;
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
    /// Published by the driver: counters, write queue depth and whether the connection ended.
    stats: Arc<Stats>,
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
            },
        );
        ConnectionMetrics {
            metrics: metrics.clone(),
            id,
        }
    }

    /// Totals for the client side (`[0]`) and the server side (`[1]`).
    pub(crate) fn totals(&self) -> [ConnectionTotals; 2] {
        let (live, mut totals) = {
            let tracked = lock(&self.inner);
            let live: Vec<(Side, Arc<Stats>)> = tracked.live.values().map(|l| (l.side, l.stats.clone())).collect();
            let totals = [0, 1].map(|i| ConnectionTotals {
                opened: tracked.opened[i],
                stats: tracked.ended[i].clone(),
                ..ConnectionTotals::default()
            });
            (live, totals)
        };
        // Outside the lock: reading counters needs no lock of the tracker's, nor any of the
        // connection's.
        for (side, stats) in live {
            let total = &mut totals[index(side)];
            let snapshot = stats.snapshot();
            total.write_queue_bytes += snapshot.write_queue_bytes;
            total.stats.add(&snapshot);
            if !stats.is_closed() {
                total.open += 1;
            }
        }
        totals
    }
}
