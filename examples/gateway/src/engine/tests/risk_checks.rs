//! Every pre-trade limit from both sides: a value at the limit passes, one beyond fails.

use super::*;

fn bolt(mut request: NewOrderRequest) -> NewOrderRequest {
    request.symbol = BOLT.into();
    request
}

fn passes(h: &mut Harness, request: NewOrderRequest) {
    let command = new_order(request);
    assert_eq!(h.engine.check(1, &command, h.now), Ok(()), "{command:?}");
}

#[test]
fn price_band_edges_pass_and_one_tick_beyond_fails() {
    let mut h = Harness::new();
    passes(&mut h, limit("A", "1", Side::Buy, 11_000, 1));
    passes(&mut h, limit("A", "2", Side::Sell, 9_000, 1));
    assert_eq!(h.refused(new_order(limit("A", "3", Side::Buy, 11_005, 1))), RejectReason::PriceBand);
    assert_eq!(h.refused(new_order(limit("A", "4", Side::Sell, 8_995, 1))), RejectReason::PriceBand);
    let text = h
        .engine
        .check(1, &new_order(limit("A", "5", Side::Buy, 11_005, 1)), h.now)
        .err()
        .map(|r| r.text);
    assert_eq!(
        text.as_deref(),
        Some("price 11005 is outside the 10% band around 10000 (9000..=11000)")
    );
}

#[test]
fn price_band_follows_the_last_trade_price() {
    let mut h = Harness::new();
    h.sell("S", "s1", 10_500, 10);
    h.buy("B", "b1", 10_500, 10);
    passes(&mut h, limit("A", "1", Side::Buy, 11_550, 1));
    assert_eq!(h.refused(new_order(limit("A", "2", Side::Buy, 11_555, 1))), RejectReason::PriceBand);
    passes(&mut h, limit("A", "3", Side::Sell, 9_450, 1));
    assert_eq!(h.refused(new_order(limit("A", "4", Side::Sell, 9_445, 1))), RejectReason::PriceBand);
}

#[test]
fn price_off_the_tick_is_refused() {
    let mut h = Harness::new();
    passes(&mut h, limit("A", "1", Side::Buy, 10_005, 1));
    assert_eq!(
        h.refused(new_order(limit("A", "2", Side::Buy, 10_002, 1))),
        RejectReason::PriceOffTick
    );
    h.buy("A", "3", 10_000, 1);
    assert_eq!(h.refused(replace("A", "4", "3", 10_001, 1)), RejectReason::PriceOffTick);
}

#[test]
fn max_order_quantity_at_the_limit_passes() {
    let mut h = Harness::new();
    passes(&mut h, bolt(limit("A", "1", Side::Buy, 2_000, 1_000)));
    assert_eq!(
        h.refused(new_order(bolt(limit("A", "2", Side::Buy, 2_000, 1_001)))),
        RejectReason::MaxQuantity
    );
    h.order(bolt(limit("A", "3", Side::Buy, 2_000, 10)));
    assert_eq!(h.refused(replace("A", "4", "3", 2_000, 1_001)), RejectReason::MaxQuantity);
}

#[test]
fn max_notional_at_the_limit_passes_and_market_orders_use_the_reference() {
    let mut h = Harness::new();
    passes(&mut h, limit("A", "1", Side::Buy, 10_000, 500));
    assert_eq!(
        h.refused(new_order(limit("A", "2", Side::Buy, 10_000, 501))),
        RejectReason::MaxNotional
    );
    h.sell("S", "s1", 10_500, 400);
    // 500 at the reference 10 000 is exactly the maximum; 501 is over it.
    passes(&mut h, market("A", "3", Side::Buy, 500));
    assert_eq!(h.refused(new_order(market("A", "4", Side::Buy, 501))), RejectReason::MaxNotional);
    h.buy("A", "5", 9_000, 10);
    assert_eq!(h.refused(replace("A", "6", "5", 10_000, 501)), RejectReason::MaxNotional);
}

#[test]
fn max_open_orders_counts_resting_orders_only() {
    let mut h = Harness::new();
    for n in 0..5 {
        h.buy("A", &format!("b{n}"), 9_000, 1);
    }
    assert_eq!(h.engine.open_orders("A"), 5);
    assert_eq!(
        h.refused(new_order(limit("A", "x", Side::Buy, 9_000, 1))),
        RejectReason::MaxOpenOrders
    );
    // IOC and market orders never rest, so they are not counted against the maximum.
    passes(&mut h, ioc("A", "i", Side::Sell, 9_000, 1));
    h.sell("S", "s1", 10_000, 5);
    passes(&mut h, market("A", "m", Side::Buy, 1));
    // Another account has its own count; a cancel makes room.
    passes(&mut h, limit("B", "b", Side::Buy, 9_000, 1));
    assert!(h.submit(1, cancel("A", "c", "b0")).is_ok());
    passes(&mut h, limit("A", "y", Side::Buy, 9_000, 1));
}

#[test]
fn position_limit_counts_open_same_side_quantity() {
    let mut h = Harness::new();
    h.order(bolt(limit("A", "b1", Side::Buy, 2_000, 1_000)));
    h.order(bolt(limit("A", "b2", Side::Buy, 1_990, 990)));
    // Open buys 1 990: 10 more is exactly the limit of 2 000, 11 is over it.
    passes(&mut h, bolt(limit("A", "b3", Side::Buy, 1_980, 10)));
    assert_eq!(
        h.refused(new_order(bolt(limit("A", "b4", Side::Buy, 1_980, 11)))),
        RejectReason::PositionLimit
    );
    // Sells count separately.
    passes(&mut h, bolt(limit("A", "s1", Side::Sell, 2_100, 1_000)));
    // A fill turns open quantity into position: still 1 990 in the worst case.
    h.order(bolt(limit("S", "s2", Side::Sell, 2_000, 1_000)));
    assert_eq!(h.engine.position("A", BOLT), 1_000);
    passes(&mut h, bolt(limit("A", "b5", Side::Buy, 1_980, 10)));
    assert_eq!(
        h.refused(new_order(bolt(limit("A", "b6", Side::Buy, 1_980, 11)))),
        RejectReason::PositionLimit
    );
    // Replacing up counts only the added quantity: 5 more reaches the limit, 6 more is over it.
    h.order(bolt(limit("A", "b7", Side::Buy, 1_980, 5)));
    assert_eq!(h.refused(replace("A", "r1", "b7", 1_980, 11)), RejectReason::PositionLimit);
    assert_eq!(h.engine.check(1, &replace("A", "r2", "b7", 1_980, 10), h.now), Ok(()));
    // Other symbols have their own limit.
    passes(&mut h, limit("A", "a1", Side::Buy, 10_000, 500));
}

#[test]
fn position_limit_never_refuses_a_reducing_order() {
    let mut h = Harness::new();
    h.order(bolt(limit("S", "s1", Side::Sell, 2_000, 1_000)));
    h.order(bolt(limit("A", "b1", Side::Buy, 2_000, 1_000)));
    h.engine.set_limits(Limits {
        position_limit: 500,
        ..limits()
    });
    assert_eq!(
        h.refused(new_order(bolt(limit("A", "b2", Side::Buy, 1_990, 1)))),
        RejectReason::PositionLimit
    );
    passes(&mut h, bolt(limit("A", "s2", Side::Sell, 2_010, 1_000)));
    // Lowering an order's quantity is never refused by the position limit either.
    h.engine.set_limits(limits());
    h.order(bolt(limit("A", "b3", Side::Buy, 1_990, 900)));
    h.engine.set_limits(Limits {
        position_limit: 500,
        ..limits()
    });
    assert_eq!(h.engine.check(1, &replace("A", "r", "b3", 1_990, 800), h.now), Ok(()));
}

#[test]
fn throttle_refills_over_simulated_time() {
    let mut h = Harness::with_limits(Limits {
        orders_per_second: 2,
        burst: 2,
        ..limits()
    });
    h.buy("A", "1", 9_000, 1);
    h.buy("A", "2", 9_000, 1);
    assert_eq!(h.refused(new_order(limit("A", "3", Side::Buy, 9_000, 1))), RejectReason::RateLimit);
    assert_eq!(h.refused(replace("A", "r", "1", 9_000, 2)), RejectReason::RateLimit);
    // Cancels are not throttled; other accounts have their own bucket.
    assert!(h.submit(1, cancel("A", "c", "1")).is_ok());
    h.buy("B", "1", 9_000, 1);
    // Two per second: one token after 500 ms, not before.
    h.advance(Duration::from_millis(499));
    assert_eq!(h.refused(new_order(limit("A", "3", Side::Buy, 9_000, 1))), RejectReason::RateLimit);
    h.advance(Duration::from_millis(1));
    h.buy("A", "3", 9_000, 1);
    assert_eq!(h.refused(new_order(limit("A", "4", Side::Buy, 9_000, 1))), RejectReason::RateLimit);
}

#[test]
fn throttle_is_charged_only_when_check_passes() {
    let mut h = Harness::with_limits(Limits {
        orders_per_second: 1,
        burst: 1,
        ..limits()
    });
    for _ in 0..10 {
        assert_eq!(
            h.refused(new_order(limit("A", "1", Side::Buy, 9_000, 0))),
            RejectReason::InvalidQuantity
        );
        assert_eq!(h.refused(new_order(limit("A", "1", Side::Buy, 20_000, 1))), RejectReason::PriceBand);
    }
    h.buy("A", "1", 9_000, 1);
    assert_eq!(h.refused(new_order(limit("A", "2", Side::Buy, 9_000, 1))), RejectReason::RateLimit);
}

#[test]
fn account_kill_switch_halts_new_orders_and_replaces_but_not_cancels() {
    let mut h = Harness::new();
    h.buy("A", "1", 9_000, 1);
    let outcome = h.submit(0, kill_switch("A", true)).ok();
    assert_eq!(outcome.as_ref().map(|o| exec_type(&o.response)), Some(ExecType::Ack));
    // The working order was cancelled by the switch.
    assert_eq!(outcome.map(|o| o.reports.len()), Some(1));
    assert!(h.engine.is_halted("A"));
    assert_eq!(h.refused(new_order(limit("A", "2", Side::Buy, 9_000, 1))), RejectReason::KillSwitch);
    assert_eq!(h.refused(replace("A", "r", "1", 9_000, 2)), RejectReason::OrderFinal);
    assert_eq!(h.engine.open_orders("A"), 0);
    // Other accounts trade on.
    h.buy("B", "1", 9_000, 1);
    assert!(h.submit(0, kill_switch("A", false)).is_ok());
    h.buy("A", "2", 9_000, 1);
}

#[test]
fn global_kill_switch_halts_every_account() {
    let mut h = Harness::new();
    h.buy("A", "1", 9_000, 1);
    assert!(h.submit(0, kill_switch("", true)).is_ok());
    assert_eq!(h.refused(new_order(limit("A", "2", Side::Buy, 9_000, 1))), RejectReason::KillSwitch);
    assert_eq!(h.refused(new_order(limit("B", "1", Side::Buy, 9_000, 1))), RejectReason::KillSwitch);
    // Engaging the global switch cancelled A's working order.
    assert_eq!(h.refused(cancel("A", "c", "1")), RejectReason::OrderFinal);
    // Releasing an account does not lift the global switch, nor the global one an account's.
    assert!(h.submit(0, kill_switch("B", true)).is_ok());
    assert!(h.submit(0, kill_switch("B", false)).is_ok());
    assert_eq!(h.refused(new_order(limit("B", "1", Side::Buy, 9_000, 1))), RejectReason::KillSwitch);
    assert!(h.submit(0, kill_switch("B", true)).is_ok());
    assert!(h.submit(0, kill_switch("", false)).is_ok());
    h.buy("A", "2", 9_000, 1);
    assert_eq!(h.refused(new_order(limit("B", "1", Side::Buy, 9_000, 1))), RejectReason::KillSwitch);
}

#[test]
fn kill_switch_for_a_too_long_account_is_refused() {
    let mut h = Harness::new();
    assert_eq!(h.refused(kill_switch(&"a".repeat(17), true)), RejectReason::InvalidAccount);
    assert_eq!(h.engine.check(0, &kill_switch(&"a".repeat(16), true), h.now), Ok(()));
}

#[test]
fn identifiers_at_the_length_limit_pass_and_longer_or_empty_fail() {
    let mut h = Harness::new();
    let max = "x".repeat(16);
    let over = "x".repeat(17);
    passes(&mut h, limit(&max, &max, Side::Buy, 9_000, 1));
    assert_eq!(
        h.refused(new_order(limit(&over, "1", Side::Buy, 9_000, 1))),
        RejectReason::InvalidAccount
    );
    assert_eq!(
        h.refused(new_order(limit("", "1", Side::Buy, 9_000, 1))),
        RejectReason::InvalidAccount
    );
    assert_eq!(
        h.refused(new_order(limit("A", &over, Side::Buy, 9_000, 1))),
        RejectReason::InvalidClOrdId
    );
    assert_eq!(
        h.refused(new_order(limit("A", "", Side::Buy, 9_000, 1))),
        RejectReason::InvalidClOrdId
    );
    h.buy("A", "1", 9_000, 1);
    assert_eq!(h.refused(cancel("A", "", "1")), RejectReason::InvalidClOrdId);
    assert_eq!(h.refused(replace("A", &over, "1", 9_000, 2)), RejectReason::InvalidClOrdId);
    assert_eq!(h.refused(cancel("A", "c", &over)), RejectReason::UnknownOrder);
}

#[test]
fn market_order_against_an_empty_side_is_refused_with_no_liquidity() {
    let mut h = Harness::new();
    h.buy("B", "1", 9_000, 10);
    assert_eq!(h.refused(new_order(market("A", "1", Side::Buy, 1))), RejectReason::NoLiquidity);
    passes(&mut h, market("A", "1", Side::Sell, 1));
}
