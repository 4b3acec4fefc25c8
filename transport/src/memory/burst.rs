//! Telling the end of a burst of connections from ordinary churn: sans IO, it takes the live
//! connection count and `now`, and says when memory should be returned.

use std::time::{Duration, Instant};

/// Watches a connection count for a fall of at least `min_burst` from its peak that lasts
/// `settle`.
#[derive(Debug)]
pub(crate) struct BurstDetector {
    min_burst: usize,
    settle: Duration,
    /// The most connections live since memory was last returned.
    peak: usize,
    live: usize,
    /// Since when the count has stayed at least `min_burst` under the peak.
    fallen_since: Option<Instant>,
}

/// What a change of the connection count started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Change {
    /// Nothing to do.
    None,
    /// The count has just fallen `min_burst` under its peak: a settle period starts.
    SettleStarted,
}

impl BurstDetector {
    pub(crate) fn new(min_burst: usize, settle: Duration) -> Self {
        Self {
            // A burst of 0 would return memory after every change.
            min_burst: min_burst.max(1),
            settle,
            peak: 0,
            live: 0,
            fallen_since: None,
        }
    }

    /// The count of live connections is now `live`.
    pub(crate) fn handle_live(&mut self, now: Instant, live: usize) -> Change {
        self.live = live;
        self.peak = self.peak.max(live);
        let fallen = self.peak - live >= self.min_burst;
        match (fallen, self.fallen_since) {
            (true, None) => {
                self.fallen_since = Some(now);
                Change::SettleStarted
            }
            // The count came back near its peak: a new burst, or the old one was pausing.
            (false, Some(_)) => {
                self.fallen_since = None;
                Change::None
            }
            _ => Change::None,
        }
    }

    /// When memory is due to be returned, if a settle period is running.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.fallen_since.map(|since| since + self.settle)
    }

    /// Whether memory is to be returned now; if so, the count now is the new peak.
    pub(crate) fn poll_return(&mut self, now: Instant) -> bool {
        match self.deadline() {
            Some(deadline) if deadline <= now => {
                self.fallen_since = None;
                self.peak = self.live;
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SETTLE: Duration = Duration::from_millis(500);

    #[test]
    fn a_burst_that_ends_returns_memory_once_after_the_settle_period() {
        let start = Instant::now();
        let mut detector = BurstDetector::new(100, SETTLE);
        for live in 0..=1_000 {
            assert_eq!(detector.handle_live(start, live), Change::None);
        }
        let closed = start + Duration::from_secs(1);
        let mut changes = Vec::new();
        for live in (2..1_000).rev() {
            changes.push(detector.handle_live(closed, live));
        }
        assert_eq!(changes.iter().filter(|c| **c == Change::SettleStarted).count(), 1);
        assert_eq!(detector.deadline(), Some(closed + SETTLE));
        assert!(!detector.poll_return(closed + SETTLE - Duration::from_millis(1)));
        assert!(detector.poll_return(closed + SETTLE));
        assert_eq!(detector.deadline(), None);
        assert!(!detector.poll_return(closed + SETTLE * 10), "once per burst");
    }

    #[test]
    fn churn_smaller_than_a_burst_never_returns_memory() {
        let start = Instant::now();
        let mut detector = BurstDetector::new(100, SETTLE);
        for step in 0..10_000u32 {
            let now = start + Duration::from_millis(u64::from(step));
            // Between 50 and 149 connections, rising and falling.
            assert_eq!(detector.handle_live(now, 50 + (step as usize * 7) % 100), Change::None);
            assert!(!detector.poll_return(now));
        }
    }

    #[test]
    fn a_new_burst_during_the_settle_period_postpones_the_return() {
        let start = Instant::now();
        let mut detector = BurstDetector::new(100, SETTLE);
        detector.handle_live(start, 1_000);
        assert_eq!(detector.handle_live(start, 10), Change::SettleStarted);
        let again = start + SETTLE / 2;
        assert_eq!(detector.handle_live(again, 950), Change::None);
        assert_eq!(detector.deadline(), None);
        assert!(!detector.poll_return(start + SETTLE));
        let closed = start + SETTLE;
        assert_eq!(detector.handle_live(closed, 3), Change::SettleStarted);
        assert!(detector.poll_return(closed + SETTLE));
    }

    #[test]
    fn after_a_return_the_next_burst_is_measured_from_the_count_then() {
        let start = Instant::now();
        let mut detector = BurstDetector::new(100, SETTLE);
        detector.handle_live(start, 500);
        detector.handle_live(start, 300);
        assert!(detector.poll_return(start + SETTLE));
        // 300 stay open: closing 150 of them is not a burst, closing 250 is.
        let later = start + SETTLE * 2;
        assert_eq!(detector.handle_live(later, 250), Change::None);
        assert_eq!(detector.handle_live(later, 200), Change::SettleStarted);
    }
}
