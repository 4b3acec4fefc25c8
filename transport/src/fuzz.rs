//! Entry points for the fuzz targets in `fuzz/` and for `tests/fuzz_corpus.rs`, which replays
//! the committed corpus on stable Rust. Not part of the public API.

use std::time::{Duration, Instant};

use bytes::BytesMut;

use crate::protocol::{Answer, Connection, ConnectionConfig, Reassembly, Role};
use crate::wire::{Body, CallId, Decoded, Frame, HEADER_LEN, PREFACE_LEN, decode_frame, decode_unit};

/// Max frame size the fuzz entry points decode with (64 KiB): small enough that inputs reach
/// the length check, large enough for every control frame.
const FUZZ_MAX_FRAME: u32 = 64 * 1024;

/// Decodes frames from `data` until it is used up or invalid. Never panics; never reserves more
/// than one frame's worth beyond the input.
pub fn frame_decode(data: &[u8]) {
    let mut buf = BytesMut::from(data);
    while let Ok(Some(frame)) = decode_frame(&mut buf, FUZZ_MAX_FRAME) {
        assert!(frame.payload_len() <= FUZZ_MAX_FRAME as usize);
    }
    assert!(buf.capacity() <= data.len().max(16) + 64 * 1024 + FUZZ_MAX_FRAME as usize);
    // The chunk-aware path a receiver that announced RECEIVE_CHUNKS takes: what it holds for a
    // chunked frame stays within one frame.
    let mut buf = BytesMut::from(data);
    let mut reassembly = Reassembly::default();
    let one_frame = HEADER_LEN + FUZZ_MAX_FRAME as usize;
    while let Ok(Some(frame)) = reassembly.decode_frame(&mut buf, FUZZ_MAX_FRAME) {
        assert!(frame.payload_len() <= FUZZ_MAX_FRAME as usize);
        assert!(reassembly.held() <= one_frame);
    }
    assert!(reassembly.held() <= one_frame);
}

/// Every frame that decodes re-encodes to bytes that decode to the same frame, and
/// `encoded_len` matches what is written; so does every Chunk frame.
pub fn roundtrip(data: &[u8]) {
    let mut units = BytesMut::from(data);
    while let Ok(Some(unit)) = decode_unit(&mut units, FUZZ_MAX_FRAME) {
        if let Decoded::Chunk(chunk) = unit {
            let mut again = BytesMut::new();
            chunk.encode(&mut again);
            assert_eq!(again.len(), HEADER_LEN + chunk.piece.len());
            assert_eq!(decode_unit(&mut again, u32::MAX), Ok(Some(Decoded::Chunk(chunk))));
        } else if let Decoded::ChunkAck(taken) = unit {
            let mut again = BytesMut::from(&crate::wire::ChunkAck { taken }.encode()[..]);
            assert_eq!(decode_unit(&mut again, u32::MAX), Ok(Some(Decoded::ChunkAck(taken))));
        }
    }
    roundtrip_frames(data);
}

fn roundtrip_frames(data: &[u8]) {
    let mut buf = BytesMut::from(data);
    while let Ok(Some(frame)) = decode_frame(&mut buf, FUZZ_MAX_FRAME) {
        let mut again = BytesMut::new();
        frame.encode(&mut again);
        assert_eq!(again.len(), frame.encoded_len(), "encoded_len of {frame:?}");
        let decoded = decode_frame(&mut again, u32::MAX)
            .expect("re-encoded frame decodes")
            .expect("complete");
        assert_eq!(decoded, frame);
        assert!(again.is_empty());
        if let Some(mut produced) = encode_as_production(&frame) {
            assert_eq!(produced.len(), frame.encoded_len(), "production encoder length of {frame:?}");
            let decoded = decode_frame(&mut produced, u32::MAX)
                .expect("a production-encoded frame decodes")
                .expect("complete");
            assert_eq!(decoded, frame, "production encoder");
        }
    }
}

/// Encodes `frame` the way the driver does (`wire::encode_message_frame` with a message spliced
/// in by reference, `wire::encode_status_frame`), flattened into one buffer; `None` for kinds
/// and shapes production writes through [`Frame::encode`] instead (control frames, responses
/// with head metadata). The roundtrip target checks both give the same bytes' meaning.
pub fn encode_as_production(frame: &Frame) -> Option<BytesMut> {
    use crate::wire::{Flags, FrameBatch, FrameKind, encode_message_frame, encode_status_frame};
    let mut batch = FrameBatch::default();
    let body = |message: Option<&bytes::Bytes>| message.map_or(Body::<()>::Empty, |m| Body::Encoded(m.clone()));
    match frame {
        Frame::Status { call_id, status } => {
            // Production fits the status to the peer's max frame size; u32::MAX fits everything.
            encode_status_frame(&mut batch, *call_id, status.code, status.message_str(), &status.metadata, u32::MAX);
        }
        Frame::Request {
            call_id,
            head,
            message,
            end_stream,
        } => {
            let flags = Flags::NONE
                .set_if(Flags::MESSAGE, message.is_some())
                .set_if(Flags::END_STREAM, *end_stream);
            let head_len = head.encoded_len();
            encode_message_frame(
                &mut batch,
                FrameKind::Request,
                flags,
                *call_id,
                head_len,
                |buf| head.encode(buf),
                body(message.as_ref()),
            );
        }
        Frame::Response {
            call_id,
            metadata,
            message,
            end_stream,
        } if metadata.is_empty() => {
            let flags = Flags::NONE
                .set_if(Flags::MESSAGE, message.is_some())
                .set_if(Flags::END_STREAM, *end_stream);
            encode_message_frame(&mut batch, FrameKind::Response, flags, *call_id, 0, |_| {}, body(message.as_ref()));
        }
        Frame::Message {
            call_id,
            message,
            end_stream,
        } => {
            let flags = Flags::NONE.set_if(Flags::END_STREAM, *end_stream);
            encode_message_frame(&mut batch, FrameKind::Message, flags, *call_id, 0, |_| {}, body(Some(message)));
        }
        Frame::EndOfStream { call_id } => {
            encode_message_frame(
                &mut batch,
                FrameKind::EndOfStream,
                Flags::NONE,
                *call_id,
                0,
                |_| {},
                Body::<()>::Empty,
            );
        }
        _ => return None,
    }
    assert_eq!(batch.frames, 1, "one frame per encoder call");
    let mut flat = BytesMut::with_capacity(batch.len());
    for piece in batch.pieces() {
        flat.extend_from_slice(piece);
    }
    Some(flat)
}

/// Drives one side of a connection with operations read from `data`: bytes from the peer,
/// clock advances and local commands. Checks that it never panics, that everything it sends
/// decodes, and that its queues stay bounded.
pub fn connection(data: &[u8]) {
    let Some((&first, mut ops)) = data.split_first() else { return };
    let role = if first & 1 == 0 { Role::Server } else { Role::Client };
    let mut config = ConnectionConfig::default();
    config.settings.max_frame_size = FUZZ_MAX_FRAME.max(crate::wire::MIN_FRAME_SIZE);
    config.settings.max_concurrent_calls = 8;
    config.keepalive_interval = (first & 2 != 0).then_some(Duration::from_millis(100));
    let mut now = Instant::now();
    let mut conn = Connection::new(role, config, now);
    let mut inbox = BytesMut::new();
    if first & 4 != 0 {
        // Skip the handshake bytes so inputs reach frame handling sooner.
        let mut hello = BytesMut::new();
        hello.extend_from_slice(&crate::wire::Preface::CURRENT.encode());
        Frame::Settings(Default::default()).encode(&mut hello);
        inbox.extend_from_slice(&hello);
    }
    let mut out = BytesMut::new();
    // Call frames, written by the same methods the driver uses (`send_request`, `send_message`,
    // `send_answer`, `send_end_of_stream`).
    let mut calls_out = crate::wire::FrameBatch::default();
    let mut opened: Vec<CallId> = Vec::new();
    while let Some((&op, rest)) = ops.split_first() {
        ops = rest;
        match op % 8 {
            0 => {
                let take = (ops.first().copied().unwrap_or(0) as usize).min(ops.len().saturating_sub(1));
                inbox.extend_from_slice(&ops[1.min(ops.len())..1.min(ops.len()) + take]);
                ops = &ops[(1 + take).min(ops.len())..];
            }
            1 => {
                now += Duration::from_millis(u64::from(ops.first().copied().unwrap_or(1)) * 20);
                ops = ops.get(1..).unwrap_or_default();
                if conn.poll_timeout().is_some_and(|at| at <= now) {
                    let _ = conn.handle_timeout(now);
                }
            }
            2 => match role {
                Role::Client => {
                    let head = crate::wire::CallHead {
                        method_id: crate::wire::MethodId(u32::from(op)),
                        priority: 0,
                        timeout: None,
                        sent_at_ns: 0,
                        metadata: Default::default(),
                    };
                    let mut body = (op & 16 != 0).then(|| Body::<()>::Encoded(bytes::Bytes::from_static(b"request")));
                    if let Ok(id) = conn.send_request(&mut calls_out, &head, &mut body, op & 8 != 0) {
                        opened.push(id);
                    }
                }
                Role::Server => {
                    let ids: Vec<_> = conn.open_call_ids().collect();
                    if let Some(&id) = ids.first() {
                        let empty = crate::wire::Metadata::new();
                        let answer = if op & 8 != 0 {
                            Answer::Response {
                                metadata: &empty,
                                body: Body::<()>::Encoded(bytes::Bytes::from_static(b"response")),
                                trailers: &empty,
                            }
                        } else {
                            Answer::Status {
                                code: crate::wire::Code::Internal,
                                message: "fuzz",
                                metadata: &empty,
                            }
                        };
                        conn.send_answer(&mut calls_out, id, answer);
                    }
                }
            },
            3 => {
                if op & 8 != 0 {
                    // A half-closed call stays open, waiting for its answer.
                    if let Some(&id) = opened.last() {
                        conn.send_end_of_stream(&mut calls_out, id);
                    }
                } else if let Some(id) = opened.pop() {
                    conn.cancel_call(id);
                }
            }
            4 => conn.go_away("fuzz"),
            6 | 7 => {
                // Stream messages: send some under flow control, or release received bytes.
                let len = usize::from(ops.first().copied().unwrap_or(1)) * 100;
                ops = ops.get(1..).unwrap_or_default();
                let first = conn.open_call_ids().min();
                if let Some(id) = first {
                    if op % 8 == 6 {
                        let mut body = Some(Body::<()>::Encoded(bytes::Bytes::from(vec![0u8; len])));
                        let _ = conn.send_message(&mut calls_out, id, &mut body);
                    } else {
                        conn.release_received(id, len);
                    }
                }
            }
            _ => {
                conn.poll_transmit(&mut out);
            }
        }
        // The production read path: preface, decode loop, wire errors.
        let _ = conn.handle_read(&mut inbox, now, usize::MAX);
        while conn.poll_event().is_some() {}
        assert!(conn.open_calls() <= 8 + opened.len(), "open calls stay under the limit");
    }
    conn.poll_transmit(&mut out);
    // What we send is always valid: whole frames, and ChunkAck frames for chunks we took.
    if out.len() >= PREFACE_LEN {
        let _ = out.split_to(PREFACE_LEN);
        while !out.is_empty() {
            match decode_unit(&mut out, u32::MAX) {
                Ok(Some(Decoded::Frame(_) | Decoded::ChunkAck(_))) => {}
                other => panic!("the connection wrote an invalid frame: {other:?}"),
            }
        }
    }
    let mut call_frames = BytesMut::with_capacity(calls_out.len());
    for piece in calls_out.pieces() {
        call_frames.extend_from_slice(piece);
    }
    let mut decoded = 0;
    while !call_frames.is_empty() {
        match decode_frame(&mut call_frames, u32::MAX) {
            Ok(Some(_)) => decoded += 1,
            other => panic!("the connection encoded an invalid call frame: {other:?}"),
        }
    }
    assert_eq!(decoded, calls_out.frames, "every call frame counted once");
}
