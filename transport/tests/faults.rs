//! Faults over real sockets: shutdown and loss mid-call, reconnection, dead-peer detection,
//! socket options.

mod common;

use std::time::{Duration, Instant};

use common::{ECHO_ID, Echo, echo, echo_server, start_tcp};
use tokio::io::AsyncWriteExt;
use volley::client::{Backoff, ChannelBuilder};
use volley::net::SocketConfig;
use volley::wire::{Frame, Preface, Settings};
use volley::{CallOptions, Channel, Client, Code};

fn slow(ms: u64) -> Echo {
    Echo {
        sleep_ms: ms,
        ..echo("slow")
    }
}

#[tokio::test]
async fn graceful_shutdown_lets_calls_in_flight_finish() {
    let server = start_tcp().await;
    let client = Client::connect(server.local_addr()).await.unwrap();
    let in_flight = {
        let client = client.clone();
        tokio::spawn(async move { client.unary::<_, Echo>(ECHO_ID, &slow(200), CallOptions::default()).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = Instant::now();
    server.shutdown().await;
    let reply = in_flight.await.unwrap().expect("the call in flight finished");
    assert_eq!(reply.payload, "slow");
    assert!(started.elapsed() >= Duration::from_millis(100), "shutdown waited for the call");
    let err = client
        .unary::<_, Echo>(ECHO_ID, &echo("late"), CallOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err}");
}

#[tokio::test]
async fn a_hard_stop_fails_calls_in_flight_with_unavailable() {
    let server = start_tcp().await;
    let client = Client::connect(server.local_addr()).await.unwrap();
    let in_flight = {
        let client = client.clone();
        tokio::spawn(async move { client.unary::<_, Echo>(ECHO_ID, &slow(10_000), CallOptions::default()).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = Instant::now();
    server.abort();
    let err = in_flight.await.unwrap().unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err}");
    assert!(started.elapsed() < Duration::from_secs(1), "the call failed promptly");
}

#[tokio::test]
async fn a_drain_timeout_closes_calls_that_do_not_finish() {
    let server = echo_server()
        .drain_timeout(Duration::from_millis(100))
        .build()
        .unwrap()
        .serve("127.0.0.1:0")
        .await
        .unwrap();
    let client = Client::connect(server.local_addr()).await.unwrap();
    let in_flight = {
        let client = client.clone();
        tokio::spawn(async move { client.unary::<_, Echo>(ECHO_ID, &slow(10_000), CallOptions::default()).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    server.shutdown().await;
    assert_eq!(in_flight.await.unwrap().unwrap_err().code(), Code::Unavailable);
}

#[tokio::test]
async fn a_peer_dropped_mid_call_fails_the_call_promptly() {
    // A fake server that accepts, handshakes, reads the request and then vanishes.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut hello = bytes::BytesMut::new();
        hello.extend_from_slice(&Preface::CURRENT.encode());
        Frame::Settings(Settings::default()).encode(&mut hello);
        stream.write_all(&hello).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(stream);
    });
    let client = Client::connect(addr).await.unwrap();
    let started = Instant::now();
    let err = client
        .unary::<_, Echo>(ECHO_ID, &echo("x"), CallOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err}");
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(client.is_closed());
}

/// A raw peer's preface and settings, allowing pings at any rate: the peer that then answers
/// nothing, for the keepalive tests on both sides.
fn hello_allowing_any_ping_rate() -> bytes::BytesMut {
    let mut hello = bytes::BytesMut::new();
    hello.extend_from_slice(&Preface::CURRENT.encode());
    Frame::Settings(Settings {
        min_ping_interval_ms: 0,
        ..Settings::default()
    })
    .encode(&mut hello);
    hello
}

#[tokio::test]
async fn a_server_with_keepalive_closes_a_client_that_stopped_answering() {
    // A raw client that handshakes, allows pings at any rate, then answers nothing.
    let server = echo_server()
        .keepalive(Duration::from_millis(100), Duration::from_millis(200))
        .build()
        .unwrap()
        .serve("127.0.0.1:0")
        .await
        .unwrap();
    let mut peer = common::raw::RawPeer::connect(&server).await;
    peer.send(&hello_allowing_any_ping_rate()).await;
    let started = Instant::now();
    let frames = peer.frames_until_close().await;
    let elapsed = started.elapsed();
    assert!(frames.iter().any(|frame| matches!(frame, Frame::Ping { .. })), "{frames:?}");
    let goaway = frames.iter().find_map(|frame| match frame {
        Frame::GoAway(goaway) => Some(goaway),
        _ => None,
    });
    let goaway = goaway.unwrap_or_else(|| panic!("no GoAway before the close: {frames:?}"));
    assert_eq!(goaway.code, Code::Unavailable, "{goaway:?}");
    assert!(goaway.reason_str().contains("keepalive"), "{goaway:?}");
    assert!(
        elapsed < Duration::from_secs(2),
        "found within interval + timeout, took {elapsed:?}"
    );
    // A client that answers pings is never closed by them.
    let client = Client::connect(server.local_addr().clone()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let reply: Echo = client.unary(ECHO_ID, &echo("still here"), CallOptions::default()).await.unwrap();
    assert_eq!(reply, echo("still here"));
    server.shutdown().await;
}

#[tokio::test]
async fn a_half_open_peer_is_detected_by_keepalive() {
    // A fake server that handshakes and then never answers anything, pings included.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        stream.write_all(&hello_allowing_any_ping_rate()).await.unwrap();
        tokio::time::sleep(Duration::from_secs(10)).await;
    });
    let client = Client::builder()
        .keepalive(Duration::from_millis(100), Duration::from_millis(200))
        .connect(addr)
        .await
        .unwrap();
    let started = Instant::now();
    let err = client
        .unary::<_, Echo>(ECHO_ID, &echo("x"), CallOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err}");
    assert!(err.message().contains("keepalive"), "{err}");
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(2),
        "detected within interval + timeout, took {elapsed:?}"
    );
}

#[tokio::test]
async fn a_channel_reconnects_after_the_server_restarts_on_the_same_port() {
    let server = start_tcp().await;
    let address = server.local_addr().clone();
    let channel = ChannelBuilder::default()
        .backoff(Backoff {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(50),
            ..Backoff::default()
        })
        .connect(&address)
        .await
        .unwrap();
    let reply: Echo = channel.unary(ECHO_ID, &echo("one"), CallOptions::default()).await.unwrap();
    assert_eq!(reply.payload, "one");
    server.shutdown().await;
    // While nobody listens, a call with a deadline fails with UNAVAILABLE.
    let err = channel
        .unary::<_, Echo>(ECHO_ID, &echo("none"), CallOptions::default().timeout(Duration::from_millis(100)))
        .await
        .unwrap_err();
    assert!(matches!(err.code(), Code::Unavailable | Code::DeadlineExceeded), "{err}");
    let restarted = echo_server().build().unwrap().serve(&address).await.unwrap();
    let reply: Echo = channel
        .unary(ECHO_ID, &echo("two"), CallOptions::default().timeout(Duration::from_secs(5)))
        .await
        .unwrap();
    assert_eq!(reply.payload, "two");
    restarted.shutdown().await;
}

#[tokio::test]
async fn new_calls_after_a_goaway_go_to_a_fresh_connection() {
    let server = start_tcp().await;
    let channel = Channel::builder().connect(server.local_addr()).await.unwrap();
    let _: Echo = channel.unary(ECHO_ID, &echo("a"), CallOptions::default()).await.unwrap();
    let first = channel.stats().unwrap();
    // A second server takes the port over once the first goes away; reuse the address.
    let address = server.local_addr().clone();
    server.shutdown().await;
    let next = echo_server().build().unwrap().serve(&address).await.unwrap();
    let _: Echo = channel
        .unary(ECHO_ID, &echo("b"), CallOptions::default().timeout(Duration::from_secs(5)))
        .await
        .unwrap();
    let second = channel.stats().unwrap();
    assert_eq!(first.calls_started, 1);
    assert_eq!(second.calls_started, 1, "the second call ran on a new connection");
    next.shutdown().await;
}

#[tokio::test]
async fn socket_options_are_applied_and_read_back() {
    let config = SocketConfig {
        nodelay: true,
        send_buffer_size: Some(256 * 1024),
        recv_buffer_size: Some(256 * 1024),
        ..SocketConfig::default()
    };
    let server = echo_server()
        .socket_config(config.clone())
        .build()
        .unwrap()
        .serve("127.0.0.1:0")
        .await
        .unwrap();
    let client = Client::builder().socket_config(config).connect(server.local_addr()).await.unwrap();
    let applied = client.socket_options();
    assert_eq!(applied.nodelay, Some(true));
    assert_eq!(applied.keepalive, Some(true));
    // Linux doubles the requested size for bookkeeping; other kernels may cap it.
    let send = applied.send_buffer_size.unwrap();
    assert!(send >= 256 * 1024, "SO_SNDBUF read back as {send}");
    assert!(applied.warnings.is_empty(), "{:?}", applied.warnings);
    let _: Echo = client.unary(ECHO_ID, &echo("tuned"), CallOptions::default()).await.unwrap();
}

#[tokio::test]
async fn an_option_the_kernel_refuses_is_a_warning_not_a_failure() {
    // Raising SO_BUSY_POLL needs CAP_NET_ADMIN on most kernels; either way the connection works.
    let config = SocketConfig {
        busy_poll_micros: Some(50),
        ..SocketConfig::default()
    };
    let server = start_tcp().await;
    let client = Client::builder().socket_config(config).connect(server.local_addr()).await.unwrap();
    let applied = client.socket_options();
    assert!(
        applied.busy_poll_micros == Some(50) || applied.warnings.iter().any(|w| w.contains("SO_BUSY_POLL")),
        "{applied:?}"
    );
    let _: Echo = client.unary(ECHO_ID, &echo("ok"), CallOptions::default()).await.unwrap();
}

#[tokio::test]
async fn connections_beyond_the_cap_are_closed_and_the_others_keep_working() {
    let server = echo_server()
        .max_connections(2)
        .build()
        .unwrap()
        .serve("127.0.0.1:0")
        .await
        .unwrap();
    let first = Client::connect(server.local_addr()).await.unwrap();
    let second = Client::connect(server.local_addr()).await.unwrap();
    // Both busy (a call open on each), so admission cannot close an idle one to make room.
    let slow = Echo {
        sleep_ms: 1_000,
        ..echo("ok")
    };
    let calls: Vec<_> = [&first, &second]
        .into_iter()
        .map(|client| {
            let (client, slow) = (client.clone(), slow.clone());
            tokio::spawn(async move { client.unary::<_, Echo>(ECHO_ID, &slow, CallOptions::default()).await })
        })
        .collect();
    common::wait_for("both calls to be open", || server.stats().calls_started >= 2).await;
    let third = Client::connect(server.local_addr()).await;
    assert!(third.is_err(), "the third connection is refused at accept");
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap().payload, "ok");
    }
    assert_eq!(server.connections(), 2);
    assert_eq!(server.admission().refused_server_full, 1);
}

#[tokio::test]
async fn an_idle_connection_is_closed_with_a_graceful_goaway_and_the_channel_reconnects() {
    let server = echo_server()
        .idle_timeout(Some(Duration::from_millis(200)))
        .build()
        .unwrap()
        .serve("127.0.0.1:0")
        .await
        .unwrap();
    let channel = Channel::builder().connect(server.local_addr()).await.unwrap();
    let _: Echo = channel.unary(ECHO_ID, &echo("a"), CallOptions::default()).await.unwrap();
    // A call longer than the idle timeout is not cut.
    let _: Echo = channel.unary(ECHO_ID, &slow(400), CallOptions::default()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(server.connections(), 0, "the idle connection was closed");
    let _: Echo = channel.unary(ECHO_ID, &echo("b"), CallOptions::default()).await.unwrap();
    assert_eq!(server.connections(), 1);
}

#[tokio::test]
async fn shutdown_does_not_wait_for_a_peer_stuck_in_its_handshake() {
    let server = start_tcp().await;
    let volley::net::Address::Tcp(addr) = server.local_addr().clone() else {
        unreachable!()
    };
    let _silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = Instant::now();
    server.shutdown().await;
    assert!(started.elapsed() < Duration::from_secs(1), "took {:?}", started.elapsed());
}
