//! What middleware costs per unary call (issue #17): a `Channel` calling a spawned echo handler
//! over loopback TCP with nothing installed, with one no-op interceptor on either side, with one
//! identity tower layer around the server method, and through a `ServiceCaller` with an
//! identity stack on the client. One call in flight (latency) and 128 (throughput); client and
//! server share one current-thread runtime, so the difference between two rows is the CPU the
//! middleware adds. Run under `taskset -c 0`.
//!
//! `cargo bench -p volley-benches --features tower --bench middleware`

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tower::layer::util::Identity;
use volley::interceptor::{InboundCall, OutboundCall};
use volley::server::ServerBuilder;
use volley::tower::ServiceCaller;
use volley::{CallOptions, Caller, Channel, Request, Server, Status};
use volley_benches::{ECHO, ECHO_ID, Payload, join_all, payload};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

fn echo() -> ServerBuilder {
    Server::builder().unary(
        ECHO,
        |request: Request<Payload>| async move { Ok::<_, Status>(request.into_inner()) },
    )
}

/// Times `calls` unary calls of `caller`, `in_flight` at a time.
fn bench_caller<C: Caller>(
    c: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    rt: &tokio::runtime::Runtime,
    name: &str,
    caller: &C,
) {
    let request = payload(64);
    for in_flight in [1_usize, 128] {
        c.throughput(Throughput::Elements(in_flight as u64));
        c.bench_function(format!("{name}_64B_{in_flight}_in_flight"), |b| {
            b.to_async(rt).iter_custom(|iters| {
                let caller = caller.clone();
                let request = request.clone();
                async move {
                    let started = Instant::now();
                    for _ in 0..iters {
                        let calls = (0..in_flight).map(|_| caller.unary::<_, Payload>(ECHO_ID, &request, CallOptions::default()));
                        for result in join_all(calls).await {
                            result.expect("call");
                        }
                    }
                    started.elapsed()
                }
            })
        });
    }
}

fn bench_middleware(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("middleware");
    group.measurement_time(Duration::from_secs(4));
    group.warm_up_time(Duration::from_secs(1));
    let servers: [(&str, ServerBuilder); 3] = [
        ("none", echo()),
        ("server_noop_interceptor", echo().interceptor(|_: &mut InboundCall| Ok(()))),
        ("server_identity_layer", echo().layer(Identity::new())),
    ];
    for (name, builder) in servers {
        let (server, channel) = rt.block_on(async {
            let server = builder.build().expect("server").serve("127.0.0.1:0").await.expect("serve");
            let channel = Channel::builder().connect(server.local_addr()).await.expect("connect");
            (server, channel)
        });
        bench_caller(&mut group, &rt, name, &channel);
        if name == "none" {
            let intercepted = rt.block_on(async {
                Channel::builder()
                    .interceptor(|_: &mut OutboundCall| Ok(()))
                    .connect(server.local_addr())
                    .await
                    .expect("connect")
            });
            bench_caller(&mut group, &rt, "client_noop_interceptor", &intercepted);
            let stack = tower::ServiceBuilder::new().layer(Identity::new()).service(channel.clone());
            bench_caller(
                &mut group,
                &rt,
                "client_service_caller_identity",
                &ServiceCaller::new(stack, channel.clone()),
            );
        }
        rt.block_on(server.shutdown());
    }
    group.finish();
}

criterion_group!(benches, bench_middleware);
criterion_main!(benches);
