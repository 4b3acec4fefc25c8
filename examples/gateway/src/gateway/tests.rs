//! Tests of the gateway core over journals that fail or hold their fsyncs.

use std::pin::{Pin, pin};
use std::task::{Context, Poll};

use super::*;
use crate::journal::FsyncPolicy;
use crate::journal::held::HeldDisk;
use crate::proto::{CancelOrderRequest, NewOrderRequest, OrderStatus, OrderType, Side, TimeInForce};

fn order(cl_ord_id: &str) -> Command {
    Command::NewOrder(NewOrderRequest {
        account: "A".into(),
        cl_ord_id: cl_ord_id.into(),
        symbol: "AAPL".into(),
        side: Side::Buy as i32,
        order_type: OrderType::Limit as i32,
        time_in_force: TimeInForce::Day as i32,
        price: 18_700,
        quantity: 1,
        cancel_on_disconnect: false,
        possible_resend: false,
    })
}

/// A disk that is full: every write fails with ENOSPC.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_full_disk_fails_the_order_with_unavailable_and_stops_acceptance_with_the_reason() {
    let (gateway, _) = Gateway::open_with(&Config::default(), GatewayMetrics::new(), |options, on_durable| {
        let device = std::fs::OpenOptions::new().append(true).open("/dev/full").expect("open /dev/full");
        Ok((Journal::start(Box::new(device), options, 0, on_durable)?, Replay::empty()))
    })
    .unwrap();
    let status = gateway.submit(1, order("o-1")).await.unwrap_err();
    assert_eq!(status.code(), volley::Code::Unavailable, "{status}");
    assert!(
        status.message().contains("not acknowledged") && status.message().contains("No space left on device"),
        "{status}"
    );
    assert!(!gateway.is_accepting(), "a journal failure stops acceptance");
    let later = gateway.submit(1, order("o-2")).await.unwrap_err();
    assert_eq!(later.code(), volley::Code::Unavailable);
    assert!(
        later.message().contains("journal failed") && later.message().contains("No space left"),
        "{later}"
    );
    assert!(
        gateway.with_engine(|engine| engine.query("A", "o-2")).is_none(),
        "nothing after the failure reaches the book"
    );
}

/// A gateway over `disk` with one fsync per record, as `--fsync every`.
fn open_on(disk: &HeldDisk) -> Gateway {
    let config = Config {
        fsync: FsyncPolicy::EveryRecord,
        ..Config::default()
    };
    let disk = disk.clone();
    let (gateway, _) = Gateway::open_with(&config, GatewayMetrics::new(), move |options, on_durable| {
        Ok((Journal::start(Box::new(disk), options, 0, on_durable)?, Replay::empty()))
    })
    .expect("the gateway opens");
    gateway
}

/// The gateway a restart after a crash now would give: the journal holds only what was synced.
fn restart_after_crash(disk: &HeldDisk) -> (tempfile::TempDir, Gateway) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let journal = dir.path().join("gateway.journal");
    std::fs::write(&journal, disk.crash_image()).expect("write the crash image");
    let config = Config {
        journal,
        ..Config::default()
    };
    let (gateway, _) = Gateway::open(&config, GatewayMetrics::new()).expect("the journal replays");
    (dir, gateway)
}

/// Polls `future` once: `Some` with its output if it is ready at once.
fn poll_once<F: Future>(future: Pin<&mut F>) -> Option<F::Output> {
    match future.poll(&mut Context::from_waker(std::task::Waker::noop())) {
        Poll::Ready(output) => Some(output),
        Poll::Pending => None,
    }
}

fn limit(account: &str, cl_ord_id: &str, side: Side, quantity: i64) -> Command {
    Command::NewOrder(NewOrderRequest {
        account: account.into(),
        cl_ord_id: cl_ord_id.into(),
        side: side as i32,
        quantity,
        ..match order(cl_ord_id) {
            Command::NewOrder(request) => request,
            _ => unreachable!("order() makes a new order"),
        }
    })
}

fn cancel(account: &str, cl_ord_id: &str, orig_cl_ord_id: &str) -> Command {
    Command::Cancel(CancelOrderRequest {
        account: account.into(),
        cl_ord_id: cl_ord_id.into(),
        orig_cl_ord_id: orig_cl_ord_id.into(),
    })
}

fn reject_reason(report: &ExecutionReport) -> RejectReason {
    RejectReason::try_from(report.reject_reason).unwrap_or_default()
}

#[tokio::test]
async fn a_duplicate_is_not_answered_before_the_original_is_durable() {
    let disk = HeldDisk::holding();
    let gateway = open_on(&disk);
    let _release = disk.release_on_drop();
    // The original is journaled; its fsync is held.
    let Intake::Accepted(original) = gateway.intake(1, order("o-1")).unwrap() else {
        panic!("the original is accepted");
    };
    disk.wait_for_held_sync();

    // A retry of the same order on another session, while the original is not durable.
    let mut duplicate = pin!(gateway.submit(2, order("o-1")));
    assert!(
        poll_once(duplicate.as_mut()).is_none(),
        "DUPLICATE was answered about an order that is not durable"
    );
    // Were the gateway to crash now, o-1 would not exist: a DUPLICATE sent now would be false.
    let (_dir, restarted) = restart_after_crash(&disk);
    assert!(restarted.with_engine(|engine| engine.query("A", "o-1")).is_none());
    drop(restarted);

    disk.release();
    let report = duplicate.await.unwrap();
    assert_eq!(reject_reason(&report), RejectReason::DuplicateClOrdId, "{report:?}");
    assert_eq!(gateway.acknowledge(original).await.unwrap().exec_type, ExecType::Ack as i32);
    let (_dir, restarted) = restart_after_crash(&disk);
    assert!(restarted.with_engine(|engine| engine.query("A", "o-1")).is_some());
}

#[tokio::test]
async fn an_order_submitted_while_the_writer_syncs_is_handed_off_and_answered_once_durable() {
    let disk = HeldDisk::holding();
    let gateway = open_on(&disk);
    let _release = disk.release_on_drop();
    let Intake::Accepted(first) = gateway.intake(1, order("o-1")).unwrap() else {
        panic!("the first order is accepted");
    };
    disk.wait_for_held_sync();

    // `submit` syncs on the caller's thread only when the writer is idle: here it is stuck in
    // a sync, so the second order is handed off (polling it returns, it does not block).
    let mut second = pin!(gateway.submit(1, order("o-2")));
    assert!(poll_once(second.as_mut()).is_none(), "o-2 was acknowledged before it was durable");
    let (_dir, restarted) = restart_after_crash(&disk);
    assert!(restarted.with_engine(|engine| engine.query("A", "o-2")).is_none());
    drop(restarted);

    disk.release();
    assert_eq!(second.await.unwrap().exec_type, ExecType::Ack as i32);
    assert_eq!(gateway.acknowledge(first).await.unwrap().exec_type, ExecType::Ack as i32);
    let (_dir, restarted) = restart_after_crash(&disk);
    assert!(restarted.with_engine(|engine| engine.query("A", "o-2")).is_some());
}

#[tokio::test]
async fn a_cancel_is_not_answered_too_late_before_the_fill_is_durable() {
    let disk = HeldDisk::default();
    let gateway = open_on(&disk);
    let _release = disk.release_on_drop();
    let resting = gateway.submit(1, limit("A", "o-1", Side::Buy, 10)).await.unwrap();
    assert_eq!(resting.status, OrderStatus::New as i32, "{resting:?}");

    // B's sell fills o-1; the fill's fsync is held.
    disk.hold();
    let Intake::Accepted(fill) = gateway.intake(2, limit("B", "s-1", Side::Sell, 10)).unwrap() else {
        panic!("the sell is accepted");
    };
    disk.wait_for_held_sync();

    let mut too_late = pin!(gateway.submit(1, cancel("A", "c-1", "o-1")));
    assert!(
        poll_once(too_late.as_mut()).is_none(),
        "ORDER_FINAL was answered while the fill that made the order final is not durable"
    );
    let (_dir, restarted) = restart_after_crash(&disk);
    let after_crash = restarted.with_engine(|engine| engine.query("A", "o-1")).expect("o-1 is durable");
    assert_eq!(after_crash.status, OrderStatus::New as i32, "after a crash now o-1 is open again");
    drop(restarted);

    disk.release();
    let report = too_late.await.unwrap();
    assert_eq!(reject_reason(&report), RejectReason::OrderFinal, "{report:?}");
    assert_eq!(gateway.acknowledge(fill).await.unwrap().status, OrderStatus::Filled as i32);
}

#[tokio::test]
async fn a_query_shows_an_order_only_once_its_state_is_durable() {
    let disk = HeldDisk::holding();
    let gateway = open_on(&disk);
    let _release = disk.release_on_drop();
    let Intake::Accepted(accepted) = gateway.intake(1, order("o-1")).unwrap() else {
        panic!("the order is accepted");
    };
    disk.wait_for_held_sync();
    let mut query = pin!(gateway.query("A", "o-1"));
    assert!(poll_once(query.as_mut()).is_none(), "the query showed an order that is not durable");
    let mut top = pin!(gateway.top_of_book("AAPL"));
    assert!(poll_once(top.as_mut()).is_none(), "the book showed a bid that is not durable");
    // Unknown orders and symbols are answered at once: a crash only loses a tail, so what is
    // absent now is absent after a restart too.
    let mut unknown = pin!(gateway.query("A", "nope"));
    assert!(matches!(poll_once(unknown.as_mut()), Some(Ok(None))));
    let mut unknown_symbol = pin!(gateway.top_of_book("XXXX"));
    assert!(matches!(poll_once(unknown_symbol.as_mut()), Some(Ok(None))));

    disk.release();
    let found = query.await.unwrap().expect("o-1 is found");
    assert_eq!((found.cl_ord_id.as_str(), found.status), ("o-1", OrderStatus::New as i32));
    assert_eq!(top.await.unwrap().expect("AAPL is known").bid_quantity, 1);
    gateway.acknowledge(accepted).await.unwrap();
}

#[tokio::test]
async fn a_stateless_reject_is_answered_at_once_while_the_journal_is_held() {
    let disk = HeldDisk::holding();
    let gateway = open_on(&disk);
    let _release = disk.release_on_drop();
    let Intake::Accepted(_pending) = gateway.intake(1, order("o-1")).unwrap() else {
        panic!("the order is accepted");
    };
    disk.wait_for_held_sync();
    // Another account's malformed order reads no state that is not durable.
    let mut bad = pin!(gateway.submit(2, limit("B", "b-1", Side::Buy, 0)));
    let report = poll_once(bad.as_mut()).expect("answered at once").unwrap();
    assert_eq!(reject_reason(&report), RejectReason::InvalidQuantity, "{report:?}");
    assert_eq!(report.status, OrderStatus::Rejected as i32);
}

#[tokio::test]
async fn a_runaway_account_is_halted_with_a_journaled_kill_switch_an_alert_metric_and_the_rest_trade_on() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config {
        journal: dir.path().join("gateway.journal"),
        ..Config::default()
    };
    config.limits.runaway_messages = 5;
    config.limits.runaway_window_ms = 60_000; // The test's commands all fall in one window.
    let metrics = GatewayMetrics::new();
    let (gateway, _) = Gateway::open(&config, metrics.clone()).unwrap();
    for n in 0..5 {
        let report = gateway.submit(1, order(&format!("o-{n}"))).await.unwrap();
        assert_eq!(report.exec_type, ExecType::Ack as i32, "{report:?}");
    }
    assert_eq!(metrics.runaway_halts(), 0);
    let sixth = gateway.submit(1, order("o-5")).await.unwrap();
    assert_eq!(reject_reason(&sixth), RejectReason::KillSwitch, "{sixth:?}");
    assert_eq!(metrics.runaway_halts(), 1, "one alert per halt");
    assert!(gateway.with_engine(|engine| engine.is_halted("A")));
    assert_eq!(
        gateway.with_engine(|engine| engine.open_orders("A")),
        0,
        "its working orders are cancelled"
    );
    let other = gateway.submit(1, limit("B", "b-1", Side::Buy, 1)).await.unwrap();
    assert_eq!(other.exec_type, ExecType::Ack as i32, "other accounts trade on");
    gateway.close().await.unwrap();
    drop(gateway);

    // The halt is journaled: a restart keeps the account halted.
    let (restarted, _) = Gateway::open(&config, GatewayMetrics::new()).unwrap();
    assert!(restarted.with_engine(|engine| engine.is_halted("A")));
}
