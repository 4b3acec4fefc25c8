//! Price-time priority, partial fills, IOC and market orders, replaces, positions and market data.

use super::*;

fn fills(report: &ExecutionReport) -> Vec<(i64, i64)> {
    report.fills.iter().map(|fill| (fill.price, fill.quantity)).collect()
}

fn book_of(pairs: &[(&str, i64)]) -> Vec<(String, i64)> {
    pairs.iter().map(|(id, leaves)| ((*id).to_owned(), *leaves)).collect()
}

#[test]
fn orders_match_by_price_then_time_at_the_resting_price() {
    let mut h = Harness::new();
    h.sell("S", "high", 10_010, 10);
    h.sell("S", "first", 10_000, 10);
    h.sell("T", "second", 10_000, 10);
    let response = h.buy("B", "1", 10_010, 25);
    assert_eq!(fills(&response), vec![(10_000, 10), (10_000, 10), (10_010, 5)]);
    assert_eq!(
        (status(&response), response.leaves_quantity, response.cumulative_quantity),
        (OrderStatus::Filled, 0, 25)
    );
    assert_eq!(response.fills.iter().map(|f| f.trade_id).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert_eq!(h.book(BookSide::Sell), book_of(&[("high", 5)]));
}

#[test]
fn every_resting_order_that_trades_gets_a_fill_report_for_its_account() {
    let mut h = Harness::new();
    h.sell("S", "s1", 10_000, 10);
    h.sell("T", "t1", 10_005, 10);
    let outcome = h
        .submit(1, new_order(limit("B", "b1", Side::Buy, 10_005, 15)))
        .ok()
        .unwrap_or_default();
    assert_eq!(outcome.reports.len(), 3);
    assert_eq!(outcome.reports[0], outcome.response);
    let passive: Vec<_> = outcome.reports[1..]
        .iter()
        .map(|r| {
            (
                exec_type(r),
                r.account.as_str(),
                r.cl_ord_id.as_str(),
                status(r),
                r.leaves_quantity,
                fills(r),
            )
        })
        .collect();
    assert_eq!(
        passive,
        vec![
            (ExecType::Fill, "S", "s1", OrderStatus::Filled, 0, vec![(10_000, 10)]),
            (ExecType::Fill, "T", "t1", OrderStatus::PartiallyFilled, 5, vec![(10_005, 5)]),
        ]
    );
    assert_eq!(outcome.reports[2].fills[0].trade_id, outcome.response.fills[1].trade_id);
}

#[test]
fn a_partially_filled_limit_order_rests_its_remainder() {
    let mut h = Harness::new();
    h.sell("S", "s1", 10_000, 10);
    let response = h.buy("B", "b1", 10_005, 25);
    assert_eq!(
        (exec_type(&response), status(&response)),
        (ExecType::Ack, OrderStatus::PartiallyFilled)
    );
    assert_eq!((response.leaves_quantity, response.cumulative_quantity), (15, 10));
    assert_eq!(h.book(BookSide::Buy), book_of(&[("b1", 15)]));
    assert_eq!(h.engine.open_orders("B"), 1);
}

#[test]
fn ioc_remainder_is_cancelled() {
    let mut h = Harness::new();
    h.sell("S", "s1", 10_000, 10);
    let response = h.order(ioc("B", "b1", Side::Buy, 10_000, 25));
    assert_eq!((exec_type(&response), status(&response)), (ExecType::Ack, OrderStatus::Cancelled));
    assert_eq!((response.leaves_quantity, response.cumulative_quantity), (0, 10));
    assert_eq!(response.text, "immediate or cancel: the unfilled 15 was cancelled");
    assert!(h.book(BookSide::Buy).is_empty());
    assert_eq!(h.engine.open_orders("B"), 0);
    // An IOC that fills completely is FILLED; one that finds nothing is cancelled whole.
    h.sell("S", "s2", 10_000, 10);
    assert_eq!(status(&h.order(ioc("B", "b2", Side::Buy, 10_000, 10))), OrderStatus::Filled);
    let nothing = h.order(ioc("B", "b3", Side::Buy, 10_000, 10));
    assert_eq!(
        (status(&nothing), nothing.cumulative_quantity, nothing.fills.len()),
        (OrderStatus::Cancelled, 0, 0)
    );
}

#[test]
fn market_order_sweeps_several_levels() {
    let mut h = Harness::new();
    h.buy("B", "b1", 10_000, 10);
    h.buy("B", "b2", 9_995, 10);
    h.buy("C", "c1", 9_990, 10);
    let outcome = h.submit(1, new_order(market("S", "m", Side::Sell, 25))).ok().unwrap_or_default();
    let response = &outcome.response;
    assert_eq!(fills(response), vec![(10_000, 10), (9_995, 10), (9_990, 5)]);
    assert_eq!(
        (status(response), response.price, response.leaves_quantity),
        (OrderStatus::Filled, 0, 0)
    );
    assert_eq!(h.book(BookSide::Buy), book_of(&[("c1", 5)]));
    let update = outcome.market_data.first().cloned().unwrap_or_default();
    assert_eq!(outcome.market_data.len(), 1);
    assert_eq!(
        (
            update.bid_price,
            update.bid_quantity,
            update.last_trade_price,
            update.last_trade_quantity
        ),
        (9_990, 5, 9_990, 5)
    );
    // A market order larger than the book takes it all and cancels the rest.
    let rest = h.order(market("S", "m2", Side::Sell, 20));
    assert_eq!(
        (status(&rest), rest.cumulative_quantity, rest.leaves_quantity),
        (OrderStatus::Cancelled, 5, 0)
    );
}

#[test]
fn market_order_on_an_empty_book_is_acked_and_cancelled() {
    // check refuses it (NO_LIQUIDITY); if the book emptied after check, apply acks and cancels it.
    let mut h = Harness::new();
    let outcome = h.apply(1, new_order(market("A", "m", Side::Buy, 10)));
    let response = &outcome.response;
    assert_eq!((exec_type(response), status(response)), (ExecType::Ack, OrderStatus::Cancelled));
    assert_eq!(
        (response.leaves_quantity, response.cumulative_quantity, response.order_id),
        (0, 0, 1)
    );
    assert_eq!(response.text, "no liquidity: the market order was cancelled");
    assert!(outcome.market_data.is_empty());
    // The order was accepted: its ClOrdID is taken and it can be queried.
    assert_eq!(
        h.refused(new_order(market("A", "m", Side::Buy, 10))),
        RejectReason::DuplicateClOrdId
    );
    assert_eq!(h.engine.query("A", "m").map(|r| status(&r)), Some(OrderStatus::Cancelled));
}

#[test]
fn replace_lowering_quantity_keeps_priority() {
    let mut h = Harness::new();
    h.buy("A", "a1", 10_000, 10);
    h.buy("B", "b1", 10_000, 10);
    let outcome = h.submit(1, replace("A", "a2", "a1", 10_000, 4)).ok().unwrap_or_default();
    assert_eq!(
        (exec_type(&outcome.response), outcome.response.leaves_quantity),
        (ExecType::Replaced, 4)
    );
    assert_eq!(h.book(BookSide::Buy), book_of(&[("a2", 4), ("b1", 10)]));
    assert_eq!(outcome.market_data.first().map(|m| m.bid_quantity), Some(14));
    // Same price and quantity: nothing moves.
    assert!(h.submit(1, replace("A", "a3", "a2", 10_000, 4)).is_ok());
    assert_eq!(h.book(BookSide::Buy), book_of(&[("a3", 4), ("b1", 10)]));
    let fill = h.sell("S", "s1", 10_000, 4);
    assert_eq!(fill.fills.len(), 1);
    assert_eq!(h.engine.query("A", "a1").map(|r| status(&r)), Some(OrderStatus::Filled));
}

#[test]
fn replace_changing_price_loses_priority() {
    let mut h = Harness::new();
    h.buy("A", "a1", 10_000, 10);
    h.buy("B", "b1", 9_995, 10);
    assert!(h.submit(1, replace("A", "a2", "a1", 9_995, 10)).is_ok());
    assert_eq!(h.book(BookSide::Buy), book_of(&[("b1", 10), ("a2", 10)]));
    // Moving back to the old price does not restore the old place either.
    h.buy("C", "c1", 10_000, 10);
    assert!(h.submit(1, replace("A", "a3", "a2", 10_000, 10)).is_ok());
    assert_eq!(h.book(BookSide::Buy), book_of(&[("c1", 10), ("a3", 10), ("b1", 10)]));
}

#[test]
fn replace_raising_quantity_loses_priority() {
    let mut h = Harness::new();
    h.buy("A", "a1", 10_000, 10);
    h.buy("B", "b1", 10_000, 10);
    assert!(h.submit(1, replace("A", "a2", "a1", 10_000, 11)).is_ok());
    assert_eq!(h.book(BookSide::Buy), book_of(&[("b1", 10), ("a2", 11)]));
}

#[test]
fn replace_to_a_crossing_price_trades_at_once() {
    let mut h = Harness::new();
    h.sell("S", "s1", 10_005, 4);
    h.buy("A", "a1", 10_000, 10);
    let outcome = h.submit(1, replace("A", "a2", "a1", 10_005, 10)).ok().unwrap_or_default();
    let response = &outcome.response;
    assert_eq!(
        (exec_type(response), status(response)),
        (ExecType::Replaced, OrderStatus::PartiallyFilled)
    );
    assert_eq!(
        (fills(response), response.leaves_quantity, response.cumulative_quantity),
        (vec![(10_005, 4)], 6, 4)
    );
    assert_eq!(outcome.reports.len(), 2);
    assert_eq!(h.book(BookSide::Buy), book_of(&[("a2", 6)]));
    assert!(h.book(BookSide::Sell).is_empty());
    // Crossing completely fills the replaced order.
    h.sell("S", "s2", 10_010, 20);
    let filled = h.submit(1, replace("A", "a3", "a2", 10_010, 10)).ok().unwrap_or_default().response;
    assert_eq!(
        (status(&filled), filled.leaves_quantity, filled.cumulative_quantity),
        (OrderStatus::Filled, 0, 10)
    );
    assert_eq!(h.engine.open_orders("A"), 0);
}

#[test]
fn positions_follow_fills_and_self_trade_is_allowed() {
    let mut h = Harness::new();
    h.sell("S", "s1", 10_000, 30);
    h.buy("B", "b1", 10_000, 10);
    h.buy("C", "c1", 10_000, 5);
    assert_eq!(
        (
            h.engine.position("S", ACME),
            h.engine.position("B", ACME),
            h.engine.position("C", ACME)
        ),
        (-15, 10, 5)
    );
    // S buys from itself: it trades, and its position does not move.
    let own = h.buy("S", "s2", 10_000, 5);
    assert_eq!(fills(&own), vec![(10_000, 5)]);
    assert_eq!(h.engine.position("S", ACME), -15);
    assert_eq!(h.engine.position("S", BOLT), 0);
    assert_eq!(h.engine.position("nobody", ACME), 0);
    assert_eq!(h.engine.trade_count(), 3);
}

#[test]
fn market_data_shows_the_aggregate_best_levels_and_last_trade() {
    let mut h = Harness::new();
    assert_eq!(
        h.engine.top_of_book(ACME),
        Some(MarketDataUpdate {
            symbol: ACME.into(),
            ..MarketDataUpdate::default()
        })
    );
    assert_eq!(h.engine.top_of_book("NOPE"), None);
    h.buy("A", "a1", 9_990, 10);
    h.buy("B", "b1", 9_990, 7);
    h.buy("B", "b2", 9_980, 100);
    h.sell("S", "s1", 10_010, 4);
    let top = h.engine.top_of_book(ACME).unwrap_or_default();
    assert_eq!(
        (top.bid_price, top.bid_quantity, top.ask_price, top.ask_quantity, top.sequence),
        (9_990, 17, 10_010, 4, 4)
    );
    // A change below the top publishes nothing.
    let deep = h.submit(1, cancel("B", "c", "b2")).ok().unwrap_or_default();
    assert!(deep.market_data.is_empty());
    // A trade at the same price and quantity as the last one is published too.
    h.sell("S", "s2", 9_990, 1);
    let outcome = h
        .submit(1, new_order(limit("T", "t1", Side::Sell, 9_990, 1)))
        .ok()
        .unwrap_or_default();
    assert_eq!(outcome.market_data.len(), 1);
    let update = &outcome.market_data[0];
    assert_eq!(
        (update.bid_quantity, update.last_trade_price, update.last_trade_quantity),
        (15, 9_990, 1)
    );
    assert_eq!(h.engine.top_of_book(ACME).as_ref(), Some(update));
    // Orders on another symbol touch only that symbol's market data.
    let bolt = h
        .submit(
            1,
            new_order(NewOrderRequest {
                symbol: BOLT.into(),
                ..limit("A", "x", Side::Buy, 2_000, 1)
            }),
        )
        .ok();
    assert_eq!(
        bolt.map(|o| o.market_data.iter().map(|m| m.symbol.clone()).collect::<Vec<_>>()),
        Some(vec![BOLT.to_owned()])
    );
}
