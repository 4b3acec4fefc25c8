//! What metrics cost (feature `metrics`): a unary round trip with and without a `Metrics`
//! attached to both ends, side by side in one run, and the pieces of the per-call recording.
//!
//! Group `metrics_roundtrip`: client and server on one current-thread runtime (as the
//! `roundtrip` group does), 64-byte payloads, TCP, an inline and a spawned handler, one call in
//! flight (latency) and 128 in flight (throughput). Group `metrics_record`: one histogram
//! record, a client call's and a server call's whole recording, and a disabled debug span.
//!
//! `cargo bench -p volley-benches --features metrics --bench metrics`; see docs/BENCHMARKS.md.

use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use volley::metrics::Metrics;
use volley::metrics::bench::{Histogram, record_client_call, record_server_call};
use volley::{CallOptions, Client, Request, Server, ServerHandle, Status};
use volley_benches::{ECHO, ECHO_ID, HandlerKind, Payload, join_all, payload};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

/// The benches' echo server, recording into `metrics` when given.
async fn echo_server(kind: HandlerKind, metrics: Option<&Metrics>) -> ServerHandle {
    let builder = Server::builder();
    let builder = match kind {
        HandlerKind::Inline => builder.unary_inline(ECHO, |request: Request<Payload>| Ok::<_, Status>(request.into_inner())),
        HandlerKind::Spawned => builder.unary(
            ECHO,
            |request: Request<Payload>| async move { Ok::<_, Status>(request.into_inner()) },
        ),
    };
    let builder = match metrics {
        Some(metrics) => builder.metrics(metrics.clone()),
        None => builder,
    };
    builder
        .drain_timeout(Duration::from_millis(100))
        .build()
        .expect("valid server")
        .serve("127.0.0.1:0")
        .await
        .expect("bind")
}

fn bench_roundtrip(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("metrics_roundtrip");
    group.measurement_time(Duration::from_secs(5));
    let request = payload(64);
    for (handler, kind) in [("inline", HandlerKind::Inline), ("spawned", HandlerKind::Spawned)] {
        // Both setups exist for the whole group, so each pair of figures shares one run.
        let setups: Vec<(&str, ServerHandle, Client)> = ["off", "on"]
            .into_iter()
            .map(|label| {
                rt.block_on(async {
                    let metrics = (label == "on").then(Metrics::new);
                    let server = echo_server(kind, metrics.as_ref()).await;
                    let builder = match &metrics {
                        Some(metrics) => {
                            metrics.register_client_method(ECHO);
                            Client::builder().metrics(metrics.clone())
                        }
                        None => Client::builder(),
                    };
                    let client = builder.connect(server.local_addr()).await.expect("connect");
                    (label, server, client)
                })
            })
            .collect();
        for (label, _, client) in &setups {
            group.throughput(Throughput::Elements(1));
            group.bench_function(format!("tcp_{handler}_64B_1_in_flight_metrics_{label}"), |b| {
                b.to_async(&rt).iter(|| async {
                    let _: Payload = client.unary(ECHO_ID, &request, CallOptions::default()).await.expect("call");
                })
            });
        }
        for (label, _, client) in &setups {
            group.throughput(Throughput::Elements(128));
            group.bench_function(format!("tcp_{handler}_64B_128_in_flight_metrics_{label}"), |b| {
                b.to_async(&rt).iter(|| async {
                    let calls = (0..128).map(|_| client.unary::<_, Payload>(ECHO_ID, &request, CallOptions::default()));
                    for result in join_all(calls).await {
                        result.expect("call");
                    }
                })
            });
        }
        for (_, server, _) in setups {
            rt.block_on(server.shutdown());
        }
    }
    group.finish();
}

fn bench_record(c: &mut Criterion) {
    let mut group = c.benchmark_group("metrics_record");
    let histogram = Histogram::default();
    let mut value = 1_000u64;
    group.bench_function("histogram_record", |b| {
        b.iter(|| {
            // Varying values, so the bench touches many buckets as real latencies do.
            value = value.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1) >> 40;
            histogram.record(Duration::from_nanos(black_box(value)));
        })
    });
    black_box(histogram.count());
    let metrics = Metrics::new();
    let method = metrics.register_client_method(ECHO);
    let started = Instant::now();
    group.bench_function("client_call_recording", |b| {
        b.iter(|| record_client_call(&metrics, black_box(method), started))
    });
    let server_metrics = Metrics::new();
    let _ = Server::builder()
        .unary_inline(ECHO, |request: Request<Payload>| Ok::<_, Status>(request.into_inner()))
        .metrics(server_metrics.clone())
        .build()
        .expect("valid server");
    let sent_at_ns = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_nanos() as u64;
    group.bench_function("server_call_recording", |b| {
        b.iter(|| record_server_call(&server_metrics, black_box(ECHO), sent_at_ns, started))
    });
    group.bench_function("disabled_debug_span", |b| {
        b.iter(|| {
            let span = tracing::debug_span!(
                "volley.call",
                side = "client",
                method = %ECHO_ID,
                call_id = tracing::field::Empty,
                status = tracing::field::Empty
            );
            span.record("status", "OK");
            black_box(span)
        })
    });
    group.finish();
}

criterion_group!(benches, bench_record, bench_roundtrip);
criterion_main!(benches);
