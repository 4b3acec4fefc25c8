//! Heap allocations per unary call in the transport, counted exactly by a per-thread counting
//! allocator. The client runs on this test's thread (current-thread runtime); the server runs on
//! its own thread and runtime, so each side's count is its own.

use std::sync::mpsc;

use bytes::Bytes;
use volley::{CallOptions, Client, MethodId, Request, Server, Status};

#[path = "support/counting_alloc.rs"]
mod counting_alloc;

use counting_alloc::{Counting, allocations};

#[global_allocator]
static GLOBAL: Counting = Counting;

/// A message whose decoding allocates nothing (a `Bytes` field shares the read buffer).
#[derive(Clone, PartialEq, prost::Message)]
struct Payload {
    #[prost(bytes = "bytes", tag = "1")]
    data: Bytes,
}

const METHOD: &str = "/alloc.Test/Echo";
const WARM_UP: u64 = 2_000;
const CALLS: u64 = 10_000;

/// Starts a server on its own thread; returns its address and a channel that reports, after the
/// client says it is done warming up and then done measuring, the server thread's allocations.
fn start_server(inline: bool) -> (std::net::SocketAddr, mpsc::Sender<()>, mpsc::Receiver<u64>) {
    let (addr_tx, addr_rx) = mpsc::channel();
    let (phase_tx, phase_rx) = mpsc::channel::<()>();
    let (count_tx, count_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            let builder = Server::builder();
            let builder = if inline {
                builder.unary_inline(METHOD, |request: Request<Payload>| Ok::<_, Status>(request.into_inner()))
            } else {
                builder.unary(
                    METHOD,
                    |request: Request<Payload>| async move { Ok::<_, Status>(request.into_inner()) },
                )
            };
            let server = builder.build().unwrap().serve("127.0.0.1:0").await.unwrap();
            let volley::net::Address::Tcp(addr) = server.local_addr().clone() else {
                unreachable!()
            };
            addr_tx.send(addr).unwrap();
            // Serve while waiting for each phase signal without blocking the runtime.
            for _ in 0..2 {
                let before = allocations();
                loop {
                    if phase_rx.try_recv().is_ok() {
                        break;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                }
                count_tx.send(allocations() - before).unwrap();
            }
            server.abort();
        });
    });
    (addr_rx.recv().unwrap(), phase_tx, count_rx)
}

/// Runs warm-up then measured calls; returns (client allocations per call, server allocations
/// per call). The server's count includes its 1 ms idle sleeps, which allocate nothing.
/// Allocations per call on the client and the server, and whether answers carry a load report.
fn measure(inline: bool, options: CallOptions) -> (f64, f64, bool) {
    let (addr, phase, server_counts) = start_server(inline);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async move {
        let client = Client::connect(addr).await.unwrap();
        let request = Payload {
            data: Bytes::from(vec![1u8; 64]),
        };
        let method = MethodId::from_name(METHOD);
        for _ in 0..WARM_UP {
            let _: Payload = client.unary(method, &request, options.clone()).await.unwrap();
        }
        let reported = client
            .unary_response::<Payload, Payload>(method, &request, options.clone())
            .await
            .unwrap()
            .metadata()
            .get(volley::balance::LOAD_METADATA_KEY)
            .is_some();
        phase.send(()).unwrap();
        let _warm_up_server = server_counts.recv().unwrap();
        let before = allocations();
        for _ in 0..CALLS {
            let reply: Payload = client.unary(method, &request, options.clone()).await.unwrap();
            assert_eq!(reply.data.len(), 64);
        }
        let client_allocations = allocations() - before;
        phase.send(()).unwrap();
        let server_allocations = server_counts.recv().unwrap();
        (
            client_allocations as f64 / CALLS as f64,
            server_allocations as f64 / CALLS as f64,
            reported,
        )
    })
}

#[test]
fn a_steady_state_unary_call_allocates_nothing_on_either_side_with_an_inline_handler() {
    let (client, server, _) = measure(true, CallOptions::default());
    eprintln!("inline handler: {client} allocations per call on the client, {server} on the server");
    assert_eq!(client, 0.0, "client-side transport allocations per call");
    assert_eq!(server, 0.0, "server-side transport allocations per call");
}

#[test]
fn an_async_handler_costs_exactly_its_task_allocation_on_the_server() {
    let (client, server, _) = measure(false, CallOptions::default());
    eprintln!("async handler: {client} allocations per call on the client, {server} on the server");
    assert_eq!(client, 0.0, "client-side transport allocations per call");
    assert!(
        server <= 1.0,
        "one spawned task per call, nothing else: got {server} allocations per call"
    );
}

#[test]
fn a_call_that_asks_for_the_servers_load_report_allocates_nothing_on_either_side() {
    let mut asking = volley::Metadata::new();
    asking.insert(volley::balance::LOAD_METADATA_KEY, "").unwrap();
    let (client, server, reported) = measure(true, CallOptions::default().metadata(asking));
    assert!(reported, "the server answers with its load");
    eprintln!("load report asked: {client} allocations per call on the client, {server} on the server");
    assert_eq!(client, 0.0, "client-side transport allocations per call");
    assert_eq!(server, 0.0, "server-side allocations per call, the pre-encoded report included");
}

#[test]
fn a_high_priority_call_in_the_high_lane_allocates_nothing_on_either_side() {
    // Priority 255: the Request and the answer go in the write queue's high lane, whose buffer
    // is kept from call to call like the normal lane's.
    let (client, server, _) = measure(true, CallOptions::default().priority(255));
    eprintln!("high lane: {client} allocations per call on the client, {server} on the server");
    assert_eq!(client, 0.0, "client-side transport allocations per call");
    assert_eq!(server, 0.0, "server-side transport allocations per call");
}
