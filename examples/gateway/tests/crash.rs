//! The gateway as a real process: killed with SIGKILL in the middle of a load run, restarted on
//! the same journal, every order acknowledged before the kill is there and none is executed
//! twice; killed while clients race duplicates and cancels, no answer given before the kill is
//! contradicted after the restart; and SIGTERM shuts it down cleanly.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gateway::load::LoadOptions;
use gateway::proto::order_entry_client::OrderEntryClient;
use gateway::proto::{
    CancelOrderRequest, ExecType, ExecutionReport, NewOrderRequest, OrderQuery, OrderStatus, OrderType, RejectReason, Side, TimeInForce,
};
use volley::net::Address;
use volley::{CallOptions, Client, Status};

/// A gateway process, killed when dropped: a failing test leaves no gateway behind (which would
/// also keep every file descriptor it inherited open, such as a build lock's).
struct Gateway(Child);

impl std::ops::Deref for Gateway {
    type Target = Child;

    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Gateway {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Starts `volley-gateway serve` on a free loopback port with `journal`, and waits until it
/// says where it listens.
fn spawn_gateway(journal: &Path) -> (Gateway, Address) {
    spawn_gateway_with(journal, &["--fsync", "group"])
}

/// [`spawn_gateway`] with the journal flags `flags` (the fsync policy, the fsync spinner).
fn spawn_gateway_with(journal: &Path, flags: &[&str]) -> (Gateway, Address) {
    let mut child = Gateway(
        Command::new(env!("CARGO_BIN_EXE_volley-gateway"))
            .args(["serve", "--listen", "127.0.0.1:0", "--metrics", "off", "--journal"])
            .arg(journal)
            .args(flags)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the gateway binary starts"),
    );
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let address = loop {
        let line = lines.next().expect("the gateway prints where it listens").expect("readable stdout");
        if let Some(rest) = line.strip_prefix("gateway listening on ") {
            let address = rest.split_whitespace().next().expect("an address");
            break address.parse().expect("a loopback address");
        }
    };
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, address)
}

fn load_options(seconds: f64) -> LoadOptions {
    LoadOptions {
        accounts: 4,
        in_flight: 4,
        duration: Duration::from_secs_f64(seconds),
        ..LoadOptions::default()
    }
}

/// Every order in `acknowledged` is known to the gateway at `address`, each under its own order
/// id, and sending any of them again is refused as a duplicate.
async fn check_acknowledged_orders_survived(address: Address, acknowledged: &[(String, String)]) {
    assert!(!acknowledged.is_empty(), "the load got orders acknowledged before the stop");
    let orders = OrderEntryClient::new(Client::connect(address).await.unwrap());
    let mut order_ids = std::collections::HashSet::new();
    for (account, cl_ord_id) in acknowledged {
        let found = orders
            .query_order(OrderQuery {
                account: account.clone(),
                cl_ord_id: cl_ord_id.clone(),
            })
            .await
            .unwrap();
        assert_ne!(
            found.exec_type,
            ExecType::Reject as i32,
            "acknowledged order {account}/{cl_ord_id} is lost: {found:?}"
        );
        assert!(order_ids.insert(found.order_id), "order id {} found twice", found.order_id);
    }
    // Sending acknowledged orders again never executes them twice (a sample keeps this quick).
    let step = (acknowledged.len() / 300).max(1);
    for (account, cl_ord_id) in acknowledged.iter().step_by(step) {
        let again = NewOrderRequest {
            account: account.clone(),
            cl_ord_id: cl_ord_id.clone(),
            symbol: "AAPL".into(),
            side: Side::Buy as i32,
            order_type: OrderType::Limit as i32,
            time_in_force: TimeInForce::Day as i32,
            price: 18_750,
            quantity: 1,
            cancel_on_disconnect: false,
            possible_resend: false,
        };
        let report = orders.new_order(again).await.unwrap();
        assert_eq!(
            report.reject_reason,
            RejectReason::DuplicateClOrdId as i32,
            "{account}/{cl_ord_id}: {report:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_order_survives_a_sigkill_and_none_runs_twice() {
    acknowledged_orders_survive_a_sigkill(&["--fsync", "group"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_fsync_spinner_every_acknowledged_order_survives_a_sigkill() {
    acknowledged_orders_survive_a_sigkill(&["--fsync", "every", "--fsync-spin"]).await;
}

/// Loads a gateway started with `flags`, SIGKILLs it, restarts it on the same journal and
/// checks every acknowledged order is there once.
async fn acknowledged_orders_survive_a_sigkill(flags: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("gateway.journal");
    let (mut child, address) = spawn_gateway_with(&journal, flags);

    let load = tokio::spawn(gateway::load::run(address.clone(), load_options(3.0)));
    tokio::time::sleep(Duration::from_millis(800)).await;
    child.kill().expect("SIGKILL the gateway"); // Child::kill sends SIGKILL on Unix.
    child.wait().unwrap();
    let report = load.await.unwrap().expect("the load started before the kill");
    assert!(report.errors > 0, "calls after the kill fail: {}", report.summary());
    assert!(
        report
            .first_error
            .as_ref()
            .is_some_and(|s| s.code() == volley::Code::Unavailable || s.code() == volley::Code::Cancelled)
    );

    let (mut child, address) = spawn_gateway_with(&journal, flags);
    check_acknowledged_orders_survived(address, &report.acknowledged_orders).await;
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_flushes_the_journal_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("gateway.journal");
    let (mut child, address) = spawn_gateway(&journal);
    let report = gateway::load::run(address, load_options(0.5)).await.unwrap();
    assert!(report.is_consistent(), "{}", report.summary());
    assert_eq!(report.errors, 0, "{}", report.summary());

    let terminated = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(terminated.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the gateway did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "a clean exit after SIGTERM: {status}");

    let (mut child, address) = spawn_gateway(&journal);
    check_acknowledged_orders_survived(address, &report.acknowledged_orders).await;
    child.kill().unwrap();
    child.wait().unwrap();
}

/// What the racing clients of one account were told before the kill: (account, cl_ord_id).
#[derive(Debug, Default)]
struct Told {
    /// New orders acknowledged.
    acknowledged: Vec<(String, String)>,
    /// New orders answered DUPLICATE: the order exists.
    duplicate: Vec<(String, String)>,
    /// Orders a cancel was answered ORDER_FINAL about, or that a cancel cancelled: they are final.
    final_orders: Vec<(String, String)>,
}

/// One account sending each new order on two connections at once (a client retrying on another
/// session) and then two cancels of it at once, until `until` or the first failed call.
async fn race_duplicates_and_cancels(address: Address, account: String, until: Instant) -> Told {
    let connect = || async { OrderEntryClient::new(Client::connect(address.clone()).await.expect("connects")) };
    let (first, second) = (connect().await, connect().await);
    let options = CallOptions::new().timeout(Duration::from_secs(2));
    let mut told = Told::default();
    let mut n = 0;
    while Instant::now() < until {
        n += 1;
        let id = format!("{account}-{n}");
        let order = NewOrderRequest {
            account: account.clone(),
            cl_ord_id: id.clone(),
            symbol: "AAPL".into(),
            side: Side::Buy as i32,
            order_type: OrderType::Limit as i32,
            time_in_force: TimeInForce::Day as i32,
            price: 18_700,
            quantity: 1,
            cancel_on_disconnect: false,
            possible_resend: false,
        };
        let (a, b) = tokio::join!(
            first.new_order_with(order.clone(), options.clone()),
            second.new_order_with(order, options.clone())
        );
        let key = (account.clone(), id.clone());
        // Every answer that came counts, also when the other call failed (the kill).
        let mut failed = false;
        for answer in [a, b] {
            match answer.map(volley::Response::into_inner) {
                Ok(report) if report.exec_type == ExecType::Ack as i32 => told.acknowledged.push(key.clone()),
                Ok(report) if report.reject_reason == RejectReason::DuplicateClOrdId as i32 => told.duplicate.push(key.clone()),
                Ok(report) => panic!("unexpected answer to {id}: {report:?}"),
                Err(_) => failed = true,
            }
        }
        if failed {
            return told;
        }
        let cancel = |suffix: &str| CancelOrderRequest {
            account: account.clone(),
            cl_ord_id: format!("{id}-{suffix}"),
            orig_cl_ord_id: id.clone(),
        };
        let (a, b) = tokio::join!(
            first.cancel_order_with(cancel("a"), options.clone()),
            second.cancel_order_with(cancel("b"), options.clone())
        );
        for answer in [a, b] {
            match answer.map(volley::Response::into_inner) {
                Ok(report) if is_final_answer(&report) => told.final_orders.push(key.clone()),
                Ok(report) => panic!("unexpected answer to a cancel of {id}: {report:?}"),
                Err(_) => failed = true,
            }
        }
        if failed {
            return told;
        }
    }
    told
}

/// A cancel that cancelled the order, or one refused because the order is already final.
fn is_final_answer(report: &ExecutionReport) -> bool {
    report.exec_type == ExecType::Cancelled as i32 || report.reject_reason == RejectReason::OrderFinal as i32
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_duplicate_or_too_late_answer_is_contradicted_after_a_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("gateway.journal");
    // One fsync per record: the widest windows between a record and its durability.
    let (mut child, address) = spawn_gateway_with(&journal, &["--fsync", "every"]);
    let until = Instant::now() + Duration::from_secs(5);
    let racers: Vec<_> = (0..8)
        .map(|i| tokio::spawn(race_duplicates_and_cancels(address.clone(), format!("race-{i}"), until)))
        .collect();
    tokio::time::sleep(Duration::from_millis(700)).await;
    child.kill().expect("SIGKILL the gateway");
    child.wait().unwrap();
    let mut told = Told::default();
    for racer in racers {
        let one = racer.await.expect("the racer ends by itself");
        told.acknowledged.extend(one.acknowledged);
        told.duplicate.extend(one.duplicate);
        told.final_orders.extend(one.final_orders);
    }
    assert!(
        !told.duplicate.is_empty() && !told.final_orders.is_empty(),
        "the race produced duplicates and final-order answers before the kill: {told:?}"
    );

    let (mut child, address) = spawn_gateway(&journal);
    let orders = OrderEntryClient::new(Client::connect(address).await.unwrap());
    let query = |(account, cl_ord_id): &(String, String)| {
        orders.query_order(OrderQuery {
            account: account.clone(),
            cl_ord_id: cl_ord_id.clone(),
        })
    };
    for key in told.acknowledged.iter().chain(&told.duplicate) {
        let found: Result<ExecutionReport, Status> = query(key).await;
        let found = found.unwrap();
        assert_ne!(
            found.exec_type,
            ExecType::Reject as i32,
            "{key:?} was acknowledged or answered DUPLICATE before the kill, and is unknown after it: {found:?}"
        );
    }
    for key in &told.final_orders {
        let found = query(key).await.unwrap();
        assert!(
            found.status == OrderStatus::Cancelled as i32 || found.status == OrderStatus::Filled as i32,
            "{key:?} was said to be final before the kill, and is open after it: {found:?}"
        );
    }
    child.kill().unwrap();
    child.wait().unwrap();
}
