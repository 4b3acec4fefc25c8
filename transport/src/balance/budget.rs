//! The retry budget: retries (and hedges) may add at most a fraction of the calls of the last
//! few seconds, plus a small floor per second so a quiet channel can still retry. When every
//! endpoint fails, the budget is what keeps a channel from multiplying its load (a retry storm).

use std::time::Duration;

use crate::sync::atomic::{AtomicU64, Ordering};

/// Share of recent calls that may be retried or hedged (10 %).
pub const DEFAULT_RETRY_RATIO: f64 = 0.1;

/// Retries per second allowed whatever the traffic (10): a channel with few calls may still
/// retry each of them.
pub const DEFAULT_MIN_RETRIES_PER_SECOND: u32 = 10;

/// Seconds of history the budget counts (10).
const WINDOW_SECONDS: usize = 10;

/// How many extra attempts a channel may send.
///
/// ```
/// use volley::balance::RetryBudget;
///
/// let budget = RetryBudget::new(0.1, 10);
/// for _ in 0..1000 {
///     budget.deposit(0);
/// }
/// let mut granted = 0;
/// while budget.try_withdraw(0) {
///     granted += 1;
/// }
/// // 10 % of 1000 calls plus 10 a second over the 10-second window.
/// assert_eq!(granted, 100 + 100);
/// ```
#[derive(Debug)]
pub struct RetryBudget {
    ratio: f64,
    min_per_second: u32,
    /// Per one-second slot: which second it holds, its calls and its retries.
    slots: [Slot; WINDOW_SECONDS],
}

#[derive(Debug, Default)]
struct Slot {
    second: AtomicU64,
    calls: AtomicU64,
    retries: AtomicU64,
}

impl Default for RetryBudget {
    fn default() -> Self {
        Self::new(DEFAULT_RETRY_RATIO, DEFAULT_MIN_RETRIES_PER_SECOND)
    }
}

impl RetryBudget {
    /// A budget of `ratio` (0.0 to 1.0) of recent calls plus `min_per_second`.
    pub fn new(ratio: f64, min_per_second: u32) -> Self {
        Self {
            ratio: ratio.clamp(0.0, 1.0),
            min_per_second,
            slots: Default::default(),
        }
    }

    /// The window the budget counts.
    pub fn window() -> Duration {
        Duration::from_secs(WINDOW_SECONDS as u64)
    }

    /// The extra attempts allowed over the window for `calls` calls in it: the bound a test or
    /// an operator can check.
    pub fn allowance(&self, calls: u64) -> u64 {
        (calls as f64 * self.ratio) as u64 + u64::from(self.min_per_second) * WINDOW_SECONDS as u64
    }

    /// Counts a call made in `second` (seconds since the channel started).
    pub fn deposit(&self, second: u64) {
        self.slot(second).calls.fetch_add(1, Ordering::Relaxed);
    }

    /// Takes one extra attempt in `second` if the budget allows.
    pub fn try_withdraw(&self, second: u64) -> bool {
        // Count first, then check the total with ours in it, and take it back if over: two
        // callers racing may both be refused, but never both granted past the allowance.
        let slot = self.slot(second);
        slot.retries.fetch_add(1, Ordering::Relaxed);
        let (calls, retries) = self.totals(second);
        if retries <= self.allowance(calls) {
            return true;
        }
        slot.retries.fetch_sub(1, Ordering::Relaxed);
        false
    }

    /// Calls and retries counted in the window ending at `second`.
    fn totals(&self, second: u64) -> (u64, u64) {
        let oldest = (second + 1).saturating_sub(WINDOW_SECONDS as u64);
        self.slots
            .iter()
            .filter(|slot| (oldest..=second).contains(&slot.second.load(Ordering::Relaxed)))
            .fold((0, 0), |(calls, retries), slot| {
                (
                    calls + slot.calls.load(Ordering::Relaxed),
                    retries + slot.retries.load(Ordering::Relaxed),
                )
            })
    }

    /// The slot of `second`, cleared first if it held an older second. Two threads racing to
    /// clear it may lose a count or two: the budget is an estimate, never a correctness bound.
    fn slot(&self, second: u64) -> &Slot {
        let slot = &self.slots[second as usize % WINDOW_SECONDS];
        let held = slot.second.load(Ordering::Relaxed);
        if held != second
            && slot
                .second
                .compare_exchange(held, second, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            slot.calls.store(0, Ordering::Relaxed);
            slot.retries.store(0, Ordering::Relaxed);
        }
        slot
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_allows_retries_before_any_call() {
        let budget = RetryBudget::new(0.1, 2);
        let granted = (0..100).filter(|_| budget.try_withdraw(0)).count();
        assert_eq!(granted, 20);
    }

    #[test]
    fn calls_older_than_the_window_stop_counting() {
        let budget = RetryBudget::new(0.5, 0);
        for _ in 0..100 {
            budget.deposit(0);
        }
        assert!(budget.try_withdraw(5));
        assert!(!budget.try_withdraw(10), "second 0 left the window");
        for _ in 0..4 {
            budget.deposit(10);
        }
        // 50 % of 4 calls is 2, and the retry of second 5 still counts.
        assert_eq!((0..10).filter(|_| budget.try_withdraw(10)).count(), 1);
    }
}
