//! Replays every committed fuzz corpus file through the fuzz entry points, on stable Rust, so CI
//! needs no cargo-fuzz and a crash once found stays fixed.
//!
//! `cargo test -p volley --test fuzz_corpus -- --ignored write_seed_corpus` regenerates the
//! hand-written seeds in `fuzz/corpus/*/seed-*`.

use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use volley::wire::{CallHead, CallId, Frame, GoAway, Preface, Settings, StatusFrame};
use volley::{Code, Metadata, MethodId};

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus").join(target)
}

fn replay(target: &str, run: fn(&[u8])) -> usize {
    let dir = corpus_dir(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for file in &files {
        let data = std::fs::read(file).unwrap();
        let result = std::panic::catch_unwind(|| run(&data));
        assert!(result.is_ok(), "corpus file {} crashes the {target} target", file.display());
    }
    files.len()
}

#[test]
fn frame_decode_corpus_replays_cleanly() {
    assert!(replay("frame_decode", volley::fuzz::frame_decode) > 0, "the corpus is not empty");
}

#[test]
fn roundtrip_corpus_replays_cleanly() {
    assert!(replay("roundtrip", volley::fuzz::roundtrip) > 0);
}

#[test]
fn connection_corpus_replays_cleanly() {
    assert!(replay("connection", volley::fuzz::connection) > 0);
}

/// One valid frame of every kind, for seeds.
fn every_kind() -> Vec<Frame> {
    let mut metadata = Metadata::new();
    metadata.insert("x-id", "42").unwrap();
    let head = CallHead {
        method_id: MethodId::from_name("/echo.Echo/Say"),
        priority: 3,
        timeout: Some(std::time::Duration::from_millis(5)),
        sent_at_ns: 1,
        metadata: metadata.clone(),
    };
    vec![
        Frame::Settings(Settings::default()),
        Frame::Request {
            call_id: CallId(1),
            head,
            message: Some(Bytes::from_static(b"\x0a\x05hello")),
            end_stream: true,
        },
        Frame::Response {
            call_id: CallId(1),
            metadata: metadata.clone(),
            message: Some(Bytes::from_static(b"\x0a\x05hello")),
            end_stream: false,
        },
        Frame::Message {
            call_id: CallId(1),
            message: Bytes::from_static(b"m"),
            end_stream: false,
        },
        Frame::EndOfStream { call_id: CallId(1) },
        Frame::Cancel { call_id: CallId(1) },
        Frame::Status {
            call_id: CallId(1),
            status: StatusFrame {
                code: Code::NotFound,
                message: Bytes::from_static("no\r\n🦀".as_bytes()),
                metadata,
            },
        },
        Frame::Credit {
            call_id: CallId(0),
            increment: 65_536,
        },
        Frame::Ping { payload: 7 },
        Frame::Pong { payload: 7 },
        Frame::GoAway(GoAway {
            last_call_id: CallId(1),
            code: Code::Ok,
            reason: Bytes::from_static(b"bye"),
        }),
    ]
}

fn encode(frames: &[Frame]) -> Vec<u8> {
    let mut buf = BytesMut::new();
    for frame in frames {
        frame.encode(&mut buf);
    }
    buf.to_vec()
}

#[test]
#[ignore = "writes the seed corpus; run by hand"]
fn write_seed_corpus() {
    let frames = every_kind();
    for target in ["frame_decode", "roundtrip"] {
        std::fs::create_dir_all(corpus_dir(target)).unwrap();
        for (i, frame) in frames.iter().enumerate() {
            std::fs::write(
                corpus_dir(target).join(format!("seed-{i:02}-{:?}", frame.kind())),
                encode(std::slice::from_ref(frame)),
            )
            .unwrap();
        }
        std::fs::write(corpus_dir(target).join("seed-all-kinds"), encode(&frames)).unwrap();
        std::fs::write(
            corpus_dir(target).join("seed-oversized-length"),
            [0xff, 0xff, 0xff, 0xff, 4, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0],
        )
        .unwrap();
    }
    // Connection seeds: a flag byte, then ops (op 0 = feed the next N bytes).
    let feed = |bytes: &[u8]| {
        let mut ops = Vec::new();
        for chunk in bytes.chunks(255) {
            ops.push(0u8);
            ops.push(chunk.len() as u8);
            ops.extend_from_slice(chunk);
        }
        ops
    };
    let dir = corpus_dir("connection");
    std::fs::create_dir_all(&dir).unwrap();
    let mut handshake = Preface::CURRENT.encode().to_vec();
    handshake.extend(encode(&[Frame::Settings(Settings::default())]));
    // Server: handshake, a request, a cancel, a ping flood, time passing, a goaway.
    let mut server = vec![0u8];
    server.extend(feed(&handshake));
    server.extend(feed(&encode(&frames[1..2])));
    server.extend([2, 5]);
    server.extend(feed(&encode(&[
        Frame::Cancel { call_id: CallId(1) },
        Frame::Ping { payload: 1 },
        Frame::Ping { payload: 2 },
        Frame::Ping { payload: 3 },
    ])));
    server.extend([1, 60, 4, 5]);
    std::fs::write(dir.join("seed-server-session"), &server).unwrap();
    // Client: open calls, the server answers one, a status, keepalive timing out.
    let mut client = vec![3u8];
    client.extend(feed(&handshake));
    client.extend([2, 2, 5]);
    client.extend(feed(&encode(&[frames[2].clone(), frames[3].clone(), frames[6].clone()])));
    client.extend([3, 1, 10, 5, 1, 255, 5]);
    std::fs::write(dir.join("seed-client-session"), &client).unwrap();
    // Chunk frames: a Message cut into three chunks with a Ping between the first two; as a
    // stream for the decoders and inside a server session.
    let chunked = chunked_message();
    for target in ["frame_decode", "roundtrip"] {
        std::fs::write(corpus_dir(target).join("seed-chunked-message"), &chunked).unwrap();
    }
    let mut server = vec![0u8];
    server.extend(feed(&handshake));
    server.extend(feed(&encode(&[Frame::Request {
        call_id: CallId(1),
        head: CallHead::default(),
        message: None,
        end_stream: false,
    }])));
    server.extend(feed(&chunked));
    server.extend([7, 30, 5]);
    std::fs::write(dir.join("seed-server-chunked-message"), &server).unwrap();
    // ChunkAck frames (section 5.12, version 2): between chunks, and to a server that sent none.
    let with_acks = chunked_message_with_acks();
    for target in ["frame_decode", "roundtrip"] {
        std::fs::write(corpus_dir(target).join("seed-chunk-acks"), &with_acks).unwrap();
    }
    let mut server = vec![0u8];
    server.extend(feed(&handshake));
    server.extend(feed(&encode(&[Frame::Request {
        call_id: CallId(1),
        head: CallHead::default(),
        message: None,
        end_stream: false,
    }])));
    server.extend(feed(&with_acks));
    server.extend([5]);
    std::fs::write(dir.join("seed-server-chunk-acks"), &server).unwrap();
    let mut hostile = vec![4u8];
    hostile.extend(feed(&encode(&frames)));
    hostile.extend(feed(&encode(&frames)));
    std::fs::write(dir.join("seed-every-kind-to-a-server"), &hostile).unwrap();
    hostile[0] = 5;
    std::fs::write(dir.join("seed-every-kind-to-a-client"), &hostile).unwrap();
}

/// A 3,000-byte Message on call 1 as three Chunk frames (1,024, 1,024 and the rest), with a
/// Ping between the first two.
fn chunked_message() -> Vec<u8> {
    use volley::wire::Chunk;
    let whole = encode(&[Frame::Message {
        call_id: CallId(1),
        message: Bytes::from(vec![0x5a; 3000]),
        end_stream: false,
    }]);
    let pieces: Vec<&[u8]> = whole.chunks(1024).collect();
    let mut out = BytesMut::new();
    for (i, piece) in pieces.iter().enumerate() {
        Chunk {
            call_id: CallId(1),
            more: i + 1 < pieces.len(),
            piece: Bytes::copy_from_slice(piece),
        }
        .encode(&mut out);
        if i == 0 {
            Frame::Ping { payload: 9 }.encode(&mut out);
        }
    }
    out.to_vec()
}

/// [`chunked_message`] with a ChunkAck (of 65,536 bytes) before it and one after its first chunk.
fn chunked_message_with_acks() -> Vec<u8> {
    let ack = volley::wire::ChunkAck { taken: 65_536 }.encode();
    let chunked = chunked_message();
    let mut out = ack.to_vec();
    out.extend_from_slice(&chunked[..16 + 1024]);
    out.extend_from_slice(&ack);
    out.extend_from_slice(&chunked[16 + 1024..]);
    out
}

#[test]
fn the_chunk_ack_seed_decodes_to_the_message_and_counts_the_acks() {
    let mut wire = BytesMut::from(&chunked_message_with_acks()[..]);
    let mut reassembly = volley::protocol::Reassembly::default();
    let frames: Vec<Frame> = std::iter::from_fn(|| reassembly.decode_frame(&mut wire, 1 << 20).unwrap()).collect();
    assert!(matches!(&frames[..], [Frame::Ping { payload: 9 }, Frame::Message { message, .. }] if message.len() == 3000));
    // Nothing was sent: the acknowledgements count for nothing, and each is charged.
    assert_eq!(reassembly.take_acked(), 0);
    assert_eq!(reassembly.take_ack_frames(), 2);
}

#[test]
fn the_chunk_seed_decodes_to_the_message_and_the_ping_between_its_chunks() {
    let mut wire = BytesMut::from(&chunked_message()[..]);
    let mut reassembly = volley::protocol::Reassembly::default();
    let frames: Vec<Frame> = std::iter::from_fn(|| reassembly.decode_frame(&mut wire, 1 << 20).unwrap()).collect();
    assert!(matches!(&frames[..], [Frame::Ping { payload: 9 }, Frame::Message { message, .. }] if message.len() == 3000));
}
