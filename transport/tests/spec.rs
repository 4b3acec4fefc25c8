//! Answers PROTOCOL.md gives a second implementation (issue #15, section 4), each pinned by a
//! peer written from the spec alone: raw frames over loopback TCP against a real server.

mod common;

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use common::raw::RawPeer;
use common::{ECHO, Echo, echo};
use tokio::io::AsyncReadExt;
use volley::wire::{CallHead, CallId, Code, Frame, FrameHeader, FrameKind, GoAway, HEADER_LEN, MAX_WINDOW, WireError};
use volley::{MethodId, Request, Server, ServerHandle, Status, StreamSender, Streaming};

const COUNT: &str = "/spec.Test/Count";
const HOLD: &str = "/spec.Test/Hold";

async fn serve(builder: volley::server::ServerBuilder) -> ServerHandle {
    builder.build().unwrap().serve("127.0.0.1:0").await.unwrap()
}

fn request(call_id: u64, method: &str, message: Option<&'static [u8]>, end_stream: bool) -> Frame {
    Frame::Request {
        call_id: CallId(call_id),
        head: CallHead {
            method_id: MethodId::from_name(method),
            ..CallHead::default()
        },
        message: message.map(Bytes::from_static),
        end_stream,
    }
}

fn encoded_echo(payload: &'static str) -> &'static [u8] {
    let mut buf = Vec::new();
    prost::Message::encode(&echo(payload), &mut buf).unwrap();
    buf.leak()
}

/// The connection's last frame must be a GoAway; returns it.
fn last_goaway(frames: &[Frame]) -> &GoAway {
    match frames.last() {
        Some(Frame::GoAway(goaway)) => goaway,
        other => panic!("expected a GoAway last, got {other:?} in {frames:?}"),
    }
}

/// PROTOCOL.md 6.6 rule 3 and section 10: a Credit that takes a send window past `MAX_WINDOW`
/// closes the connection with GoAway `INTERNAL`, reason `flow-control violation: ...`.
#[tokio::test]
async fn a_credit_past_the_largest_window_closes_the_connection_with_internal() {
    let server = serve(common::echo_server()).await;
    let mut peer = RawPeer::handshake(&server).await;
    // The server's connection send window starts at our INITIAL_CONNECTION_WINDOW (16 MiB).
    peer.send_frame(Frame::Credit {
        call_id: CallId::CONNECTION,
        increment: MAX_WINDOW,
    })
    .await;
    let frames = peer.frames_until_close().await;
    let goaway = last_goaway(&frames);
    assert_eq!(goaway.code, Code::Internal);
    assert!(
        goaway.reason_str().starts_with("flow-control violation: "),
        "{}",
        goaway.reason_str()
    );
}

/// PROTOCOL.md 6.6 rule 2 and section 10: three flow-control violations reset their calls; the
/// fourth closes the connection with GoAway `RESOURCE_EXHAUSTED`.
#[tokio::test]
async fn the_fourth_flow_control_violation_closes_with_resource_exhausted() {
    let mut config = volley::protocol::ConnectionConfig::default();
    config.settings.initial_call_window = 1024;
    let server = serve(Server::builder().connection_config(config).bidi_streaming(
        HOLD,
        |_: Request<Streaming<Echo>>, _: StreamSender<Echo>| async move {
            // Reads nothing: the window is never credited back.
            std::future::pending::<()>().await;
            Ok::<_, Status>(())
        },
    ))
    .await;
    let mut peer = RawPeer::handshake(&server).await;
    for call in 1..=4u64 {
        peer.send_frame(request(call, HOLD, None, false)).await;
        for len in [2000, 10] {
            peer.send_frame(Frame::Message {
                call_id: CallId(call),
                message: Bytes::from(vec![0u8; len]),
                end_stream: false,
            })
            .await;
        }
    }
    let frames = peer.frames_until_close().await;
    let resets = frames
        .iter()
        .filter(|f| matches!(f, Frame::Status { status, .. } if status.code == Code::ResourceExhausted))
        .count();
    assert_eq!(resets, 3, "{frames:?}");
    let goaway = last_goaway(&frames);
    assert_eq!(goaway.code, Code::ResourceExhausted);
    assert!(
        goaway.reason_str().starts_with("flow-control violation: "),
        "{}",
        goaway.reason_str()
    );
}

/// PROTOCOL.md 6.6, "Extra request messages": a server-streaming method reads exactly one
/// request message. A Request without `END_STREAM` leaves the request stream open; further
/// Messages and the EndOfStream are accepted (and credited back) but never reach the handler,
/// and the call's answer is unchanged.
#[tokio::test]
async fn extra_messages_to_a_server_streaming_method_are_ignored() {
    let server = serve(
        Server::builder().server_streaming(COUNT, |request: Request<Echo>, mut sender: StreamSender<Echo>| async move {
            let first = request.into_inner().payload;
            sender.send(&echo(first)).await?;
            Ok(())
        }),
    )
    .await;
    let mut peer = RawPeer::handshake(&server).await;
    peer.send_frame(request(1, COUNT, Some(encoded_echo("first")), false)).await;
    for payload in ["second", "third"] {
        peer.send_frame(Frame::Message {
            call_id: CallId(1),
            message: Bytes::from_static(encoded_echo(payload)),
            end_stream: false,
        })
        .await;
    }
    peer.send_frame(Frame::EndOfStream { call_id: CallId(1) }).await;
    // Then a unary call on the same connection still works, and a GoAway ends it cleanly.
    peer.send_frame(request(3, ECHO, Some(encoded_echo("after")), true)).await;
    // The two calls' answers may come in either order: wait for both to end.
    let frames = frames_for(&mut peer, true, |frames| {
        [CallId(1), CallId(3)]
            .iter()
            .all(|id| frames.iter().any(|f| f.call_id() == *id && matches!(f, Frame::Status { .. })))
    })
    .await;
    let messages: Vec<&Frame> = frames.iter().filter(|f| f.call_id() == CallId(1)).collect();
    match messages.as_slice() {
        [
            Frame::Response { message: None, .. },
            Frame::Message { message, .. },
            Frame::Status { status, .. },
        ] => {
            assert_eq!(&message[..], encoded_echo("first"));
            assert_eq!(status.code, Code::Ok);
        }
        other => panic!("expected head, one message, OK status; got {other:?}"),
    }
    assert!(!frames.iter().any(|f| matches!(f, Frame::GoAway(_))), "{frames:?}");
}

/// PROTOCOL.md section 4: the header checks run in the order kind, reserved bytes, length, call
/// id scope; the first failing check names the error.
#[test]
fn header_checks_run_in_the_documented_order() {
    let header = |kind: u8, reserved: u8, len: u32, call_id: u64| {
        let mut raw = [0u8; HEADER_LEN];
        raw[..4].copy_from_slice(&len.to_le_bytes());
        raw[4] = kind;
        raw[6] = reserved;
        raw[8..].copy_from_slice(&call_id.to_le_bytes());
        FrameHeader::decode(&raw, 100)
    };
    let ping = FrameKind::Ping as u8;
    // Every check fails: the kind wins.
    assert_eq!(header(0x7f, 1, 101, 5), Err(WireError::UnknownKind(0x7f)));
    // Reserved, length and scope fail: reserved wins.
    assert_eq!(header(ping, 1, 101, 5), Err(WireError::ReservedNotZero));
    // Length and scope fail: length wins.
    assert_eq!(header(ping, 0, 101, 5), Err(WireError::FrameTooLarge { len: 101, max: 100 }));
    assert_eq!(header(ping, 0, 8, 5), Err(WireError::ControlFrameOnCall(FrameKind::Ping)));
}

/// PROTOCOL.md section 10: after the header checks, a frame in the wrong direction is refused
/// before its call id is looked up (a Response to a server for a call never opened is a
/// direction error, not an unknown call).
#[tokio::test]
async fn a_frame_in_the_wrong_direction_is_refused_before_its_call_is_looked_up() {
    let server = serve(common::echo_server()).await;
    let mut peer = RawPeer::handshake(&server).await;
    peer.send_frame(Frame::Response {
        call_id: CallId(99),
        metadata: volley::Metadata::new(),
        message: None,
        end_stream: true,
    })
    .await;
    let frames = peer.frames_until_close().await;
    let goaway = last_goaway(&frames);
    assert_eq!(goaway.code, Code::Internal);
    assert_eq!(goaway.reason_str(), "protocol error: Response frames do not go in this direction");
}

/// PROTOCOL.md section 9, "Unknown methods": UNIMPLEMENTED answers are not charged to any
/// budget. 3,000 calls to an unknown method (three times the error budget's burst) are each
/// answered, and the connection stays open.
#[tokio::test]
async fn unimplemented_answers_are_not_charged_to_the_error_budget() {
    let server = serve(common::echo_server()).await;
    let mut peer = RawPeer::handshake(&server).await;
    const CALLS: u64 = 3_000;
    let mut burst = BytesMut::new();
    for call in 1..=CALLS {
        request(2 * call - 1, "/spec.Test/Missing", Some(b""), true).encode(&mut burst);
    }
    peer.send(&burst).await;
    let frames = frames_for(&mut peer, true, |frames| {
        frames.iter().filter(|f| matches!(f, Frame::Status { .. })).count() == CALLS as usize
    })
    .await;
    assert!(
        frames
            .iter()
            .filter_map(|f| match f {
                Frame::Status { status, .. } => Some(status.code),
                _ => None,
            })
            .all(|code| code == Code::Unimplemented)
    );
    assert!(!frames.iter().any(|f| matches!(f, Frame::GoAway(_))), "no GoAway");
    // And it still serves.
    peer.send_frame(request(2 * CALLS + 1, ECHO, Some(encoded_echo("still here")), true))
        .await;
    let frames = frames_for(&mut peer, false, |frames| {
        frames.iter().any(|f| f.call_id() == CallId(2 * CALLS + 1))
    })
    .await;
    assert!(matches!(frames.last(), Some(Frame::Response { .. })), "{:?}", frames.last());
}

/// PROTOCOL.md section 9, "Partial frame timeout": a peer that sends part of a frame and stops
/// gets GoAway `UNAVAILABLE` (`partial frame timeout: ...`) once none of its bytes came for the
/// timeout.
#[tokio::test]
async fn a_half_sent_frame_ends_the_connection_after_the_partial_frame_timeout() {
    let server = serve(common::echo_server().partial_frame_timeout(Duration::from_millis(300))).await;
    let mut peer = RawPeer::handshake(&server).await;
    let mut frame = BytesMut::new();
    request(1, ECHO, Some(encoded_echo("never finished")), true).encode(&mut frame);
    let started = std::time::Instant::now();
    peer.send(&frame[..frame.len() / 2]).await;
    let frames = peer.frames_until_close().await;
    let goaway = last_goaway(&frames);
    assert_eq!(goaway.code, Code::Unavailable);
    assert!(
        goaway.reason_str().starts_with("partial frame timeout: "),
        "{}",
        goaway.reason_str()
    );
    assert!(started.elapsed() >= Duration::from_millis(300), "{:?}", started.elapsed());
}

/// PROTOCOL.md section 9, "Partial frame timeout": the timeout counts from the frame's last
/// bytes, so a frame that keeps arriving, slowly, is served. (The reader reads the rest of a
/// frame whose header it has seen without handing each read to the protocol; the protocol learns
/// when those bytes came before it judges the frame.)
#[tokio::test]
async fn a_frame_that_keeps_arriving_is_not_cut_by_the_partial_frame_timeout() {
    let server = serve(common::echo_server().partial_frame_timeout(Duration::from_millis(300))).await;
    let mut peer = RawPeer::handshake(&server).await;
    let text: &'static str = "slow but steady ".repeat(256).leak();
    let mut frame = BytesMut::new();
    request(1, ECHO, Some(encoded_echo(text)), true).encode(&mut frame);
    let started = std::time::Instant::now();
    for piece in frame.chunks(frame.len() / 8 + 1) {
        peer.send(piece).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(started.elapsed() >= Duration::from_millis(700), "{:?}", started.elapsed());
    let frames = frames_for(&mut peer, true, |frames| !frames.is_empty()).await;
    assert!(
        matches!(frames.first(), Some(Frame::Response { call_id: CallId(1), .. })),
        "{frames:?}"
    );
}

/// PROTOCOL.md section 9, "Max connections": a connection over the cap is closed at once with no
/// preface and no GoAway: a peer that has sent nothing sees end of stream (FIN).
#[tokio::test]
async fn a_connection_over_the_cap_is_closed_with_a_fin_and_no_goaway() {
    let server = serve(common::echo_server().max_connections(1)).await;
    // The first connection is in its handshake, so not idle: admission cannot make room by
    // closing it, and refuses the second.
    let _first = RawPeer::connect(&server).await;
    common::wait_for("the first connection to be served", || server.connections() == 1).await;
    let mut second = RawPeer::connect(&server).await;
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), second.stream.read_to_end(&mut buf))
        .await
        .expect("closed within 5 s");
    assert_eq!(read.expect("a clean end of stream, not a reset"), 0, "no bytes: {buf:?}");
}

/// Reads frames until `done` says so (or 5 s pass), skipping the preface and settings.
/// `first`: the first read of the connection, which starts with the server's preface.
async fn frames_for(peer: &mut RawPeer, first: bool, mut done: impl FnMut(&[Frame]) -> bool) -> Vec<Frame> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut skipped_preface = !first;
    let mut frames = Vec::new();
    loop {
        if !skipped_preface && peer.inbox.len() >= volley::wire::PREFACE_LEN {
            let _ = peer.inbox.split_to(volley::wire::PREFACE_LEN);
            skipped_preface = true;
        }
        if skipped_preface {
            while let Some(frame) = volley::wire::decode_frame(&mut peer.inbox, u32::MAX).unwrap() {
                if !matches!(frame, Frame::Settings(_)) {
                    frames.push(frame);
                }
            }
            if done(&frames) {
                return frames;
            }
        }
        match tokio::time::timeout_at(deadline, peer.stream.read_buf(&mut peer.inbox)).await {
            Ok(Ok(0)) => return frames,
            Ok(Ok(_)) => {}
            Ok(Err(err)) => panic!("read failed: {err}; frames so far: {frames:?}"),
            Err(_) => panic!("timed out; frames so far: {frames:?}"),
        }
    }
}

/// Section 9, write stall timeout: a peer that reads nothing for the timeout gets, once it reads
/// again, every frame written before the stall, whole (the frame the last write cut is finished),
/// then a GoAway `UNAVAILABLE` naming the last call, then a clean end of stream (FIN).
#[tokio::test]
async fn a_write_stall_ends_with_a_goaway_after_the_last_whole_frame_then_a_fin() {
    let (server, mut peer) = stalled_peer().await;
    // Read nothing until the server has given up (its slot frees at once)...
    common::wait_for("the stalled connection to end", || server.connections() == 0).await;
    // ...then everything the server wrote, and a clean end of stream.
    let mut received = BytesMut::new();
    loop {
        let read = tokio::time::timeout(Duration::from_secs(5), peer.stream.read_buf(&mut received))
            .await
            .expect("the server's side is closed");
        if read.expect("a clean end of stream (FIN), not a reset") == 0 {
            break;
        }
    }
    let _ = received.split_to(volley::wire::PREFACE_LEN);
    let mut frames = Vec::new();
    while let Some(frame) = volley::wire::decode_frame(&mut received, u32::MAX).unwrap() {
        frames.push(frame);
    }
    assert!(
        received.is_empty(),
        "{} bytes of a cut frame after the last whole one",
        received.len()
    );
    let goaway = last_goaway(&frames);
    assert_eq!((goaway.code, goaway.last_call_id), (Code::Unavailable, CallId(1)));
    assert!(
        String::from_utf8_lossy(&goaway.reason).starts_with("write stall timeout"),
        "{goaway:?}"
    );
    let messages = frames.iter().filter(|frame| matches!(frame, Frame::Message { .. })).count();
    assert!(messages > 0, "the messages written before the stall arrive");
    for frame in &frames {
        if let Frame::Message { message, .. } = frame {
            assert_eq!(message.len(), 64 * 1024 + 4, "every message whole");
        }
    }
}

/// Section 9, write stall timeout: when the socket takes nothing more after the timeout either
/// (the peer still reads nothing), the connection is reset rather than left to hold its bytes;
/// the peer can still read what had reached it, then sees the reset.
#[tokio::test]
async fn a_write_stall_to_a_peer_that_never_reads_again_ends_with_a_reset() {
    let (server, mut peer) = stalled_peer().await;
    common::wait_for("the stalled connection to end", || server.connections() == 0).await;
    // The server waits 1 s for the socket to take its GoAway; this timer is set after its.
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    let mut received = BytesMut::new();
    let end = loop {
        match tokio::time::timeout(Duration::from_secs(5), peer.stream.read_buf(&mut received))
            .await
            .expect("the server's side is closed")
        {
            Ok(0) => break None,
            Ok(_) => {}
            Err(err) => break Some(err.kind()),
        }
    };
    assert_eq!(end, Some(std::io::ErrorKind::ConnectionReset));
    let _ = received.split_to(volley::wire::PREFACE_LEN);
    let mut messages = 0;
    while let Some(frame) = volley::wire::decode_frame(&mut received, u32::MAX).unwrap() {
        assert!(!matches!(frame, Frame::GoAway(_)), "no GoAway: the socket took nothing more");
        messages += usize::from(matches!(frame, Frame::Message { .. }));
    }
    assert!(messages > 0, "what reached the peer before the reset is still read");
}

/// A server streaming 64 KiB messages on call 1 to a peer that granted it 256 MiB of window and
/// reads nothing: its write stalls after 300 ms.
async fn stalled_peer() -> (ServerHandle, RawPeer) {
    let server = serve(Server::builder().write_stall_timeout(Duration::from_millis(300)).server_streaming(
        COUNT,
        |_: Request<Echo>, mut sender: StreamSender<Echo>| async move {
            let chunk = Bytes::from(vec![7u8; 64 * 1024]);
            loop {
                sender.send(&echo(chunk.clone())).await?;
            }
        },
    ))
    .await;
    let mut peer = RawPeer::connect(&server).await;
    let mut hello = BytesMut::new();
    hello.extend_from_slice(&volley::wire::Preface::CURRENT.encode());
    let settings = volley::wire::Settings {
        // Far more than the sockets' buffers hold, so the server stalls on the socket.
        initial_call_window: 256 << 20,
        initial_connection_window: 256 << 20,
        ..volley::wire::Settings::default()
    };
    Frame::Settings(settings).encode(&mut hello);
    request(1, COUNT, Some(encoded_echo("")), true).encode(&mut hello);
    peer.send(&hello).await;
    common::wait_for("the connection to be served", || server.connections() == 1).await;
    (server, peer)
}

/// Shutdown sends a GoAway on every connection (section 6.5), also one still in its handshake,
/// which then ends at once.
#[tokio::test]
async fn shutdown_sends_a_goaway_to_a_connection_still_in_its_handshake() {
    let server = serve(common::echo_server()).await;
    let mut silent = RawPeer::connect(&server).await;
    common::wait_for("the connection to be served", || server.connections() == 1).await;
    let shutdown = tokio::spawn(server.shutdown());
    let frames = silent.frames_until_close().await;
    let goaway = frames.iter().find_map(|frame| match frame {
        Frame::GoAway(goaway) => Some(goaway),
        _ => None,
    });
    let goaway = goaway.unwrap_or_else(|| panic!("no GoAway in {frames:?}"));
    assert_eq!((goaway.code, goaway.last_call_id), (Code::Ok, CallId(0)));
    tokio::time::timeout(Duration::from_secs(5), shutdown).await.unwrap().unwrap();
}
