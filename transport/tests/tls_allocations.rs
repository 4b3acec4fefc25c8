//! Heap allocations per unary call over TLS (feature `tls`), counted exactly as in
//! `allocations.rs`: the client on this test's thread, the server on its own.
//!
//! Volley's own path allocates nothing per call (the plaintext test asserts 0). rustls' buffered
//! API forces exactly two allocations per call on each side, which this test pins down:
//!
//! 1. **Sending**: each TLS record is encrypted into a fresh `Vec` (rustls
//!    `RecordLayer::encrypt_outgoing` returns an `OutboundOpaqueMessage` with its own payload
//!    buffer, queued in `sendable_tls`); Volley copies it out and rustls frees it. One record per
//!    write, so one allocation per write: per call at 1 in flight, far less under load (a burst of
//!    128 calls shares one or two records, see `tls.rs`).
//! 2. **Receiving**: each decrypted record's plaintext is copied into a fresh `Vec`
//!    (`CommonState::take_received_plaintext` appends `payload.into_vec()` to
//!    `received_plaintext`) before Volley copies it into its pooled read buffer. One per record
//!    received.
//!
//! rustls' unbuffered API (`rustls::unbuffered`) encrypts into and decrypts within caller
//! buffers and would remove both; see docs/security.md.

use std::sync::mpsc;

use bytes::Bytes;
use volley::{CallOptions, Client, MethodId, Request, Server, Status};

#[path = "support/counting_alloc.rs"]
mod counting_alloc;
#[path = "support/pki.rs"]
mod pki;

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
fn start_server(inline: bool, tls: volley::tls::ServerTls) -> (std::net::SocketAddr, mpsc::Sender<()>, mpsc::Receiver<u64>) {
    let (addr_tx, addr_rx) = mpsc::channel();
    let (phase_tx, phase_rx) = mpsc::channel::<()>();
    let (count_tx, count_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            let builder = Server::builder().tls(tls);
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
fn measure(inline: bool) -> (f64, f64) {
    let ca = pki::Ca::new("test CA");
    let (addr, phase, server_counts) = start_server(inline, ca.server_tls());
    let client_tls = ca.client_tls();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async move {
        let client = Client::builder().tls(client_tls).connect(addr).await.unwrap();
        let request = Payload {
            data: Bytes::from(vec![1u8; 64]),
        };
        let method = MethodId::from_name(METHOD);
        let options = CallOptions::default();
        for _ in 0..WARM_UP {
            let _: Payload = client.unary(method, &request, options.clone()).await.unwrap();
        }
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
        (client_allocations as f64 / CALLS as f64, server_allocations as f64 / CALLS as f64)
    })
}

/// Allocations rustls forces per unary call on each side: one record encrypted, one received.
const RUSTLS_PER_CALL: f64 = 2.0;

#[test]
fn a_steady_state_tls_unary_call_allocates_only_what_rustls_forces_with_an_inline_handler() {
    let (client, server) = measure(true);
    eprintln!("TLS, inline handler: {client} allocations per call on the client, {server} on the server");
    assert_eq!(client, RUSTLS_PER_CALL, "client-side allocations per call");
    assert_eq!(server, RUSTLS_PER_CALL, "server-side allocations per call");
}

#[test]
fn a_tls_call_to_an_async_handler_adds_exactly_its_task_allocation_on_the_server() {
    let (client, server) = measure(false);
    eprintln!("TLS, async handler: {client} allocations per call on the client, {server} on the server");
    assert_eq!(client, RUSTLS_PER_CALL, "client-side allocations per call");
    assert!(
        server <= RUSTLS_PER_CALL + 1.0,
        "rustls' two and one spawned task per call: got {server} allocations per call"
    );
}
