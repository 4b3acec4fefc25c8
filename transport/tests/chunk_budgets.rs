//! The limits on chunked frames (docs/PROTOCOL.md section 5.12 and section 9), driven through
//! the sans-IO `Connection` with a simulated clock and no sockets, like `tests/protocol.rs`:
//! each abuse ends in a typed error and a GoAway naming it, and a chunked frame counts against
//! the windows exactly as the same frame sent whole.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use volley::protocol::{Connection, ConnectionConfig, ConnectionError, ConnectionErrorReason, Event, Role};
use volley::wire::{
    CallHead, CallId, Chunk, ChunkAck, Decoded, Frame, FrameKind, MAX_CHUNKS_PER_FRAME, MIN_CHUNK_PAYLOAD, WireError, decode_unit,
};
use volley::{Code, MethodId};

/// A server connection fed by hand, and the bytes it sent back.
struct Server {
    conn: Connection,
    now: Instant,
    error: Option<ConnectionError>,
}

impl Server {
    fn new(config: ConnectionConfig) -> Self {
        let now = Instant::now();
        let mut server = Self {
            conn: Connection::new(Role::Server, config, now),
            now,
            error: None,
        };
        let mut client = Connection::new(Role::Client, ConnectionConfig::default().acknowledge_chunks(true), now);
        let mut hello = BytesMut::new();
        client.poll_transmit(&mut hello);
        server.receive(hello);
        assert!(server.conn.is_established());
        // Our own preface and settings, which the tests do not look at.
        server.conn.poll_transmit(&mut BytesMut::new());
        server
    }

    fn receive(&mut self, mut bytes: BytesMut) {
        if self.error.is_none()
            && let Err(err) = self.conn.handle_read(&mut bytes, self.now, usize::MAX)
        {
            self.error = Some(err);
        }
    }

    fn receive_frame(&mut self, frame: &Frame) {
        let mut bytes = BytesMut::new();
        frame.encode(&mut bytes);
        self.receive(bytes);
    }

    /// Hands the server `frame` cut into chunks of `size` bytes (the first `take` of them when
    /// given).
    fn receive_chunked(&mut self, frame: &Frame, size: usize, take: Option<usize>) {
        let mut whole = BytesMut::new();
        frame.encode(&mut whole);
        let pieces: Vec<&[u8]> = whole.chunks(size).collect();
        let mut wire = BytesMut::new();
        for (i, piece) in pieces.iter().enumerate().take(take.unwrap_or(usize::MAX)) {
            Chunk {
                call_id: frame.call_id(),
                more: i + 1 < pieces.len(),
                piece: Bytes::copy_from_slice(piece),
            }
            .encode(&mut wire);
        }
        self.receive(wire);
    }

    fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.conn.poll_event()).collect()
    }

    /// Every frame the server has queued to send (ChunkAck frames aside: [`Server::chunk_acks`]).
    fn sent(&mut self) -> Vec<Frame> {
        self.sent_units()
            .into_iter()
            .filter_map(|unit| match unit {
                Decoded::Frame(frame) => Some(frame),
                _ => None,
            })
            .collect()
    }

    /// The counts of the ChunkAck frames the server has queued to send.
    fn chunk_acks(&mut self) -> Vec<u32> {
        self.sent_units()
            .into_iter()
            .filter_map(|unit| match unit {
                Decoded::ChunkAck(taken) => Some(taken),
                _ => None,
            })
            .collect()
    }

    fn sent_units(&mut self) -> Vec<Decoded> {
        let mut out = BytesMut::new();
        self.conn.poll_transmit(&mut out);
        std::iter::from_fn(|| decode_unit(&mut out, u32::MAX).unwrap()).collect()
    }

    fn goaway_reason(&mut self) -> String {
        self.sent()
            .into_iter()
            .find_map(|frame| match frame {
                Frame::GoAway(goaway) => Some(goaway.reason_str().to_owned()),
                _ => None,
            })
            .expect("a GoAway was sent")
    }
}

fn request(call: u64, message: Option<Bytes>, end_stream: bool) -> Frame {
    Frame::Request {
        call_id: CallId(call),
        head: CallHead {
            method_id: MethodId::from_name("/test.Echo/Say"),
            ..CallHead::default()
        },
        message,
        end_stream,
    }
}

fn message(call: u64, len: usize) -> Frame {
    Frame::Message {
        call_id: CallId(call),
        message: Bytes::from(vec![5u8; len]),
        end_stream: false,
    }
}

#[test]
fn a_chunked_request_is_handled_as_if_it_came_whole() {
    let mut server = Server::new(ConnectionConfig::default().acknowledge_chunks(true));
    let payload = Bytes::from((0..300_000).map(|i| i as u8).collect::<Vec<u8>>());
    server.receive_chunked(&request(1, Some(payload.clone()), true), 65_536, None);
    assert!(server.error.is_none(), "{:?}", server.error);
    let events = server.events();
    assert!(
        matches!(&events[..], [Event::Request { call_id: CallId(1), message: Some(m), end_stream: true, .. }] if *m == payload),
        "{events:?}"
    );
}

#[test]
fn a_frame_cut_into_too_many_chunks_closes_the_connection_with_a_goaway_naming_the_cap() {
    let mut server = Server::new(ConnectionConfig::default().acknowledge_chunks(true));
    server.receive_frame(&request(1, None, false));
    let len = (MAX_CHUNKS_PER_FRAME as usize + 1) * MIN_CHUNK_PAYLOAD;
    server.receive_chunked(&message(1, len), MIN_CHUNK_PAYLOAD, None);
    let err = server.error.clone().expect("the connection failed");
    assert_eq!(
        err.reason,
        ConnectionErrorReason::Wire(WireError::TooManyChunks { max: MAX_CHUNKS_PER_FRAME })
    );
    assert_eq!(err.code, Code::Internal);
    assert!(server.goaway_reason().contains("more than 4096 chunks"));
}

#[test]
fn tiny_chunks_are_refused_so_a_peer_cannot_buy_per_chunk_work_cheaply() {
    let mut server = Server::new(ConnectionConfig::default().acknowledge_chunks(true));
    server.receive_frame(&request(1, None, false));
    server.receive_chunked(&message(1, 10_000), 16, None);
    assert_eq!(
        server.error.as_ref().map(|e| e.reason.clone()),
        Some(ConnectionErrorReason::Wire(WireError::ChunkTooSmall))
    );
    assert!(server.goaway_reason().contains("chunk frame too small"));
}

#[test]
fn a_chunked_frame_over_the_max_frame_size_is_refused_at_its_first_chunk() {
    let mut config = ConnectionConfig::default().acknowledge_chunks(true);
    config.settings.max_frame_size = 64 * 1024;
    let mut server = Server::new(config);
    server.receive_frame(&request(1, None, false));
    // The first chunk (which declares 1 MiB) is refused before any of it is kept.
    server.receive_chunked(&message(1, 1 << 20), 16 * 1024, Some(1));
    assert_eq!(
        server.error.as_ref().map(|e| e.reason.clone()),
        Some(ConnectionErrorReason::Wire(WireError::FrameTooLarge {
            len: 1 << 20,
            max: 64 * 1024
        }))
    );
}

#[test]
fn a_chunked_message_over_the_receive_window_resets_the_call_as_a_whole_one_would() {
    let mut config = ConnectionConfig::default().acknowledge_chunks(true);
    config.settings.initial_call_window = 100_000;
    let mut server = Server::new(config);
    server.receive_frame(&request(1, None, false));
    let _ = server.events();
    // Takes the window to 100,000 - 150,000 < 0 (a message larger than the window passes)...
    server.receive_chunked(&message(1, 150_000), 65_536, None);
    assert!(server.error.is_none());
    assert!(matches!(&server.events()[..], [Event::Message { .. }]));
    // ...and the next one, chunked, arrives with no window left: the call is reset.
    server.receive_chunked(&message(1, 150_000), 65_536, None);
    assert!(server.error.is_none(), "the connection survives");
    let sent = server.sent();
    assert!(
        sent.iter()
            .any(|f| matches!(f, Frame::Status { call_id: CallId(1), status } if status.code == Code::ResourceExhausted)),
        "{sent:?}"
    );
    assert!(!server.conn.is_call_open(CallId(1)));
}

#[test]
fn chunks_to_a_side_that_did_not_announce_them_close_the_connection() {
    let mut config = ConnectionConfig::default();
    config.settings.receive_chunks = 0;
    let mut server = Server::new(config);
    server.receive_frame(&request(1, None, false));
    server.receive_chunked(&message(1, 100_000), 65_536, None);
    assert_eq!(
        server.error.as_ref().map(|e| e.reason.clone()),
        Some(ConnectionErrorReason::Wire(WireError::ChunkNotAnnounced))
    );
}

#[test]
fn a_chunked_frame_left_half_sent_ends_the_connection_at_the_partial_frame_timeout() {
    let mut server = Server::new(ConnectionConfig::default().acknowledge_chunks(true));
    server.receive_frame(&request(1, None, false));
    server.receive_chunked(&message(1, 200_000), 65_536, Some(2));
    assert!(server.error.is_none());
    let timeout = volley::protocol::DEFAULT_PARTIAL_FRAME_TIMEOUT;
    server.now += timeout + Duration::from_secs(1);
    let deadline = server.conn.poll_timeout().expect("a timer runs for the half-sent frame");
    assert!(deadline <= server.now);
    let err = server.conn.handle_timeout(server.now).unwrap_err();
    assert_eq!(err.reason, ConnectionErrorReason::PartialFrameTimeout);
}

#[test]
fn the_rest_of_a_chunked_message_for_a_call_that_ended_meanwhile_is_dropped_quietly() {
    let mut server = Server::new(ConnectionConfig::default().acknowledge_chunks(true));
    server.receive_frame(&request(1, None, false));
    let _ = server.events();
    server.receive_chunked(&message(1, 200_000), 65_536, Some(1));
    // The handler ends the call (say it failed) while the message is still arriving.
    assert!(server.conn.finish_call(CallId(1)));
    let mut rest = BytesMut::new();
    let mut whole = BytesMut::new();
    message(1, 200_000).encode(&mut whole);
    let pieces: Vec<&[u8]> = whole.chunks(65_536).collect();
    for (i, piece) in pieces.iter().enumerate().skip(1) {
        Chunk {
            call_id: CallId(1),
            more: i + 1 < pieces.len(),
            piece: Bytes::copy_from_slice(piece),
        }
        .encode(&mut rest);
    }
    server.receive(rest);
    assert!(server.error.is_none(), "{:?}", server.error);
    assert!(server.events().is_empty(), "nothing for the ended call");
    // The connection goes on: a new call is served.
    server.receive_chunked(&request(3, Some(Bytes::from(vec![1u8; 100_000])), true), 65_536, None);
    assert!(matches!(&server.events()[..], [Event::Request { call_id: CallId(3), .. }]));
}

#[test]
fn the_receiver_acknowledges_every_chunk_byte_it_took_in_one_chunk_ack_per_read() {
    let mut server = Server::new(ConnectionConfig::default().acknowledge_chunks(true));
    let request = request(1, Some(Bytes::from(vec![3u8; 300_000])), true);
    let mut whole = BytesMut::new();
    request.encode(&mut whole);
    server.receive_chunked(&request, 65_536, None);
    assert!(server.error.is_none(), "{:?}", server.error);
    assert_eq!(
        server.chunk_acks(),
        [whole.len() as u32],
        "one ChunkAck for the read, every byte counted"
    );
    assert!(server.chunk_acks().is_empty(), "nothing acknowledged twice");
    // Half a frame in one read, the rest in another: two acknowledgements that add up.
    server.receive_chunked(&message(1, 200_000), 65_536, Some(2));
    assert_eq!(server.chunk_acks(), [2 * 65_536]);
}

#[test]
fn a_receiver_that_announced_version_1_reassembles_without_acknowledging() {
    let mut config = ConnectionConfig::default();
    config.settings.receive_chunks = 1;
    let mut server = Server::new(config);
    server.receive_chunked(&request(1, Some(Bytes::from(vec![3u8; 100_000])), true), 65_536, None);
    assert!(server.error.is_none(), "{:?}", server.error);
    assert!(matches!(&server.events()[..], [Event::Request { .. }]));
    assert!(server.chunk_acks().is_empty());
}

#[test]
fn acknowledgements_of_chunk_bytes_we_sent_are_free_and_no_more_than_were_sent_count() {
    let mut server = Server::new(ConnectionConfig::default());
    let sent = 20_000u64 * 65_536;
    server.conn.note_chunks_sent(sent);
    let mut wire = BytesMut::new();
    for _ in 0..20_000 {
        wire.extend_from_slice(&ChunkAck { taken: 65_536 }.encode());
    }
    server.receive(wire);
    assert!(server.error.is_none(), "{:?}", server.error);
    assert_eq!(server.conn.take_chunk_acks(), sent);
    // One more acknowledges nothing that is outstanding: it opens nothing.
    server.receive(BytesMut::from(&ChunkAck { taken: 65_536 }.encode()[..]));
    assert_eq!(server.conn.take_chunk_acks(), 0);
}

#[test]
fn a_flood_of_chunk_acks_spends_the_small_frame_budget_and_closes_the_connection() {
    let mut server = Server::new(ConnectionConfig::default());
    let mut wire = BytesMut::new();
    for _ in 0..20_000 {
        wire.extend_from_slice(&ChunkAck { taken: 1 }.encode());
    }
    server.receive(wire);
    let err = server.error.clone().expect("the connection failed");
    assert_eq!(err.reason, ConnectionErrorReason::TooManySmallFrames);
    assert_eq!(err.code, Code::ResourceExhausted);
    let _ = server.goaway_reason();
}

#[test]
fn a_chunk_ack_on_a_call_or_of_zero_bytes_closes_the_connection() {
    for (call, taken, expected) in [
        (1u8, 5u32, WireError::ControlFrameOnCall(FrameKind::ChunkAck)),
        (0, 0, WireError::ZeroCredit),
    ] {
        let mut server = Server::new(ConnectionConfig::default());
        let mut frame = ChunkAck { taken: 1 }.encode();
        frame[8] = call;
        frame[16..].copy_from_slice(&taken.to_le_bytes());
        server.receive(BytesMut::from(&frame[..]));
        assert_eq!(
            server.error.as_ref().map(|e| e.reason.clone()),
            Some(ConnectionErrorReason::Wire(expected))
        );
    }
}
