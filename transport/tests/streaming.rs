//! Streaming calls over loopback TCP and Unix sockets: every kind, flow control, isolation,
//! cancellation at each stage, deadlines and connection loss.

mod common;

use std::time::{Duration, Instant};

use common::raw::RawPeer;
use common::{ECHO, ECHO_ID, Echo, Live, echo, unix_path, wait_for};
use volley::net::Address;
use volley::protocol::ConnectionConfig;
use volley::{CallOptions, Client, Code, MethodId, Request, Server, ServerHandle, Status, StreamSender, Streaming};

const COUNT: &str = "/test.Stream/Count";
const SUM: &str = "/test.Stream/Sum";
const CHAT: &str = "/test.Stream/Chat";
const HOLD: &str = "/test.Stream/Hold";

fn id(name: &str) -> MethodId {
    MethodId::from_name(name)
}

/// A server with: Count (server streaming: `sleep_ms` = how many messages), Sum (client
/// streaming: total payload bytes), Chat (bidi echo), Hold (bidi that never answers), and Echo.
fn stream_server(live: Live, config: ConnectionConfig) -> volley::server::ServerBuilder {
    let (hold_live, chat_live) = (live.clone(), live);
    Server::builder()
        .connection_config(config)
        .unary(ECHO, |request: Request<Echo>| async move { Ok::<_, Status>(request.into_inner()) })
        .server_streaming(COUNT, |request: Request<Echo>, mut sender: StreamSender<Echo>| async move {
            for i in 0..request.get_ref().sleep_ms {
                sender.send(&echo(i.to_le_bytes().to_vec())).await?;
            }
            Ok(())
        })
        .client_streaming(SUM, |mut request: Request<Streaming<Echo>>| async move {
            let mut total = 0u64;
            while let Some(message) = request.message().await? {
                total += message.payload.len() as u64;
            }
            Ok(Echo {
                sleep_ms: total,
                ..echo("")
            })
        })
        .bidi_streaming(
            CHAT,
            move |mut request: Request<Streaming<Echo>>, mut sender: StreamSender<Echo>| {
                let live = chat_live.clone();
                async move {
                    let _guard = live.enter();
                    while let Some(message) = request.message().await? {
                        sender.send(&message).await?;
                    }
                    Ok(())
                }
            },
        )
        .bidi_streaming(HOLD, move |_request: Request<Streaming<Echo>>, _sender: StreamSender<Echo>| {
            let live = hold_live.clone();
            async move {
                let _guard = live.enter();
                std::future::pending::<()>().await;
                Ok(())
            }
        })
}

async fn start(live: Live) -> (ServerHandle, Client) {
    let server = stream_server(live, ConnectionConfig::default())
        .build()
        .unwrap()
        .serve("127.0.0.1:0")
        .await
        .unwrap();
    let client = Client::connect(server.local_addr()).await.unwrap();
    (server, client)
}

async fn exercise_every_kind(client: &Client) {
    let count = Echo {
        sleep_ms: 1000,
        ..echo("")
    };
    let mut stream: Streaming<Echo> = client.server_streaming(id(COUNT), &count, CallOptions::default()).await.unwrap();
    let mut n = 0u64;
    while let Some(message) = stream.message().await.unwrap() {
        assert_eq!(message.payload[..], n.to_le_bytes());
        n += 1;
    }
    assert_eq!(n, 1000);

    let mut call = client
        .client_streaming::<Echo, Echo>(id(SUM), CallOptions::default())
        .await
        .unwrap();
    for _ in 0..100 {
        call.send(&echo(vec![1u8; 10])).await.unwrap();
    }
    assert_eq!(call.finish().await.unwrap().sleep_ms, 1000);

    let (mut sender, mut replies) = client.bidi_streaming::<Echo, Echo>(id(CHAT), CallOptions::default()).await.unwrap();
    for i in 0..50u32 {
        sender.send(&echo(i.to_le_bytes().to_vec())).await.unwrap();
        let reply = replies.message().await.unwrap().unwrap();
        assert_eq!(reply.payload[..], i.to_le_bytes());
    }
    sender.close();
    assert!(replies.message().await.unwrap().is_none(), "the server ends after our half-close");
}

#[tokio::test]
async fn every_streaming_kind_works_over_tcp() {
    let (_server, client) = start(Live::default()).await;
    exercise_every_kind(&client).await;
}

#[tokio::test]
async fn every_streaming_kind_works_over_a_unix_socket() {
    let path = unix_path("streaming");
    let server = stream_server(Live::default(), ConnectionConfig::default())
        .build()
        .unwrap()
        .serve(Address::Unix(path.clone()))
        .await
        .unwrap();
    let client = Client::connect(Address::Unix(path)).await.unwrap();
    exercise_every_kind(&client).await;
    server.shutdown().await;
}

/// Streams `count` 8-byte messages from the server through a per-call window of `window`
/// bytes; returns the messages read, the client's peak bytes buffered, and both handles.
async fn stream_through_a_window(window: u32, count: u64) -> (u64, usize, ServerHandle, Client) {
    let mut config = ConnectionConfig::default();
    config.settings.initial_call_window = window;
    let server = stream_server(Live::default(), config.clone())
        .build()
        .unwrap()
        .serve("127.0.0.1:0")
        .await
        .unwrap();
    let client = Client::builder()
        .connection_config(config)
        .connect(server.local_addr())
        .await
        .unwrap();
    let request = Echo {
        sleep_ms: count,
        ..echo("")
    };
    let mut stream: Streaming<Echo> = client.server_streaming(id(COUNT), &request, CallOptions::default()).await.unwrap();
    let mut n = 0u64;
    while let Some(message) = stream.message().await.unwrap() {
        assert_eq!(message.payload.len(), 8);
        n += 1;
    }
    let peak = client.stats().stream_buffered_peak;
    (n, peak as usize, server, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_small_messages_stay_within_the_window() {
    let (n, peak, server, client) = stream_through_a_window(64 * 1024, 1_000_000).await;
    assert_eq!(n, 1_000_000);
    // Each message is 10 bytes on the wire: at most one window plus one message buffered.
    assert!(peak <= 64 * 1024 + 10, "peak buffered {peak} bytes");
    let stats = client.stats();
    assert!(stats.frames_in > 1_000_000 && stats.bytes_in > 10_000_000);
    // Small messages sent back to back share writes.
    let sent = server.stats();
    assert!(
        sent.frames_per_write() >= 16.0,
        "{} frames per write on the sending side",
        sent.frames_per_write()
    );
}

/// A receiver takes up to 32 messages from its mailbox per lock and credits them back once it
/// has handed them out: with a window of only 25 messages the stream must still flow, one
/// credit after another, and never hold more than the window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_smaller_than_a_receive_batch_still_flows() {
    let (n, peak, _server, _client) = stream_through_a_window(250, 20_000).await;
    assert_eq!(n, 20_000);
    assert!(peak <= 250 + 10, "peak buffered {peak} bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_stream_does_not_block_unary_calls_or_other_streams() {
    let mut config = ConnectionConfig::default();
    config.settings.initial_call_window = 16 * 1024;
    let server = stream_server(Live::default(), config.clone())
        .build()
        .unwrap()
        .serve("127.0.0.1:0")
        .await
        .unwrap();
    let client = Client::builder()
        .connection_config(config)
        .connect(server.local_addr())
        .await
        .unwrap();
    // A stream of a million messages that nobody reads.
    let stalled: Streaming<Echo> = client
        .server_streaming(
            id(COUNT),
            &Echo {
                sleep_ms: 1_000_000,
                ..echo("")
            },
            CallOptions::default(),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    for _ in 0..100 {
        let reply: Echo = client.unary(ECHO_ID, &echo("through"), CallOptions::default()).await.unwrap();
        assert_eq!(reply.payload, "through");
    }
    let mut other: Streaming<Echo> = client
        .server_streaming(id(COUNT), &Echo { sleep_ms: 500, ..echo("") }, CallOptions::default())
        .await
        .unwrap();
    let mut n = 0;
    while other.message().await.unwrap().is_some() {
        n += 1;
    }
    assert_eq!(n, 500);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(client.stats().stream_buffered_peak <= 16 * 1024 + 10);
    drop(stalled);
}

#[tokio::test]
async fn cancelling_at_each_stage_drops_the_server_handler() {
    let live = Live::default();
    let (server, client) = start(live.clone()).await;
    // Before the first message.
    let (sender, stream) = client.bidi_streaming::<Echo, Echo>(id(HOLD), CallOptions::default()).await.unwrap();
    wait_for("handler started", || live.count() == 1).await;
    drop(stream);
    wait_for("handler dropped after cancel before any message", || live.count() == 0).await;
    drop(sender);
    // Mid-stream.
    let (mut sender, mut replies) = client.bidi_streaming::<Echo, Echo>(id(CHAT), CallOptions::default()).await.unwrap();
    sender.send(&echo("one")).await.unwrap();
    assert!(replies.message().await.unwrap().is_some());
    drop(replies);
    wait_for("handler dropped after cancel mid-stream", || live.count() == 0).await;
    // After half-close.
    let (mut sender, replies) = client.bidi_streaming::<Echo, Echo>(id(HOLD), CallOptions::default()).await.unwrap();
    sender.send(&echo("x")).await.unwrap();
    sender.close();
    wait_for("handler running", || live.count() == 1).await;
    drop(replies);
    wait_for("handler dropped after cancel after half-close", || live.count() == 0).await;
    wait_for("server calls all ended", || server.stats().calls_in_flight == 0).await;
    let reply: Echo = client.unary(ECHO_ID, &echo("alive"), CallOptions::default()).await.unwrap();
    assert_eq!(reply.payload, "alive");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_interleaved_streams() {
    let (_server, client) = start(Live::default()).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..1000u32 {
        let client = client.clone();
        tasks.spawn(async move {
            let (mut sender, mut replies) = client.bidi_streaming::<Echo, Echo>(id(CHAT), CallOptions::default()).await.unwrap();
            for j in 0..10u32 {
                let payload = [i.to_le_bytes(), j.to_le_bytes()].concat();
                sender.send(&echo(payload.clone())).await.unwrap();
                assert_eq!(replies.message().await.unwrap().unwrap().payload, payload);
            }
            sender.close();
            assert!(replies.message().await.unwrap().is_none());
        });
    }
    while let Some(result) = tasks.join_next().await {
        result.unwrap();
    }
}

#[tokio::test]
async fn a_deadline_covers_the_whole_stream() {
    let live = Live::default();
    let (_server, client) = start(live.clone()).await;
    let (_sender, mut replies) = client
        .bidi_streaming::<Echo, Echo>(id(HOLD), CallOptions::default().timeout(Duration::from_millis(100)))
        .await
        .unwrap();
    let started = Instant::now();
    let err = replies.message().await.unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded);
    assert!(started.elapsed() < Duration::from_secs(2));
    wait_for("the server dropped the handler at the deadline", || live.count() == 0).await;
}

#[tokio::test]
async fn a_lost_connection_ends_every_stream_with_unavailable() {
    let live = Live::default();
    let (server, client) = start(live.clone()).await;
    let (mut sender, mut replies) = client.bidi_streaming::<Echo, Echo>(id(HOLD), CallOptions::default()).await.unwrap();
    wait_for("handler started", || live.count() == 1).await;
    server.abort();
    let err = replies.message().await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err}");
    assert_eq!(sender.send(&echo("late")).await.unwrap_err().code(), Code::Unavailable);
    wait_for("server handler dropped", || live.count() == 0).await;
}

#[tokio::test]
async fn a_server_error_mid_stream_reaches_the_client_with_its_status() {
    let server = Server::builder()
        .server_streaming(COUNT, |_request: Request<Echo>, mut sender: StreamSender<Echo>| async move {
            sender.send(&echo("first")).await?;
            Err(Status::data_loss("lost the rest"))
        })
        .build()
        .unwrap()
        .serve("127.0.0.1:0")
        .await
        .unwrap();
    let client = Client::connect(server.local_addr()).await.unwrap();
    let mut stream: Streaming<Echo> = client.server_streaming(id(COUNT), &echo(""), CallOptions::default()).await.unwrap();
    assert_eq!(stream.message().await.unwrap().unwrap().payload, "first");
    let err = stream.message().await.unwrap_err();
    assert_eq!(err.code(), Code::DataLoss);
    assert_eq!(err.message(), "lost the rest");
}

#[tokio::test]
async fn a_peer_sending_beyond_its_credit_gets_the_stream_reset_then_the_connection_closed() {
    use volley::wire::{CallHead, CallId, Frame};
    let mut config = ConnectionConfig::default();
    config.settings.initial_call_window = 1024;
    let server = stream_server(Live::default(), config)
        .build()
        .unwrap()
        .serve("127.0.0.1:0")
        .await
        .unwrap();
    let mut peer = RawPeer::handshake(&server).await;
    let open = |id: u64| Frame::Request {
        call_id: CallId(id),
        head: CallHead {
            method_id: id_of(HOLD),
            ..CallHead::default()
        },
        message: None,
        end_stream: false,
    };
    let message = |id: u64, len: usize| Frame::Message {
        call_id: CallId(id),
        message: bytes::Bytes::from(vec![0u8; len]),
        end_stream: false,
    };
    // A message larger than the window is allowed while the window is positive; the next is not.
    for call in 1..=4u64 {
        peer.send_frame(open(call)).await;
        peer.send_frame(message(call, 2000)).await;
        peer.send_frame(message(call, 10)).await;
    }
    let frames = peer.frames_until_close().await;
    let resets = frames
        .iter()
        .filter(|f| matches!(f, Frame::Status { status, .. } if status.code == Code::ResourceExhausted && status.message_str().contains("flow-control")))
        .count();
    assert_eq!(resets, 3, "three streams reset: {frames:?}");
    match frames.last() {
        Some(Frame::GoAway(goaway)) => assert!(goaway.reason_str().contains("flow-control"), "{}", goaway.reason_str()),
        other => panic!("expected a GoAway, got {other:?}"),
    }
    // The server itself is fine.
    let client = Client::connect(server.local_addr()).await.unwrap();
    let reply: Echo = client.unary(ECHO_ID, &echo("fine"), CallOptions::default()).await.unwrap();
    assert_eq!(reply.payload, "fine");
}

fn id_of(name: &str) -> MethodId {
    MethodId::from_name(name)
}

#[tokio::test]
async fn trailing_metadata_of_an_ok_status_reaches_the_client() {
    let server = Server::builder()
        .server_streaming(COUNT, |_request: Request<Echo>, mut sender: StreamSender<Echo>| async move {
            sender.send(&echo("only")).await?;
            let mut trailers = volley::Metadata::new();
            trailers.insert("x-count", "1").unwrap();
            Err(Status::with_metadata(Code::Ok, "", trailers))
        })
        .build()
        .unwrap()
        .serve("127.0.0.1:0")
        .await
        .unwrap();
    let client = Client::connect(server.local_addr()).await.unwrap();
    let mut stream: Streaming<Echo> = client.server_streaming(id(COUNT), &echo(""), CallOptions::default()).await.unwrap();
    assert!(stream.message().await.unwrap().is_some());
    assert!(stream.message().await.unwrap().is_none());
    assert_eq!(stream.trailers().and_then(|t| t.get("x-count")), Some(&b"1"[..]));
}

#[tokio::test]
async fn a_dropped_client_keeps_its_open_stream_and_closes_the_connection_when_it_ends() {
    let (server, client) = start(Live::default()).await;
    let (mut sender, mut replies) = client.bidi_streaming::<Echo, Echo>(id(CHAT), CallOptions::default()).await.unwrap();
    drop(client);
    // The stream outlives every handle to its client.
    for i in 0..3u8 {
        sender.send_now(&echo(vec![i])).await.unwrap();
        assert_eq!(replies.message().await.unwrap().unwrap().payload[..], [i]);
    }
    assert_eq!(server.connections(), 1);
    sender.close();
    assert_eq!(replies.message().await.unwrap(), None);
    drop(replies);
    wait_for("the server sees the connection of the dropped client close", || {
        server.connections() == 0
    })
    .await;
    server.shutdown().await;
}

/// Opens a held bidi call (the handler never answers) from a raw peer and waits for its handler.
async fn raw_peer_with_a_held_call(server: &ServerHandle, live: &Live) -> RawPeer {
    use volley::wire::{CallHead, CallId, Frame};
    let mut peer = RawPeer::handshake(server).await;
    peer.send_frame(Frame::Request {
        call_id: CallId(1),
        head: CallHead {
            method_id: id(HOLD),
            ..CallHead::default()
        },
        message: None,
        end_stream: false,
    })
    .await;
    wait_for("handler started", || live.count() == 1).await;
    peer
}

/// Sends `flood` and checks the server answers with the small-frame GoAway, drops the held
/// call's handler, and keeps serving `client`'s connection.
async fn flood_is_kicked_for_small_frames(mut peer: RawPeer, flood: &[u8], live: &Live, client: &Client) {
    use volley::wire::Frame;
    peer.send(flood).await;
    let frames = peer.frames_until_close().await;
    match frames.last() {
        Some(Frame::GoAway(goaway)) => {
            assert_eq!(goaway.code, Code::ResourceExhausted);
            assert!(goaway.reason_str().contains("small frames"), "{}", goaway.reason_str());
        }
        other => panic!("expected a GoAway, got {other:?}"),
    }
    wait_for("the flooded call's handler was dropped", || live.count() == 0).await;
    // Other connections never notice.
    let reply: Echo = client.unary(ECHO_ID, &echo("fine"), CallOptions::default()).await.unwrap();
    assert_eq!(reply.payload, "fine");
}

#[tokio::test]
async fn a_flood_of_empty_stream_messages_closes_the_connection_with_the_default_budget() {
    use volley::wire::{CallId, Frame};
    let live = Live::default();
    let (server, client) = start(live.clone()).await;
    let peer = raw_peer_with_a_held_call(&server, &live).await;
    // 20,000 empty messages (twice the default burst), written in one go: they cost no window.
    let mut flood = bytes::BytesMut::new();
    for _ in 0..20_000 {
        Frame::Message {
            call_id: CallId(1),
            message: bytes::Bytes::new(),
            end_stream: false,
        }
        .encode(&mut flood);
    }
    flood_is_kicked_for_small_frames(peer, &flood, &live, &client).await;
}

#[tokio::test]
async fn a_flood_of_credit_frames_closes_the_connection_with_the_default_budget() {
    use volley::wire::{CallId, Frame};
    let live = Live::default();
    let (server, client) = start(live.clone()).await;
    let peer = raw_peer_with_a_held_call(&server, &live).await;
    // 20,000 one-byte credits (twice the default burst) for messages the server never sent.
    let mut flood = bytes::BytesMut::new();
    for n in 0..20_000u64 {
        Frame::Credit {
            call_id: CallId(n % 2),
            increment: 1,
        }
        .encode(&mut flood);
    }
    flood_is_kicked_for_small_frames(peer, &flood, &live, &client).await;
}
