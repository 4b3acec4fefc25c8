//! The order semantics of docs/gateway.md's table that need the whole gateway: the kill switch
//! through the Admin service, and a possible resend through the generated client.

mod common;

use common::{client, config, limit, scratch, start};
use gateway::proto::admin_client::AdminClient;
use gateway::proto::{CancelOrderRequest, ExecType, KillSwitchRequest, NewOrderRequest, OrderQuery, OrderStatus, RejectReason, Side};
use volley::Client;

fn reason(report: &gateway::proto::ExecutionReport) -> RejectReason {
    RejectReason::try_from(report.reject_reason).unwrap_or_default()
}

#[tokio::test]
async fn the_kill_switch_cancels_working_orders_and_halts_new_ones() {
    let (_dir, journal) = scratch();
    let running = start(&config(&journal)).await;
    let orders = client(&running).await;
    let admin = AdminClient::new(Client::connect(running.local_addr().clone()).await.unwrap());
    orders.new_order(limit("A", "k-1", Side::Buy, 18_700, 1)).await.unwrap();
    admin
        .set_kill_switch(KillSwitchRequest {
            account: "A".into(),
            engaged: true,
        })
        .await
        .unwrap();
    let halted = orders.new_order(limit("A", "k-2", Side::Buy, 18_700, 1)).await.unwrap();
    assert_eq!(reason(&halted), RejectReason::KillSwitch, "{halted:?}");
    let other = orders.new_order(limit("B", "k-3", Side::Buy, 18_700, 1)).await.unwrap();
    assert_eq!(other.exec_type, ExecType::Ack as i32, "other accounts trade on");
    let working = orders
        .query_order(OrderQuery {
            account: "A".into(),
            cl_ord_id: "k-1".into(),
        })
        .await
        .unwrap();
    assert_eq!(working.status, OrderStatus::Cancelled as i32, "engaging cancelled it: {working:?}");
    let cancel = orders
        .cancel_order(CancelOrderRequest {
            account: "A".into(),
            cl_ord_id: "k-4".into(),
            orig_cl_ord_id: "k-1".into(),
        })
        .await
        .unwrap();
    assert_eq!(
        reason(&cancel),
        RejectReason::OrderFinal,
        "cancels pass the switch, but k-1 is gone"
    );
    admin
        .set_kill_switch(KillSwitchRequest {
            account: String::new(),
            engaged: true,
        })
        .await
        .unwrap();
    assert_eq!(
        reason(&orders.new_order(limit("B", "k-5", Side::Buy, 18_700, 1)).await.unwrap()),
        RejectReason::KillSwitch
    );
    admin
        .set_kill_switch(KillSwitchRequest {
            account: String::new(),
            engaged: false,
        })
        .await
        .unwrap();
    admin
        .set_kill_switch(KillSwitchRequest {
            account: "A".into(),
            engaged: false,
        })
        .await
        .unwrap();
    assert_eq!(
        orders.new_order(limit("A", "k-6", Side::Buy, 18_700, 1)).await.unwrap().exec_type,
        ExecType::Ack as i32
    );
    running.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_possible_resend_is_answered_with_the_orders_state_and_a_plain_resend_is_a_duplicate() {
    let (_dir, journal) = scratch();
    let running = start(&config(&journal)).await;
    let orders = client(&running).await;
    let ack = orders.new_order(limit("A", "a-1", Side::Buy, 18_700, 10)).await.unwrap();
    let resent = orders
        .new_order(NewOrderRequest {
            possible_resend: true,
            ..limit("A", "a-1", Side::Buy, 18_700, 10)
        })
        .await
        .unwrap();
    assert_eq!(
        (resent.exec_type, resent.status, resent.order_id),
        (ExecType::Ack as i32, OrderStatus::New as i32, ack.order_id),
        "{resent:?}"
    );
    let plain = orders.new_order(limit("A", "a-1", Side::Buy, 18_700, 10)).await.unwrap();
    assert_eq!(reason(&plain), RejectReason::DuplicateClOrdId);
    let fresh = orders
        .new_order(NewOrderRequest {
            possible_resend: true,
            ..limit("A", "a-2", Side::Buy, 18_700, 10)
        })
        .await
        .unwrap();
    assert_eq!(fresh.exec_type, ExecType::Ack as i32);
    assert_ne!(fresh.order_id, ack.order_id);
    running.shutdown().await.unwrap();
}
