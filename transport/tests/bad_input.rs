//! A hostile or broken peer over real loopback TCP: each kind of bad input gets a GoAway naming
//! it (or a call-level status), the offending connection is closed, and a well-behaved
//! connection to the same server keeps working.

mod common;

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use common::raw::RawPeer;
use common::{ECHO_ID, Echo, echo, echo_server, start_tcp};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use volley::wire::{CallHead, CallId, Flags, Frame, FrameHeader, FrameKind, GoAway, PREFACE_LEN, Preface, Settings};
use volley::{CallOptions, Client, Code, Metadata, ServerHandle};

fn goaway(frames: &[Frame]) -> &GoAway {
    match frames.last() {
        Some(Frame::GoAway(goaway)) => goaway,
        other => panic!("expected a GoAway last, got {other:?} in {frames:?}"),
    }
}

fn request(id: u64) -> Frame {
    let head = CallHead {
        method_id: ECHO_ID,
        ..CallHead::default()
    };
    let mut message = BytesMut::new();
    prost::Message::encode(&echo("x"), &mut message).unwrap();
    Frame::Request {
        call_id: CallId(id),
        head,
        message: Some(message.freeze()),
        end_stream: true,
    }
}

/// Runs `attack` against a fresh server while a good client keeps calling it, then checks the
/// good client still works and returns the frames the attacker received.
async fn attack_with<F, Fut>(attack: F) -> Vec<Frame>
where
    F: FnOnce(ServerHandle) -> Fut,
    Fut: std::future::Future<Output = (ServerHandle, Vec<Frame>)>,
{
    let server = start_tcp().await;
    let good = Client::connect(server.local_addr()).await.unwrap();
    let (server, frames) = attack(server).await;
    let reply: Echo = good.unary(ECHO_ID, &echo("still here"), CallOptions::default()).await.unwrap();
    assert_eq!(reply.payload, "still here");
    assert!(!good.is_closed());
    server.abort();
    frames
}

#[tokio::test]
async fn bad_magic_gets_a_goaway_and_a_close() {
    let frames = attack_with(|server| async move {
        let mut peer = RawPeer::connect(&server).await;
        peer.send(b"GET / HTTP/1.1\r\n\r\n").await;
        let frames = peer.frames_until_close().await;
        (server, frames)
    })
    .await;
    let goaway = goaway(&frames);
    assert_eq!(goaway.code, Code::Internal);
    assert!(goaway.reason_str().contains("preface"), "{}", goaway.reason_str());
}

#[tokio::test]
async fn a_newer_protocol_version_is_refused_with_failed_precondition() {
    let frames = attack_with(|server| async move {
        let mut peer = RawPeer::connect(&server).await;
        peer.send(&Preface { version: 7 }.encode()).await;
        let frames = peer.frames_until_close().await;
        (server, frames)
    })
    .await;
    assert_eq!(goaway(&frames).code, Code::FailedPrecondition);
    assert!(goaway(&frames).reason_str().contains("version 7"));
}

#[tokio::test]
async fn an_oversized_length_is_refused_without_allocating_it() {
    let frames = attack_with(|server| async move {
        let mut peer = RawPeer::handshake(&server).await;
        let mut header = BytesMut::new();
        FrameHeader {
            len: u32::MAX,
            kind: FrameKind::Message,
            flags: Flags::NONE,
            call_id: CallId(1),
        }
        .encode(&mut header);
        peer.send(&header).await;
        let frames = peer.frames_until_close().await;
        (server, frames)
    })
    .await;
    assert!(
        goaway(&frames).reason_str().contains("max frame size"),
        "{}",
        goaway(&frames).reason_str()
    );
}

#[tokio::test]
async fn an_unknown_frame_kind_is_a_protocol_error() {
    let frames = attack_with(|server| async move {
        let mut peer = RawPeer::handshake(&server).await;
        let mut raw = [0u8; 16];
        raw[4] = 0x7e;
        raw[8] = 1;
        peer.send(&raw).await;
        let frames = peer.frames_until_close().await;
        (server, frames)
    })
    .await;
    assert!(goaway(&frames).reason_str().contains("unknown frame kind 0x7e"));
}

#[tokio::test]
async fn a_truncated_frame_then_eof_closes_only_that_connection() {
    attack_with(|server| async move {
        let mut peer = RawPeer::handshake(&server).await;
        let mut buf = BytesMut::new();
        request(1).encode(&mut buf);
        peer.send(&buf[..buf.len() - 3]).await;
        peer.stream.shutdown().await.unwrap();
        let frames = peer.frames_until_close().await;
        assert!(
            frames.iter().all(|f| matches!(f, Frame::Settings(_))),
            "no answer to half a frame: {frames:?}"
        );
        (server, frames)
    })
    .await;
}

#[tokio::test]
async fn a_reused_call_id_closes_the_connection() {
    let frames = attack_with(|server| async move {
        let mut peer = RawPeer::handshake(&server).await;
        peer.send_frame(request(5)).await;
        peer.send_frame(request(5)).await;
        let frames = peer.frames_until_close().await;
        (server, frames)
    })
    .await;
    assert!(
        goaway(&frames).reason_str().contains("call id 5"),
        "{}",
        goaway(&frames).reason_str()
    );
}

#[tokio::test]
async fn a_frame_after_the_end_of_a_call_resets_that_call_only() {
    attack_with(|server| async move {
        let mut peer = RawPeer::handshake(&server).await;
        let slow = {
            let head = CallHead {
                method_id: ECHO_ID,
                ..CallHead::default()
            };
            let mut message = BytesMut::new();
            prost::Message::encode(
                &Echo {
                    sleep_ms: 200,
                    ..echo("x")
                },
                &mut message,
            )
            .unwrap();
            Frame::Request {
                call_id: CallId(1),
                head,
                message: Some(message.freeze()),
                end_stream: true,
            }
        };
        peer.send_frame(slow).await;
        peer.send_frame(Frame::Message {
            call_id: CallId(1),
            message: Bytes::from_static(b"late"),
            end_stream: false,
        })
        .await;
        peer.send_frame(request(2)).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        peer.stream.shutdown().await.unwrap();
        let frames = peer.frames_until_close().await;
        let reset = frames
            .iter()
            .any(|f| matches!(f, Frame::Status { call_id: CallId(1), status } if status.code == Code::Internal));
        let answered = frames.iter().any(|f| matches!(f, Frame::Response { call_id: CallId(2), .. }));
        assert!(reset && answered, "{frames:?}");
        (server, frames)
    })
    .await;
}

#[tokio::test]
async fn a_cancel_for_a_never_opened_call_is_a_protocol_error() {
    let frames = attack_with(|server| async move {
        let mut peer = RawPeer::handshake(&server).await;
        peer.send_frame(Frame::Cancel { call_id: CallId(42) }).await;
        let frames = peer.frames_until_close().await;
        (server, frames)
    })
    .await;
    assert!(goaway(&frames).reason_str().contains("call 42"));
}

#[tokio::test]
async fn a_response_frame_sent_to_a_server_is_a_protocol_error() {
    let frames = attack_with(|server| async move {
        let mut peer = RawPeer::handshake(&server).await;
        peer.send_frame(Frame::Response {
            call_id: CallId(1),
            metadata: Metadata::new(),
            message: None,
            end_stream: true,
        })
        .await;
        let frames = peer.frames_until_close().await;
        (server, frames)
    })
    .await;
    assert!(goaway(&frames).reason_str().contains("Response"));
}

#[tokio::test]
async fn metadata_over_the_limit_fails_the_call_and_far_over_closes() {
    let frames = attack_with(|server| async move {
        let mut peer = RawPeer::handshake(&server).await;
        let call = |id: u64, size: usize| {
            let mut metadata = Metadata::new();
            for i in 0..(size / 1000) {
                metadata.insert(&format!("k{i}"), vec![b'v'; 995]).unwrap();
            }
            Frame::Request {
                call_id: CallId(id),
                head: CallHead {
                    method_id: ECHO_ID,
                    metadata,
                    ..CallHead::default()
                },
                message: None,
                end_stream: true,
            }
        };
        peer.send_frame(call(1, 10_000)).await;
        peer.send_frame(call(2, 60_000)).await;
        let frames = peer.frames_until_close().await;
        let refused = frames
            .iter()
            .any(|f| matches!(f, Frame::Status { call_id: CallId(1), status } if status.code == Code::ResourceExhausted));
        assert!(refused, "{frames:?}");
        (server, frames)
    })
    .await;
    assert_eq!(goaway(&frames).code, Code::ResourceExhausted);
}

#[tokio::test]
async fn a_ping_flood_is_closed_with_a_clear_reason() {
    let frames = attack_with(|server| async move {
        let mut peer = RawPeer::handshake(&server).await;
        for payload in 0..10 {
            peer.send_frame(Frame::Ping { payload }).await;
        }
        let frames = peer.frames_until_close().await;
        (server, frames)
    })
    .await;
    assert!(goaway(&frames).reason_str().contains("too many pings"));
    let pongs = frames.iter().filter(|f| matches!(f, Frame::Pong { .. })).count();
    assert!(pongs <= 4, "pongs are not queued without bound: {pongs}");
}

#[tokio::test]
async fn a_silent_peer_is_closed_after_the_handshake_timeout_without_blocking_accept() {
    let server = echo_server()
        .handshake_timeout(Duration::from_millis(200))
        .build()
        .unwrap()
        .serve("127.0.0.1:0")
        .await
        .unwrap();
    let mut silent = RawPeer::connect(&server).await;
    // The accept loop is not blocked: a real client connects and calls meanwhile.
    let good = Client::connect(server.local_addr()).await.unwrap();
    let _: Echo = good.unary(ECHO_ID, &echo("hi"), CallOptions::default()).await.unwrap();
    let started = std::time::Instant::now();
    let frames = silent.frames_until_close().await;
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(goaway(&frames).reason_str().contains("handshake"), "{frames:?}");
    let _: Echo = good.unary(ECHO_ID, &echo("hi"), CallOptions::default()).await.unwrap();
}

#[tokio::test]
async fn a_client_fails_cleanly_on_a_response_for_an_unknown_call() {
    // A fake server that answers the handshake and then sends a response nobody asked for.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut out = BytesMut::new();
        out.extend_from_slice(&Preface::CURRENT.encode());
        Frame::Settings(Settings::default()).encode(&mut out);
        stream.write_all(&out).await.unwrap();
        // Wait for the client's preface and settings and then its request.
        let mut seen = Vec::new();
        let handshake = PREFACE_LEN + 16 + volley::protocol::ConnectionConfig::default().settings.encoded_len();
        while seen.len() <= handshake {
            let mut chunk = [0u8; 1024];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&chunk[..n]),
            }
        }
        let mut bogus = BytesMut::new();
        Frame::Response {
            call_id: CallId(99),
            metadata: Metadata::new(),
            message: None,
            end_stream: true,
        }
        .encode(&mut bogus);
        let _ = stream.write_all(&bogus).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    });
    let client = Client::connect(addr).await.unwrap();
    let err = client
        .unary::<_, Echo>(ECHO_ID, &echo("x"), CallOptions::default().timeout(Duration::from_secs(3)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Internal, "{err}");
    assert!(err.message().contains("call 99"), "{err}");
    assert!(client.is_closed());
}

// Two workers, so the peer's writer and reader run at once, as in a real client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_keeps_sending_after_an_error_still_reads_the_goaway() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let server = start_tcp().await;
    // Closing a socket with unread bytes makes the kernel send RST, which can overtake the
    // GoAway; the server lingers instead. Fifty connections give the race room to show.
    let mut garbage = BytesMut::new();
    while garbage.len() < 16 * 1024 {
        Frame::Cancel { call_id: CallId(1) }.encode(&mut garbage);
    }
    let garbage = garbage.freeze();
    for attempt in 0..50 {
        let peer = RawPeer::handshake(&server).await;
        let (mut read, mut write) = peer.stream.into_split();
        let done = Arc::new(AtomicBool::new(false));
        let writer = tokio::spawn({
            let (done, garbage) = (done.clone(), garbage.clone());
            async move {
                let mut provoke = BytesMut::new();
                Frame::Cancel { call_id: CallId(42) }.encode(&mut provoke);
                let _ = write.write_all(&provoke).await;
                // Keep sending as a flooding peer does, until the reader has its answer. A write
                // failing first (RST: "connection reset", "broken pipe") is what a Volley client
                // would report instead of the GoAway.
                while !done.load(Ordering::Acquire) {
                    if let Err(err) = write.write_all(&garbage).await {
                        return if done.load(Ordering::Acquire) { Ok(()) } else { Err(err) };
                    }
                }
                Ok(())
            }
        });
        // Read frames as they come; the writer stops once a GoAway is here, as a client would.
        let mut inbox = BytesMut::new();
        let mut frames = Vec::new();
        let mut preface_seen = false;
        let ended = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match read.read_buf(&mut inbox).await {
                    Ok(0) => return Ok(()),
                    Ok(_) => {}
                    Err(err) => return Err(err),
                }
                if !preface_seen && inbox.len() >= PREFACE_LEN {
                    assert_eq!(Preface::decode(inbox[..PREFACE_LEN].try_into().unwrap()), Ok(Preface::CURRENT));
                    let _ = inbox.split_to(PREFACE_LEN);
                    preface_seen = true;
                }
                if preface_seen {
                    while let Some(frame) = volley::wire::decode_frame(&mut inbox, u32::MAX).unwrap() {
                        if matches!(frame, Frame::GoAway(_)) {
                            done.store(true, Ordering::Release);
                        }
                        frames.push(frame);
                    }
                }
            }
        })
        .await
        .expect("the server closed the connection within 5 s");
        done.store(true, Ordering::Release);
        let written = writer.await.unwrap();
        match frames.last() {
            Some(Frame::GoAway(goaway)) => {
                assert_eq!(goaway.code, Code::Internal, "attempt {attempt}");
                assert!(
                    goaway.reason_str().contains("call 42"),
                    "attempt {attempt}: {}",
                    goaway.reason_str()
                );
            }
            other => panic!("attempt {attempt}: expected a GoAway last, got {other:?} (the read ended with {ended:?})"),
        }
        if let Err(err) = written {
            panic!("attempt {attempt}: the peer's write failed ({err}) before it had read the GoAway");
        }
    }
    server.abort();
}

/// A peer that asks for a large answer and never reads it: once the socket takes nothing for the
/// write stall timeout, the server closes the connection and frees its slot; another client is
/// served throughout.
#[tokio::test]
async fn a_peer_that_stops_reading_is_closed_after_the_write_stall_timeout() {
    const BIG: &str = "/test.Big/Get";
    let server = echo_server()
        .unary(BIG, |_request: volley::Request<Echo>| async move {
            // Far more than the loopback socket buffers hold (4 MiB send, 128 KiB receive here).
            Ok::<_, volley::Status>(echo(vec![7u8; 12 * 1024 * 1024]))
        })
        .write_stall_timeout(Duration::from_millis(300))
        .build()
        .unwrap()
        .serve("127.0.0.1:0")
        .await
        .unwrap();
    let good = Client::connect(server.local_addr()).await.unwrap();

    let mut peer = RawPeer::handshake(&server).await;
    let mut frame = BytesMut::new();
    let head = CallHead {
        method_id: volley::MethodId::from_name(BIG),
        ..CallHead::default()
    };
    Frame::Request {
        call_id: CallId(1),
        head,
        message: Some(Bytes::new()),
        end_stream: true,
    }
    .encode(&mut frame);
    peer.send(&frame).await;
    // The peer reads nothing from now on.
    common::wait_for("the server has both connections", || server.connections() == 2).await;
    let started = std::time::Instant::now();
    for _ in 0..100 {
        if server.connections() == 1 {
            break;
        }
        let reply: Echo = good.unary(ECHO_ID, &echo("still here"), CallOptions::default()).await.unwrap();
        assert_eq!(reply.payload, "still here");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(server.connections(), 1, "the stalled connection is closed");
    assert!(started.elapsed() < Duration::from_secs(5), "closed after {:?}", started.elapsed());
    let reply: Echo = good.unary(ECHO_ID, &echo("after"), CallOptions::default()).await.unwrap();
    assert_eq!(reply.payload, "after");
    drop(peer);
    server.shutdown().await;
}
