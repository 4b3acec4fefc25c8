//! Instants as nanoseconds on one monotonic scale, so that a call's duration is one
//! subtraction of two `u64`s instead of `Instant - Instant` (which goes through `Duration`'s
//! checked normalisation, about 55 instructions, and 128-bit `as_nanos`).
//!
//! Converting an `Instant` still costs a subtraction; what makes stamps cheap is that most of
//! the instants a call is timed with are shared: every call a reader's pass reads has that
//! pass's one clock read as its `received_at` (the server's start, the client's end), so
//! [`Stamp::of_pass`] converts it once per pass and thread and hands the same stamp to the
//! pass's other calls.

use std::cell::Cell;
use std::time::Instant;

use crate::clock::wall_clock;

/// Nanoseconds since the process's clock base (`clock::wall_clock`), on the monotonic clock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Stamp(u64);

impl Stamp {
    /// The clock's base.
    pub(crate) const ZERO: Self = Self(0);

    /// Now: one clock read.
    #[inline]
    pub(crate) fn now() -> Self {
        Self::of(Instant::now())
    }

    /// `at` on the stamps' scale (one conversion).
    #[inline]
    pub(crate) fn of(at: Instant) -> Self {
        Self(wall_clock().monotonic_ns(at))
    }

    /// `at`, an instant many calls share (a reader pass's clock read): the last one converted
    /// on this thread is kept, so the pass's calls after the first compare instead of
    /// converting.
    #[inline]
    pub(crate) fn of_pass(at: Instant) -> Self {
        thread_local! {
            static LAST: Cell<Option<(Instant, Stamp)>> = const { Cell::new(None) };
        }
        LAST.try_with(|last| match last.get() {
            Some((seen, stamp)) if seen == at => stamp,
            _ => {
                let stamp = Self::of(at);
                last.set(Some((at, stamp)));
                stamp
            }
        })
        .unwrap_or_else(|_| Self::of(at))
    }

    /// Nanoseconds from `earlier` to this stamp; 0 when `earlier` is later (an answer read in a
    /// pass whose clock read came before the call started).
    #[inline]
    pub(crate) fn ns_since(self, earlier: Self) -> u64 {
        self.0.saturating_sub(earlier.0)
    }

    /// This stamp on the wall clock: nanoseconds since the Unix epoch.
    #[inline]
    pub(crate) fn unix_ns(self) -> u64 {
        wall_clock().unix_ns_at(self.0)
    }

    /// A stamp `ns` before this one (tests that record a chosen duration).
    #[cfg(test)]
    pub(crate) fn minus_ns(self, ns: u64) -> Self {
        Self(self.0.saturating_sub(ns))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_duration_between_stamps_matches_the_instants() {
        let start = Instant::now();
        let end = start + Duration::from_nanos(1_234_567_891);
        assert_eq!(Stamp::of(end).ns_since(Stamp::of(start)), 1_234_567_891);
        assert_eq!(
            Stamp::of(start).ns_since(Stamp::of(end)),
            0,
            "an end before the start reads as zero"
        );
    }

    #[test]
    fn a_pass_instant_converts_like_any_other_and_the_next_one_is_not_taken_for_it() {
        let first = Instant::now();
        let second = first + Duration::from_micros(3);
        assert_eq!(Stamp::of_pass(first), Stamp::of(first));
        assert_eq!(Stamp::of_pass(first), Stamp::of(first), "kept");
        assert_eq!(Stamp::of_pass(second), Stamp::of(second));
        assert_eq!(Stamp::of_pass(second).ns_since(Stamp::of_pass(first)), 3_000);
    }

    #[test]
    fn a_stamp_on_the_wall_clock_agrees_with_the_wall_clock() {
        let now = Instant::now();
        // Other tests resync the clock meanwhile (by a few nanoseconds of jitter).
        let diff = Stamp::of(now).unix_ns().abs_diff(wall_clock().unix_ns(now));
        assert!(diff < 1_000_000, "{diff} ns apart");
    }
}
