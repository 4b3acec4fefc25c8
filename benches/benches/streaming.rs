//! Server-streaming throughput: 64-byte messages on one stream, and on 100 streams at once, over
//! loopback TCP, client and server on one current-thread runtime. Figures in docs/BENCHMARKS.md.

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use volley::{CallOptions, Client, Streaming};
use volley_benches::{FEED_ID, Payload, feed_server, stream_request};

const PER_STREAM: u32 = 10_000;

async fn drain(client: &Client, count: u32) {
    let mut stream: Streaming<Payload> = client
        .server_streaming(FEED_ID, &stream_request(count, 64), CallOptions::default())
        .await
        .expect("open");
    let mut received = 0;
    while stream.message().await.expect("message").is_some() {
        received += 1;
    }
    assert_eq!(received, count);
}

fn bench_streaming(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let (_server, client) = rt.block_on(async {
        let server = feed_server(&"127.0.0.1:0".parse().expect("address")).await;
        let client = Client::connect(server.local_addr()).await.expect("connect");
        (server, client)
    });
    let mut group = c.benchmark_group("streaming");
    group.measurement_time(Duration::from_secs(8)).sample_size(20);
    group.throughput(Throughput::Elements(u64::from(PER_STREAM)));
    group.bench_function("tcp_64B_1_stream", |b| b.to_async(&rt).iter(|| drain(&client, PER_STREAM)));
    group.throughput(Throughput::Elements(u64::from(PER_STREAM)));
    group.bench_function("tcp_64B_100_streams", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let client = client.clone();
            async move {
                let started = Instant::now();
                for _ in 0..iters {
                    let mut streams = tokio::task::JoinSet::new();
                    for _ in 0..100 {
                        let client = client.clone();
                        streams.spawn(async move { drain(&client, PER_STREAM / 100).await });
                    }
                    while let Some(result) = streams.join_next().await {
                        result.expect("stream task");
                    }
                }
                started.elapsed()
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench_streaming);
criterion_main!(benches);
