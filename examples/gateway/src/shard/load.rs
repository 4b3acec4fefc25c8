//! The load generator over a sharded gateway: for each shard, the usual load run
//! ([`crate::load::run`]) over that shard's symbols only, all shards at once.
//!
//! Every account (`acct-0`, `acct-1`, ...) trades on every shard, on one connection per shard
//! (its session there), so account-wide limits are exercised across shards. Each shard's run
//! checks every acknowledgement as a single gateway's does: the response matches the command,
//! and every accepted command appears exactly once on the account's report stream of that
//! shard. A shard's run gets a share of a fixed `rate` in proportion to its symbols, and its own
//! ClOrdID prefix, since the shards cannot see each other's ids.

use hdrhistogram::Histogram;
use volley::net::Address;

use super::plan::{ShardError, ShardId, ShardPlan};
use crate::load::{LoadError, LoadOptions, LoadReport};

/// A sharded load run that could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShardedLoadError {
    /// The plan and the addresses do not fit (one address per shard, in shard order).
    #[error("the plan has {shards} shards but {addresses} addresses were given")]
    Addresses {
        /// Shards in the plan.
        shards: u32,
        /// Addresses given.
        addresses: usize,
    },
    /// The plan could not give a shard its symbols.
    #[error(transparent)]
    Plan(#[from] ShardError),
    /// One shard's run could not start (the shard is down or refused the subscriptions).
    #[error("{shard}: {source}")]
    Shard {
        /// The shard.
        shard: ShardId,
        /// Why its run could not start.
        source: LoadError,
    },
    /// A shard's run task ended without a report (it panicked).
    #[error("{shard}: the load task failed: {reason}")]
    Task {
        /// The shard.
        shard: ShardId,
        /// The join error.
        reason: String,
    },
}

/// What each shard's load run saw.
#[derive(Debug)]
pub struct ShardedLoadReport {
    /// One report per shard, in shard order.
    pub shards: Vec<(ShardId, LoadReport)>,
}

impl ShardedLoadReport {
    /// Whether every shard's checks passed (no mismatched, lost or duplicated acknowledgement).
    pub fn is_consistent(&self) -> bool {
        self.shards.iter().all(|(_, report)| report.is_consistent())
    }

    /// The report of `shard`.
    pub fn shard(&self, shard: ShardId) -> Option<&LoadReport> {
        self.shards.iter().find(|(id, _)| *id == shard).map(|(_, report)| report)
    }

    /// New orders acknowledged per second, over every shard.
    pub fn orders_per_second(&self) -> f64 {
        self.shards.iter().map(|(_, report)| report.orders_per_second()).sum()
    }

    /// The order-to-acknowledgement latency of accepted new orders over every shard, in nanoseconds.
    pub fn order_latency(&self) -> Histogram<u64> {
        let mut total = Histogram::new_with_bounds(1, 60_000_000_000, 3).unwrap_or_else(|_| unreachable!("valid bounds"));
        for (_, report) in &self.shards {
            // Same bounds as the load's own histograms: adding cannot fail.
            let _ = total.add(&report.order_latency);
        }
        total
    }

    /// A human summary: each shard's, then the totals.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        for (shard, report) in &self.shards {
            out.push_str(&format!("── {shard}\n{}\n", report.summary()));
        }
        let latency = self.order_latency();
        let quantile = |q| std::time::Duration::from_nanos(latency.value_at_quantile(q));
        out.push_str(&format!(
            "── all {} shards: {:.0} new orders/s acknowledged; order-to-ack p50 {:.1?}, p99 {:.1?}; {} errors; checks {}",
            self.shards.len(),
            self.orders_per_second(),
            quantile(0.5),
            quantile(0.99),
            self.shards.iter().map(|(_, report)| report.errors).sum::<u64>(),
            if self.is_consistent() { "passed" } else { "FAILED" }
        ));
        out
    }
}

/// Runs `options` against every shard at once, each shard's run over its own symbols:
/// `addresses[k]` is shard `k`'s order-entry address.
pub async fn run_sharded(plan: &ShardPlan, addresses: &[Address], options: LoadOptions) -> Result<ShardedLoadReport, ShardedLoadError> {
    if addresses.len() != plan.shards() as usize {
        return Err(ShardedLoadError::Addresses {
            shards: plan.shards(),
            addresses: addresses.len(),
        });
    }
    let total_symbols = options.symbols.len().max(1) as u64;
    let mut runs = Vec::with_capacity(addresses.len());
    for (shard, address) in plan.shard_ids().zip(addresses) {
        let names = plan.symbols_of(shard)?;
        let symbols: Vec<_> = options.symbols.iter().filter(|s| names.contains(&s.name)).cloned().collect();
        let share = symbols.len() as u64;
        let shard_options = LoadOptions {
            rate: options.rate.map(|rate| (rate * share / total_symbols).max(1)),
            seed: options.seed ^ (u64::from(shard.0) << 40),
            run_id: format!("{}s{}", options.run_id, shard.0),
            symbols,
            // One bar for several runs would be drawn over; the summary says it all.
            progress: false,
            ..options.clone()
        };
        runs.push((shard, tokio::spawn(crate::load::run(address.clone(), shard_options))));
    }
    let mut shards = Vec::with_capacity(runs.len());
    for (shard, run) in runs {
        let report = run
            .await
            .map_err(|err| ShardedLoadError::Task {
                shard,
                reason: err.to_string(),
            })?
            .map_err(|source| ShardedLoadError::Shard { shard, source })?;
        shards.push((shard, report));
    }
    Ok(ShardedLoadReport { shards })
}
