//! The load signal p2c compares: calls in flight from this channel, a moving average of latency
//! that decays toward zero while the endpoint gets no call, and other clients' calls in flight,
//! which the server reports in its response heads ([`LOAD_METADATA_KEY`]).

use std::time::{Duration, Instant};

use crate::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use crate::wire::Metadata;

/// The response-head metadata key a server may set to its calls in flight, as decimal ASCII
/// (`volley-load: 12`). Reserved under the `volley-` prefix; see `docs/PROTOCOL.md`.
pub const LOAD_METADATA_KEY: &str = "volley-load";

/// The request-head metadata that asks a server for its load report: the key with an empty
/// value, encoded once (no allocation per call).
pub(crate) const LOAD_REQUEST: Metadata = Metadata::from_static(b"\x0bvolley-load\x00\x00");

/// How fast the latency average forgets (1 s): an observation `DEFAULT_DECAY` old weighs 1/e.
pub const DEFAULT_DECAY: Duration = Duration::from_secs(1);

/// The weight of a new latency in the average (0.2): about five calls to follow a change, and
/// one slow call moves it by a fifth of the difference, not all of it, so the noise of a
/// shared machine does not send every call elsewhere.
const SAMPLE_WEIGHT: f64 = 0.2;

/// A sample counts at most this many times the current average (2): one call delayed by a
/// preempted thread moves an endpoint's average by a fifth, not tenfold, while a replica that
/// really is slower raises it by 20 % a call and is avoided within about a dozen calls.
const MAX_SAMPLE_RATIO: f64 = 2.0;

/// The cost of each call waiting on an endpoint still warming up (1 ms).
const UNANSWERED_CALL_COST_NS: f64 = 1e6;

/// How many answers an endpoint gives before its latency counts (4). Until then it is priced
/// like an endpoint that never answered (free while idle, dear per waiting call), and its
/// average starts at the least of these samples. One outlier among a new endpoint's first
/// answers (its task scheduled late on a busy machine: milliseconds against 100 µs) would
/// otherwise price it out until the average decayed, a second or more, with no call to
/// correct it; a replica that really is slow shows it in all four.
const WARMUP_SAMPLES: u32 = 4;

/// How long a server's load report counts (1 s): an older one says nothing about now.
const LOAD_REPORT_LIFETIME_NS: u64 = 1_000_000_000;

/// One endpoint's load. Lock-free: calls on many threads update it with relaxed atomics; a lost
/// race costs one observation, never consistency.
#[derive(Debug)]
pub(crate) struct Load {
    /// Calls from this channel in flight on the endpoint.
    in_flight: AtomicU32,
    /// The latency average in ns, as `f64` bits.
    rtt_ns: AtomicU64,
    /// When `rtt_ns` was last updated, in ns since the channel's epoch.
    stamp_ns: AtomicU64,
    /// Answers observed, counted up to [`WARMUP_SAMPLES`].
    samples: AtomicU32,
    /// Calls in flight on the server that are not ours, from its last report.
    theirs: AtomicU32,
    /// When the server reported it, in ns since the epoch (0: never).
    reported_ns: AtomicU64,
}

impl Load {
    pub(crate) fn new() -> Self {
        Self {
            in_flight: AtomicU32::new(0),
            rtt_ns: AtomicU64::new(0f64.to_bits()),
            stamp_ns: AtomicU64::new(0),
            samples: AtomicU32::new(0),
            theirs: AtomicU32::new(0),
            reported_ns: AtomicU64::new(0),
        }
    }

    pub(crate) fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    pub(crate) fn start(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn finish(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    /// The latency average at `now_ns` (ns since the epoch), decayed toward zero for the time
    /// since it was last updated, so an endpoint p2c stopped picking for being slow is tried
    /// again later. Zero before the first call answered: a new endpoint wins its comparisons
    /// until it has a latency of its own.
    pub(crate) fn rtt_ns(&self, now_ns: u64, decay: Duration) -> f64 {
        let rtt = f64::from_bits(self.rtt_ns.load(Ordering::Relaxed));
        let stamp = self.stamp_ns.load(Ordering::Relaxed);
        if stamp == 0 {
            return rtt;
        }
        let x = now_ns.saturating_sub(stamp) as f64 / decay.as_nanos() as f64;
        // Between busy calls x is tiny, and 1 - x is e^-x within x²/2.
        if x < 1e-4 { rtt * (1.0 - x) } else { rtt * (-x).exp() }
    }

    /// Folds in a call that took `rtt`. During the warm-up the average is the least sample
    /// seen; after it, each sample moves it by [`SAMPLE_WEIGHT`] of the difference, counting
    /// at most [`MAX_SAMPLE_RATIO`] times the average.
    pub(crate) fn observe(&self, now_ns: u64, rtt: Duration, decay: Duration) {
        let sample = rtt.as_nanos() as f64;
        let seen = self.samples.load(Ordering::Relaxed);
        if seen < WARMUP_SAMPLES {
            // Two racing first samples may both store; either is a sample, which is all the
            // warm-up needs. Positive `f64`s order as their bits do.
            self.samples.store(seen + 1, Ordering::Relaxed);
            if seen == 0 {
                self.rtt_ns.store(sample.to_bits(), Ordering::Relaxed);
            } else {
                self.rtt_ns.fetch_min(sample.to_bits(), Ordering::Relaxed);
            }
        } else {
            let current = self.rtt_ns(now_ns, decay);
            let next = current + SAMPLE_WEIGHT * (sample.min(MAX_SAMPLE_RATIO * current) - current);
            self.rtt_ns.store(next.to_bits(), Ordering::Relaxed);
        }
        self.stamp_ns.store(now_ns.max(1), Ordering::Relaxed);
    }

    /// Records the server's report: its calls in flight on its other connections, which are
    /// other clients' (ours on this connection we count ourselves, live).
    pub(crate) fn handle_report(&self, now_ns: u64, in_flight: u32) {
        self.theirs.store(in_flight, Ordering::Relaxed);
        self.reported_ns.store(now_ns.max(1), Ordering::Relaxed);
    }

    /// What p2c compares: latency times the queue a new call would join: ours (the larger of
    /// our unary calls in flight and `open`, our calls open on the connection, streams
    /// included) plus other clients' calls from the server's last report.
    pub(crate) fn cost(&self, now_ns: u64, decay: Duration, open: u32) -> f64 {
        let ours = self.in_flight().max(open);
        let reported_ns = self.reported_ns.load(Ordering::Relaxed);
        let queue = if reported_ns != 0 && now_ns.saturating_sub(reported_ns) < LOAD_REPORT_LIFETIME_NS {
            ours.saturating_add(self.theirs.load(Ordering::Relaxed))
        } else {
            ours
        };
        if self.samples.load(Ordering::Relaxed) < WARMUP_SAMPLES {
            // Warming up: free while idle (a new endpoint gets the next call), then dear for
            // every call waiting on it, so calls do not pile onto one that never answers.
            return f64::from(queue) * UNANSWERED_CALL_COST_NS;
        }
        self.rtt_ns(now_ns, decay) * f64::from(queue + 1)
    }
}

/// Reads a server's load report from response-head metadata, if well formed.
pub(crate) fn parse_report(value: &[u8]) -> Option<u32> {
    if value.is_empty() || value.len() > 10 {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// Monotonic ns since `epoch`.
pub(crate) fn since(epoch: Instant, now: Instant) -> u64 {
    now.saturating_duration_since(epoch).as_nanos() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    const DECAY: Duration = Duration::from_secs(1);

    #[test]
    fn the_first_sample_replaces_the_default_and_the_average_fades_while_idle() {
        let load = Load::new();
        load.observe(1_000, Duration::from_millis(2), DECAY);
        assert!((load.rtt_ns(1_000, DECAY) - 2e6).abs() < 1.0);
        let later = load.rtt_ns(1_000 + 1_000_000_000, DECAY);
        assert!((later - 2e6 / std::f64::consts::E).abs() < 10.0, "{later}");
    }

    /// A load past its warm-up, its average at `rtt`.
    fn warm(rtt: Duration) -> Load {
        let load = Load::new();
        for _ in 0..WARMUP_SAMPLES {
            load.observe(1, rtt, DECAY);
        }
        load
    }

    #[test]
    fn a_warming_endpoint_is_priced_by_its_queue_and_starts_at_its_least_sample() {
        let load = Load::new();
        let samples = [20_000, 100, 130, 110].map(Duration::from_micros);
        for (n, sample) in samples.into_iter().enumerate() {
            assert_eq!(load.cost(1, DECAY, 0), 0.0, "free while idle after {n} samples");
            load.start();
            assert_eq!(load.cost(1, DECAY, 0), 1e6, "dear while waiting after {n} samples");
            load.finish();
            load.observe(1, sample, DECAY);
        }
        assert!((load.rtt_ns(1, DECAY) - 100_000.0).abs() < 1.0, "the 20 ms outlier is forgotten");
        assert!((load.cost(1, DECAY, 0) - 100_000.0).abs() < 1.0);
    }

    #[test]
    fn later_samples_move_the_average_by_a_fifth_and_outliers_count_twice_at_most() {
        let load = warm(Duration::from_micros(100));
        load.observe(1, Duration::from_micros(150), DECAY);
        assert!((load.rtt_ns(1, DECAY) - 110_000.0).abs() < 1.0);
        load.observe(1, Duration::from_millis(50), DECAY);
        assert!((load.rtt_ns(1, DECAY) - 132_000.0).abs() < 1.0, "counted as 220 µs");
    }

    #[test]
    fn cost_grows_with_calls_in_flight_and_a_fresh_server_report() {
        let load = warm(Duration::from_micros(100));
        let idle = load.cost(1, DECAY, 0);
        load.start();
        load.start();
        assert!((load.cost(1, DECAY, 0) - 3.0 * idle).abs() < 1e-6);
        load.handle_report(1, 7);
        assert!((load.cost(1, DECAY, 0) - 10.0 * idle).abs() < 1e-6);
        let stale = 2 + LOAD_REPORT_LIFETIME_NS;
        assert!(load.cost(stale, DECAY, 0) < 3.0 * idle, "a stale report is ignored");
        assert!(
            (load.cost(stale, DECAY, 4) - 5.0 * load.cost(stale, DECAY, 0) / 3.0).abs() < 1e-3,
            "open streams count"
        );
        load.finish();
        load.finish();
        assert_eq!(load.in_flight(), 0);
    }

    #[test]
    fn an_endpoint_that_never_answered_is_free_while_idle_then_dear_per_waiting_call() {
        let load = Load::new();
        assert_eq!(load.cost(1, DECAY, 0), 0.0);
        load.start();
        load.start();
        assert_eq!(load.cost(1, DECAY, 0), 2e6);
    }

    #[test]
    fn the_load_request_is_the_key_with_an_empty_value() {
        assert_eq!(LOAD_REQUEST.get(LOAD_METADATA_KEY), Some(&b""[..]));
        assert_eq!(LOAD_REQUEST.iter().count(), 1);
    }

    #[test]
    fn load_reports_are_parsed_strictly() {
        assert_eq!(parse_report(b"12"), Some(12));
        assert_eq!(parse_report(b""), None);
        assert_eq!(parse_report(b"-1"), None);
        assert_eq!(parse_report(b"99999999999"), None);
        assert_eq!(parse_report(b"1x"), None);
    }
}
