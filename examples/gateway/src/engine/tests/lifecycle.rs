//! ClOrdIDs, cancels, replaces, queries and cancel-on-disconnect.

use super::*;

#[test]
fn duplicate_cl_ord_id_is_refused_and_never_executed_twice() {
    let mut h = Harness::new();
    h.buy("A", "1", 9_000, 10);
    let command = new_order(limit("A", "1", Side::Buy, 9_000, 10));
    assert_eq!(h.refused(command.clone()), RejectReason::DuplicateClOrdId);
    // A duplicate that reached the journal anyway (two in flight at once) is refused by apply.
    let outcome = h.apply(1, command);
    assert_eq!(exec_type(&outcome.response), ExecType::Reject);
    assert_eq!(reject_reason(&outcome.response), RejectReason::DuplicateClOrdId);
    assert_eq!(outcome.reports, vec![outcome.response.clone()]);
    assert!(outcome.market_data.is_empty());
    assert_eq!(h.engine.order_count(), 1);
    assert_eq!(h.engine.top_of_book(ACME).map(|t| t.bid_quantity), Some(10));
    // The same ClOrdID is free for another account.
    h.buy("B", "1", 9_000, 10);
}

#[test]
fn a_duplicate_is_refused_whatever_else_changed() {
    let mut h = Harness::new();
    h.buy("A", "1", 9_000, 10);
    assert!(h.submit(0, kill_switch("", true)).is_ok());
    assert_eq!(
        h.refused(new_order(limit("A", "1", Side::Buy, 9_000, 10))),
        RejectReason::DuplicateClOrdId
    );
}

#[test]
fn rejected_commands_do_not_take_the_cl_ord_id() {
    let mut h = Harness::new();
    assert_eq!(
        h.refused(new_order(limit("A", "1", Side::Buy, 9_000, 0))),
        RejectReason::InvalidQuantity
    );
    let outcome = h.apply(
        1,
        new_order(NewOrderRequest {
            symbol: "NOPE".into(),
            ..limit("A", "1", Side::Buy, 9_000, 1)
        }),
    );
    assert_eq!(reject_reason(&outcome.response), RejectReason::UnknownSymbol);
    h.buy("A", "1", 9_000, 1);
    assert_eq!(h.refused(cancel("A", "c", "nope")), RejectReason::UnknownOrder);
    assert!(h.submit(1, cancel("A", "c", "1")).is_ok());
}

#[test]
fn cancel_and_replace_cl_ord_ids_are_taken_too() {
    let mut h = Harness::new();
    h.buy("A", "1", 9_000, 10);
    h.buy("A", "2", 9_000, 10);
    assert!(h.submit(1, replace("A", "r", "1", 9_000, 5)).is_ok());
    assert!(h.submit(1, cancel("A", "c", "2")).is_ok());
    for id in ["1", "2", "r", "c"] {
        assert_eq!(
            h.refused(new_order(limit("A", id, Side::Buy, 9_000, 1))),
            RejectReason::DuplicateClOrdId,
            "{id}"
        );
    }
    assert_eq!(h.refused(cancel("A", "c", "r")), RejectReason::DuplicateClOrdId);
    assert_eq!(h.refused(replace("A", "r", "r", 9_000, 4)), RejectReason::DuplicateClOrdId);
}

#[test]
fn cancel_and_replace_of_an_unknown_order_are_refused() {
    let mut h = Harness::new();
    h.buy("A", "1", 9_000, 10);
    assert_eq!(h.refused(cancel("A", "c", "2")), RejectReason::UnknownOrder);
    assert_eq!(h.refused(replace("A", "r", "2", 9_000, 5)), RejectReason::UnknownOrder);
    // Another account cannot name A's order.
    assert_eq!(h.refused(cancel("B", "c", "1")), RejectReason::UnknownOrder);
    let outcome = h.apply(1, replace("B", "r", "1", 9_000, 5));
    assert_eq!(reject_reason(&outcome.response), RejectReason::UnknownOrder);
    assert_eq!(outcome.response.orig_cl_ord_id, "1");
}

#[test]
fn cancel_and_replace_of_a_final_order_are_refused_with_order_final() {
    let mut h = Harness::new();
    h.buy("A", "filled", 10_000, 10);
    h.sell("B", "s", 10_000, 10);
    h.buy("A", "cancelled", 9_000, 10);
    assert!(h.submit(1, cancel("A", "c", "cancelled")).is_ok());
    for orig in ["filled", "cancelled", "c"] {
        assert_eq!(h.refused(cancel("A", "c2", orig)), RejectReason::OrderFinal, "{orig}");
        assert_eq!(h.refused(replace("A", "r2", orig, 9_000, 20)), RejectReason::OrderFinal, "{orig}");
    }
    let outcome = h.apply(1, cancel("A", "c2", "filled"));
    assert_eq!(reject_reason(&outcome.response), RejectReason::OrderFinal);
    assert_eq!(outcome.response.text, "order \"filled\" is already filled");
}

#[test]
fn cancel_reports_both_ids_and_frees_the_book() {
    let mut h = Harness::new();
    h.buy("A", "1", 9_000, 10);
    let outcome = h.submit(1, cancel("A", "c", "1")).ok().unwrap_or_default();
    let response = &outcome.response;
    assert_eq!(
        (exec_type(response), status(response)),
        (ExecType::Cancelled, OrderStatus::Cancelled)
    );
    assert_eq!((response.cl_ord_id.as_str(), response.orig_cl_ord_id.as_str()), ("c", "1"));
    assert_eq!(
        (response.leaves_quantity, response.cumulative_quantity, response.order_id),
        (0, 0, 1)
    );
    assert_eq!(outcome.reports, vec![response.clone()]);
    assert_eq!(outcome.market_data.len(), 1);
    assert_eq!(h.engine.top_of_book(ACME).map(|t| (t.bid_price, t.bid_quantity)), Some((0, 0)));
    assert_eq!(h.engine.open_orders("A"), 0);
    // Both ids find the cancelled order.
    for id in ["1", "c"] {
        let report = h.engine.query("A", id).unwrap_or_default();
        assert_eq!(
            (report.order_id, status(&report), report.cl_ord_id.as_str()),
            (1, OrderStatus::Cancelled, "1")
        );
    }
}

#[test]
fn replace_against_fills_sets_the_new_total_quantity() {
    let mut h = Harness::new();
    h.buy("A", "1", 10_000, 100);
    h.sell("B", "s", 10_000, 30);
    let outcome = h.submit(1, replace("A", "r", "1", 10_000, 50)).ok().unwrap_or_default();
    let response = &outcome.response;
    assert_eq!(
        (exec_type(response), status(response)),
        (ExecType::Replaced, OrderStatus::PartiallyFilled)
    );
    assert_eq!((response.leaves_quantity, response.cumulative_quantity), (20, 30));
    assert_eq!((response.cl_ord_id.as_str(), response.orig_cl_ord_id.as_str()), ("r", "1"));
    // At or below the filled quantity the replace is refused, by check and by apply.
    assert_eq!(h.refused(replace("A", "r2", "r", 10_000, 30)), RejectReason::InvalidQuantity);
    assert_eq!(h.refused(replace("A", "r2", "r", 10_000, 1)), RejectReason::InvalidQuantity);
    let outcome = h.apply(1, replace("A", "r2", "r", 10_000, 30));
    assert_eq!(reject_reason(&outcome.response), RejectReason::InvalidQuantity);
    assert_eq!(h.engine.query("A", "r").map(|r| r.leaves_quantity), Some(20));
    // One more than filled leaves one open.
    assert!(h.submit(1, replace("A", "r3", "r", 10_000, 31)).is_ok());
    assert_eq!(h.engine.top_of_book(ACME).map(|t| t.bid_quantity), Some(1));
}

#[test]
fn query_finds_an_order_by_every_cl_ord_id_it_carried() {
    let mut h = Harness::new();
    h.buy("A", "1", 9_000, 10);
    assert!(h.submit(1, replace("A", "r1", "1", 9_005, 10)).is_ok());
    assert!(h.submit(1, replace("A", "r2", "1", 9_010, 8)).is_ok());
    for id in ["1", "r1", "r2"] {
        let report = h.engine.query("A", id).unwrap_or_default();
        assert_eq!(exec_type(&report), ExecType::Ack);
        assert_eq!(
            (report.order_id, report.cl_ord_id.as_str(), report.price, report.leaves_quantity),
            (1, "r2", 9_010, 8)
        );
        assert_eq!((report.symbol.as_str(), report.side, report.sequence), (ACME, Side::Buy as i32, 3));
    }
    assert_eq!(h.engine.query("A", "nope"), None);
    assert_eq!(h.engine.query("B", "1"), None);
}

#[test]
fn cancel_on_disconnect_of_one_session_leaves_other_sessions_orders() {
    let mut h = Harness::new();
    let cod = |cl_ord_id: &str, price| NewOrderRequest {
        cancel_on_disconnect: true,
        ..limit("A", cl_ord_id, Side::Buy, price, 10)
    };
    assert!(h.submit(1, new_order(cod("s1-cod", 9_010))).is_ok());
    assert!(h.submit(1, new_order(limit("A", "s1-keep", Side::Buy, 9_000, 10))).is_ok());
    assert!(h.submit(2, new_order(cod("s2-cod", 9_005))).is_ok());
    // A COD order that already filled is not cancelled again.
    assert!(
        h.submit(
            1,
            new_order(NewOrderRequest {
                cancel_on_disconnect: true,
                ..limit("B", "s1-filled", Side::Sell, 9_900, 5)
            })
        )
        .is_ok()
    );
    assert!(h.submit(3, new_order(limit("C", "taker", Side::Buy, 9_900, 5))).is_ok());

    let outcome = h.apply(1, session_closed());
    assert_eq!(outcome.response.account, "");
    assert_eq!(outcome.response.text, "session 1 closed: 1 cancel-on-disconnect orders cancelled");
    assert_eq!(outcome.reports.len(), 1);
    let report = &outcome.reports[0];
    assert_eq!(
        (exec_type(report), status(report), report.cl_ord_id.as_str()),
        (ExecType::Cancelled, OrderStatus::Cancelled, "s1-cod")
    );
    // The best bid moved from 9 010 to 9 005.
    assert_eq!(
        outcome
            .market_data
            .iter()
            .map(|m| (m.bid_price, m.bid_quantity))
            .collect::<Vec<_>>(),
        vec![(9_005, 10)]
    );
    assert_eq!(h.book(BookSide::Buy), vec![("s2-cod".to_owned(), 10), ("s1-keep".to_owned(), 10)]);
    // Closing it again, or a session without orders, cancels nothing and publishes nothing.
    let again = h.apply(1, session_closed());
    assert!(again.reports.is_empty() && again.market_data.is_empty());
}

#[test]
fn sessions_reset_cancels_cancel_on_disconnect_orders_of_every_session() {
    let mut h = Harness::new();
    let cod = |account: &str, side, price| NewOrderRequest {
        cancel_on_disconnect: true,
        ..limit(account, "o", side, price, 10)
    };
    assert!(h.submit(7, new_order(cod("A", Side::Buy, 9_000))).is_ok());
    assert!(h.submit(8, new_order(cod("B", Side::Sell, 11_000))).is_ok());
    assert!(
        h.submit(
            8,
            new_order(NewOrderRequest {
                symbol: BOLT.into(),
                ..cod("C", Side::Sell, 2_100)
            })
        )
        .is_ok()
    );
    assert!(h.submit(9, new_order(limit("D", "o", Side::Buy, 9_000, 10))).is_ok());
    let outcome = h.apply(0, sessions_reset());
    assert_eq!(outcome.response.text, "sessions reset: 3 cancel-on-disconnect orders cancelled");
    assert_eq!(
        outcome.reports.iter().map(|r| r.account.as_str()).collect::<Vec<_>>(),
        vec!["A", "B", "C"]
    );
    assert_eq!(
        outcome.market_data.iter().map(|m| m.symbol.as_str()).collect::<Vec<_>>(),
        vec![ACME, BOLT]
    );
    assert_eq!(h.book(BookSide::Buy), vec![("o".to_owned(), 10)]);
    assert_eq!(h.engine.open_orders("D"), 1);
}

#[test]
fn a_partially_filled_order_cancelled_on_disconnect_keeps_its_fills() {
    let mut h = Harness::new();
    assert!(
        h.submit(
            4,
            new_order(NewOrderRequest {
                cancel_on_disconnect: true,
                ..limit("A", "1", Side::Sell, 10_000, 10)
            })
        )
        .is_ok()
    );
    h.buy("B", "1", 10_000, 4);
    let outcome = h.apply(4, session_closed());
    let report = outcome.reports.first().cloned().unwrap_or_default();
    assert_eq!(
        (report.leaves_quantity, report.cumulative_quantity, report.text.as_str()),
        (0, 4, "cancelled on disconnect")
    );
    assert_eq!(h.engine.position("A", ACME), -4);
}

#[test]
fn engaging_a_kill_switch_cancels_the_accounts_working_orders_only() {
    let mut h = Harness::new();
    h.buy("A", "1", 9_000, 10);
    h.buy("B", "1", 9_000, 10);
    let outcome = h.apply(0, kill_switch("A", true));
    assert_eq!(
        outcome.response.text,
        "kill switch for account \"A\" engaged, 1 working orders cancelled"
    );
    assert_eq!(outcome.reports.len(), 1);
    assert_eq!(
        (exec_type(&outcome.reports[0]), outcome.reports[0].cl_ord_id.as_str()),
        (ExecType::Cancelled, "1")
    );
    assert_eq!(outcome.reports[0].account, "A");
    assert_eq!(outcome.market_data.len(), 1);
    assert_eq!((h.engine.open_orders("A"), h.engine.open_orders("B")), (0, 1));
    let released = h.apply(0, kill_switch("A", false));
    assert_eq!(released.response.text, "kill switch for account \"A\" released");
    assert!(released.reports.is_empty());
}
