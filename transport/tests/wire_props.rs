//! Property tests of the wire format: every frame kind round-trips, `encoded_len` matches the
//! bytes written, the encoders production uses write the same frames as `Frame::encode`, and
//! arbitrary bytes give frames or a typed error, never a panic.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use volley::wire::{CallHead, CallId, Frame, GoAway, Settings, StatusFrame, decode_frame};
use volley::{Code, Metadata, MethodId};

fn metadata() -> impl Strategy<Value = Metadata> {
    prop::collection::vec(("[a-z0-9._-]{1,12}", prop::collection::vec(any::<u8>(), 0..24)), 0..4).prop_map(|entries| {
        let mut md = Metadata::new();
        for (k, v) in entries {
            md.insert(&k, v).expect("strategy makes valid keys");
        }
        md
    })
}

fn message() -> impl Strategy<Value = Bytes> {
    prop::collection::vec(any::<u8>(), 0..64).prop_map(Bytes::from)
}

fn call_id() -> impl Strategy<Value = CallId> {
    (1..u64::MAX).prop_map(CallId)
}

fn code() -> impl Strategy<Value = Code> {
    (0u8..=16).prop_map(Code::from_u8)
}

fn text() -> impl Strategy<Value = Bytes> {
    ".{0,40}".prop_map(|s: String| Bytes::from(s))
}

fn frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        (
            call_id(),
            any::<u32>(),
            any::<u8>(),
            prop::option::of(1u64..u64::MAX),
            any::<u64>(),
            metadata(),
            prop::option::of(message()),
            any::<bool>()
        )
            .prop_map(|(call_id, method, priority, micros, sent_at_ns, metadata, message, end_stream)| {
                Frame::Request {
                    call_id,
                    head: CallHead {
                        method_id: MethodId(method),
                        priority,
                        timeout: micros.map(Duration::from_micros),
                        sent_at_ns,
                        metadata,
                    },
                    message,
                    end_stream,
                }
            }),
        (call_id(), metadata(), prop::option::of(message()), any::<bool>()).prop_map(|(call_id, metadata, message, end_stream)| {
            Frame::Response {
                call_id,
                metadata,
                message,
                end_stream,
            }
        }),
        (call_id(), message(), any::<bool>()).prop_map(|(call_id, message, end_stream)| {
            Frame::Message {
                call_id,
                message,
                end_stream,
            }
        }),
        call_id().prop_map(|call_id| Frame::EndOfStream { call_id }),
        call_id().prop_map(|call_id| Frame::Cancel { call_id }),
        (call_id(), code(), text(), metadata()).prop_map(|(call_id, code, message, metadata)| {
            Frame::Status {
                call_id,
                status: StatusFrame { code, message, metadata },
            }
        }),
        (any::<u64>(), 1u32..).prop_map(|(id, increment)| Frame::Credit {
            call_id: CallId(id),
            increment
        }),
        any::<u64>().prop_map(|payload| Frame::Ping { payload }),
        any::<u64>().prop_map(|payload| Frame::Pong { payload }),
        (
            16_384u32..=1 << 28,
            1u32..,
            1u32..=i32::MAX as u32,
            1u32..=i32::MAX as u32,
            any::<u32>(),
            0u32..=65_535,
            0u32..=1
        )
            .prop_map(|(f, c, w, cw, p, m, chunks)| {
                Frame::Settings(Settings {
                    max_frame_size: f,
                    max_concurrent_calls: c,
                    initial_call_window: w,
                    initial_connection_window: cw,
                    min_ping_interval_ms: p,
                    max_metadata_size: m,
                    receive_chunks: chunks,
                })
            }),
        (any::<u64>(), code(), text()).prop_map(|(id, code, reason)| Frame::GoAway(GoAway {
            last_call_id: CallId(id),
            code,
            reason
        })),
    ]
}

proptest! {
    /// Any call frame, cut into chunks of any size from `MIN_CHUNK_PAYLOAD` up, with other calls'
    /// frames between the chunks, comes out of the reassembly as the same frames, the chunked
    /// one where its last chunk was.
    #[test]
    fn any_call_frame_cut_into_chunks_reassembles_to_itself(
        frame in frame().prop_filter("a call frame", |f| f.call_id() != CallId(0) && !matches!(f, Frame::Credit { .. })),
        size in 1024usize..5000,
        padding in prop::collection::vec(any::<u8>(), 0..6000),
        between in any::<u64>(),
    ) {
        use volley::protocol::Reassembly;
        use volley::wire::Chunk;
        // Grow the frame past one chunk when it carries a message.
        let frame = match frame {
            Frame::Message { call_id, mut message, end_stream } => {
                message = [&message[..], &padding[..]].concat().into();
                Frame::Message { call_id, message, end_stream }
            }
            other => other,
        };
        let other = Frame::Ping { payload: between };
        let mut whole = BytesMut::new();
        frame.encode(&mut whole);
        let pieces: Vec<&[u8]> = whole.chunks(size).collect();
        let mut wire = BytesMut::new();
        for (i, piece) in pieces.iter().enumerate() {
            Chunk { call_id: frame.call_id(), more: i + 1 < pieces.len(), piece: Bytes::copy_from_slice(piece) }.encode(&mut wire);
            if i == 0 {
                other.encode(&mut wire);
            }
        }
        let mut reassembly = Reassembly::default();
        let mut got = Vec::new();
        while let Some(f) = reassembly.decode_frame(&mut wire, u32::MAX).unwrap() {
            got.push(f);
        }
        let expected = if pieces.len() == 1 { vec![frame, other] } else { vec![other, frame] };
        prop_assert_eq!(got, expected);
        prop_assert!(!reassembly.in_progress());
    }

    #[test]
    fn decode_of_encode_is_identity(frames in prop::collection::vec(frame(), 1..8)) {
        let mut buf = BytesMut::new();
        let mut expected_len = 0;
        for frame in &frames {
            frame.encode(&mut buf);
            expected_len += frame.encoded_len();
            prop_assert_eq!(buf.len(), expected_len, "encoded_len disagrees for {:?}", frame);
        }
        for frame in &frames {
            let decoded = decode_frame(&mut buf, u32::MAX).expect("valid bytes").expect("complete frame");
            prop_assert_eq!(&decoded, frame);
        }
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn the_encoders_production_uses_write_the_same_frames(frame in frame()) {
        // `encode_as_production` runs `wire::encode_message_frame` / `encode_status_frame`, the
        // encoders the driver writes call frames with; control frames have no second encoder.
        if let Some(mut produced) = volley::fuzz::encode_as_production(&frame) {
            prop_assert_eq!(produced.len(), frame.encoded_len(), "length of {:?}", frame);
            let decoded = decode_frame(&mut produced, u32::MAX).expect("valid bytes").expect("complete frame");
            prop_assert_eq!(decoded, frame);
            prop_assert!(produced.is_empty());
        }
    }

    #[test]
    fn arbitrary_bytes_give_frames_or_a_typed_error(bytes in prop::collection::vec(any::<u8>(), 0..512), max in 0u32..4096) {
        let mut buf = BytesMut::from(&bytes[..]);
        loop {
            let before = buf.len();
            match decode_frame(&mut buf, max) {
                Ok(Some(_)) => prop_assert!(buf.len() < before),
                Ok(None) | Err(_) => break,
            }
            // A decoder never asks for more room than one max-size frame.
            prop_assert!(buf.capacity() <= bytes.len().max(16 + max as usize + 64 * 1024));
        }
    }

    #[test]
    fn frames_split_at_any_byte_decode_the_same(frame in frame(), cut in any::<prop::sample::Index>()) {
        let mut whole = BytesMut::new();
        frame.encode(&mut whole);
        let cut = cut.index(whole.len());
        let mut buf = BytesMut::from(&whole[..cut]);
        let first = decode_frame(&mut buf, u32::MAX).expect("a prefix is never an error");
        if cut < whole.len() {
            prop_assert!(first.is_none());
            buf.extend_from_slice(&whole[cut..]);
            prop_assert_eq!(decode_frame(&mut buf, u32::MAX).expect("valid"), Some(frame));
        } else {
            prop_assert_eq!(first, Some(frame));
        }
    }
}

#[test]
fn oversized_length_is_rejected_before_any_allocation() {
    let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0x7f, 0x04, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0][..]);
    let capacity = buf.capacity();
    let err = decode_frame(&mut buf, 1 << 20).unwrap_err();
    assert_eq!(
        err,
        volley::wire::WireError::FrameTooLarge {
            len: 0x7fff_ffff,
            max: 1 << 20
        }
    );
    assert_eq!(buf.capacity(), capacity, "nothing reserved for a frame over the limit");
}
