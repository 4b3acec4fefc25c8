//! The sharded gateway in one process: three gateways, each trading its symbols of the shard
//! plan, and the client-side router. Orders go to the shard of their symbol; the kill switch
//! reaches every shard; an account's throttle is split so the shards together stay within it.

mod common;

use std::time::Instant;

use gateway::app::RunningGateway;
use gateway::config::Config;
use gateway::engine::Limits;
use gateway::proto::{ExecType, KillSwitchRequest, NewOrderRequest, OrderQuery, OrderStatus, RejectReason, Side};
use gateway::shard::{RouteError, ShardError, ShardId, ShardPlan, ShardRouter};

const SHARDS: u32 = 3;

/// Three shard gateways over `base` (journals in `dir`), and a router over them.
async fn start_shards(base: &Config, dir: &std::path::Path) -> (Vec<RunningGateway>, ShardRouter) {
    let plan = ShardPlan::new(&base.symbols, SHARDS).unwrap();
    let mut gateways = Vec::new();
    for shard in plan.shard_ids() {
        let instance = Config {
            listen: "127.0.0.1:0".into(),
            metrics: None,
            journal: dir.join(format!("shard-{}.journal", shard.0)),
            ..base.clone()
        };
        gateways.push(common::start(&plan.shard_config(&instance, shard).unwrap()).await);
    }
    let addresses = gateways.iter().map(|g| g.local_addr().clone()).collect();
    let router = ShardRouter::connect(plan, addresses).await.unwrap();
    (gateways, router)
}

/// A DAY limit buy of `account` on `symbol` at its default reference price.
fn order(account: &str, cl_ord_id: &str, symbol: &str) -> NewOrderRequest {
    let reference = Config::default()
        .symbols
        .iter()
        .find(|s| s.name == symbol)
        .map(|s| s.reference_price)
        .unwrap();
    NewOrderRequest {
        symbol: symbol.into(),
        ..common::limit(account, cl_ord_id, Side::Buy, reference - 100, 1)
    }
}

fn symbols() -> Vec<String> {
    Config::default().symbols.into_iter().map(|s| s.name).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_go_to_the_shard_that_trades_their_symbol_and_no_other_shard_knows_them() {
    let (dir, _) = common::scratch();
    let (gateways, router) = start_shards(&Config::default(), dir.path()).await;
    for (n, symbol) in symbols().iter().enumerate() {
        let id = format!("routed-{n}");
        let ack = router.new_order(order("A", &id, symbol)).await.unwrap();
        assert_eq!(ack.exec_type, ExecType::Ack as i32, "{symbol}: {ack:?}");
        let home = router.plan().shard_of(symbol).unwrap();
        for (index, gateway) in gateways.iter().enumerate() {
            let found = gateway.gateway().query("A", &id).await.unwrap();
            assert_eq!(found.is_some(), index == home.0 as usize, "{symbol} on shard {index}");
            // A shard trades only its own symbols: sent there directly, the order is refused.
            if index != home.0 as usize {
                let direct = common::client(gateway).await;
                let refused = direct.new_order(order("A", &format!("{id}-direct"), symbol)).await.unwrap();
                assert_eq!(refused.reject_reason, RejectReason::UnknownSymbol as i32);
            }
        }
        let queried = router
            .query_order(
                symbol,
                OrderQuery {
                    account: "A".into(),
                    cl_ord_id: id,
                },
            )
            .await
            .unwrap();
        assert_eq!(queried.status, OrderStatus::New as i32);
    }
    let mut stray = order("A", "stray", "AAPL");
    stray.symbol = "ZZZZ".into();
    assert!(matches!(
        router.new_order(stray).await,
        Err(RouteError::Plan(ShardError::UnknownSymbol { .. }))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_switch_sent_through_the_router_halts_the_account_on_every_shard() {
    let (dir, _) = common::scratch();
    let (gateways, router) = start_shards(&Config::default(), dir.path()).await;
    // One resting order of the account on every symbol, so on every shard.
    for symbol in symbols() {
        let ack = router.new_order(order("K", &format!("rest-{symbol}"), &symbol)).await.unwrap();
        assert_eq!(ack.exec_type, ExecType::Ack as i32);
    }
    router
        .set_kill_switch(KillSwitchRequest {
            account: "K".into(),
            engaged: true,
        })
        .await
        .unwrap();
    for symbol in symbols() {
        let refused = router.new_order(order("K", &format!("after-{symbol}"), &symbol)).await.unwrap();
        assert_eq!(refused.reject_reason, RejectReason::KillSwitch as i32, "{symbol}: {refused:?}");
        // Engaging the switch cancelled the account's working orders on every shard.
        let rested = router
            .query_order(
                &symbol,
                OrderQuery {
                    account: "K".into(),
                    cl_ord_id: format!("rest-{symbol}"),
                },
            )
            .await
            .unwrap();
        assert_eq!(rested.status, OrderStatus::Cancelled as i32, "{symbol}: {rested:?}");
        // Other accounts trade on.
        let other = router.new_order(order("other", &format!("o-{symbol}"), &symbol)).await.unwrap();
        assert_eq!(other.exec_type, ExecType::Ack as i32);
    }
    router
        .set_kill_switch(KillSwitchRequest {
            account: "K".into(),
            engaged: false,
        })
        .await
        .unwrap();
    for symbol in symbols() {
        let ack = router.new_order(order("K", &format!("lifted-{symbol}"), &symbol)).await.unwrap();
        assert_eq!(ack.exec_type, ExecType::Ack as i32, "{symbol}: {ack:?}");
    }

    // A shard that is down fails the fan-out with its name; the others keep the switch.
    let mut gateways = gateways;
    gateways.pop().unwrap().abort();
    let failed = router
        .set_kill_switch(KillSwitchRequest {
            account: "K".into(),
            engaged: true,
        })
        .await
        .unwrap_err();
    assert_eq!(failed.shard(), Some(ShardId(2)), "{failed}");
    let refused = router.new_order(order("K", "while-one-is-down", "AAPL")).await.unwrap();
    assert_eq!(refused.reject_reason, RejectReason::KillSwitch as i32);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accounts_throttle_is_split_so_all_shards_together_stay_within_it() {
    let (dir, _) = common::scratch();
    let base = Config {
        limits: Limits {
            orders_per_second: 3,
            burst: 30,
            ..Limits::default()
        },
        ..Config::default()
    };
    let (_gateways, router) = start_shards(&base, dir.path()).await;
    let started = Instant::now();
    // Far more than the account's burst, on every shard's symbols.
    let mut accepted_per_shard = [0u32; SHARDS as usize];
    let mut throttled = 0;
    for n in 0..40 {
        for symbol in ["AAPL", "MSFT", "NVDA"] {
            let report = router.new_order(order("T", &format!("t-{symbol}-{n}"), symbol)).await.unwrap();
            if report.exec_type == ExecType::Ack as i32 {
                accepted_per_shard[router.plan().shard_of(symbol).unwrap().0 as usize] += 1;
            } else {
                assert_eq!(report.reject_reason, RejectReason::RateLimit as i32, "{report:?}");
                throttled += 1;
            }
        }
    }
    let accepted: u32 = accepted_per_shard.iter().sum();
    // The whole account may send its burst plus what refills at its rate, never more.
    let refilled = (started.elapsed().as_secs_f64() * f64::from(base.limits.orders_per_second)).ceil() as u32;
    assert!(
        accepted <= base.limits.burst + refilled,
        "{accepted} accepted over all shards, more than the account's burst {} + {refilled} refilled",
        base.limits.burst
    );
    assert!(throttled > 0);
    // Each shard gave its share: a third of the burst.
    for (shard, accepted) in accepted_per_shard.iter().enumerate() {
        assert!(*accepted >= base.limits.burst / SHARDS, "shard {shard}: {accepted}");
    }
}
