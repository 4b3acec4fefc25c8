//! The smallest Volley program: an echo server on a loopback port and a client calling it.
//!
//! Run it with `cargo run -p volley-echo --release`.

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
    let server = Server::builder()
        .unary(
            SAY,
            |request: Request<EchoMessage>| async move { Ok::<_, Status>(request.into_inner()) },
        )
        .build()?
        .serve("127.0.0.1:0")
        .await?;
    println!("echo server listening on {}", server.local_addr());

    let client = Client::connect(server.local_addr()).await?;
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
    server.shutdown().await;
    Ok(())
}
