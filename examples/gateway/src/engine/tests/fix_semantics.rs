//! The order semantics traders expect (FIX Appendix D), one test per row of the table in
//! docs/gateway.md that the other test files do not already cover.

use super::*;

/// The gateway's live path: a possible resend of a known order is answered with its state;
/// anything else goes through `check` and `apply`.
fn live(h: &mut Harness, command: Command) -> ExecutionReport {
    if let Some(report) = h.engine.resend_answer(&command) {
        return report;
    }
    match h.submit(1, command.clone()) {
        Ok(outcome) => outcome.response,
        Err(reject) => reject.into_report(&command),
    }
}

fn resend(request: NewOrderRequest) -> Command {
    Command::NewOrder(NewOrderRequest {
        possible_resend: true,
        ..request
    })
}

#[test]
fn a_possible_resend_of_a_known_order_answers_its_current_state_and_enters_nothing() {
    let mut h = Harness::new();
    let ack = h.buy("A", "1", 10_000, 10);
    h.sell("B", "s", 10_000, 4); // A's order is partially filled now.
    let orders = h.engine.order_count();
    let answer = live(&mut h, resend(limit("A", "1", Side::Buy, 10_000, 10)));
    assert_eq!(exec_type(&answer), ExecType::Ack, "{answer:?}");
    assert_eq!(status(&answer), OrderStatus::PartiallyFilled);
    assert_eq!(
        (answer.order_id, answer.leaves_quantity, answer.cumulative_quantity),
        (ack.order_id, 6, 4)
    );
    assert!(answer.text.contains("possible resend"), "{}", answer.text);
    assert_eq!(h.engine.order_count(), orders, "nothing new was entered");
    assert_eq!(h.engine.top_of_book(ACME).map(|t| t.bid_quantity), Some(6));
}

#[test]
fn a_possible_resend_of_an_order_never_seen_is_accepted_as_new() {
    let mut h = Harness::new();
    assert_eq!(h.engine.resend_answer(&resend(limit("A", "1", Side::Buy, 10_000, 10))), None);
    let answer = live(&mut h, resend(limit("A", "1", Side::Buy, 10_000, 10)));
    assert_eq!((exec_type(&answer), status(&answer)), (ExecType::Ack, OrderStatus::New));
    assert_eq!(h.engine.order_count(), 1);
}

#[test]
fn a_reused_cl_ord_id_without_the_flag_is_a_duplicate_and_the_original_is_unchanged() {
    let mut h = Harness::new();
    h.buy("A", "1", 10_000, 10);
    let before = h.engine.query("A", "1");
    let answer = live(&mut h, new_order(limit("A", "1", Side::Sell, 10_500, 99)));
    assert_eq!(reject_reason(&answer), RejectReason::DuplicateClOrdId);
    assert_eq!(status(&answer), OrderStatus::Rejected);
    assert_eq!(h.engine.query("A", "1"), before);
}

#[test]
fn a_cancel_racing_a_full_fill_is_too_late_and_the_order_stays_filled() {
    let mut h = Harness::new();
    h.buy("A", "1", 10_000, 10);
    // The fill reaches the journal first; the cancel comes after it.
    h.sell("B", "s", 10_000, 10);
    let answer = live(&mut h, cancel("A", "c", "1"));
    assert_eq!(reject_reason(&answer), RejectReason::OrderFinal, "too late to cancel");
    assert_eq!(answer.text, "order \"1\" is already filled");
    let order = h.engine.query("A", "1").unwrap_or_default();
    assert_eq!((status(&order), order.cumulative_quantity), (OrderStatus::Filled, 10));
    // The refused cancel's ClOrdID is not taken.
    assert_eq!(h.engine.query("A", "c"), None);
}

#[test]
fn a_second_replace_while_the_first_is_in_flight_applies_after_it_in_journal_order() {
    let mut h = Harness::new();
    h.buy("A", "1", 10_000, 10);
    // Both name the original ClOrdID, as a client that has not seen the first answer does:
    // commands apply one at a time, so the second finds the order as the first left it.
    let first = live(&mut h, replace("A", "r1", "1", 10_000, 20));
    let second = live(&mut h, replace("A", "r2", "1", 9_995, 30));
    assert_eq!((exec_type(&first), exec_type(&second)), (ExecType::Replaced, ExecType::Replaced));
    assert_eq!(second.orig_cl_ord_id, "r1", "the second replaced what the first made");
    let order = h.engine.query("A", "r1").unwrap_or_default();
    assert_eq!((order.cl_ord_id.as_str(), order.price, order.leaves_quantity), ("r2", 9_995, 30));
}

#[test]
fn many_small_orders_within_every_limit_are_refused_once_together_over_the_credit() {
    let mut h = Harness::with_limits(Limits {
        credit_limit: 250_000, // Two and a half orders of 10 at 10 000.
        ..limits()
    });
    h.buy("A", "1", 10_000, 10);
    h.sell("A", "2", 10_500, 10); // Both sides count: 205 000 open.
    assert_eq!(
        h.refused(new_order(limit("A", "3", Side::Buy, 10_000, 5))),
        RejectReason::CreditLimit,
        "205 000 + 50 000 is over 250 000"
    );
    h.buy("A", "3", 10_000, 4); // 245 000: at most the credit.
    // Another account has its own credit; a fill frees credit; a replace raising it is checked.
    h.buy("B", "1", 10_000, 20);
    h.sell("C", "x", 10_000, 10); // Fills A's first order: 145 000 open.
    h.buy("A", "4", 10_000, 10); // 245 000 again.
    assert_eq!(h.refused(replace("A", "r", "3", 10_000, 5)), RejectReason::CreditLimit);
    assert!(h.submit(1, replace("A", "r", "3", 10_000, 3)).is_ok(), "lowering always passes");
}

#[test]
fn a_kill_switch_cancels_working_orders_refuses_new_risk_and_lets_reducing_orders_through() {
    let mut h = Harness::new();
    h.buy("A", "long", 10_000, 10);
    h.sell("B", "s", 10_000, 10); // A is long 10.
    h.buy("A", "working", 9_900, 5);
    let engaged = h.submit(0, kill_switch("A", true)).ok().unwrap_or_default();
    assert_eq!(engaged.reports.len(), 1, "the working order is cancelled");
    assert_eq!(h.engine.open_orders("A"), 0);
    // Risk-increasing: more long, or a sell past flat.
    assert_eq!(
        h.refused(new_order(limit("A", "b", Side::Buy, 10_000, 1))),
        RejectReason::KillSwitch
    );
    assert_eq!(
        h.refused(new_order(limit("A", "s1", Side::Sell, 10_000, 11))),
        RejectReason::KillSwitch
    );
    // Risk-reducing: sells up to the long position, counting the ones already open.
    h.sell("A", "s2", 10_100, 6);
    assert_eq!(
        h.refused(new_order(limit("A", "s3", Side::Sell, 10_100, 5))),
        RejectReason::KillSwitch
    );
    h.sell("A", "s3", 10_100, 4);
    // A replace may lower an order, not raise it; cancels pass.
    assert_eq!(h.refused(replace("A", "r1", "s2", 10_100, 7)), RejectReason::KillSwitch);
    assert!(h.submit(1, replace("A", "r1", "s2", 10_100, 5)).is_ok());
    assert!(h.submit(1, cancel("A", "c", "s3")).is_ok());
}

#[test]
fn an_account_over_its_runaway_limit_in_a_window_is_flagged_once_and_a_new_window_starts_afresh() {
    let mut h = Harness::with_limits(Limits {
        runaway_messages: 3,
        runaway_window_ms: 1_000,
        ..limits()
    });
    let command = cancel("A", "c", "nope"); // Rejected or not, every command counts.
    let flags: Vec<bool> = (0..5).map(|_| h.engine.is_runaway(&command, h.now)).collect();
    assert_eq!(flags, [false, false, false, true, false], "flagged once, on the fourth");
    assert!(!h.engine.is_runaway(&cancel("B", "c", "nope"), h.now), "per account");
    let too_long = cancel(&"x".repeat(17), "c", "nope");
    assert!(
        (0..10).all(|_| !h.engine.is_runaway(&too_long, h.now)),
        "malformed accounts are not tracked"
    );
    h.advance(Duration::from_millis(1_000));
    let flags: Vec<bool> = (0..4).map(|_| h.engine.is_runaway(&command, h.now)).collect();
    assert_eq!(flags, [false, false, false, true]);
    // Once halted, it is not flagged again.
    assert!(h.submit(0, kill_switch("A", true)).is_ok());
    h.advance(Duration::from_millis(1_000));
    assert!((0..10).all(|_| !h.engine.is_runaway(&command, h.now)));
}
