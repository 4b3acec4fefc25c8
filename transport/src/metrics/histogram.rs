//! A fixed-bucket, log-linear latency histogram: recording is two adds (relaxed atomic ones, or
//! plain ones in a thread's own shard), with no allocation and no lock; quantiles are read from a
//! [`HistogramSnapshot`].
//!
//! Values are nanoseconds. Each power of two is split into [`SUB_BUCKETS`] equal buckets, so a
//! bucket is at most 1/8 of its values wide and a quantile read from it overestimates by at most
//! 12.5 %. Values below 8 ns have a bucket each; values above 2^40 ns (about 18 minutes) share
//! the last bucket.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use super::shards::Count;

/// Linear buckets per power of two (8): a bucket spans at most 1/8 of its values.
pub(crate) const SUB_BUCKETS: usize = 1 << SUB_BITS;
const SUB_BITS: u32 = 3;

/// Largest exponent tracked: values up to 2^40 ns (about 18 minutes) have their own buckets.
const MAX_EXPONENT: u32 = 40;

/// Buckets in a histogram (304): 8 exact ones below 8 ns, then 8 per power of two up to 2^40.
pub(crate) const BUCKETS: usize = ((MAX_EXPONENT - SUB_BITS + 1) as usize) * SUB_BUCKETS;

/// Counts of durations in log-linear buckets.
///
/// A bucket holds the values `v` with `lower < v <= upper` (see [`bucket_upper_ns`]), so that a
/// Prometheus bucket `le="x"` is an exact sum of whole buckets. `C` is what a count is kept in:
/// shared atomics, or a thread's own [`super::shards::SoleCounter`]s.
pub(crate) struct Histogram<C = AtomicU64> {
    buckets: [C; BUCKETS],
    sum_ns: C,
}

impl<C: Count> std::fmt::Debug for Histogram<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let snapshot = self.snapshot();
        f.debug_struct("Histogram")
            .field("count", &snapshot.count())
            .field("sum", &snapshot.sum())
            .finish()
    }
}

impl<C: Count> Default for Histogram<C> {
    fn default() -> Self {
        Self {
            buckets: std::array::from_fn(|_| C::default()),
            sum_ns: C::default(),
        }
    }
}

impl<C: Count> Histogram<C> {
    /// Records one duration.
    #[inline]
    pub(crate) fn record(&self, value: Duration) {
        self.record_ns(u64::try_from(value.as_nanos()).unwrap_or(u64::MAX));
    }

    /// Records one value in nanoseconds.
    #[inline]
    pub(crate) fn record_ns(&self, ns: u64) {
        self.buckets[bucket_index(ns)].add(1);
        self.sum_ns.add(ns);
    }

    /// Reads every bucket. Recordings that race with it may show in the buckets and not yet in
    /// the sum (or the other way round); the count is always the sum of the buckets.
    pub(crate) fn snapshot(&self) -> HistogramSnapshot {
        let mut snapshot = HistogramSnapshot {
            buckets: vec![0; BUCKETS],
            sum_ns: 0,
        };
        snapshot.add(self);
        snapshot
    }
}

/// The bucket holding `ns`: buckets are upper-inclusive, so `ns - 1` is placed log-linearly.
#[inline]
pub(crate) fn bucket_index(ns: u64) -> usize {
    let v = ns.saturating_sub(1);
    if v < SUB_BUCKETS as u64 {
        return v as usize;
    }
    let exponent = 63 - v.leading_zeros(); // >= SUB_BITS
    let group = (exponent - SUB_BITS + 1) as usize;
    let sub = ((v >> (exponent - SUB_BITS)) as usize) - SUB_BUCKETS;
    (group * SUB_BUCKETS + sub).min(BUCKETS - 1)
}

/// The largest value (ns) bucket `index` holds; the last bucket also holds everything above.
pub(crate) fn bucket_upper_ns(index: usize) -> u64 {
    let group = index / SUB_BUCKETS;
    let sub = (index % SUB_BUCKETS) as u64;
    if group == 0 {
        return sub + 1;
    }
    let width = 1u64 << (group - 1);
    (SUB_BUCKETS as u64 + sub) * width + width
}

/// The counts of a latency histogram at one moment, with quantiles.
///
/// ```
/// use std::time::Duration;
/// use volley::metrics::Metrics;
///
/// let metrics = Metrics::new();
/// let snapshot = metrics.snapshot();
/// let other = snapshot.method("other").expect("the slot of unregistered methods");
/// assert_eq!(other.client.round_trip.count(), 0);
/// assert_eq!(other.client.round_trip.quantile(0.99), Duration::ZERO);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HistogramSnapshot {
    buckets: Vec<u64>,
    sum_ns: u64,
}

impl HistogramSnapshot {
    /// Adds what `histogram` holds now (another thread's shard of the same series).
    pub(crate) fn add<C: Count>(&mut self, histogram: &Histogram<C>) {
        if self.buckets.len() != BUCKETS {
            self.buckets = vec![0; BUCKETS];
        }
        for (out, bucket) in self.buckets.iter_mut().zip(&histogram.buckets) {
            *out += bucket.read();
        }
        self.sum_ns = self.sum_ns.wrapping_add(histogram.sum_ns.read());
    }

    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// Sum of the values recorded.
    pub fn sum(&self) -> Duration {
        Duration::from_nanos(self.sum_ns)
    }

    /// Mean of the values recorded (zero when there are none).
    pub fn mean(&self) -> Duration {
        match self.count() {
            0 => Duration::ZERO,
            n => Duration::from_nanos(self.sum_ns / n),
        }
    }

    /// The value at or below which a fraction `q` (0.0 to 1.0: 0.5 for the median, 0.9999 for
    /// p99.99) of the recorded values fall, rounded up to its bucket's upper bound: at most
    /// 12.5 % above the true value. Zero when nothing was recorded.
    pub fn quantile(&self, q: f64) -> Duration {
        let count = self.count();
        if count == 0 {
            return Duration::ZERO;
        }
        let q = if q.is_nan() { 1.0 } else { q.clamp(0.0, 1.0) };
        // The rank of the value sought, 1-based: at least the first value.
        let rank = ((q * count as f64).ceil() as u64).clamp(1, count);
        let mut seen = 0;
        for (index, &n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Duration::from_nanos(bucket_upper_ns(index));
            }
        }
        Duration::from_nanos(bucket_upper_ns(BUCKETS - 1))
    }

    /// How many recorded values are at most `ns` nanoseconds, exactly when `ns` is a bucket
    /// bound (every power of two and every 1.5 × a power of two from 16 ns on are).
    pub(crate) fn count_at_most_ns(&self, ns: u64) -> u64 {
        // Buckets below the one holding `ns + 1` hold only values <= `ns`.
        let end = bucket_index(ns.saturating_add(1));
        self.buckets.iter().take(end).sum()
    }

    pub(crate) fn sum_ns(&self) -> u64 {
        self.sum_ns
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Values from here on (2^40 ns) all land in the last bucket.
    const MAX_TRACKED_NS: u64 = 1 << MAX_EXPONENT;

    #[test]
    fn buckets_are_upper_inclusive_and_contiguous() {
        for index in 0..BUCKETS - 1 {
            let upper = bucket_upper_ns(index);
            assert_eq!(bucket_index(upper), index, "upper bound {upper} of bucket {index}");
            assert_eq!(bucket_index(upper + 1), index + 1, "one past bucket {index}");
        }
        assert_eq!(bucket_index(0), 0);
        assert_eq!(bucket_index(1), 0);
        assert_eq!(bucket_index(u64::MAX), BUCKETS - 1);
        assert_eq!(bucket_upper_ns(BUCKETS - 1), MAX_TRACKED_NS);
    }

    #[test]
    fn bucket_width_is_at_most_an_eighth_of_its_values() {
        for index in SUB_BUCKETS..BUCKETS {
            let lower = bucket_upper_ns(index - 1);
            let width = bucket_upper_ns(index) - lower;
            assert!(width * 8 <= lower, "bucket {index}: width {width}, lower {lower}");
        }
    }

    #[test]
    fn quantiles_of_a_uniform_range_are_within_an_eighth() {
        let histogram: Histogram = Histogram::default();
        for us in 1..=10_000u64 {
            histogram.record(Duration::from_micros(us));
        }
        let snapshot = histogram.snapshot();
        assert_eq!(snapshot.count(), 10_000);
        for (q, expected_us) in [(0.5, 5_000.0), (0.9, 9_000.0), (0.99, 9_900.0), (0.999, 9_990.0), (0.9999, 9_999.0)] {
            let got = snapshot.quantile(q).as_nanos() as f64 / 1_000.0;
            assert!(
                got >= expected_us && got <= expected_us * 1.125,
                "p{q}: got {got} µs, expected {expected_us}"
            );
        }
        assert_eq!(snapshot.quantile(0.0), snapshot.quantile(1e-9), "q = 0 reads the smallest value");
        assert_eq!(snapshot.mean(), Duration::from_nanos(5_000_500));
    }

    #[test]
    fn an_empty_histogram_reads_zero() {
        let snapshot = Histogram::<AtomicU64>::default().snapshot();
        assert_eq!(snapshot.count(), 0);
        assert_eq!(snapshot.quantile(0.5), Duration::ZERO);
        assert_eq!(snapshot.mean(), Duration::ZERO);
    }

    proptest! {
        #[test]
        fn count_at_most_a_power_of_two_is_exact(values in proptest::collection::vec(0u64..1 << 42, 1..200), exponent in 4u32..40) {
            let histogram: Histogram = Histogram::default();
            for &v in &values {
                histogram.record_ns(v);
            }
            let snapshot = histogram.snapshot();
            for bound in [1u64 << exponent, 3u64 << (exponent - 1)] {
                let expected = values.iter().filter(|&&v| v <= bound).count() as u64;
                prop_assert_eq!(snapshot.count_at_most_ns(bound), expected);
            }
            prop_assert_eq!(snapshot.count(), values.len() as u64);
        }

        #[test]
        fn every_value_lands_in_a_bucket_that_bounds_it(v in 1u64..MAX_TRACKED_NS) {
            let index = bucket_index(v);
            prop_assert!(v <= bucket_upper_ns(index));
            prop_assert!(index == 0 || v > bucket_upper_ns(index - 1));
        }
    }
}
