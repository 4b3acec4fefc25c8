//! `docs/PROTOCOL.md` is checked against the code: its hex dump of a unary exchange decodes with
//! the real decoder to exactly the frames the document describes, re-encoding those frames gives
//! exactly the documented bytes, and its method-id test vectors match `MethodId::from_name`.

use std::path::Path;

use bytes::{Bytes, BytesMut};
use volley::MethodId;
use volley::wire::{CallHead, CallId, DEFAULT_MAX_FRAME_SIZE, Frame, PREFACE_LEN, Preface, Settings, decode_frame};

/// The protobuf encoding of field 1 = "hello", the message both directions carry.
const HELLO: &[u8] = &[0x0a, 0x05, b'h', b'e', b'l', b'l', b'o'];

fn protocol_md() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/PROTOCOL.md");
    std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()))
}

/// The bytes of every ```hex block, in document order. `#` starts a comment that runs to the end
/// of the line; everything else must be lowercase two-digit hex bytes separated by whitespace.
fn hex_blocks(doc: &str) -> Vec<Vec<u8>> {
    let mut blocks = Vec::new();
    let mut current: Option<Vec<u8>> = None;
    for (number, line) in doc.lines().enumerate() {
        let trimmed = line.trim();
        match current.as_mut() {
            None if trimmed == "```hex" => current = Some(Vec::new()),
            None => {}
            Some(_) if trimmed == "```" => blocks.extend(current.take()),
            Some(bytes) => {
                let data = line.split('#').next().unwrap_or_default();
                for token in data.split_whitespace() {
                    let well_formed = token.len() == 2 && token.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
                    assert!(
                        well_formed,
                        "PROTOCOL.md line {}: `{token}` is not a lowercase hex byte",
                        number + 1
                    );
                    bytes.push(u8::from_str_radix(token, 16).expect("checked as hex above"));
                }
            }
        }
    }
    assert!(current.is_none(), "PROTOCOL.md has an unterminated ```hex block");
    blocks
}

/// The two directions of the documented exchange: (client to server, server to client).
fn documented_exchange() -> (Vec<u8>, Vec<u8>) {
    let mut blocks = hex_blocks(&protocol_md()).into_iter();
    let (Some(client), Some(server), None) = (blocks.next(), blocks.next(), blocks.next()) else {
        panic!("PROTOCOL.md must have exactly two ```hex blocks: client to server, then server to client");
    };
    (client, server)
}

/// Checks the preface, then decodes frames until the bytes run out.
fn decode_direction(raw: &[u8]) -> Vec<Frame> {
    let preface: &[u8; PREFACE_LEN] = raw.first_chunk().expect("a direction starts with the 8-byte preface");
    let preface = Preface::decode(preface).expect("the documented preface has the Volley magic");
    assert_eq!(preface, Preface::CURRENT);
    assert_eq!(preface.check_version(), Ok(()));
    let mut buf = BytesMut::from(&raw[PREFACE_LEN..]);
    let mut frames = Vec::new();
    while !buf.is_empty() {
        match decode_frame(&mut buf, DEFAULT_MAX_FRAME_SIZE) {
            Ok(Some(frame)) => frames.push(frame),
            Ok(None) => panic!("the dump ends in the middle of a frame; {} bytes left over", buf.len()),
            Err(err) => panic!("the dump does not decode: {err}"),
        }
    }
    frames
}

fn expected_client_frames() -> Vec<Frame> {
    vec![
        Frame::Settings(Settings::default()),
        Frame::Request {
            call_id: CallId(1),
            head: CallHead {
                method_id: MethodId::from_name("/echo.Echo/Say"),
                priority: 0,
                timeout: None,
                sent_at_ns: 0,
                metadata: volley::Metadata::new(),
            },
            message: Some(Bytes::from_static(HELLO)),
            end_stream: true,
        },
    ]
}

fn expected_server_frames() -> Vec<Frame> {
    vec![
        Frame::Settings(Settings::default()),
        Frame::Response {
            call_id: CallId(1),
            metadata: volley::Metadata::new(),
            message: Some(Bytes::from_static(HELLO)),
            end_stream: true,
        },
    ]
}

fn encode_direction(frames: &[Frame]) -> Vec<u8> {
    let mut out = BytesMut::new();
    out.extend_from_slice(&Preface::CURRENT.encode());
    for frame in frames {
        frame.encode(&mut out);
    }
    out.to_vec()
}

#[test]
fn the_hex_dump_in_protocol_md_decodes_to_a_unary_exchange() {
    let (client, server) = documented_exchange();
    assert_eq!(decode_direction(&client), expected_client_frames(), "client to server");
    assert_eq!(decode_direction(&server), expected_server_frames(), "server to client");
}

#[test]
fn re_encoding_the_unary_exchange_gives_exactly_the_documented_bytes() {
    let (client, server) = documented_exchange();
    assert_eq!(encode_direction(&expected_client_frames()), client, "client to server");
    assert_eq!(encode_direction(&expected_server_frames()), server, "server to client");
}

#[test]
fn the_method_id_test_vectors_in_protocol_md_match_method_id_from_name() {
    let doc = protocol_md();
    let section = doc
        .split("\n## ")
        .find(|section| section.starts_with("8. Method ids"))
        .expect("PROTOCOL.md has a section `## 8. Method ids`");
    let mut checked = 0;
    for row in section.lines().filter(|line| line.starts_with("| `")) {
        let cells: Vec<&str> = row.split('|').map(|cell| cell.trim().trim_matches('`')).collect();
        let [_, name, id, wire, ..] = cells[..] else {
            panic!("malformed test-vector row: {row}");
        };
        let id = u32::from_str_radix(id.trim_start_matches("0x"), 16).unwrap_or_else(|_| panic!("bad id in row: {row}"));
        let wire: Vec<u8> = wire
            .split_whitespace()
            .map(|byte| u8::from_str_radix(byte, 16).unwrap_or_else(|_| panic!("bad byte in row: {row}")))
            .collect();
        assert_eq!(MethodId::from_name(name), MethodId(id), "method id of `{name}`");
        assert_eq!(wire, id.to_le_bytes(), "wire bytes of `{name}` are the little-endian id");
        checked += 1;
    }
    assert!(
        checked >= 3,
        "PROTOCOL.md lists at least three method-id test vectors, found {checked}"
    );
}
