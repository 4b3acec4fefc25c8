//! Hedging: when an idempotent call has not answered after a delay (by default the channel's
//! recent p95 latency), a second copy goes to another endpoint; the first answer wins and the
//! other call is cancelled. [`LatencyWindow`] keeps the recent latencies the delay comes from.

use std::time::Duration;

use crate::sync::atomic::{AtomicU64, Ordering};

/// The default hedging percentile (p95): about one call in twenty gets a second copy at most,
/// and the retry budget caps that share anyway.
pub const DEFAULT_HEDGE_PERCENTILE: f64 = 0.95;

/// No hedge fires sooner than this (100 µs): below it the second copy costs more than it saves.
pub const DEFAULT_MIN_HEDGE_DELAY: Duration = Duration::from_micros(100);

/// Latencies a window needs before a percentile delay is trusted (50); until then no hedging.
const MIN_SAMPLES: u64 = 50;

/// Sub-buckets per power of two: latencies are kept within 1/8 (12.5 %).
const SUB_BUCKETS: usize = 8;

/// Powers of two covered, from 1 ns to about 2^40 ns (18 minutes).
const OCTAVES: usize = 40;

const BUCKETS: usize = OCTAVES * SUB_BUCKETS;

/// When the second copy of an idempotent call goes out.
///
/// ```
/// use std::time::Duration;
/// use volley::balance::HedgePolicy;
///
/// let fixed = HedgePolicy::after(Duration::from_millis(5));
/// let adaptive = HedgePolicy::percentile(0.99);
/// assert_ne!(fixed, adaptive);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HedgePolicy {
    delay: HedgeDelay,
    min_delay: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum HedgeDelay {
    Fixed(Duration),
    Percentile(f64),
}

impl Default for HedgePolicy {
    fn default() -> Self {
        Self::percentile(DEFAULT_HEDGE_PERCENTILE)
    }
}

impl HedgePolicy {
    /// Hedge after a fixed delay.
    pub fn after(delay: Duration) -> Self {
        Self {
            delay: HedgeDelay::Fixed(delay),
            min_delay: Duration::ZERO,
        }
    }

    /// Hedge after the channel's recent latency at `quantile` (0.5 to 0.999), but no sooner than
    /// [`DEFAULT_MIN_HEDGE_DELAY`].
    pub fn percentile(quantile: f64) -> Self {
        Self {
            delay: HedgeDelay::Percentile(quantile.clamp(0.5, 0.999)),
            min_delay: DEFAULT_MIN_HEDGE_DELAY,
        }
    }

    /// Never hedge sooner than `delay`.
    #[must_use]
    pub fn min_delay(mut self, delay: Duration) -> Self {
        self.min_delay = delay;
        self
    }

    /// The delay now, given the channel's latencies; `None` while a percentile is not yet known.
    pub(crate) fn delay(&self, window: &LatencyWindow) -> Option<Duration> {
        let delay = match self.delay {
            HedgeDelay::Fixed(delay) => delay,
            HedgeDelay::Percentile(_) => window.cached()?,
        };
        Some(delay.max(self.min_delay))
    }

    /// The quantile to keep cached, if the policy uses one.
    pub(crate) fn quantile(&self) -> Option<f64> {
        match self.delay {
            HedgeDelay::Fixed(_) => None,
            HedgeDelay::Percentile(q) => Some(q),
        }
    }
}

/// Recent call latencies in log-linear buckets (within 12.5 %), recorded with relaxed atomics.
/// [`LatencyWindow::refresh`] recomputes the cached quantile the call path reads;
/// [`LatencyWindow::age`] halves every count, so old latencies fade.
#[derive(Debug)]
pub(crate) struct LatencyWindow {
    buckets: Box<[AtomicU64]>,
    /// The cached quantile in ns; 0 while unknown.
    cached_ns: AtomicU64,
}

impl LatencyWindow {
    pub(crate) fn new() -> Self {
        Self {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            cached_ns: AtomicU64::new(0),
        }
    }

    pub(crate) fn record(&self, latency: Duration) {
        let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.buckets[bucket_of(ns)].fetch_add(1, Ordering::Relaxed);
    }

    /// The cached quantile, if enough latencies were seen.
    pub(crate) fn cached(&self) -> Option<Duration> {
        match self.cached_ns.load(Ordering::Relaxed) {
            0 => None,
            ns => Some(Duration::from_nanos(ns)),
        }
    }

    /// The latency at `quantile` now (the upper bound of its bucket), if enough were seen.
    pub(crate) fn quantile(&self, quantile: f64) -> Option<Duration> {
        let counts: Vec<u64> = self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        if total < MIN_SAMPLES {
            return None;
        }
        let rank = ((total as f64) * quantile).ceil() as u64;
        let mut seen = 0;
        for (index, count) in counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Some(Duration::from_nanos(upper_bound(index)));
            }
        }
        None
    }

    /// Recomputes the cached quantile. Too few samples keeps the last known delay rather than
    /// turning hedging off.
    pub(crate) fn refresh(&self, quantile: f64) {
        if let Some(latency) = self.quantile(quantile) {
            self.cached_ns.store((latency.as_nanos() as u64).max(1), Ordering::Relaxed);
        }
    }

    /// Halves every count.
    pub(crate) fn age(&self) {
        for bucket in self.buckets.iter() {
            let count = bucket.load(Ordering::Relaxed);
            bucket.store(count / 2, Ordering::Relaxed);
        }
    }
}

/// The bucket of a latency of `ns` nanoseconds.
fn bucket_of(ns: u64) -> usize {
    let ns = ns.max(1);
    let octave = 63 - ns.leading_zeros() as usize;
    // The three bits below the leading one choose the sub-bucket.
    let sub = if octave >= 3 {
        ((ns >> (octave - 3)) & 0x7) as usize
    } else {
        ((ns << (3 - octave)) & 0x7) as usize
    };
    (octave * SUB_BUCKETS + sub).min(BUCKETS - 1)
}

/// The largest latency in bucket `index`, in ns.
fn upper_bound(index: usize) -> u64 {
    let octave = index / SUB_BUCKETS;
    let sub = (index % SUB_BUCKETS) as u64;
    let base = 1u64 << octave;
    base + (base * (sub + 1)) / SUB_BUCKETS as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_hold_latencies_within_an_eighth() {
        for ns in [1u64, 7, 8, 9, 100, 1_000, 123_456, 9_999_999, 1 << 39] {
            let upper = upper_bound(bucket_of(ns));
            assert!(upper >= ns, "{ns} in a bucket ending at {upper}");
            assert!(upper as f64 <= ns as f64 * 1.25 + 1.0, "{ns} in a bucket ending at {upper}");
        }
    }

    #[test]
    fn the_quantile_follows_the_recorded_latencies_and_fades() {
        let window = LatencyWindow::new();
        assert_eq!(window.quantile(0.95), None, "too few samples");
        for _ in 0..95 {
            window.record(Duration::from_micros(100));
        }
        for _ in 0..5 {
            window.record(Duration::from_millis(50));
        }
        let p95 = window.quantile(0.95).unwrap();
        assert!(p95 >= Duration::from_micros(100) && p95 < Duration::from_micros(125), "{p95:?}");
        let p99 = window.quantile(0.99).unwrap();
        assert!(p99 >= Duration::from_millis(50), "{p99:?}");
        window.refresh(0.95);
        assert_eq!(window.cached(), Some(p95));
        window.age();
        window.refresh(0.95);
        assert_eq!(window.cached(), Some(p95), "too few samples keeps the last delay");
    }

    #[test]
    fn a_fixed_policy_ignores_the_window_and_a_percentile_waits_for_it() {
        let window = LatencyWindow::new();
        assert_eq!(
            HedgePolicy::after(Duration::from_millis(3)).delay(&window),
            Some(Duration::from_millis(3))
        );
        assert_eq!(HedgePolicy::percentile(0.95).delay(&window), None);
    }
}
