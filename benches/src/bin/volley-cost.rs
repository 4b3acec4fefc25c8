//! A fixed amount of work for counting instructions per call under callgrind: a noisy shared
//! VM cannot time a few percent, but `valgrind --tool=callgrind` counts the instructions a
//! change saves exactly (user space only; syscalls and batching are counted by `volley-bench`).
//!
//! ```sh
//! cargo build --release -p volley-benches --bin volley-cost
//! for n in 20000 40000; do
//!   valgrind --tool=callgrind --callgrind-out-file=cg.$n target/release/volley-cost unary $n 128
//! done
//! # instructions per call = (Ir at 40000 - Ir at 20000) / 20000, setup cancelled out
//! ```
//!
//! Modes: `unary CALLS IN_FLIGHT` (64-byte echo, inline handler, over a `Client`), `channel
//! CALLS IN_FLIGHT` and `balanced CALLS IN_FLIGHT` (the same over a `Channel`, and over a
//! `BalancedChannel` with that one endpoint: what the balancer adds per call), `stream
//! MESSAGES` (one server-streaming call of that many 64-byte messages) and, built with the
//! `metrics` feature, `metrics CALLS IN_FLIGHT` (the `unary` mode with a `Metrics` attached to
//! client and server: what recording costs per call), and `spawned CALLS IN_FLIGHT` (the `unary`
//! mode with a task spawned per call, as a service that spawns per request does: what moving the
//! call's future into a task costs). Client and server each run on a
//! current-thread runtime of their own thread, over loopback TCP.

use std::time::Duration;

use volley::balance::BalancedChannel;
use volley::net::Address;
use volley::{CallOptions, Caller, Channel, Client};
use volley_benches::{ECHO_ID, FEED_ID, HandlerKind, ServerThread, echo_server, feed_server, payload, stream_request};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().map_or("unary", String::as_str);
    let count: u64 = args.get(1).and_then(|n| n.parse().ok()).unwrap_or(20_000);
    let in_flight: u64 = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(128).max(1);
    let address: Address = "127.0.0.1:0".parse().expect("address");
    let stream = mode == "stream";
    let metered = mode == "metrics";
    // The handle keeps the server serving until the end of `main`.
    let (server_handle, _thread) = ServerThread::spawn_on(
        || tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime"),
        move || async move {
            if stream {
                feed_server(&address).await
            } else if metered {
                metered_echo_server(&address).await
            } else {
                echo_server(&address, HandlerKind::Inline).await
            }
        },
    );
    let server = server_handle.local_addr().clone();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let done = runtime.block_on(async move {
        match mode {
            "stream" => {
                let client = Client::connect(server).await.expect("connect");
                let request = stream_request(u32::try_from(count).unwrap_or(u32::MAX), 64);
                let mut stream = client
                    .server_streaming::<_, volley_benches::Payload>(FEED_ID, &request, CallOptions::default())
                    .await
                    .expect("stream");
                let mut received = 0u64;
                while stream.message().await.expect("message").is_some() {
                    received += 1;
                }
                received
            }
            "channel" => unary_calls(Channel::builder().connect(&server).await.expect("connect"), count, in_flight).await,
            "balanced" => {
                let channel = BalancedChannel::builder().build([server]).expect("balanced channel");
                unary_calls(channel, count, in_flight).await
            }
            "metrics" => unary_calls(metered_client(server).await, count, in_flight).await,
            "spawned" => spawned_calls(Client::connect(server).await.expect("connect"), count, in_flight).await,
            _ => unary_calls(Client::connect(server).await.expect("connect"), count, in_flight).await,
        }
    });
    println!("{mode}: {done} done");
    std::thread::sleep(Duration::from_millis(10));
}

/// `count` 64-byte echo calls, `in_flight` at a time, each task calling one after another.
async fn unary_calls<C: Caller>(caller: C, count: u64, in_flight: u64) -> u64 {
    let per_task = count / in_flight;
    let tasks = (0..in_flight).map(|_| {
        let caller = caller.clone();
        tokio::spawn(async move {
            let request = payload(64);
            for _ in 0..per_task {
                let _: volley_benches::Payload = caller.unary(ECHO_ID, &request, CallOptions::default()).await.expect("call");
            }
            per_task
        })
    });
    let mut done = 0;
    for task in tasks.collect::<Vec<_>>() {
        done += task.await.expect("task");
    }
    done
}

/// `count` 64-byte echo calls, each in a task of its own, `in_flight` tasks at a time.
async fn spawned_calls(client: Client, count: u64, in_flight: u64) -> u64 {
    let request = payload(64);
    let mut tasks = tokio::task::JoinSet::new();
    let mut done = 0;
    for _ in 0..count {
        if tasks.len() as u64 >= in_flight {
            tasks.join_next().await.expect("a task").expect("task");
            done += 1;
        }
        let (client, request) = (client.clone(), request.clone());
        tasks.spawn(async move {
            let _: volley_benches::Payload = client.unary(ECHO_ID, &request, CallOptions::default()).await.expect("call");
        });
    }
    while let Some(task) = tasks.join_next().await {
        task.expect("task");
        done += 1;
    }
    done
}

/// The inline echo server with a `Metrics` attached (the `metrics` mode).
#[cfg(feature = "metrics")]
async fn metered_echo_server(address: &Address) -> volley::ServerHandle {
    use volley::{Request, Server, Status};
    Server::builder()
        .metrics(volley::metrics::Metrics::new())
        .unary_inline(volley_benches::ECHO, |request: Request<volley_benches::Payload>| {
            Ok::<_, Status>(request.into_inner())
        })
        .drain_timeout(Duration::from_millis(100))
        .build()
        .expect("valid server")
        .serve(address)
        .await
        .expect("bind")
}

/// A client with a `Metrics` attached, the echo method registered (the `metrics` mode).
#[cfg(feature = "metrics")]
async fn metered_client(server: Address) -> Client {
    let metrics = volley::metrics::Metrics::new();
    let _ = metrics.register_client_method(volley_benches::ECHO);
    Client::builder().metrics(metrics).connect(server).await.expect("connect")
}

#[cfg(not(feature = "metrics"))]
async fn metered_echo_server(_address: &Address) -> volley::ServerHandle {
    panic!("the metrics mode needs volley-cost built with `--features metrics`")
}

#[cfg(not(feature = "metrics"))]
async fn metered_client(_server: Address) -> Client {
    panic!("the metrics mode needs volley-cost built with `--features metrics`")
}
