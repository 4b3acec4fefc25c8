//! Which journal sequence a reject depends on: the gateway answers it only once that sequence
//! is durable, so a crash cannot contradict it.

use super::*;

/// The reason `check` refuses `command` with, and the sequence the reject depends on.
fn refused_at(h: &mut Harness, command: Command) -> (RejectReason, u64) {
    let reason = h.refused(command.clone());
    (reason, h.engine.reject_sequence(&command, reason))
}

#[test]
fn a_duplicate_depends_on_the_last_change_of_its_account() {
    let mut h = Harness::new();
    h.buy("A", "1", 9_000, 10); // 1
    h.buy("B", "1", 9_000, 10); // 2: another account
    assert_eq!(
        refused_at(&mut h, new_order(limit("A", "1", Side::Buy, 9_000, 10))),
        (RejectReason::DuplicateClOrdId, 1)
    );
    h.buy("A", "2", 9_000, 10); // 3
    assert_eq!(
        refused_at(&mut h, new_order(limit("A", "1", Side::Buy, 9_000, 10))),
        (RejectReason::DuplicateClOrdId, 3)
    );
}

#[test]
fn a_cancel_too_late_depends_on_the_fill_that_made_the_order_final() {
    let mut h = Harness::new();
    h.buy("A", "1", 10_000, 10); // 1
    h.buy("C", "x", 9_000, 1); // 2: another account
    h.sell("B", "2", 10_000, 10); // 3: fills A's order
    assert_eq!(refused_at(&mut h, cancel("A", "c", "1")), (RejectReason::OrderFinal, 3));
    assert_eq!(
        refused_at(&mut h, replace("A", "r", "1", 10_000, 20)),
        (RejectReason::OrderFinal, 3)
    );
}

#[test]
fn a_kill_switch_reject_depends_on_the_switch_and_a_band_reject_on_the_last_trade() {
    let mut h = Harness::new();
    assert!(h.submit(0, kill_switch("K", true)).is_ok()); // 1
    h.buy("A", "1", 10_000, 10); // 2
    assert_eq!(
        refused_at(&mut h, new_order(limit("K", "1", Side::Buy, 10_000, 1))),
        (RejectReason::KillSwitch, 2),
        "the book of ACME changed at 2, after the switch"
    );
    h.sell("B", "1", 10_000, 10); // 3: a trade at 10 000 moves the band's centre
    assert_eq!(
        refused_at(&mut h, new_order(limit("C", "1", Side::Buy, 12_000, 1))),
        (RejectReason::PriceBand, 3)
    );
}

#[test]
fn a_reject_that_reads_only_the_command_depends_on_nothing() {
    let mut h = Harness::new();
    h.buy("A", "1", 10_000, 10); // 1
    for command in [
        new_order(limit("A", "2", Side::Buy, 10_000, 0)),
        new_order(limit("A", "2", Side::Buy, 10_001, 1)),
        new_order(limit("A", "2", Side::Buy, 10_000, 1_001)),
        new_order(NewOrderRequest {
            symbol: "NOPE".into(),
            ..limit("A", "2", Side::Buy, 10_000, 1)
        }),
    ] {
        let (reason, sequence) = refused_at(&mut h, command);
        assert_eq!(sequence, 0, "{reason:?}");
    }
    // Unknown orders: their absence is durable as soon as it is seen.
    assert_eq!(refused_at(&mut h, cancel("Z", "c", "nope")), (RejectReason::UnknownOrder, 0));
}
