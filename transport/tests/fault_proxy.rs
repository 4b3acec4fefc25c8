//! Faults between client and server, made by the in-process fault proxy (`common/proxy.rs`) or a
//! raw fake server, over loopback TCP: resets mid call, half frames, black holes, slow readers,
//! sliced writes, latency, graceful restarts, GoAways that refuse fresh calls, hard stops.
//!
//! "Promptly" means well within 5 s while the calls' own deadlines are 30 s; nothing here asserts
//! a tighter timing.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::proxy::{Direction, FaultProxy, Faults};
use common::raw::RawServer;
use common::{ECHO, ECHO_ID, Echo, Live, echo, wait_for};
use volley::client::Backoff;
use volley::protocol::ConnectionConfig;
use volley::wire::{CallId, Frame, GoAway};
use volley::{CallOptions, Channel, Client, Code, Metadata, MethodId, Request, Server, ServerHandle, Status, StreamSender, Streaming};

const HOLD: &str = "/test.Faults/Hold";
const TICKS: &str = "/test.Faults/Ticks";
const CHAT: &str = "/test.Faults/Chat";
const BIG: &str = "/test.Faults/Big";

/// Every call's deadline: far longer than any "promptly" bound, so a hang shows as a failure.
const LONG: Duration = Duration::from_secs(30);
/// How soon a failure counts as prompt.
const PROMPTLY: Duration = Duration::from_secs(5);

fn id(name: &str) -> MethodId {
    MethodId::from_name(name)
}

fn long() -> CallOptions {
    CallOptions::default().timeout(LONG)
}

/// What Ticks streams and Big answers: `count` messages of `size` bytes, `interval_ms` apart.
#[derive(Clone, PartialEq, prost::Message)]
struct Job {
    #[prost(uint64, tag = "1")]
    count: u64,
    #[prost(uint64, tag = "2")]
    size: u64,
    #[prost(uint64, tag = "3")]
    interval_ms: u64,
}

/// Message `index` of a stream: `size` bytes that differ per index and per position, so a torn,
/// shifted or mixed-up message cannot pass for a whole one.
fn pattern(index: u64, size: usize) -> Bytes {
    (0..size)
        .map(|k| (index.wrapping_mul(131).wrapping_add(k as u64 * 7) % 251) as u8)
        .collect()
}

fn tick(index: u64, size: usize) -> Echo {
    Echo {
        payload: pattern(index, size),
        sleep_ms: index,
        fail_with: 0,
    }
}

/// An Echo request carrying `pattern(index, size)` (and no delay: Echo sleeps `sleep_ms`).
fn numbered(index: u64, size: usize) -> Echo {
    Echo {
        payload: pattern(index, size),
        ..echo("")
    }
}

/// Asserts that `message` is message `index` of a stream of `size`-byte ticks.
fn assert_tick(message: &Echo, index: u64, size: usize) {
    assert_eq!(message.sleep_ms, index, "messages arrive in order");
    assert!(message.payload == pattern(index, size), "message {index} arrived intact");
}

/// Echo (honours `sleep_ms`), Hold (never answers), Ticks (server streaming), Chat (bidi echo)
/// and Big (a `size`-byte answer); every handler but Echo holds a `Live` guard.
fn server(live: &Live, config: ConnectionConfig) -> volley::server::ServerBuilder {
    let (hold, ticks, chat) = (live.clone(), live.clone(), live.clone());
    Server::builder()
        .connection_config(config)
        .unary(ECHO, |request: Request<Echo>| async move {
            let message = request.into_inner();
            if message.sleep_ms > 0 {
                tokio::time::sleep(Duration::from_millis(message.sleep_ms)).await;
            }
            Ok::<_, Status>(message)
        })
        .unary(HOLD, move |_request: Request<Echo>| {
            let live = hold.clone();
            async move {
                let _guard = live.enter();
                std::future::pending::<Result<Echo, Status>>().await
            }
        })
        .unary(BIG, |request: Request<Job>| async move {
            Ok::<_, Status>(tick(0, request.get_ref().size as usize))
        })
        .server_streaming(TICKS, move |request: Request<Job>, mut sender: StreamSender<Echo>| {
            let live = ticks.clone();
            async move {
                let _guard = live.enter();
                let job = request.into_inner();
                for i in 0..job.count {
                    sender.send(&tick(i, job.size as usize)).await?;
                    if job.interval_ms > 0 {
                        tokio::time::sleep(Duration::from_millis(job.interval_ms)).await;
                    }
                }
                Ok(())
            }
        })
        .bidi_streaming(
            CHAT,
            move |mut request: Request<Streaming<Echo>>, mut sender: StreamSender<Echo>| {
                let live = chat.clone();
                async move {
                    let _guard = live.enter();
                    while let Some(message) = request.message().await? {
                        sender.send(&message).await?;
                    }
                    Ok(())
                }
            },
        )
}

async fn start(live: &Live) -> ServerHandle {
    server(live, ConnectionConfig::default())
        .build()
        .unwrap()
        .serve("127.0.0.1:0")
        .await
        .unwrap()
}

/// A channel through the proxy that retries connecting quickly.
async fn channel(proxy: &FaultProxy) -> Channel {
    Channel::builder()
        .backoff(Backoff {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(100),
            ..Backoff::default()
        })
        .connect(proxy.address())
        .await
        .unwrap()
}

/// Runs a few unary and streaming calls and checks every message.
async fn exercise(client: &Client) {
    for size in [0usize, 1, 7, 100, 3000] {
        let request = numbered(size as u64, size);
        let reply: Echo = client.unary(ECHO_ID, &request, long()).await.unwrap();
        assert_eq!(reply, request);
    }
    let job = Job {
        count: 30,
        size: 40,
        interval_ms: 0,
    };
    let mut ticks: Streaming<Echo> = client.server_streaming(id(TICKS), &job, long()).await.unwrap();
    let mut n = 0;
    while let Some(message) = ticks.message().await.unwrap() {
        assert_tick(&message, n, 40);
        n += 1;
    }
    assert_eq!(n, 30);
    let (mut sender, mut replies) = client.bidi_streaming::<Echo, Echo>(id(CHAT), long()).await.unwrap();
    for i in 0..10u64 {
        sender.send(&tick(i, 25)).await.unwrap();
        assert_tick(&replies.message().await.unwrap().unwrap(), i, 25);
    }
    sender.close();
    assert!(replies.message().await.unwrap().is_none());
}

#[tokio::test]
async fn a_reset_mid_unary_fails_the_call_promptly_cancels_the_handler_and_the_channel_recovers() {
    let live = Live::default();
    let server = start(&live).await;
    let proxy = FaultProxy::start(&server).await;
    let channel = channel(&proxy).await;
    let call = {
        let channel = channel.clone();
        tokio::spawn(async move {
            let result = channel.unary::<_, Echo>(id(HOLD), &echo("held"), long()).await;
            (result, Instant::now())
        })
    };
    wait_for("the handler started", || live.count() == 1).await;
    let reset_at = Instant::now();
    proxy.reset_all();
    let (result, failed_at) = call.await.unwrap();
    let err = result.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err}");
    assert!(failed_at - reset_at < PROMPTLY, "failed {:?} after the reset", failed_at - reset_at);
    wait_for("the server cancelled the handler", || live.count() == 0).await;
    let reply: Echo = channel.unary(ECHO_ID, &echo("again"), long()).await.unwrap();
    assert_eq!(reply.payload, "again");
    assert_eq!(proxy.accepted(), 2, "the channel reconnected once");
}

#[tokio::test]
async fn a_reset_mid_stream_fails_both_streams_cancels_their_handlers_and_the_channel_recovers() {
    let live = Live::default();
    let server = start(&live).await;
    let proxy = FaultProxy::start(&server).await;
    let channel = channel(&proxy).await;
    let client = channel.ready_client(None).await.unwrap();
    let job = Job {
        count: 1_000_000,
        size: 64,
        interval_ms: 2,
    };
    let mut ticks: Streaming<Echo> = client.server_streaming(id(TICKS), &job, long()).await.unwrap();
    for i in 0..3 {
        assert_tick(&ticks.message().await.unwrap().unwrap(), i, 64);
    }
    let (mut sender, mut replies) = client.bidi_streaming::<Echo, Echo>(id(CHAT), long()).await.unwrap();
    sender.send(&echo("one")).await.unwrap();
    assert_eq!(replies.message().await.unwrap().unwrap().payload, "one");
    assert_eq!(live.count(), 2);

    let reset_at = Instant::now();
    proxy.reset_all();
    // Messages already received may still be read, each whole; then the stream fails.
    let mut next = 3;
    let err = loop {
        match ticks.message().await {
            Ok(Some(message)) => {
                assert_tick(&message, next, 64);
                next += 1;
                assert!(next < 100_000, "the stream kept going after the reset");
            }
            Ok(None) => panic!("the stream ended cleanly after a reset"),
            Err(err) => break err,
        }
    };
    assert_eq!(err.code(), Code::Unavailable, "{err}");
    assert_eq!(replies.message().await.unwrap_err().code(), Code::Unavailable);
    assert_eq!(sender.send(&echo("late")).await.unwrap_err().code(), Code::Unavailable);
    assert!(reset_at.elapsed() < PROMPTLY);
    wait_for("the server cancelled both handlers", || live.count() == 0).await;

    let client = channel.ready_client(Some(Instant::now() + LONG)).await.unwrap();
    exercise(&client).await;
    assert_eq!(proxy.accepted(), 2);
}

#[tokio::test]
async fn a_black_holed_connection_is_detected_by_keepalive_and_no_call_outlives_its_deadline() {
    let live = Live::default();
    let mut config = ConnectionConfig::default();
    // Let the client ping every 100 ms (the default minimum interval is 1 s).
    config.settings.min_ping_interval_ms = 10;
    let server = server(&live, config).build().unwrap().serve("127.0.0.1:0").await.unwrap();
    let proxy = FaultProxy::start(&server).await;
    let client = Client::builder()
        .keepalive(Duration::from_millis(100), Duration::from_millis(200))
        .connect(proxy.address())
        .await
        .unwrap();
    let reply: Echo = client.unary(ECHO_ID, &echo("before"), long()).await.unwrap();
    assert_eq!(reply.payload, "before");

    proxy.black_hole(true);
    let started = Instant::now();
    let call = |timeout: Duration| {
        let client = client.clone();
        tokio::spawn(async move {
            let result = client
                .unary::<_, Echo>(ECHO_ID, &echo("lost"), CallOptions::default().timeout(timeout))
                .await;
            (result, started.elapsed())
        })
    };
    let (short, long) = (call(Duration::from_millis(150)), call(LONG));
    let (result, elapsed) = short.await.unwrap();
    assert_eq!(result.unwrap_err().code(), Code::DeadlineExceeded);
    assert!(elapsed < PROMPTLY, "{elapsed:?}");
    let (result, elapsed) = long.await.unwrap();
    let err = result.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err}");
    assert!(err.message().contains("keepalive"), "{err}");
    // Interval plus timeout is 300 ms; allow for a loaded machine.
    assert!(elapsed < PROMPTLY, "detected after {elapsed:?}");
    assert!(client.is_closed());

    proxy.black_hole(false);
    let client = Client::connect(proxy.address()).await.unwrap();
    exercise(&client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_stays_within_its_window_while_another_connection_flows() {
    const WINDOW: u32 = 64 * 1024;
    const SIZE: usize = 4096;
    let live = Live::default();
    let mut config = ConnectionConfig::default();
    config.settings.initial_call_window = WINDOW;
    let server = server(&live, config.clone()).build().unwrap().serve("127.0.0.1:0").await.unwrap();
    let proxy = FaultProxy::start(&server).await;
    proxy.set(
        Direction::Down,
        Faults {
            bytes_per_second: Some(128 * 1024),
            ..Faults::default()
        },
    );
    let slow = Client::builder().connection_config(config).connect(proxy.address()).await.unwrap();
    let fast = Client::connect(server.local_addr()).await.unwrap();

    // 40 MB offered to a reader behind a 128 KiB/s link.
    let job = Job {
        count: 10_000,
        size: SIZE as u64,
        interval_ms: 0,
    };
    let mut stream: Streaming<Echo> = slow.server_streaming(id(TICKS), &job, long()).await.unwrap();
    let reader = tokio::spawn(async move {
        let started = Instant::now();
        let mut n = 0;
        while started.elapsed() < Duration::from_millis(800) {
            let message = stream.message().await.unwrap().unwrap();
            assert_tick(&message, n, SIZE);
            n += 1;
        }
        (n, stream)
    });
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (done, stats) = (done.clone(), move || server.stats().write_queue_bytes);
        tokio::spawn(async move {
            let mut peak = 0;
            for _ in 0..1_000 {
                peak = peak.max(stats());
                if done.load(Ordering::SeqCst) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            peak
        })
    };
    // Meanwhile the other connection runs its calls and a stream to the end.
    for i in 0..200u64 {
        let request = numbered(i, 100);
        let reply: Echo = fast.unary(ECHO_ID, &request, long()).await.unwrap();
        assert_eq!(reply, request);
    }
    exercise(&fast).await;

    let (received, stream) = reader.await.unwrap();
    done.store(true, Ordering::SeqCst);
    let queue_peak = sampler.await.unwrap();
    assert!(received > 0);
    let peak = slow.stats().stream_buffered_peak;
    assert!(peak <= u64::from(WINDOW) + SIZE as u64 + 16, "the client buffered {peak} bytes");
    assert!(
        queue_peak <= u64::from(WINDOW) + 2 * SIZE as u64,
        "the server queued {queue_peak} bytes for the slow reader"
    );
    assert!(
        proxy.forwarded(Direction::Down) < 1024 * 1024,
        "the cap held: {} bytes forwarded",
        proxy.forwarded(Direction::Down)
    );
    drop(stream);
    wait_for("the slow stream's handler was cancelled", || live.count() == 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_restart_under_steady_load_shows_no_errors_to_a_channel() {
    let live = Live::default();
    let old = start(&live).await;
    let address = old.local_addr().clone();
    let channel = Channel::builder()
        .backoff(Backoff {
            initial: Duration::from_millis(5),
            max: Duration::from_millis(50),
            ..Backoff::default()
        })
        .connect(&address)
        .await
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..4u64)
        .map(|worker| {
            let (channel, stop) = (channel.clone(), stop.clone());
            tokio::spawn(async move {
                let (mut ok, mut errors) = (0u64, Vec::new());
                for i in 0..100_000u64 {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let request = numbered(worker * 1_000_000 + i, 32);
                    let options = CallOptions::default().timeout(Duration::from_secs(5));
                    match channel.unary::<_, Echo>(ECHO_ID, &request, options).await {
                        Ok(reply) => {
                            assert_eq!(reply, request);
                            ok += 1;
                        }
                        Err(err) => errors.push(err),
                    }
                }
                (ok, errors)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let shutdown = tokio::spawn(old.shutdown());
    // The old listener closes as shutdown starts; take the address over as soon as it is free.
    let mut new = None;
    for _ in 0..400 {
        match server(&live, ConnectionConfig::default()).build().unwrap().serve(&address).await {
            Ok(server) => {
                new = Some(server);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
    let new = new.expect("the new server bound the address within 2 s");
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    let (mut ok, mut errors) = (0, Vec::new());
    for worker in workers {
        let (n, e) = worker.await.unwrap();
        ok += n;
        errors.extend(e);
    }
    shutdown.await.unwrap();
    assert!(
        errors.is_empty(),
        "{} of {} calls failed: {:?}",
        errors.len(),
        ok + errors.len() as u64,
        &errors[..errors.len().min(5)]
    );
    assert!(new.stats().calls_started > 0, "calls moved to the new server");
    assert!(ok > 0);
}

#[tokio::test]
async fn a_goaway_below_calls_just_opened_fails_them_retryably_and_finishes_the_others() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let fake = tokio::spawn(async move {
        let mut server = RawServer::accept(&listener).await;
        // Wait for all five requests, then say only calls 1 and 2 will be served.
        let requests = |frames: &[Frame]| frames.iter().filter(|f| matches!(f, Frame::Request { .. })).count();
        server.frames_until(|frames| requests(frames) == 5).await;
        server
            .send_frame(Frame::GoAway(GoAway {
                last_call_id: CallId(2),
                code: Code::Ok,
                reason: Bytes::from_static(b"restarting"),
            }))
            .await;
        for call in [1, 2] {
            let mut message = bytes::BytesMut::new();
            prost::Message::encode(&echo(format!("served {call}")), &mut message).unwrap();
            server
                .send_frame(Frame::Response {
                    call_id: CallId(call),
                    metadata: Metadata::new(),
                    message: Some(message.freeze()),
                    end_stream: true,
                })
                .await;
        }
        server
    });
    let client = Client::connect(addr).await.unwrap();
    let started = Instant::now();
    let calls: Vec<_> = (0..5)
        .map(|i| {
            let client = client.clone();
            async move { client.unary::<_, Echo>(ECHO_ID, &echo(format!("call {i}")), long()).await }
        })
        .collect();
    let results = futures_join_all(calls).await;
    assert!(started.elapsed() < PROMPTLY, "no call waited for its deadline");
    let _server = fake.await.unwrap();
    let served: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).map(|e| e.payload.clone()).collect();
    assert_eq!(served.len(), 2, "{results:?}");
    assert!(served.contains(&Bytes::from("served 1")) && served.contains(&Bytes::from("served 2")));
    for err in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(err.code(), Code::Unavailable, "{err}");
        assert!(err.is_retryable());
        assert!(err.message().contains("did not start this call"), "{err}");
    }
    assert!(client.is_draining());
    // A new call on this connection is refused at once, retryably, without reaching the peer.
    let err = client.unary::<_, Echo>(ECHO_ID, &echo("late"), long()).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
}

#[tokio::test]
async fn a_channel_sends_calls_a_goaway_refused_again_on_a_new_connection() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let answer = |call: u64, text: String| {
        let mut message = bytes::BytesMut::new();
        prost::Message::encode(&echo(text), &mut message).unwrap();
        Frame::Response {
            call_id: CallId(call),
            metadata: Metadata::new(),
            message: Some(message.freeze()),
            end_stream: true,
        }
    };
    let requests = |frames: &[Frame]| frames.iter().filter(|f| matches!(f, Frame::Request { .. })).count();
    let fake = tokio::spawn(async move {
        // The first connection serves call 1 and refuses 2 and 3 with its GoAway.
        let mut first = RawServer::accept(&listener).await;
        first.frames_until(|frames| requests(frames) == 3).await;
        first
            .send_frame(Frame::GoAway(GoAway {
                last_call_id: CallId(1),
                code: Code::Ok,
                reason: Bytes::from_static(b"restarting"),
            }))
            .await;
        first.send_frame(answer(1, "first".into())).await;
        // The second serves what comes.
        let mut second = RawServer::accept(&listener).await;
        second.frames_until(|frames| requests(frames) == 2).await;
        for call in [1, 2] {
            second.send_frame(answer(call, "second".into())).await;
        }
        (first, second)
    });
    let channel = Channel::builder().connect(addr).await.unwrap();
    let calls: Vec<_> = (0..3)
        .map(|_| {
            let channel = channel.clone();
            async move { channel.unary::<_, Echo>(ECHO_ID, &echo("x"), long()).await }
        })
        .collect();
    let mut served: Vec<_> = futures_join_all(calls).await.into_iter().map(|r| r.unwrap().payload).collect();
    served.sort();
    assert_eq!(served, ["first", "second", "second"]);
    let _servers = fake.await.unwrap();
}

/// Polls every future to completion, concurrently; returns the outputs in order.
async fn futures_join_all<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => *output = Some(value),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().map(Option::unwrap).collect()
}

#[tokio::test]
async fn a_hard_stop_fails_blocked_calls_and_streams_promptly_and_drops_their_handlers() {
    let live = Live::default();
    let server = start(&live).await;
    let client = Client::connect(server.local_addr()).await.unwrap();
    let blocked = {
        let client = client.clone();
        tokio::spawn(async move { (client.unary::<_, Echo>(id(HOLD), &echo("blocked"), long()).await, Instant::now()) })
    };
    let (_sender, mut replies) = client.bidi_streaming::<Echo, Echo>(id(CHAT), long()).await.unwrap();
    wait_for("both handlers started", || live.count() == 2).await;
    let stopped_at = Instant::now();
    server.abort();
    let (result, failed_at) = blocked.await.unwrap();
    assert_eq!(result.unwrap_err().code(), Code::Unavailable);
    assert!(failed_at - stopped_at < PROMPTLY);
    assert_eq!(replies.message().await.unwrap_err().code(), Code::Unavailable);
    assert!(stopped_at.elapsed() < PROMPTLY);
    wait_for("the stopped server dropped both handlers", || live.count() == 0).await;
}

#[tokio::test]
async fn a_stream_cut_mid_frame_never_delivers_a_partial_message() {
    let live = Live::default();
    let server = start(&live).await;
    let proxy = FaultProxy::start(&server).await;
    let client = Client::connect(proxy.address()).await.unwrap();
    const SIZE: usize = 8 * 1024;
    let (mut sender, mut replies) = client.bidi_streaming::<Echo, Echo>(id(CHAT), long()).await.unwrap();
    sender.send(&tick(0, SIZE)).await.unwrap();
    assert_tick(&replies.message().await.unwrap().unwrap(), 0, SIZE);
    // The server-to-client direction is idle: the next 4,000 bytes are the start of the next
    // reply's frame (16-byte header, then about 8 KiB of message), and the stream ends there.
    proxy.cut_after(4_000);
    sender.send(&tick(1, SIZE)).await.unwrap();
    let err = replies.message().await.expect_err("a torn message is never delivered");
    assert_eq!(err.code(), Code::Unavailable, "{err}");
    wait_for("the server noticed and dropped the handler", || live.count() == 0).await;

    // The same for a unary response.
    let client = Client::connect(proxy.address()).await.unwrap();
    let job = Job {
        size: 64 * 1024,
        ..Job::default()
    };
    let whole: Echo = client.unary(id(BIG), &job, long()).await.unwrap();
    assert_tick(&whole, 0, 64 * 1024);
    proxy.cut_after(30_000);
    let err = client.unary::<_, Echo>(id(BIG), &job, long()).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err}");
    assert!(client.is_closed());
}

#[tokio::test]
async fn a_reset_in_the_middle_of_a_large_response_fails_the_call_with_unavailable() {
    let live = Live::default();
    let server = start(&live).await;
    let proxy = FaultProxy::start(&server).await;
    let client = Client::connect(proxy.address()).await.unwrap();
    // 512 KiB through a 256 KiB/s link: the reset lands while the response is on its way.
    proxy.set(
        Direction::Down,
        Faults {
            bytes_per_second: Some(256 * 1024),
            ..Faults::default()
        },
    );
    let job = Job {
        size: 512 * 1024,
        ..Job::default()
    };
    let call = {
        let client = client.clone();
        tokio::spawn(async move { (client.unary::<_, Echo>(id(BIG), &job, long()).await, Instant::now()) })
    };
    wait_for("the response is half way", || proxy.forwarded(Direction::Down) > 100 * 1024).await;
    let reset_at = Instant::now();
    proxy.reset_all();
    let (result, failed_at) = call.await.unwrap();
    let err = result.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err}");
    assert!(failed_at - reset_at < PROMPTLY);
}

#[tokio::test]
async fn one_byte_writes_both_ways_carry_every_call_intact() {
    let live = Live::default();
    let server = start(&live).await;
    let proxy = FaultProxy::start(&server).await;
    proxy.set_both(Faults {
        max_piece: Some(1),
        ..Faults::default()
    });
    let client = Client::connect(proxy.address()).await.unwrap();
    exercise(&client).await;
    assert!(proxy.forwarded(Direction::Down) > 3000);
}

#[tokio::test]
async fn latency_jitter_and_pieces_of_one_to_seven_bytes_carry_every_call_intact() {
    let live = Live::default();
    let server = start(&live).await;
    let proxy = FaultProxy::start(&server).await;
    proxy.set_both(Faults {
        latency: Duration::from_millis(2),
        jitter: Duration::from_millis(3),
        max_piece: Some(7),
        ..Faults::default()
    });
    let client = Client::connect(proxy.address()).await.unwrap();
    exercise(&client).await;
    // Concurrent calls interleave through the same slow path.
    let calls: Vec<_> = (0..20u64)
        .map(|i| {
            let client = client.clone();
            async move {
                let request = numbered(i, 200);
                let reply: Echo = client.unary(ECHO_ID, &request, long()).await.unwrap();
                assert_eq!(reply, request);
            }
        })
        .collect();
    futures_join_all(calls).await;
}
