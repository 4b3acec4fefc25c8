//! With a `Metrics` attached to both ends (feature `metrics`), a steady-state unary call still
//! allocates nothing in the transport: recording is atomics into slots registered up front.
//! Counted exactly by a per-thread counting allocator, as in `allocations.rs`: the client runs
//! on this test's thread, the server on its own thread and runtime.

use std::sync::mpsc;

use bytes::Bytes;
use volley::metrics::Metrics;
use volley::{CallOptions, Client, MethodId, Request, Server, Status};

#[path = "support/counting_alloc.rs"]
mod counting_alloc;

use counting_alloc::{Counting, allocations};

#[global_allocator]
static GLOBAL: Counting = Counting;

#[derive(Clone, PartialEq, prost::Message)]
struct Payload {
    #[prost(bytes = "bytes", tag = "1")]
    data: Bytes,
}

const METHOD: &str = "/alloc.Test/Echo";
const UNREGISTERED: &str = "/alloc.Test/Unregistered";
const WARM_UP: u64 = 2_000;
const CALLS: u64 = 10_000;

#[test]
fn a_unary_call_recorded_in_metrics_allocates_nothing_on_either_side() {
    let metrics = Metrics::new();
    let (addr_tx, addr_rx) = mpsc::channel();
    let (phase_tx, phase_rx) = mpsc::channel::<()>();
    let (count_tx, count_rx) = mpsc::channel();
    // The server records into its own `Metrics`, so the client's table lacks `UNREGISTERED`.
    let server_metrics = Metrics::new();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            let server = Server::builder()
                .unary_inline(METHOD, |request: Request<Payload>| Ok::<_, Status>(request.into_inner()))
                .unary_inline(UNREGISTERED, |request: Request<Payload>| Ok::<_, Status>(request.into_inner()))
                .metrics(server_metrics)
                .build()
                .unwrap()
                .serve("127.0.0.1:0")
                .await
                .unwrap();
            let volley::net::Address::Tcp(addr) = server.local_addr().clone() else {
                unreachable!()
            };
            addr_tx.send(addr).unwrap();
            for _ in 0..2 {
                let before = allocations();
                while phase_rx.try_recv().is_err() {
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                }
                count_tx.send(allocations() - before).unwrap();
            }
            server.abort();
        });
    });
    let addr = addr_rx.recv().unwrap();
    let method = metrics.register_client_method(METHOD);
    // Not registered on the client: counted under `other`, still without allocating.
    let unregistered = MethodId::from_name(UNREGISTERED);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (client_per_call, server_per_call) = runtime.block_on(async {
        let client = Client::builder().metrics(metrics.clone()).connect(addr).await.unwrap();
        let request = Payload {
            data: Bytes::from(vec![1u8; 64]),
        };
        let options = CallOptions::default();
        for i in 0..WARM_UP {
            let target = if i % 2 == 0 { method } else { unregistered };
            let _: Payload = client.unary(target, &request, options.clone()).await.unwrap();
        }
        phase_tx.send(()).unwrap();
        let _warm_up = count_rx.recv().unwrap();
        let before = allocations();
        for i in 0..CALLS {
            let target = if i % 2 == 0 { method } else { unregistered };
            let _: Payload = client.unary(target, &request, options.clone()).await.unwrap();
        }
        let client_allocations = allocations() - before;
        phase_tx.send(()).unwrap();
        let server_allocations = count_rx.recv().unwrap();
        (client_allocations as f64 / CALLS as f64, server_allocations as f64 / CALLS as f64)
    });
    eprintln!("with metrics: {client_per_call} allocations per call on the client, {server_per_call} on the server");
    assert_eq!(client_per_call, 0.0, "client-side allocations per call with metrics");
    assert_eq!(server_per_call, 0.0, "server-side allocations per call with metrics");
    let snapshot = metrics.snapshot();
    let recorded = snapshot.method(METHOD).unwrap();
    assert_eq!(recorded.client.calls.started, (WARM_UP + CALLS) / 2);
    assert_eq!(recorded.client.round_trip.count(), (WARM_UP + CALLS) / 2);
    assert_eq!(snapshot.method("other").unwrap().client.calls.started, (WARM_UP + CALLS) / 2);
}
