//! Every call kind through the generated stubs, end to end over loopback: unary, server-,
//! client- and bidirectional streaming through a `Client` and a `Channel`, over TCP and a Unix
//! socket; the status a streaming handler fails with; deadlines and cancellation; and the
//! streaming rpcs of the hazard, grpc and documented protos.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use volley::net::{Address, ToAddress};
use volley::{CallOptions, Caller, Channel, Client, Code, Server, ServerHandle};
use volley_codegen_tests::documented::orders as doc;
use volley_codegen_tests::proto::{grpc, hazards::streaming as s};

use common::{Streams, UNLUCKY, unlucky};
use s::Tick;
use s::mixed_client::MixedClient;

fn tick(seq: u64) -> Tick {
    Tick { seq }
}

/// A server with the streaming services at `address`, and the implementation behind them.
async fn serve(address: impl ToAddress) -> (ServerHandle, Arc<Streams>) {
    let streams = Arc::new(Streams::default());
    let handle = common::add_services(Server::builder(), &streams)
        .build()
        .unwrap()
        .serve(address)
        .await
        .unwrap();
    (handle, streams)
}

/// A Unix socket path unique to this process and `name`.
fn unix_path(name: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("volley-codegen-{}-{name}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

/// Calls each of the four kinds of `Mixed` through `caller` and checks every message.
async fn every_call_kind(caller: impl Caller) {
    let mixed = MixedClient::new(caller);

    // Unary.
    assert_eq!(mixed.get(tick(7)).await.unwrap(), tick(7));

    // Server streaming: ticks 0..5, then the end.
    let mut ticks = mixed.subscribe(tick(5)).await.unwrap();
    let mut seqs = Vec::new();
    while let Some(tick) = ticks.message().await.unwrap() {
        seqs.push(tick.seq);
    }
    assert_eq!(seqs, [0, 1, 2, 3, 4]);
    assert_eq!(ticks.message().await.unwrap(), None, "the end stays the end");

    // An empty stream of responses.
    let mut none = mixed.subscribe(tick(0)).await.unwrap();
    assert_eq!(none.message().await.unwrap(), None);

    // Client streaming: ticks in, their sum out once the sender is closed.
    let mut upload = mixed.upload().await.unwrap();
    for seq in 1..UNLUCKY {
        upload.send(&tick(seq)).await.unwrap();
    }
    assert_eq!(upload.finish().await.unwrap(), tick(78));

    // Client streaming with no requests at all.
    let upload = mixed.upload().await.unwrap();
    assert_eq!(upload.finish().await.unwrap(), tick(0));

    // Bidirectional, in lockstep: each reply arrives before the next tick is sent.
    let (mut sender, mut replies) = mixed.chat().await.unwrap();
    for seq in 0..10 {
        sender.send_now(&tick(seq)).await.unwrap();
        assert_eq!(replies.message().await.unwrap(), Some(tick(seq * 2)));
    }
    sender.close();
    assert_eq!(replies.message().await.unwrap(), None);

    // Bidirectional, a burst of ticks before any reply is read.
    let (mut sender, mut replies) = mixed.chat_with(CallOptions::new().timeout(Duration::from_secs(10))).await.unwrap();
    for seq in 0..200 {
        sender.send(&tick(seq % UNLUCKY)).await.unwrap();
    }
    drop(sender);
    let mut n = 0;
    while let Some(reply) = replies.message().await.unwrap() {
        assert_eq!(reply, tick(n % UNLUCKY * 2));
        n += 1;
    }
    assert_eq!(n, 200);
}

/// Each streaming kind of `Mixed` ends with the handler's status after the messages before it,
/// and the connection serves on.
async fn streaming_handlers_end_calls_with_their_status(caller: impl Caller) {
    let mixed = MixedClient::new(caller);
    let expected = unlucky();

    // Server streaming: the ticks before the unlucky one, then its status.
    let mut ticks = mixed.subscribe(tick(100)).await.unwrap();
    for seq in 0..UNLUCKY {
        assert_eq!(ticks.message().await.unwrap(), Some(tick(seq)));
    }
    let status = ticks.message().await.unwrap_err();
    assert_eq!((status.code(), status.message()), (expected.code(), expected.message()));

    // Client streaming: the status instead of the response.
    let mut upload = mixed.upload().await.unwrap();
    upload.send(&tick(1)).await.unwrap();
    upload.send(&tick(UNLUCKY)).await.unwrap();
    let status = upload.finish().await.unwrap_err();
    assert_eq!((status.code(), status.message()), (expected.code(), expected.message()));

    // Bidirectional: the replies before the unlucky tick, then the status.
    let (mut sender, mut replies) = mixed.chat().await.unwrap();
    sender.send(&tick(12)).await.unwrap();
    assert_eq!(replies.message().await.unwrap(), Some(tick(24)));
    sender.send(&tick(UNLUCKY)).await.unwrap();
    let status = replies.message().await.unwrap_err();
    assert_eq!((status.code(), status.message()), (expected.code(), expected.message()));
    let late = sender.send(&tick(1)).await.unwrap_err();
    assert_eq!(late.code(), expected.code(), "sending after the call failed: {late:?}");

    assert_eq!(mixed.get(tick(1)).await.unwrap(), tick(1));
}

#[tokio::test]
async fn every_call_kind_runs_through_a_client_over_tcp() {
    let (handle, _) = serve("127.0.0.1:0").await;
    let client = Client::connect(handle.local_addr()).await.unwrap();
    every_call_kind(client.clone()).await;
    streaming_handlers_end_calls_with_their_status(client).await;
    handle.shutdown().await;
}

#[tokio::test]
async fn every_call_kind_runs_through_a_channel_over_tcp() {
    let (handle, _) = serve("127.0.0.1:0").await;
    let channel = Channel::builder().connect(handle.local_addr()).await.unwrap();
    every_call_kind(channel.clone()).await;
    streaming_handlers_end_calls_with_their_status(channel).await;
    handle.shutdown().await;
}

#[tokio::test]
async fn every_call_kind_runs_over_a_unix_socket() {
    let path = unix_path("every-kind");
    let (handle, _) = serve(Address::Unix(path.clone())).await;
    let client = Client::connect(Address::Unix(path.clone())).await.unwrap();
    every_call_kind(client).await;
    let channel = Channel::builder().connect(Address::Unix(path.clone())).await.unwrap();
    streaming_handlers_end_calls_with_their_status(channel).await;
    handle.shutdown().await;
    let _ = std::fs::remove_file(path);
}

#[tokio::test]
async fn the_deadline_of_with_options_covers_the_whole_stream() {
    let (handle, _) = serve("127.0.0.1:0").await;
    let only = s::only_streams_client::OnlyStreamsClient::new(Client::connect(handle.local_addr()).await.unwrap());
    let (mut sender, mut replies) = only
        .chat_with(CallOptions::new().timeout(Duration::from_millis(200)))
        .await
        .unwrap();
    sender.send(&tick(1)).await.unwrap();
    assert_eq!(replies.message().await.unwrap(), Some(tick(1)));
    // The sender stays open, so only the deadline ends the call.
    let status = replies.message().await.unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    drop(sender);
    handle.shutdown().await;
}

#[tokio::test]
async fn dropping_the_response_stream_cancels_the_handler() {
    let (handle, streams) = serve("127.0.0.1:0").await;
    let only = s::only_streams_client::OnlyStreamsClient::new(Client::connect(handle.local_addr()).await.unwrap());
    let (mut sender, mut replies) = only.chat().await.unwrap();
    sender.send(&tick(1)).await.unwrap();
    assert_eq!(replies.message().await.unwrap(), Some(tick(1)));
    assert_eq!(streams.chatters.load(Ordering::SeqCst), 1);

    // The request stream stays open: only the cancel can end the handler.
    drop(replies);
    for _ in 0..500 {
        if streams.chatters.load(Ordering::SeqCst) == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(streams.chatters.load(Ordering::SeqCst), 0, "the handler still runs");
    let late = sender.send(&tick(2)).await.unwrap_err();
    assert_eq!(late.code(), Code::Cancelled, "{late:?}");

    let mixed = MixedClient::new(only.into_inner());
    assert_eq!(mixed.get(tick(2)).await.unwrap(), tick(2));
    handle.shutdown().await;
}

#[tokio::test]
async fn generated_streaming_calls_are_send_and_run_in_tasks() {
    let (handle, _) = serve("127.0.0.1:0").await;
    let mixed = MixedClient::new(Client::connect(handle.local_addr()).await.unwrap());
    let reader = tokio::spawn({
        let mixed = mixed.clone();
        async move {
            let mut ticks = mixed.subscribe(tick(3)).await?;
            let mut seqs = Vec::new();
            while let Some(tick) = ticks.message().await? {
                seqs.push(tick.seq);
            }
            Ok::<_, volley::Status>(seqs)
        }
    });
    let mut upload = mixed.upload().await.unwrap();
    let writer = tokio::spawn(async move {
        for seq in [4, 5, 6] {
            upload.send(&tick(seq)).await?;
        }
        upload.finish().await
    });
    assert_eq!(writer.await.unwrap().unwrap(), tick(15));
    assert_eq!(reader.await.unwrap().unwrap(), [0, 1, 2]);
    handle.shutdown().await;
}

#[tokio::test]
#[allow(deprecated)]
async fn keyword_named_deprecated_and_empty_streams_round_trip() {
    let (handle, _) = serve("127.0.0.1:0").await;
    let tricky = s::tricky_client::TrickyClient::new(Client::connect(handle.local_addr()).await.unwrap());

    // Messages named `Streaming` and `StreamSender`, both ways.
    let mut words = tricky.r#move(s::Streaming { text: "a b c".into() }).await.unwrap();
    let mut texts = Vec::new();
    while let Some(word) = words.message().await.unwrap() {
        texts.push(word.text);
    }
    assert_eq!(texts, ["a", "b", "c"]);
    let mut joined = tricky.type_with(CallOptions::new().priority(2)).await.unwrap();
    for word in ["x", "y"] {
        joined.send(&s::StreamSender { text: word.into() }).await.unwrap();
    }
    assert_eq!(joined.finish().await.unwrap().text, "x y");

    // Empty messages: zero-length bodies still count, one reply per request.
    let (mut sender, mut replies) = tricky.new_().await.unwrap();
    for _ in 0..3 {
        sender.send(&()).await.unwrap();
    }
    sender.close();
    let mut count = 0;
    while let Some(()) = replies.message().await.unwrap() {
        count += 1;
    }
    assert_eq!(count, 3);

    // The deprecated rpc still works.
    let (mut sender, mut replies) = tricky.ping().await.unwrap();
    sender.send(&tick(9)).await.unwrap();
    assert_eq!(replies.message().await.unwrap(), Some(tick(9)));
    drop(sender);
    assert_eq!(replies.message().await.unwrap(), None);
    handle.shutdown().await;
}

#[tokio::test]
async fn grpc_and_documented_streaming_rpcs_round_trip() {
    use grpc::health::v1::{HealthCheckRequest, health_check_response::ServingStatus};

    let (handle, _) = serve("127.0.0.1:0").await;
    let channel = Channel::builder().connect(handle.local_addr()).await.unwrap();

    let health = grpc::health::v1::health_client::HealthClient::new(channel.clone());
    let watch = |service: &str| HealthCheckRequest { service: service.into() };
    let mut statuses = health.watch(watch("")).await.unwrap();
    assert_eq!(statuses.message().await.unwrap().unwrap().status(), ServingStatus::Serving);
    assert_eq!(statuses.message().await.unwrap(), None);
    let mut statuses = health
        .watch_with(watch("nope"), CallOptions::new().timeout(Duration::from_secs(5)))
        .await
        .unwrap();
    assert_eq!(statuses.message().await.unwrap().unwrap().status(), ServingStatus::ServiceUnknown);

    let reflection = grpc::reflection::v1::server_reflection_client::ServerReflectionClient::new(channel.clone());
    let (_sender, mut responses) = reflection.server_reflection_info().await.unwrap();
    assert_eq!(responses.message().await.unwrap_err().code(), Code::Unimplemented);

    let desk = doc::orders_client::OrdersClient::new(channel);
    let order = doc::Order {
        id: "o-2".into(),
        quantity: 2,
        note: Vec::new(),
    };
    let mut fills = desk.watch_fills(order).await.unwrap();
    let mut ids = Vec::new();
    while let Some(fill) = fills.message().await.unwrap() {
        assert!(fill.accepted);
        ids.push(fill.id);
    }
    assert_eq!(ids, ["o-2/0", "o-2/1"]);
    handle.shutdown().await;
}
