//! Unary round trips over loopback TCP and a Unix socket: one call in flight (latency) and 128
//! in flight on one connection (throughput), each beside the raw-socket floor measured in the
//! same run.
//!
//! Group `roundtrip`: client and server share one current-thread runtime, the pure per-call
//! cost. Group `roundtrip_split`: the server runs on its own thread, so each call crosses
//! threads (and, unpinned, CPUs). Run under `taskset -c 0` to put both threads on one CPU; see
//! docs/BENCHMARKS.md for why placement matters on small VMs.

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use volley::net::Address;
use volley::{CallOptions, Client};
use volley_benches::{ECHO_ID, HandlerKind, Payload, ServerThread, echo_server, join_all, payload, raw, unix_address};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

fn bench_roundtrip(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("roundtrip");
    group.measurement_time(Duration::from_secs(5));
    // The floor: the same exchanges over a raw tokio socket, in the same run.
    let mut raw = rt.block_on(async { raw::connect(raw::echo_server().await).await });
    let message = [0x5a_u8; 64 + 16];
    let mut scratch = Vec::with_capacity(128 * message.len());
    group.throughput(Throughput::Elements(1));
    group.bench_function("raw_tcp_64B_1_in_flight", |b| {
        b.iter(|| rt.block_on(raw::exchange(&mut raw, &message, 1, &mut scratch)))
    });
    group.throughput(Throughput::Elements(128));
    group.bench_function("raw_tcp_64B_128_in_flight", |b| {
        b.iter(|| rt.block_on(raw::exchange(&mut raw, &message, 128, &mut scratch)))
    });

    let tcp: Address = "127.0.0.1:0".parse().expect("address");
    for (name, address, kind) in [
        ("tcp_inline", tcp.clone(), HandlerKind::Inline),
        ("tcp_spawned", tcp, HandlerKind::Spawned),
        ("unix_inline", unix_address("roundtrip"), HandlerKind::Inline),
    ] {
        let (server, client) = rt.block_on(async {
            let server = echo_server(&address, kind).await;
            let client = Client::connect(server.local_addr()).await.expect("connect");
            (server, client)
        });
        let request = payload(64);
        group.throughput(Throughput::Elements(1));
        group.bench_function(format!("{name}_64B_1_in_flight"), |b| {
            b.to_async(&rt).iter(|| async {
                let _: Payload = client.unary(ECHO_ID, &request, CallOptions::default()).await.expect("call");
            })
        });
        group.throughput(Throughput::Elements(128));
        group.bench_function(format!("{name}_64B_128_in_flight"), |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let client = client.clone();
                let request = request.clone();
                async move {
                    let started = Instant::now();
                    for _ in 0..iters {
                        let calls = (0..128).map(|_| client.unary::<_, Payload>(ECHO_ID, &request, CallOptions::default()));
                        for result in join_all(calls).await {
                            result.expect("call");
                        }
                    }
                    started.elapsed()
                }
            })
        });
        rt.block_on(server.shutdown());
    }
    group.finish();
}

/// The same exchanges with the servers on their own thread.
fn bench_roundtrip_split(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("roundtrip_split");
    group.measurement_time(Duration::from_secs(5));
    let (raw_address, _raw_server) = ServerThread::spawn(|| async { Address::Tcp(raw::echo_server().await) });
    let Address::Tcp(raw_addr) = raw_address else {
        unreachable!("raw server is TCP")
    };
    let mut raw = rt.block_on(raw::connect(raw_addr));
    let message = [0x5a_u8; 64 + 16];
    let mut scratch = Vec::with_capacity(128 * message.len());
    group.throughput(Throughput::Elements(1));
    group.bench_function("raw_tcp_64B_1_in_flight", |b| {
        b.iter(|| rt.block_on(raw::exchange(&mut raw, &message, 1, &mut scratch)))
    });
    group.throughput(Throughput::Elements(128));
    group.bench_function("raw_tcp_64B_128_in_flight", |b| {
        b.iter(|| rt.block_on(raw::exchange(&mut raw, &message, 128, &mut scratch)))
    });

    let (address, _server) = ServerThread::spawn(|| async {
        let server = echo_server(&"127.0.0.1:0".parse().expect("address"), HandlerKind::Inline).await;
        // Dropping the handle leaves the server serving until its runtime stops.
        server.local_addr().clone()
    });
    let client = rt.block_on(Client::connect(&address)).expect("connect");
    let request = payload(64);
    group.throughput(Throughput::Elements(1));
    group.bench_function("tcp_inline_64B_1_in_flight", |b| {
        b.to_async(&rt).iter(|| async {
            let _: Payload = client.unary(ECHO_ID, &request, CallOptions::default()).await.expect("call");
        })
    });
    group.throughput(Throughput::Elements(128));
    group.bench_function("tcp_inline_64B_128_in_flight", |b| {
        b.to_async(&rt).iter(|| async {
            let calls = (0..128).map(|_| client.unary::<_, Payload>(ECHO_ID, &request, CallOptions::default()));
            for result in join_all(calls).await {
                result.expect("call");
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench_roundtrip, bench_roundtrip_split);
criterion_main!(benches);
