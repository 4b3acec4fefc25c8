//! What a service author relies on (issue #16): a server-streaming call returns only once its
//! handler took the call, handlers hear a shutdown, clients have a default deadline, metadata
//! travels with successful responses both ways, a client-streaming call cannot wait for ever,
//! a streaming handler reads its requests from the request itself, a channel outlives the
//! server's idle timeout, and `serve_with_shutdown` serves until its signal. All over loopback.

mod common;

use std::time::{Duration, Instant};

use common::{ECHO, Echo, echo, echo_server};
use tokio::sync::broadcast;
use volley::{CallOptions, Channel, Client, Code, Metadata, Method, MethodId, Request, Response, Server, Status, StreamSender, Streaming};

const WATCH: &str = "/test.Kv/Watch";
const PUT: &str = "/test.Kv/Put";
const BATCH: &str = "/test.Kv/BatchPut";

fn id(name: &str) -> MethodId {
    MethodId::from_name(name)
}

fn metadata(key: &str, value: &str) -> Metadata {
    let mut metadata = Metadata::new();
    metadata.insert(key, value).unwrap();
    metadata
}

/// A key-value store's watch and put: Watch subscribes to the writes, then streams them; Put
/// publishes one. The watch handler blocks its thread for 50 ms before it subscribes (slow
/// setup that is not a wait), so a client that moved on before the handler took the call
/// would write before the subscription.
fn kv_server() -> volley::server::ServerBuilder {
    let (writes, _) = broadcast::channel::<Echo>(16);
    let publish = writes.clone();
    Server::builder()
        .server_streaming(WATCH, move |_request: Request<Echo>, mut updates: StreamSender<Echo>| {
            let writes = writes.clone();
            async move {
                std::thread::sleep(Duration::from_millis(50));
                let mut subscription = writes.subscribe();
                while let Ok(write) = subscription.recv().await {
                    updates.send(&write).await?;
                }
                Ok(())
            }
        })
        .unary_inline(PUT, move |request: Request<Echo>| {
            let _ = publish.send(request.into_inner());
            Ok::<_, Status>(echo(&b""[..]))
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_returns_after_its_handler_subscribed_so_a_write_made_next_is_seen() {
    let server = kv_server().build().unwrap().serve("127.0.0.1:0").await.unwrap();
    let client = Client::connect(server.local_addr()).await.unwrap();
    let options = CallOptions::new().timeout(Duration::from_secs(5));
    let mut watch: Streaming<Echo> = client.server_streaming(id(WATCH), &echo(&b""[..]), options.clone()).await.unwrap();
    let _: Echo = client.unary(id(PUT), &echo(&b"k=v"[..]), options).await.unwrap();
    let seen = watch.message().await.unwrap().unwrap();
    assert_eq!(&seen.payload[..], b"k=v");
    server.shutdown().await;
}

#[tokio::test]
async fn a_server_streaming_call_to_an_unknown_method_fails_at_the_call() {
    let server = kv_server().build().unwrap().serve("127.0.0.1:0").await.unwrap();
    let client = Client::connect(server.local_addr()).await.unwrap();
    let result = client
        .server_streaming::<Echo, Echo>(id("/test.Kv/Nope"), &echo(&b""[..]), CallOptions::new())
        .await;
    assert_eq!(result.unwrap_err().code(), Code::Unimplemented);
    server.shutdown().await;
}

#[tokio::test]
async fn a_streaming_handler_that_listens_for_shutdown_lets_the_server_stop_long_before_the_drain_timeout() {
    let server = Server::builder()
        .drain_timeout(Duration::from_secs(30))
        .server_streaming(WATCH, |request: Request<Echo>, mut updates: StreamSender<Echo>| async move {
            updates.send(&echo(&b"first"[..])).await?;
            request.context().shutdown().await;
            Ok(())
        })
        .build()
        .unwrap()
        .serve("127.0.0.1:0")
        .await
        .unwrap();
    let client = Client::connect(server.local_addr()).await.unwrap();
    let mut watch: Streaming<Echo> = client
        .server_streaming(id(WATCH), &echo(&b""[..]), CallOptions::new())
        .await
        .unwrap();
    assert_eq!(&watch.message().await.unwrap().unwrap().payload[..], b"first");
    let started = Instant::now();
    server.shutdown().await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "shutdown took {took:?} against a drain timeout of 30 s"
    );
    // The stream ended cleanly, with OK.
    assert!(watch.message().await.unwrap().is_none());
}

#[tokio::test]
async fn a_client_default_timeout_applies_to_calls_that_set_none_and_a_call_s_own_wins() {
    let server = echo_server().build().unwrap().serve("127.0.0.1:0").await.unwrap();
    let slow = Echo {
        sleep_ms: 10_000,
        ..echo(&b""[..])
    };
    let client = Client::builder()
        .timeout(Duration::from_millis(100))
        .connect(server.local_addr())
        .await
        .unwrap();
    let status = client.unary::<_, Echo>(id(ECHO), &slow, CallOptions::new()).await.unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded);
    let quick = Echo {
        sleep_ms: 300,
        ..echo(&b"x"[..])
    };
    let own = CallOptions::new().timeout(Duration::from_secs(5));
    assert_eq!(client.unary::<_, Echo>(id(ECHO), &quick, own).await.unwrap(), quick);

    let channel = Channel::builder()
        .timeout(Duration::from_millis(100))
        .connect(server.local_addr())
        .await
        .unwrap();
    let status = channel.unary::<_, Echo>(id(ECHO), &slow, CallOptions::new()).await.unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded);
    server.abort();
}

#[tokio::test]
async fn metadata_travels_with_successful_responses_head_and_trailers() {
    let server = Server::builder()
        .unary(ECHO, |request: Request<Echo>| async move {
            let trailers = metadata("x-cost", "3");
            Ok::<_, Status>(
                Response::new(request.into_inner())
                    .with_metadata(metadata("x-served-by", "a"))
                    .with_trailers(trailers),
            )
        })
        .unary("/test.Echo/Head", |request: Request<Echo>| async move {
            Ok::<_, Status>(Response::new(request.into_inner()).with_metadata(metadata("x-served-by", "b")))
        })
        .server_streaming(WATCH, |_request: Request<Echo>, mut updates: StreamSender<Echo>| async move {
            updates.send_head(&metadata("x-stream", "head"))?;
            updates.send(&echo(&b"one"[..])).await?;
            updates.set_trailers(metadata("x-count", "1"));
            Ok(())
        })
        .build()
        .unwrap()
        .serve("127.0.0.1:0")
        .await
        .unwrap();
    let client = Client::connect(server.local_addr()).await.unwrap();

    let response: Response<Echo> = client
        .unary_response(id(ECHO), &echo(&b"hi"[..]), CallOptions::new())
        .await
        .unwrap();
    assert_eq!(response.metadata().get_str("x-served-by"), Some("a"));
    assert_eq!(response.trailers().get_str("x-cost"), Some("3"));
    assert_eq!(&response.get_ref().payload[..], b"hi");
    // A caller that wants only the message still gets it.
    let plain: Echo = client.unary(id(ECHO), &echo(&b"hi"[..]), CallOptions::new()).await.unwrap();
    assert_eq!(&plain.payload[..], b"hi");
    let head_only: Response<Echo> = client
        .unary_response(id("/test.Echo/Head"), &echo(&b"h"[..]), CallOptions::new())
        .await
        .unwrap();
    assert_eq!(head_only.metadata().get_str("x-served-by"), Some("b"));
    assert!(head_only.trailers().is_empty());

    let mut stream: Streaming<Echo> = client
        .server_streaming(id(WATCH), &echo(&b""[..]), CallOptions::new())
        .await
        .unwrap();
    assert_eq!(stream.metadata().and_then(|m| m.get_str("x-stream")), Some("head"));
    assert_eq!(&stream.message().await.unwrap().unwrap().payload[..], b"one");
    assert!(stream.message().await.unwrap().is_none());
    assert_eq!(stream.trailers().and_then(|m| m.get_str("x-count")), Some("1"));
    server.shutdown().await;
}

#[tokio::test]
async fn a_client_streaming_call_is_finished_in_one_step_and_its_handler_reads_the_request_directly() {
    let server = Server::builder()
        .client_streaming(BATCH, |mut request: Request<Streaming<Echo>>| async move {
            let mut count = 0u64;
            while let Some(_put) = request.message().await? {
                count += 1;
            }
            Ok::<_, Status>(Echo {
                sleep_ms: count,
                ..echo(&b""[..])
            })
        })
        .build()
        .unwrap()
        .serve("127.0.0.1:0")
        .await
        .unwrap();
    let client = Client::connect(server.local_addr()).await.unwrap();
    let mut call = client.client_streaming::<Echo, Echo>(id(BATCH), CallOptions::new()).await.unwrap();
    for key in ["a", "b", "c"] {
        call.send(&echo(key.as_bytes().to_vec())).await.unwrap();
    }
    // No deadline, no explicit close: `finish` closes the request stream itself.
    let stored = tokio::time::timeout(Duration::from_secs(5), call.finish())
        .await
        .expect("finish returned");
    assert_eq!(stored.unwrap().sleep_ms, 3);
    server.shutdown().await;
}

#[tokio::test]
async fn a_channel_makes_its_next_call_after_the_server_closed_it_for_idleness() {
    let server = idle_closing_echo_server().await;
    let channel = Channel::builder().connect(server.local_addr()).await.unwrap();
    let _: Echo = channel.unary(id(ECHO), &echo(&b"1"[..]), CallOptions::new()).await.unwrap();
    common::wait_for("the idle connection to close", || server.connections() == 0).await;
    let again: Echo = channel.unary(id(ECHO), &echo(&b"2"[..]), CallOptions::new()).await.unwrap();
    assert_eq!(&again.payload[..], b"2");
    server.shutdown().await;
}

#[tokio::test]
async fn one_typed_method_constant_registers_the_handler_and_makes_the_call() {
    const SAY: Method<Echo, Echo> = Method::new("/test.Typed/Say");
    const COUNT: Method<Echo, Echo> = Method::new("/test.Typed/Count");
    let server = Server::builder()
        .unary(SAY, |request: Request<Echo>| async move { Ok::<_, Status>(request.into_inner()) })
        .server_streaming(COUNT, |_request: Request<Echo>, mut out: StreamSender<Echo>| async move {
            out.send(&echo(&b"1"[..])).await
        })
        .build()
        .unwrap()
        .serve("127.0.0.1:0")
        .await
        .unwrap();
    let client = Client::connect(server.local_addr()).await.unwrap();
    let reply = client.unary(SAY, &echo(&b"typed"[..]), CallOptions::new()).await.unwrap();
    assert_eq!(&reply.payload[..], b"typed");
    // The same method by its full name and by its id reaches the same handler.
    let by_name: Echo = client.unary("/test.Typed/Say", &echo(&b"n"[..]), CallOptions::new()).await.unwrap();
    let by_id: Echo = client.unary(SAY.id(), &echo(&b"i"[..]), CallOptions::new()).await.unwrap();
    assert_eq!((&by_name.payload[..], &by_id.payload[..]), (&b"n"[..], &b"i"[..]));
    let mut count = client.server_streaming(COUNT, &echo(&b""[..]), CallOptions::new()).await.unwrap();
    assert_eq!(&count.message().await.unwrap().unwrap().payload[..], b"1");
    server.shutdown().await;
}

#[tokio::test]
async fn a_client_is_one_connection_and_says_so_when_the_server_closed_it() {
    let server = idle_closing_echo_server().await;
    let client = Client::connect(server.local_addr()).await.unwrap();
    let _: Echo = client.unary(id(ECHO), &echo(&b"1"[..]), CallOptions::new()).await.unwrap();
    common::wait_for("the idle connection to close", || client.is_closed()).await;
    let status = client
        .unary::<_, Echo>(id(ECHO), &echo(&b"2"[..]), CallOptions::new())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert!(status.message().contains("use a Channel"), "{status:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn serve_with_shutdown_serves_until_its_signal_then_returns() {
    let listener_probe = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener_probe.local_addr().unwrap();
    drop(listener_probe);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(echo_server().build().unwrap().serve_with_shutdown(address, async {
        let _ = stopped.await;
    }));
    let client = connect_retrying(address).await;
    let reply: Echo = client.unary(id(ECHO), &echo(&b"up"[..]), CallOptions::new()).await.unwrap();
    assert_eq!(&reply.payload[..], b"up");
    assert!(!serving.is_finished());
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), serving)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

/// An echo server that closes a connection after 100 ms without calls.
async fn idle_closing_echo_server() -> volley::ServerHandle {
    echo_server()
        .idle_timeout(Some(Duration::from_millis(100)))
        .build()
        .unwrap()
        .serve("127.0.0.1:0")
        .await
        .unwrap()
}

/// Connects once the server is listening.
async fn connect_retrying(address: std::net::SocketAddr) -> Client {
    for _ in 0..500 {
        if let Ok(client) = Client::connect(address).await {
            return client;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the server never listened on {address}");
}

#[tokio::test]
async fn a_channel_makes_every_kind_of_streaming_call_with_a_typed_method() {
    const COUNT: Method<Echo, Echo> = Method::new("/test.Channel/Count");
    const SUM: Method<Echo, Echo> = Method::new("/test.Channel/Sum");
    let server = Server::builder()
        .server_streaming(COUNT, |_request: Request<Echo>, mut out: StreamSender<Echo>| async move {
            out.send(&echo(&b"a"[..])).await?;
            out.send(&echo(&b"b"[..])).await
        })
        .client_streaming(SUM, |mut request: Request<Streaming<Echo>>| async move {
            let mut bytes = Vec::new();
            while let Some(part) = request.message().await? {
                bytes.extend_from_slice(&part.payload);
            }
            Ok::<_, Status>(echo(bytes))
        })
        .build()
        .unwrap()
        .serve("127.0.0.1:0")
        .await
        .unwrap();
    let channel = Channel::builder().connect_lazy(server.local_addr()).unwrap();
    let mut count = channel.server_streaming(COUNT, &echo(&b""[..]), CallOptions::new()).await.unwrap();
    assert_eq!(&count.message().await.unwrap().unwrap().payload[..], b"a");
    assert_eq!(&count.message().await.unwrap().unwrap().payload[..], b"b");
    assert!(count.message().await.unwrap().is_none());
    let mut sum = channel.client_streaming(SUM, CallOptions::new()).await.unwrap();
    sum.send(&echo(&b"x"[..])).await.unwrap();
    sum.send(&echo(&b"y"[..])).await.unwrap();
    assert_eq!(&sum.finish().await.unwrap().payload[..], b"xy");
    server.shutdown().await;
}
