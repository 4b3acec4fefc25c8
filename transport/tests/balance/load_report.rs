//! The server's own `volley-load` report: its calls in flight over every connection, on the
//! answers of the calls that ask (or of every call), and what a balanced channel does with it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use volley::balance::{BalancedChannel, LOAD_METADATA_KEY};
use volley::server::LoadReports;
use volley::{CallOptions, Client, Metadata, Request, Server, ServerHandle};

use crate::common::{ECHO, ECHO_ID, Echo, echo};
use crate::replica::{DEADLINE, beside_others, timing};

/// A server whose calls with payload `hold` wait for `gate`; others echo at once. Counts the
/// calls that are not held.
async fn gated(ip: &str, reports: LoadReports, gate: Arc<Semaphore>, answered: Arc<AtomicU64>) -> ServerHandle {
    Server::builder()
        .load_reports(reports)
        .unary(ECHO, move |request: Request<Echo>| {
            let (gate, answered) = (gate.clone(), answered.clone());
            async move {
                if request.get_ref().payload == "hold" {
                    gate.acquire().await.expect("never closed").forget();
                } else {
                    answered.fetch_add(1, Ordering::SeqCst);
                }
                Ok(request.into_inner())
            }
        })
        .build()
        .unwrap()
        .serve(format!("{ip}:0"))
        .await
        .unwrap()
}

fn asking() -> CallOptions {
    let mut metadata = Metadata::new();
    metadata.insert(LOAD_METADATA_KEY, "").unwrap();
    CallOptions::new().timeout(DEADLINE).metadata(metadata)
}

/// The report on the answer of one call to `client`.
async fn report(client: &Client, options: CallOptions) -> Option<String> {
    let response = client.unary_response::<Echo, Echo>(ECHO_ID, &echo("ping"), options).await.unwrap();
    response.metadata().get_str(LOAD_METADATA_KEY).map(str::to_owned)
}

/// Starts `n` held calls on `client` and waits until the server reports them to `watcher`
/// (a client on another connection: a report leaves out the asking connection's own calls).
async fn hold(client: &Client, watcher: &Client, n: usize) {
    for _ in 0..n {
        let client = client.clone();
        tokio::spawn(async move {
            let _ = client
                .unary::<Echo, Echo>(ECHO_ID, &echo("hold"), CallOptions::new().timeout(DEADLINE))
                .await;
        });
    }
    let until = Instant::now() + DEADLINE;
    while report(watcher, asking()).await.as_deref() != Some(&n.to_string()) {
        assert!(Instant::now() < until, "the held calls never all arrived");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_reports_other_connections_calls_in_flight_to_callers_that_ask_and_only_to_them() {
    let _shared = beside_others().await;
    let gate = Arc::new(Semaphore::new(0));
    let server = gated("127.0.0.1", LoadReports::OnRequest, gate.clone(), Arc::default()).await;
    let holder = Client::connect(server.local_addr()).await.unwrap();
    let other = Client::connect(server.local_addr()).await.unwrap();
    hold(&holder, &other, 7).await;
    // Another connection sees the calls of the first; the first's own calls are not in its
    // report (it counts them itself).
    assert_eq!(report(&other, asking()).await.as_deref(), Some("7"));
    assert_eq!(report(&holder, asking()).await.as_deref(), Some("0"));
    assert_eq!(
        report(&other, CallOptions::new().timeout(DEADLINE)).await,
        None,
        "not asked, not sent"
    );
    gate.add_permits(7);
    let until = Instant::now() + DEADLINE;
    while report(&other, asking()).await.as_deref() != Some("0") {
        assert!(Instant::now() < until, "the released calls are still counted");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    let always = gated("127.0.0.2", LoadReports::Always, gate.clone(), Arc::default()).await;
    let client = Client::connect(always.local_addr()).await.unwrap();
    assert_eq!(report(&client, CallOptions::new()).await.as_deref(), Some("0"));
    let never = gated("127.0.0.3", LoadReports::Never, gate, Arc::default()).await;
    let client = Client::connect(never.local_addr()).await.unwrap();
    assert_eq!(report(&client, asking()).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_balanced_channel_avoids_the_replica_that_reports_other_clients_load() {
    let _timing = timing().await;
    let gate = Arc::new(Semaphore::new(0));
    let (busy_calls, idle_calls) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let busy = gated("127.0.0.1", LoadReports::OnRequest, gate.clone(), busy_calls.clone()).await;
    let idle = gated("127.0.0.2", LoadReports::OnRequest, gate.clone(), idle_calls.clone()).await;
    // Another client keeps 20 calls waiting on one replica: the channel's own counts cannot
    // see them, only the server's report can.
    let other_client = Client::connect(busy.local_addr()).await.unwrap();
    let watcher = Client::connect(busy.local_addr()).await.unwrap();
    hold(&other_client, &watcher, 20).await;
    let before = busy_calls.load(Ordering::SeqCst);
    let channel = BalancedChannel::builder()
        .timeout(DEADLINE)
        .build([busy.local_addr().clone(), idle.local_addr().clone()])
        .unwrap();
    for _ in 0..200 {
        let reply: Echo = channel.unary(ECHO_ID, &echo("ping"), CallOptions::new()).await.unwrap();
        assert_eq!(reply.payload, "ping");
    }
    let to_busy = busy_calls.load(Ordering::SeqCst) - before;
    let to_idle = idle_calls.load(Ordering::SeqCst);
    assert_eq!(to_busy + to_idle, 200);
    assert!(to_busy <= 10, "the replica reporting 20 calls in flight got {to_busy} of 200");
    gate.add_permits(20);
}
