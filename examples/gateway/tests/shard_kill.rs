//! The sharded gateway as real processes: one shard killed with SIGKILL under load stops only
//! its own symbols (the other shards answer every command, and pass every check), and after it
//! restarts on the same journal every order it acknowledged is there.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use gateway::config::Config;
use gateway::load::LoadOptions;
use gateway::proto::{ExecType, NewOrderRequest, OrderQuery, OrderType, Side, TimeInForce};
use gateway::shard::{RouteError, ShardId, ShardPlan, ShardProcess, ShardRouter, run_sharded};
use volley::net::Address;

const SHARDS: u32 = 3;
const KILLED: ShardId = ShardId(1);

fn spawn(shard: ShardId, dir: &Path, listen: &str) -> ShardProcess {
    let journal = dir.join(format!("shard-{}.journal", shard.0));
    let extra = ["--listen", listen, "--metrics", "off"].map(str::to_owned);
    ShardProcess::spawn(Path::new(env!("CARGO_BIN_EXE_volley-gateway")), shard, SHARDS, &journal, &extra).expect("the shard process starts")
}

fn order(cl_ord_id: &str, symbol: &str, price: i64) -> NewOrderRequest {
    NewOrderRequest {
        account: "probe".into(),
        cl_ord_id: cl_ord_id.into(),
        symbol: symbol.into(),
        side: Side::Buy as i32,
        order_type: OrderType::Limit as i32,
        time_in_force: TimeInForce::Day as i32,
        price,
        quantity: 1,
        cancel_on_disconnect: false,
        possible_resend: false,
    }
}

/// Every order in `acknowledged` is known to the shard that trades `symbol`, each under its own
/// order id.
async fn assert_all_present(router: &ShardRouter, symbol: &str, acknowledged: &[(String, String)]) {
    assert!(
        !acknowledged.is_empty(),
        "the load got orders acknowledged on the shard of {symbol}"
    );
    let mut order_ids = HashSet::new();
    for (account, cl_ord_id) in acknowledged {
        let query = OrderQuery {
            account: account.clone(),
            cl_ord_id: cl_ord_id.clone(),
        };
        let found = router.query_order(symbol, query).await.unwrap();
        assert_ne!(found.exec_type, ExecType::Reject as i32, "{account}/{cl_ord_id} is lost: {found:?}");
        assert!(order_ids.insert(found.order_id), "order id {} found twice", found.order_id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_one_shard_under_load_stops_only_its_symbols_and_its_acknowledged_orders_survive() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::default();
    let plan = ShardPlan::new(&config.symbols, SHARDS).unwrap();
    let mut processes: Vec<ShardProcess> = plan.shard_ids().map(|shard| spawn(shard, dir.path(), "127.0.0.1:0")).collect();
    let addresses: Vec<Address> = processes.iter().map(|p| p.address().clone()).collect();
    let router = ShardRouter::connect(plan.clone(), addresses.clone()).await.unwrap();

    let options = LoadOptions {
        accounts: 3,
        in_flight: 2,
        duration: Duration::from_secs(3),
        ..LoadOptions::default()
    };
    let load = tokio::spawn({
        let (plan, addresses) = (plan.clone(), addresses.clone());
        async move { run_sharded(&plan, &addresses, options).await }
    });
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    processes[KILLED.0 as usize].kill().expect("SIGKILL the shard");

    // While the load goes on: the killed shard's symbols fail, the others' are acknowledged.
    for (n, symbol) in config.symbols.iter().enumerate() {
        let result = router
            .new_order(order(&format!("during-{n}"), &symbol.name, symbol.reference_price))
            .await;
        if plan.shard_of(&symbol.name).unwrap() == KILLED {
            assert!(
                matches!(&result, Err(RouteError::Call { shard, .. }) if *shard == KILLED),
                "{}: {result:?}",
                symbol.name
            );
        } else {
            let ack = result.unwrap();
            assert_eq!(ack.exec_type, ExecType::Ack as i32, "{}: {ack:?}", symbol.name);
        }
    }

    let report = load.await.unwrap().expect("the load started before the kill");
    for (shard, shard_report) in &report.shards {
        if *shard == KILLED {
            assert!(
                shard_report.errors > 0,
                "calls to the killed shard fail: {}",
                shard_report.summary()
            );
        } else {
            // Untouched: every command answered, every acknowledgement on its report stream.
            assert_eq!(shard_report.errors, 0, "{shard}: {}", shard_report.summary());
            assert!(shard_report.is_consistent(), "{shard}: {}", shard_report.summary());
            assert!(shard_report.new_orders > 0, "{shard}: {}", shard_report.summary());
        }
    }

    // Restarted on the same journal and address: every order it acknowledged is there, reached
    // through the same router (its channel reconnects).
    let killed = &mut processes[KILLED.0 as usize];
    *killed = spawn(KILLED, dir.path(), &addresses[KILLED.0 as usize].to_string());
    for (shard, shard_report) in &report.shards {
        let symbol = &plan.symbols_of(*shard).unwrap()[0];
        assert_all_present(&router, symbol, &shard_report.acknowledged_orders).await;
    }
    let again = router.new_order(order("after-restart", "MSFT", 41_000)).await.unwrap();
    assert_eq!(again.exec_type, ExecType::Ack as i32, "{again:?}");
}
