//! The smallest Volley program: an echo server on a loopback port and a client calling it.
//!
//! Run it with `cargo run -p volley-echo --release`. With `--features metrics` it also records
//! metrics, serves them at `http://127.0.0.1:9464/metrics` while it runs, and prints the
//! latency quantiles at the end (docs/observability.md).

use std::time::{Duration, Instant};

use bytes::Bytes;
use volley::{CallOptions, Client, MethodId, Request, Server, Status};

/// The message both sides exchange.
#[derive(Clone, PartialEq, prost::Message)]
struct EchoMessage {
    #[prost(bytes = "bytes", tag = "1")]
    payload: Bytes,
}

const SAY: &str = "/echo.Echo/Say";
const SAY_ID: MethodId = MethodId::from_name(SAY);

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = Server::builder().unary(
        SAY,
        |request: Request<EchoMessage>| async move { Ok::<_, Status>(request.into_inner()) },
    );
    let client = Client::builder();
    #[cfg(feature = "metrics")]
    let (metrics, server, client, _endpoint) = {
        let metrics = volley::metrics::Metrics::new();
        metrics.register_client_method(SAY);
        let endpoint = metrics.serve_http(volley::metrics::DEFAULT_METRICS_ADDR).await?;
        println!("metrics at http://{}/metrics", endpoint.local_addr());
        (metrics.clone(), server.metrics(metrics.clone()), client.metrics(metrics), endpoint)
    };
    let server = server.build()?.serve("127.0.0.1:0").await?;
    println!("echo server listening on {}", server.local_addr());

    let client = client.connect(server.local_addr()).await?;
    let reply: EchoMessage = client
        .unary(
            SAY_ID,
            &EchoMessage {
                payload: Bytes::from_static(b"hello, volley"),
            },
            CallOptions::default(),
        )
        .await?;
    println!("reply: {}", String::from_utf8_lossy(&reply.payload));

    // A short closed loop at one call in flight: the per-call latency of this machine.
    let calls = 20_000;
    let request = EchoMessage {
        payload: Bytes::from(vec![7u8; 64]),
    };
    let options = CallOptions::default().timeout(Duration::from_secs(1));
    let started = Instant::now();
    for _ in 0..calls {
        let _: EchoMessage = client.unary(SAY_ID, &request, options.clone()).await?;
    }
    let elapsed = started.elapsed();
    println!(
        "{calls} sequential 64-byte calls in {elapsed:.2?}: {:.1} µs per call",
        elapsed.as_secs_f64() * 1e6 / calls as f64
    );

    let stats = client.stats();
    println!(
        "client: {} calls, {} write syscalls, {:.2} frames per write",
        stats.calls_started,
        stats.write_syscalls,
        stats.frames_per_write()
    );
    #[cfg(feature = "metrics")]
    {
        let snapshot = metrics.snapshot();
        if let Some(say) = snapshot.method(SAY) {
            for (label, histogram) in [
                ("client round trip", &say.client.round_trip),
                ("server handling", &say.server.handling),
            ] {
                let quantiles: Vec<String> = [0.5, 0.9, 0.99, 0.999, 0.9999]
                    .iter()
                    .map(|&q| format!("p{} {:.1?}", q * 100.0, histogram.quantile(q)))
                    .collect();
                println!("{label} ({} calls): {}", histogram.count(), quantiles.join(", "));
            }
        }
    }
    server.shutdown().await;
    Ok(())
}
