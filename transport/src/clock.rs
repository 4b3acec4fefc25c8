//! The wall clock read off the monotonic one: a client stamps each call head with its send time,
//! and a server computes a call's queueing time from it, without reading the wall clock per call.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The wall clock read off the monotonic clock: `wall(t) = offset + (t - base)`, so queueing
/// times cost no clock read per call (the request's read instant is known already). Both clocks
/// run at the same NTP-disciplined rate and differ only after a step of the wall clock, which
/// [`WallClock::resync`] picks up: on every connection open and every snapshot (scrape).
#[derive(Debug)]
pub(crate) struct WallClock {
    base: Instant,
    offset_ns: AtomicU64,
}

impl Default for WallClock {
    fn default() -> Self {
        let clock = Self {
            base: Instant::now(),
            offset_ns: AtomicU64::new(0),
        };
        clock.resync();
        clock
    }
}

impl WallClock {
    pub(crate) fn resync(&self) {
        let now = Instant::now();
        let wall = unix_ns(SystemTime::now());
        let since_base = u64::try_from(now.duration_since(self.base).as_nanos()).unwrap_or(u64::MAX);
        self.offset_ns.store(wall.wrapping_sub(since_base), Ordering::Relaxed);
    }

    /// Nanoseconds since the Unix epoch at `at`.
    #[inline]
    pub(crate) fn unix_ns(&self, at: Instant) -> u64 {
        let since_base = u64::try_from(at.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX);
        self.offset_ns.load(Ordering::Relaxed).wrapping_add(since_base)
    }

    /// Nanoseconds from this clock's base (its creation) to `at` on the monotonic clock, 0 for
    /// an earlier instant: one scale on which a duration is a subtraction (metrics' stamps).
    /// Without `as_nanos`' 128-bit arithmetic: 2^64 ns is 584 years.
    #[cfg(feature = "metrics")]
    #[inline]
    pub(crate) fn monotonic_ns(&self, at: Instant) -> u64 {
        let since_base = at.saturating_duration_since(self.base);
        since_base
            .as_secs()
            .wrapping_mul(1_000_000_000)
            .wrapping_add(u64::from(since_base.subsec_nanos()))
    }

    /// Nanoseconds since the Unix epoch at `monotonic_ns` (a [`WallClock::monotonic_ns`]).
    #[cfg(feature = "metrics")]
    #[inline]
    pub(crate) fn unix_ns_at(&self, monotonic_ns: u64) -> u64 {
        self.offset_ns.load(Ordering::Relaxed).wrapping_add(monotonic_ns)
    }
}

/// The process's wall clock: resynced on every connection open (and every metrics snapshot).
pub(crate) fn wall_clock() -> &'static WallClock {
    static CLOCK: OnceLock<WallClock> = OnceLock::new();
    CLOCK.get_or_init(WallClock::default)
}

fn unix_ns(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_wall_clock_read_off_the_monotonic_one_matches_the_system_clock() {
        let clock = WallClock::default();
        std::thread::sleep(Duration::from_millis(20));
        let now = Instant::now();
        let wall = unix_ns(SystemTime::now());
        let derived = clock.unix_ns(now);
        assert!(derived.abs_diff(wall) < 1_000_000, "derived {derived}, system {wall}");
    }
}
