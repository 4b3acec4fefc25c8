//! A token bucket over the caller's clock, for counting what a peer makes us do.

use std::time::{Duration, Instant};

/// A budget of `burst` actions, refilled at `per_second`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateBudget {
    /// Actions allowed at once after a quiet period.
    pub burst: u32,
    /// Actions regained per second.
    pub per_second: u32,
}

/// The state of one [`RateBudget`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bucket {
    budget: RateBudget,
    /// Tokens left, scaled by 1,000,000 so refills at any rate stay exact in integers.
    micro_tokens: u64,
    refilled_at: Option<Instant>,
}

const SCALE: u64 = 1_000_000;

impl Bucket {
    pub(crate) fn new(budget: RateBudget) -> Self {
        Self {
            budget,
            micro_tokens: u64::from(budget.burst) * SCALE,
            refilled_at: None,
        }
    }

    /// Spends one token; `false` when the budget is exhausted.
    pub(crate) fn try_spend(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.micro_tokens >= SCALE {
            self.micro_tokens -= SCALE;
            true
        } else {
            false
        }
    }

    fn refill(&mut self, now: Instant) {
        // The frames of one read share its `now`: after the first, nothing was gained, and the
        // 128-bit arithmetic below is skipped for every other small frame of the read.
        if self.refilled_at == Some(now) {
            return;
        }
        let elapsed = self.refilled_at.map_or(Duration::ZERO, |at| now.saturating_duration_since(at));
        // per_second tokens per second = per_second micro-tokens per microsecond.
        let gained = u64::try_from(elapsed.as_micros())
            .unwrap_or(u64::MAX)
            .saturating_mul(u64::from(self.budget.per_second));
        let cap = u64::from(self.budget.burst) * SCALE;
        self.micro_tokens = self.micro_tokens.saturating_add(gained).min(cap);
        self.refilled_at = Some(now);
    }
}
