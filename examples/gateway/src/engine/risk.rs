//! Pre-trade limits: one function per check, the per-account token-bucket throttle and the kill switches.
//!
//! The checks take plain values and return a [`Reject`] with a text a trader understands; the
//! engine decides which apply to a command. All arithmetic is in `i128` (a product of two
//! `i64` always fits), so no input overflows.

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use super::Reject;
use super::book::BookSide;
use super::orders::Exposure;
use crate::proto::RejectReason;

/// A throttle bucket holds tokens in billionths, so that a refill over any number of nanoseconds is exact.
const NANOS_PER_TOKEN: u64 = 1_000_000_000;
/// The throttle forgets full buckets (they behave like absent ones) once it holds this many, so
/// its memory follows the accounts active within one bucket-refill time, not every account ever seen.
const MIN_PRUNE_AT: usize = 1_024;
/// Strings from the network are quoted in reject texts up to this many characters.
const MAX_SHOWN_CHARS: usize = 32;

/// Which identifier [`check_id`] checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IdKind {
    /// The account.
    Account,
    /// A cl_ord_id.
    ClOrdId,
}

/// An account or cl_ord_id must be 1 to `max_len` bytes long.
pub(crate) fn check_id(kind: IdKind, value: &str, max_len: usize) -> Result<(), Reject> {
    let (reason, name) = match kind {
        IdKind::Account => (RejectReason::InvalidAccount, "account"),
        IdKind::ClOrdId => (RejectReason::InvalidClOrdId, "cl_ord_id"),
    };
    if value.is_empty() {
        return Err(Reject::new(reason, format!("{name} is empty")));
    }
    if value.len() > max_len {
        return Err(Reject::new(
            reason,
            format!("{name} is {} bytes long, the longest accepted is {max_len}", value.len()),
        ));
    }
    Ok(())
}

/// A limit price must be a multiple of the tick size (a tick ≤ 0 counts as 1).
pub(crate) fn check_tick(price: i64, tick_size: i64) -> Result<(), Reject> {
    let tick = tick_size.max(1);
    if price.rem_euclid(tick) != 0 {
        return Err(Reject::new(
            RejectReason::PriceOffTick,
            format!("price {price} is not a multiple of the tick size {tick}"),
        ));
    }
    Ok(())
}

/// A limit price must satisfy `|price - reference| <= reference * band / 100` (rounded down).
pub(crate) fn check_band(price: i64, reference: i64, band_percent: u32) -> Result<(), Reject> {
    let reference_wide = i128::from(reference);
    let deviation = reference_wide * i128::from(band_percent) / 100;
    if (i128::from(price) - reference_wide).abs() > deviation {
        return Err(Reject::new(
            RejectReason::PriceBand,
            format!(
                "price {price} is outside the {band_percent}% band around {reference} ({}..={})",
                reference_wide - deviation,
                reference_wide + deviation
            ),
        ));
    }
    Ok(())
}

/// An order's quantity may be at most `max`.
pub(crate) fn check_max_quantity(quantity: i64, max: i64) -> Result<(), Reject> {
    if quantity > max {
        return Err(Reject::new(
            RejectReason::MaxQuantity,
            format!("quantity {quantity} is over the maximum order quantity {max}"),
        ));
    }
    Ok(())
}

/// An order's `price * quantity` may be at most `max`.
pub(crate) fn check_notional(price: i64, quantity: i64, max: i64) -> Result<(), Reject> {
    let notional = i128::from(price) * i128::from(quantity);
    if notional > i128::from(max) {
        return Err(Reject::new(
            RejectReason::MaxNotional,
            format!("notional {notional} ({quantity} at {price}) is over the maximum notional {max}"),
        ));
    }
    Ok(())
}

/// The account's open notional plus `added` may be at most its credit `limit`.
pub(crate) fn check_credit(open_notional: i128, added: i128, limit: i64) -> Result<(), Reject> {
    let total = open_notional.saturating_add(added);
    if total > i128::from(limit) {
        return Err(Reject::new(
            RejectReason::CreditLimit,
            format!("open notional {open_notional} plus this order's {added} is over the account's credit limit {limit}"),
        ));
    }
    Ok(())
}

/// An account may have at most `max` open orders; one more must still fit.
pub(crate) fn check_open_orders(open: usize, max: u32) -> Result<(), Reject> {
    if open >= max as usize {
        return Err(Reject::new(
            RejectReason::MaxOpenOrders,
            format!("the account has {open} open orders, the most allowed is {max}"),
        ));
    }
    Ok(())
}

/// Adding `quantity` of open orders on `side` must not let the position, if every open order on
/// that side filled, go past `limit` in that direction. An order that reduces the position
/// always passes this check, even if the position is past the limit already.
pub(crate) fn check_position(side: BookSide, exposure: Exposure, quantity: i64, limit: i64, symbol: &str) -> Result<(), Reject> {
    let open = exposure.open(side);
    let worst = i128::from(exposure.position) + i128::from(side.sign()) * (open + i128::from(quantity));
    let over = match side {
        BookSide::Buy => worst > i128::from(limit),
        BookSide::Sell => worst < -i128::from(limit),
    };
    if over {
        let verb = if side == BookSide::Buy { "buying" } else { "selling" };
        return Err(Reject::new(
            RejectReason::PositionLimit,
            format!(
                "{verb} {quantity} could take the position in {} to {worst} (position {}, open {open} on that side), past the limit of {limit}",
                shown(symbol),
                exposure.position
            ),
        ));
    }
    Ok(())
}

/// Whether an order of `quantity` on `side` only reduces the position, even if it and every
/// open order on its side filled: it is on the side opposite the position and they add up to at
/// most the position. The kill switch lets such orders through.
pub(crate) fn reduces_position(side: BookSide, exposure: Exposure, quantity: i64) -> bool {
    let position = i128::from(exposure.position);
    let flattening = match side {
        BookSide::Buy => -position,
        BookSide::Sell => position,
    };
    flattening > 0 && exposure.open(side) + i128::from(quantity) <= flattening
}

/// A string from the network, quoted and cut to a readable length for a reject text.
pub(crate) fn shown(value: &str) -> String {
    let mut chars = value.chars();
    let head: String = chars.by_ref().take(MAX_SHOWN_CHARS).collect();
    if chars.next().is_some() {
        format!("{head:?}…")
    } else {
        format!("{head:?}")
    }
}

/// The kill switches: a global one and one per account. An engaged switch halts new orders
/// and replaces; cancels still pass. Releasing the global switch leaves account switches as they are.
#[derive(Debug, Default)]
pub(crate) struct KillSwitches {
    global: bool,
    accounts: BTreeSet<String>,
    /// The sequence of the last command that set a switch (any).
    sequence: u64,
}

impl KillSwitches {
    /// Engages or releases the switch of `account`, or the global one for an empty account, by
    /// the command `sequence`.
    pub(crate) fn set(&mut self, account: &str, engaged: bool, sequence: u64) {
        self.sequence = self.sequence.max(sequence);
        match (account.is_empty(), engaged) {
            (true, engaged) => self.global = engaged,
            (false, true) => {
                self.accounts.insert(account.to_owned());
            }
            (false, false) => {
                self.accounts.remove(account);
            }
        }
    }

    /// The sequence of the last command that set a switch (0: none).
    pub(crate) fn sequence(&self) -> u64 {
        self.sequence
    }

    /// Whether new orders and replaces of `account` are halted.
    pub(crate) fn is_engaged(&self, account: &str) -> bool {
        self.global || self.accounts.contains(account)
    }

    /// Refuses a new order or replace of a halted account.
    pub(crate) fn check(&self, account: &str) -> Result<(), Reject> {
        if self.global {
            return Err(Reject::new(
                RejectReason::KillSwitch,
                "trading is halted for every account (global kill switch)",
            ));
        }
        if self.accounts.contains(account) {
            return Err(Reject::new(
                RejectReason::KillSwitch,
                "trading is halted for this account (kill switch)",
            ));
        }
        Ok(())
    }
}

/// Messages per account in fixed windows, for the runaway halt.
#[derive(Debug, Default)]
pub(crate) struct Runaway {
    /// Account → (start of its current window, messages in it).
    windows: HashMap<String, (Instant, u32)>,
}

impl Runaway {
    /// Counts one message of `account` at `now`; `true` when this one is the first over `max`
    /// in its window. Windows start at an account's first message after the previous one ended.
    pub(crate) fn count(&mut self, account: &str, now: Instant, window: std::time::Duration, max: u32) -> bool {
        if self.windows.len() >= MIN_PRUNE_AT && !self.windows.contains_key(account) {
            self.windows.retain(|_, (start, _)| now.saturating_duration_since(*start) < window);
        }
        let entry = self.windows.entry(account.to_owned()).or_insert((now, 0));
        if now.saturating_duration_since(entry.0) >= window {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        entry.1 == max.saturating_add(1)
    }
}

/// The order-rate throttle: a token bucket per account, refilled from the caller's clock.
#[derive(Debug)]
pub(crate) struct Throttle {
    buckets: HashMap<String, Bucket>,
    prune_at: usize,
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    /// Tokens in billionths.
    nanotokens: u64,
    /// When `nanotokens` was last brought up to date.
    at: Instant,
}

impl Default for Throttle {
    fn default() -> Self {
        Self {
            buckets: HashMap::new(),
            prune_at: MIN_PRUNE_AT,
        }
    }
}

impl Throttle {
    /// Takes one token from the account's bucket (a new account starts with a full one), or
    /// refuses without taking anything. A `now` earlier than a previous one counts as no time passed.
    pub(crate) fn try_acquire(&mut self, account: &str, now: Instant, per_second: u32, burst: u32) -> Result<(), Reject> {
        // u32::MAX * 10^9 < u64::MAX: no overflow.
        let capacity = u64::from(burst) * NANOS_PER_TOKEN;
        if !self.buckets.contains_key(account) {
            if self.buckets.len() >= self.prune_at {
                self.buckets
                    .retain(|_, bucket| bucket.refilled(now, per_second, capacity).nanotokens < capacity);
                self.prune_at = (self.buckets.len() * 2).max(MIN_PRUNE_AT);
            }
            self.buckets.insert(
                account.to_owned(),
                Bucket {
                    nanotokens: capacity,
                    at: now,
                },
            );
        }
        let Some(bucket) = self.buckets.get_mut(account) else {
            return Ok(());
        };
        *bucket = bucket.refilled(now, per_second, capacity);
        if bucket.nanotokens >= NANOS_PER_TOKEN {
            bucket.nanotokens -= NANOS_PER_TOKEN;
            return Ok(());
        }
        let retry = if per_second == 0 {
            "the bucket never refills (orders_per_second is 0)".to_owned()
        } else {
            let missing = NANOS_PER_TOKEN - bucket.nanotokens;
            format!("retry in {} µs", (missing / u64::from(per_second)).div_ceil(1_000))
        };
        Err(Reject::new(
            RejectReason::RateLimit,
            format!("over {per_second} orders per second (burst {burst}); {retry}"),
        ))
    }

    /// How many accounts the throttle tracks.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.buckets.len()
    }
}

impl Bucket {
    fn refilled(self, now: Instant, per_second: u32, capacity: u64) -> Self {
        let elapsed = now.saturating_duration_since(self.at).as_nanos();
        let added = elapsed.saturating_mul(u128::from(per_second));
        let nanotokens = (u128::from(self.nanotokens).saturating_add(added)).min(u128::from(capacity));
        Self {
            nanotokens: u64::try_from(nanotokens).unwrap_or(capacity),
            at: self.at.max(now),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn reason(result: Result<(), Reject>) -> Option<RejectReason> {
        result.err().map(|reject| reject.reason)
    }

    #[test]
    fn ids_at_the_length_limit_pass_and_one_byte_more_fails() {
        assert_eq!(check_id(IdKind::Account, &"a".repeat(64), 64), Ok(()));
        assert_eq!(
            reason(check_id(IdKind::Account, &"a".repeat(65), 64)),
            Some(RejectReason::InvalidAccount)
        );
        assert_eq!(reason(check_id(IdKind::Account, "", 64)), Some(RejectReason::InvalidAccount));
        assert_eq!(reason(check_id(IdKind::ClOrdId, "", 64)), Some(RejectReason::InvalidClOrdId));
        assert_eq!(
            reason(check_id(IdKind::ClOrdId, &"é".repeat(33), 64)),
            Some(RejectReason::InvalidClOrdId)
        );
    }

    #[test]
    fn tick_accepts_multiples_only() {
        assert_eq!(check_tick(10_005, 5), Ok(()));
        assert_eq!(reason(check_tick(10_003, 5)), Some(RejectReason::PriceOffTick));
        assert_eq!(check_tick(7, 0), Ok(()));
        assert_eq!(check_tick(i64::MAX, -1), Ok(()));
        assert_eq!(reason(check_tick(i64::MAX, 2)), Some(RejectReason::PriceOffTick));
    }

    #[test]
    fn band_edges_pass_and_one_tick_beyond_fails() {
        assert_eq!(check_band(10_500, 10_000, 5), Ok(()));
        assert_eq!(check_band(9_500, 10_000, 5), Ok(()));
        let reject = check_band(10_501, 10_000, 5).err();
        assert_eq!(reject.as_ref().map(|r| r.reason), Some(RejectReason::PriceBand));
        assert_eq!(
            reject.map(|r| r.text),
            Some("price 10501 is outside the 5% band around 10000 (9500..=10500)".to_owned())
        );
        assert_eq!(reason(check_band(9_499, 10_000, 5)), Some(RejectReason::PriceBand));
        assert_eq!(reason(check_band(i64::MAX, i64::MAX / 2, u32::MAX)), None);
        assert_eq!(reason(check_band(i64::MIN, i64::MAX, 100)), Some(RejectReason::PriceBand));
    }

    #[test]
    fn quantity_and_notional_at_the_limit_pass() {
        assert_eq!(check_max_quantity(100, 100), Ok(()));
        assert_eq!(reason(check_max_quantity(101, 100)), Some(RejectReason::MaxQuantity));
        assert_eq!(check_notional(100, 10, 1_000), Ok(()));
        assert_eq!(reason(check_notional(100, 11, 1_000)), Some(RejectReason::MaxNotional));
        assert_eq!(
            reason(check_notional(i64::MAX, i64::MAX, i64::MAX)),
            Some(RejectReason::MaxNotional)
        );
    }

    #[test]
    fn open_orders_allow_up_to_the_maximum() {
        assert_eq!(check_open_orders(2, 3), Ok(()));
        assert_eq!(reason(check_open_orders(3, 3)), Some(RejectReason::MaxOpenOrders));
        assert_eq!(reason(check_open_orders(0, 0)), Some(RejectReason::MaxOpenOrders));
    }

    #[test]
    fn position_counts_open_same_side_quantity_and_allows_reducing() {
        let exposure = Exposure {
            position: 50,
            open_buy: 30,
            open_sell: 500,
        };
        assert_eq!(check_position(BookSide::Buy, exposure, 20, 100, "ACME"), Ok(()));
        assert_eq!(
            reason(check_position(BookSide::Buy, exposure, 21, 100, "ACME")),
            Some(RejectReason::PositionLimit)
        );
        // Selling: 50 - 500 - qty must stay >= -1000.
        assert_eq!(check_position(BookSide::Sell, exposure, 550, 1_000, "ACME"), Ok(()));
        assert_eq!(
            reason(check_position(BookSide::Sell, exposure, 551, 1_000, "ACME")),
            Some(RejectReason::PositionLimit)
        );
        let short_past_limit = Exposure {
            position: -150,
            open_buy: 0,
            open_sell: 0,
        };
        assert_eq!(check_position(BookSide::Buy, short_past_limit, 10, 100, "ACME"), Ok(()));
        let huge = Exposure {
            position: i64::MAX,
            open_buy: i128::from(i64::MAX),
            open_sell: 0,
        };
        assert_eq!(
            reason(check_position(BookSide::Buy, huge, i64::MAX, i64::MAX, "ACME")),
            Some(RejectReason::PositionLimit)
        );
    }

    #[test]
    fn shown_cuts_long_strings() {
        assert_eq!(shown("ACME"), "\"ACME\"");
        assert_eq!(shown(&"x".repeat(1_000)), format!("{:?}…", "x".repeat(MAX_SHOWN_CHARS)));
    }

    #[test]
    fn kill_switch_account_and_global_are_independent() {
        let mut kill = KillSwitches::default();
        kill.set("A", true, 1);
        assert!(kill.is_engaged("A") && !kill.is_engaged("B"));
        kill.set("", true, 1);
        assert_eq!(reason(kill.check("B")), Some(RejectReason::KillSwitch));
        kill.set("", false, 1);
        assert!(kill.is_engaged("A") && !kill.is_engaged("B"));
        kill.set("A", false, 1);
        assert_eq!(kill.check("A"), Ok(()));
    }

    #[test]
    fn throttle_allows_a_burst_then_refills_at_the_rate() {
        let mut throttle = Throttle::default();
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(throttle.try_acquire("A", start, 10, 3), Ok(()));
        }
        assert_eq!(reason(throttle.try_acquire("A", start, 10, 3)), Some(RejectReason::RateLimit));
        // Another account has its own bucket.
        assert_eq!(throttle.try_acquire("B", start, 10, 3), Ok(()));
        // 10 per second: one token after 100 ms, not after 99 ms.
        assert_eq!(
            reason(throttle.try_acquire("A", start + Duration::from_millis(99), 10, 3)),
            Some(RejectReason::RateLimit)
        );
        assert_eq!(throttle.try_acquire("A", start + Duration::from_millis(100), 10, 3), Ok(()));
        assert_eq!(
            reason(throttle.try_acquire("A", start + Duration::from_millis(100), 10, 3)),
            Some(RejectReason::RateLimit)
        );
        // A long pause refills only up to the burst.
        let later = start + Duration::from_secs(3_600);
        for _ in 0..3 {
            assert_eq!(throttle.try_acquire("A", later, 10, 3), Ok(()));
        }
        assert_eq!(reason(throttle.try_acquire("A", later, 10, 3)), Some(RejectReason::RateLimit));
    }

    #[test]
    fn throttle_treats_an_earlier_now_as_no_time_passed() {
        let mut throttle = Throttle::default();
        let start = Instant::now() + Duration::from_secs(10);
        assert_eq!(throttle.try_acquire("A", start, 1, 1), Ok(()));
        assert!(throttle.try_acquire("A", start - Duration::from_secs(5), 1, 1).is_err());
        assert!(throttle.try_acquire("A", start + Duration::from_millis(999), 1, 1).is_err());
        assert_eq!(throttle.try_acquire("A", start + Duration::from_secs(1), 1, 1), Ok(()));
    }

    #[test]
    fn throttle_with_zero_rate_or_burst_refuses_without_panicking() {
        let mut throttle = Throttle::default();
        let now = Instant::now();
        assert_eq!(reason(throttle.try_acquire("A", now, 10, 0)), Some(RejectReason::RateLimit));
        assert_eq!(throttle.try_acquire("B", now, 0, 1), Ok(()));
        assert_eq!(
            reason(throttle.try_acquire("B", now + Duration::from_secs(1_000), 0, 1)),
            Some(RejectReason::RateLimit)
        );
        assert_eq!(throttle.try_acquire("C", now, u32::MAX, u32::MAX), Ok(()));
    }

    #[test]
    fn throttle_forgets_full_buckets_when_it_grows() {
        let mut throttle = Throttle::default();
        let start = Instant::now();
        for n in 0..MIN_PRUNE_AT {
            assert_eq!(throttle.try_acquire(&n.to_string(), start, 1, 5), Ok(()));
        }
        assert_eq!(throttle.len(), MIN_PRUNE_AT);
        // One second later every bucket is full again, so a new account prunes them all.
        assert_eq!(throttle.try_acquire("new", start + Duration::from_secs(1), 1, 5), Ok(()));
        assert_eq!(throttle.len(), 1);
    }
}
