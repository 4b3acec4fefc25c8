//! Protocol tests: two sans-IO connections wired back to back with a simulated clock, no sockets.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use volley::protocol::{Connection, ConnectionConfig, ConnectionErrorReason, Event, Role};
use volley::wire::{CallHead, CallId, Frame, PREFACE_LEN, StatusFrame, WireError, decode_frame};
use volley::{Code, Metadata, MethodId};

/// One side of a [`Pair`]: its connection and the bytes it has received but not yet parsed.
struct Side {
    conn: Connection,
    inbox: BytesMut,
    error: Option<volley::protocol::ConnectionError>,
}

impl Side {
    fn new(role: Role, config: ConnectionConfig, now: Instant) -> Self {
        Self {
            conn: Connection::new(role, config, now),
            inbox: BytesMut::new(),
            error: None,
        }
    }

    /// Handles everything in the inbox through the same entry point the driver uses.
    fn receive(&mut self, now: Instant) {
        if self.error.is_none()
            && let Err(err) = self.conn.handle_read(&mut self.inbox, now, usize::MAX)
        {
            self.error = Some(err);
        }
    }

    fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.conn.poll_event()).collect()
    }
}

/// A client and a server connected back to back, with a clock the test moves.
struct Pair {
    client: Side,
    server: Side,
    now: Instant,
}

impl Pair {
    fn new() -> Self {
        Self::with_configs(ConnectionConfig::default(), ConnectionConfig::default())
    }

    fn with_configs(client: ConnectionConfig, server: ConnectionConfig) -> Self {
        // The one clock read in these tests: an origin for simulated time.
        let epoch = Instant::now();
        let mut pair = Self {
            client: Side::new(Role::Client, client, epoch),
            server: Side::new(Role::Server, server, epoch),
            now: epoch,
        };
        pair.drive();
        pair
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
        let now = self.now;
        for side in [&mut self.client, &mut self.server] {
            if side.conn.poll_timeout().is_some_and(|at| at <= now)
                && let Err(err) = side.conn.handle_timeout(now)
            {
                side.error = Some(err);
            }
        }
    }

    /// Moves bytes both ways until neither side has anything to send.
    fn drive(&mut self) {
        loop {
            let mut moved = false;
            let mut buf = BytesMut::new();
            if self.client.conn.poll_transmit(&mut buf) > 0 {
                self.server.inbox.extend_from_slice(&buf);
                moved = true;
            }
            buf.clear();
            if self.server.conn.poll_transmit(&mut buf) > 0 {
                self.client.inbox.extend_from_slice(&buf);
                moved = true;
            }
            self.client.receive(self.now);
            self.server.receive(self.now);
            if !moved {
                break;
            }
        }
    }

    /// Sends raw bytes from the client side, as a driver would after `open_call`.
    fn client_sends(&mut self, frame: Frame) {
        frame.encode(&mut self.server.inbox);
        self.server.receive(self.now);
        self.drive();
    }

    /// Hands the server a frame a hostile client wrote by hand, without driving the client, and
    /// returns what the server answers.
    fn server_answers_raw(&mut self, frame: Frame) -> Vec<Frame> {
        frame.encode(&mut self.server.inbox);
        self.server.receive(self.now);
        let mut out = BytesMut::new();
        self.server.conn.poll_transmit(&mut out);
        std::iter::from_fn(|| decode_frame(&mut out, u32::MAX).unwrap()).collect()
    }

    fn server_sends(&mut self, frame: Frame) {
        frame.encode(&mut self.client.inbox);
        self.client.receive(self.now);
        self.drive();
    }

    fn unary_request(&mut self, message: &'static [u8]) -> CallId {
        let call_id = self.client.conn.open_call(true).expect("call opens");
        self.client_sends(request(call_id, message));
        call_id
    }
}

fn request(call_id: CallId, message: &'static [u8]) -> Frame {
    let head = CallHead {
        method_id: MethodId::from_name("/test.Echo/Say"),
        ..CallHead::default()
    };
    Frame::Request {
        call_id,
        head,
        message: Some(Bytes::from_static(message)),
        end_stream: true,
    }
}

fn response(call_id: CallId, message: &'static [u8]) -> Frame {
    Frame::Response {
        call_id,
        metadata: Metadata::new(),
        message: Some(Bytes::from_static(message)),
        end_stream: true,
    }
}

fn goaway_reason(side: &Side) -> String {
    side.error.as_ref().map(|e| e.reason.to_string()).unwrap_or_default()
}

#[test]
fn handshake_completes_on_both_sides() {
    let pair = Pair::new();
    assert!(pair.client.conn.is_established());
    assert!(pair.server.conn.is_established());
    assert!(pair.client.error.is_none() && pair.server.error.is_none());
}

#[test]
fn unary_call_round_trips_and_retires_on_both_sides() {
    let mut pair = Pair::new();
    let id = pair.unary_request(b"ping");
    let events = pair.server.events();
    assert!(matches!(&events[..], [Event::Request { call_id, message: Some(m), end_stream: true, .. }] if *call_id == id && m == "ping"));
    assert!(pair.server.conn.finish_call(id));
    pair.server_sends(response(id, b"pong"));
    let events = pair.client.events();
    assert!(matches!(&events[..], [Event::Response { message: Some(m), end_stream: true, .. }] if m == "pong"));
    assert_eq!(pair.client.conn.open_calls(), 0);
    assert_eq!(pair.server.conn.open_calls(), 0);
}

#[test]
fn reused_call_id_closes_the_connection_with_a_goaway() {
    let mut pair = Pair::new();
    let id = pair.unary_request(b"a");
    pair.client_sends(request(id, b"again"));
    assert_eq!(
        pair.server.error.as_ref().unwrap().reason,
        ConnectionErrorReason::ReusedCallId(id.0)
    );
    assert!(
        pair.client.error.is_some(),
        "the client got the goaway: {}",
        goaway_reason(&pair.client)
    );
}

#[test]
fn frame_for_a_never_opened_call_is_a_protocol_error() {
    let mut pair = Pair::new();
    pair.client_sends(Frame::Cancel { call_id: CallId(99) });
    assert_eq!(pair.server.error.as_ref().unwrap().reason, ConnectionErrorReason::UnknownCall(99));
}

#[test]
fn response_for_an_unknown_id_is_a_protocol_error_on_the_client() {
    let mut pair = Pair::new();
    pair.server_sends(response(CallId(7), b"x"));
    assert_eq!(pair.client.error.as_ref().unwrap().reason, ConnectionErrorReason::UnknownCall(7));
}

#[test]
fn cancel_for_a_finished_call_is_ignored() {
    let mut pair = Pair::new();
    let id = pair.unary_request(b"a");
    assert!(pair.server.conn.finish_call(id));
    pair.client_sends(Frame::Cancel { call_id: id });
    assert!(pair.server.error.is_none());
}

#[test]
fn client_cancel_reaches_the_server_as_cancelled() {
    let mut pair = Pair::new();
    let id = pair.unary_request(b"a");
    pair.server.events();
    assert!(pair.client.conn.cancel_call(id));
    pair.drive();
    assert_eq!(pair.server.events(), vec![Event::Cancelled { call_id: id }]);
    assert!(!pair.server.conn.finish_call(id), "a cancelled call must not be answered");
}

#[test]
fn message_after_end_of_stream_resets_only_that_call() {
    let mut pair = Pair::new();
    let id = pair.unary_request(b"a");
    pair.server.events();
    pair.client_sends(Frame::Message {
        call_id: id,
        message: Bytes::from_static(b"late"),
        end_stream: false,
    });
    assert!(pair.server.error.is_none());
    assert_eq!(pair.server.events(), vec![Event::Cancelled { call_id: id }]);
    let events = pair.client.events();
    assert!(matches!(&events[..], [Event::Finished { status, .. }] if status.code() == Code::Internal));
}

#[test]
fn calls_over_the_concurrency_limit_are_refused_with_a_retryable_status() {
    let mut server = ConnectionConfig::default();
    server.settings.max_concurrent_calls = 2;
    let mut pair = Pair::with_configs(ConnectionConfig::default(), server);
    // A hostile client ignores the advertised limit.
    assert!(pair.server_answers_raw(request(CallId(1), b"x")).is_empty());
    assert!(pair.server_answers_raw(request(CallId(2), b"x")).is_empty());
    let answer = pair.server_answers_raw(request(CallId(3), b"x"));
    assert!(
        matches!(&answer[..], [Frame::Status { call_id: CallId(3), status }] if status.code == Code::ResourceExhausted),
        "{answer:?}"
    );
    let requests = pair
        .server
        .events()
        .into_iter()
        .filter(|e| matches!(e, Event::Request { .. }))
        .count();
    assert_eq!(requests, 2, "only two handlers may run");
    assert!(pair.server.error.is_none());
}

#[test]
fn metadata_over_the_limit_fails_the_call_and_far_over_closes_the_connection() {
    let mut server = ConnectionConfig::default();
    server.settings.max_metadata_size = 64;
    let mut pair = Pair::with_configs(ConnectionConfig::default(), server);
    let big = |n: usize| {
        let mut md = Metadata::new();
        md.insert("k", vec![b'v'; n]).unwrap();
        md
    };
    let call = |id: u64, md: Metadata| Frame::Request {
        call_id: CallId(id),
        head: CallHead {
            metadata: md,
            ..CallHead::default()
        },
        message: None,
        end_stream: true,
    };
    let answer = pair.server_answers_raw(call(1, big(100)));
    assert!(
        matches!(&answer[..], [Frame::Status { status, .. }] if status.code == Code::ResourceExhausted),
        "{answer:?}"
    );
    assert!(pair.server.error.is_none());
    assert!(pair.server.events().is_empty(), "no handler for an over-limit call");
    let answer = pair.server_answers_raw(call(2, big(1000)));
    assert!(matches!(
        pair.server.error.as_ref().unwrap().reason,
        ConnectionErrorReason::MetadataAbuse { .. }
    ));
    assert!(
        matches!(&answer[..], [Frame::GoAway(g)] if g.code == Code::ResourceExhausted),
        "{answer:?}"
    );
}

#[test]
fn ping_flood_earns_strikes_and_closes_while_spaced_pings_never_do() {
    let mut pair = Pair::new();
    for _ in 0..100 {
        pair.client_sends(Frame::Ping { payload: 1 });
        pair.advance(Duration::from_millis(1_000));
    }
    assert!(pair.server.error.is_none(), "well-spaced pings are fine");
    let mut sent = 0;
    while pair.server.error.is_none() && sent < 10 {
        let _ = pair.server_answers_raw(Frame::Ping { payload: 2 });
        sent += 1;
    }
    assert_eq!(sent, 4, "one on-time ping, then three strikes");
    assert_eq!(pair.server.error.as_ref().unwrap().reason, ConnectionErrorReason::TooManyPings);
    assert_eq!(pair.server.error.as_ref().unwrap().code, Code::ResourceExhausted);
}

#[test]
fn a_ping_flood_leaves_at_most_one_pong_pending() {
    let mut pair = Pair::new();
    for payload in 0..3 {
        Frame::Ping { payload }.encode(&mut pair.server.inbox);
    }
    pair.server.receive(pair.now);
    let mut out = BytesMut::new();
    pair.server.conn.poll_transmit(&mut out);
    let frames: Vec<_> = std::iter::from_fn(|| decode_frame(&mut out, u32::MAX).unwrap()).collect();
    let pongs = frames.iter().filter(|f| matches!(f, Frame::Pong { .. })).count();
    assert_eq!(pongs, 1, "{frames:?}");
}

#[test]
fn rapid_reset_is_stopped_but_a_cancel_heavy_client_is_never_kicked() {
    // 1,000 cancels a minute for an hour of simulated time.
    let mut pair = Pair::new();
    let mut next = 1u64;
    for _ in 0..60 {
        for _ in 0..1_000 {
            pair.client_sends(request(CallId(next), b"x"));
            pair.client_sends(Frame::Cancel { call_id: CallId(next) });
            next += 1;
            pair.advance(Duration::from_millis(60));
        }
        assert!(pair.server.error.is_none());
    }
    // Then a rapid-reset burst with no time passing.
    for _ in 0..5_000 {
        pair.client_sends(request(CallId(next), b"x"));
        pair.client_sends(Frame::Cancel { call_id: CallId(next) });
        next += 1;
        if pair.server.error.is_some() {
            break;
        }
    }
    assert_eq!(pair.server.error.as_ref().unwrap().reason, ConnectionErrorReason::TooManyCancels);
}

#[test]
fn handshake_timeout_closes_a_silent_peer() {
    let epoch = Instant::now();
    let mut server = Side::new(Role::Server, ConnectionConfig::default(), epoch);
    let deadline = server.conn.poll_timeout().unwrap();
    assert_eq!(deadline, epoch + volley::protocol::DEFAULT_HANDSHAKE_TIMEOUT);
    assert!(server.conn.handle_timeout(deadline).is_err());
    assert!(server.conn.is_closed());
    let mut out = BytesMut::new();
    server.conn.poll_transmit(&mut out);
    out.advance_preface();
    let frames = std::iter::from_fn(|| decode_frame(&mut out, u32::MAX).unwrap()).collect::<Vec<_>>();
    assert!(matches!(frames.last(), Some(Frame::GoAway(g)) if g.code == Code::Unavailable));
}

trait AdvancePreface {
    fn advance_preface(&mut self);
}

impl AdvancePreface for BytesMut {
    fn advance_preface(&mut self) {
        let _ = self.split_to(PREFACE_LEN);
    }
}

#[test]
fn keepalive_detects_a_dead_peer() {
    let client = ConnectionConfig {
        keepalive_interval: Some(Duration::from_secs(2)),
        keepalive_timeout: Duration::from_secs(1),
        ..ConnectionConfig::default()
    };
    let mut pair = Pair::with_configs(client, ConnectionConfig::default());
    pair.advance(Duration::from_secs(2));
    pair.drive();
    assert!(pair.client.events().contains(&Event::PongReceived), "a live peer answers");
    pair.advance(Duration::from_secs(2));
    // The server is now dead: nothing is driven.
    let mut sink = BytesMut::new();
    pair.client.conn.poll_transmit(&mut sink);
    pair.advance(Duration::from_secs(1));
    assert_eq!(pair.client.error.as_ref().unwrap().reason, ConnectionErrorReason::KeepaliveTimeout);
}

#[test]
fn bad_magic_and_version_mismatch_are_reported() {
    let epoch = Instant::now();
    let mut server = Side::new(Role::Server, ConnectionConfig::default(), epoch);
    let err = server.conn.handle_preface(b"GET / HT").unwrap_err();
    assert_eq!(err.reason, ConnectionErrorReason::Wire(WireError::BadPreface));
    let mut server = Side::new(Role::Server, ConnectionConfig::default(), epoch);
    let mut v2 = volley::wire::Preface { version: 2 }.encode();
    let err = server.conn.handle_preface(&v2).unwrap_err();
    assert_eq!(err.code, Code::FailedPrecondition);
    assert!(err.to_string().contains("version 2"), "{err}");
    v2[0] = 0;
    let _ = v2;
}

#[test]
fn graceful_goaway_refuses_later_calls_and_lets_open_calls_finish() {
    let mut pair = Pair::new();
    let first = pair.unary_request(b"a");
    pair.server.conn.go_away("shutting down");
    pair.drive();
    let events = pair.client.events();
    assert!(events.contains(&Event::GoAway { last_call_id: first }));
    assert!(pair.client.conn.open_call(true).is_err(), "no new calls after goaway");
    assert!(pair.server.conn.finish_call(first));
    pair.server_sends(response(first, b"done"));
    assert!(
        pair.client
            .events()
            .iter()
            .any(|e| matches!(e, Event::Response { call_id, .. } if *call_id == first))
    );
    assert!(pair.client.error.is_none() && pair.server.error.is_none());
}

#[test]
fn status_frame_ends_a_client_call_with_its_code_and_text() {
    let mut pair = Pair::new();
    let id = pair.unary_request(b"a");
    assert!(pair.server.conn.finish_call(id));
    let text = "line\r\nnext\ttab 🦀";
    pair.server_sends(Frame::Status {
        call_id: id,
        status: StatusFrame {
            code: Code::NotFound,
            message: Bytes::from(text),
            metadata: Metadata::new(),
        },
    });
    let events = pair.client.events();
    assert!(matches!(&events[..], [Event::Finished { status, .. }] if status.code() == Code::NotFound && status.message() == text));
}

#[test]
fn a_server_goes_away_after_the_idle_timeout_but_never_during_a_call() {
    let server = ConnectionConfig {
        idle_timeout: Some(Duration::from_secs(60)),
        ..ConnectionConfig::default()
    };
    let mut pair = Pair::with_configs(ConnectionConfig::default(), server);
    let id = pair.unary_request(b"long");
    // The call runs for ten idle periods: no goaway.
    for _ in 0..10 {
        pair.advance(Duration::from_secs(60));
        pair.drive();
    }
    assert!(!pair.server.conn.is_draining());
    assert!(pair.server.conn.finish_call(id));
    pair.advance(Duration::from_secs(61));
    pair.advance(Duration::from_secs(61));
    pair.drive();
    assert!(pair.server.conn.is_draining(), "idle after the call: graceful goaway");
    assert!(pair.client.events().iter().any(|e| matches!(e, Event::GoAway { .. })));
    assert!(pair.client.error.is_none(), "a graceful goaway is not an error");
}

/// Opens a bidirectional call from the client: a Request with no message and no END_STREAM.
fn open_stream(pair: &mut Pair) -> CallId {
    let call_id = pair.client.conn.open_call(false).expect("call opens");
    pair.client_sends(Frame::Request {
        call_id,
        head: CallHead {
            method_id: MethodId::from_name("/test.Stream/Chat"),
            ..CallHead::default()
        },
        message: None,
        end_stream: false,
    });
    call_id
}

/// Hands the server `count` stream messages of `len` bytes at the current instant, then lets its
/// application consume them (so credit flows and the window never runs out).
fn stream_messages(pair: &mut Pair, call_id: CallId, count: usize, len: usize) {
    let message = Bytes::from(vec![7u8; len]);
    for _ in 0..count {
        Frame::Message {
            call_id,
            message: message.clone(),
            end_stream: false,
        }
        .encode(&mut pair.server.inbox);
    }
    pair.server.receive(pair.now);
    pair.server.events();
    pair.server.conn.release_received(call_id, count * len);
    pair.drive();
}

#[test]
fn a_flood_of_empty_stream_messages_exhausts_the_small_frame_budget() {
    let mut pair = Pair::new();
    let id = open_stream(&mut pair);
    // 20,000 empty messages with no time passing: inside every window (they charge it nothing).
    for _ in 0..20 {
        stream_messages(&mut pair, id, 1_000, 0);
        if pair.server.error.is_some() {
            break;
        }
    }
    let err = pair.server.error.as_ref().expect("the flood closed the connection");
    assert_eq!(err.reason, ConnectionErrorReason::TooManySmallFrames);
    assert_eq!(err.code, Code::ResourceExhausted);
    assert!(
        goaway_reason(&pair.client).contains("small frames"),
        "{}",
        goaway_reason(&pair.client)
    );
}

#[test]
fn small_messages_at_a_high_rate_and_tiny_ones_under_the_budget_are_never_kicked() {
    let mut pair = Pair::new();
    let id = open_stream(&mut pair);
    let budget = volley::protocol::DEFAULT_SMALL_FRAME_BUDGET;
    // Messages of SMALL_FRAME_PAYLOAD bytes are never charged: 500,000 of them at one instant.
    for _ in 0..50 {
        stream_messages(&mut pair, id, 10_000, volley::protocol::SMALL_FRAME_PAYLOAD);
    }
    assert!(pair.server.error.is_none(), "{:?}", pair.server.error);
    // Two-byte messages (a counter) at 95 % of the budget's rate for two minutes of simulated time.
    let per_tick = (budget.per_second as usize * 95 / 100) / 10;
    for _ in 0..1_200 {
        stream_messages(&mut pair, id, per_tick, 2);
        pair.advance(Duration::from_millis(100));
    }
    assert!(pair.server.error.is_none(), "{:?}", pair.server.error);
    assert!(pair.server.conn.is_call_open(id));
    // The same stream going over the rate is stopped.
    for _ in 0..100 {
        stream_messages(&mut pair, id, per_tick * 4, 2);
        pair.advance(Duration::from_millis(100));
        if pair.server.error.is_some() {
            break;
        }
    }
    assert_eq!(
        pair.server.error.as_ref().unwrap().reason,
        ConnectionErrorReason::TooManySmallFrames
    );
}

#[test]
fn a_graceful_goaway_goes_out_before_the_refusals_queued_with_it() {
    let mut pair = Pair::new();
    let first = pair.unary_request(b"a");
    pair.server.conn.go_away("restarting");
    // A request that crossed the GoAway: refused, and the refusal follows the GoAway.
    let frames = pair.server_answers_raw(request(CallId(2), b"b"));
    assert!(
        matches!(&frames[..], [Frame::GoAway(goaway), Frame::Status { call_id, status }]
            if goaway.last_call_id == first && goaway.code == Code::Ok && *call_id == CallId(2) && status.code == Code::Unavailable),
        "{frames:?}"
    );
}

#[test]
fn a_client_knows_which_calls_a_goaway_refused() {
    let mut pair = Pair::new();
    let first = pair.unary_request(b"a");
    let second = pair.client.conn.open_call(true).unwrap();
    assert!(!pair.client.conn.is_refused_by_goaway(second));
    pair.server.conn.go_away("restarting");
    pair.drive();
    assert!(
        !pair.client.conn.is_refused_by_goaway(first),
        "call 1 was accepted before the GoAway"
    );
    assert!(pair.client.conn.is_refused_by_goaway(second), "call 2 was never started");
    assert!(!pair.server.conn.is_refused_by_goaway(second), "only clients are refused");
}

/// Hands the server `count` copies of `frame` a hostile client wrote by hand, at the current
/// instant, in batches of 1,000; stops at the first batch that closes the connection.
fn flood_server(pair: &mut Pair, frame: &Frame, count: usize) {
    for _ in 0..count / 1_000 {
        for _ in 0..1_000 {
            frame.encode(&mut pair.server.inbox);
        }
        pair.server.receive(pair.now);
        pair.server.events();
        if pair.server.error.is_some() {
            return;
        }
    }
}

fn assert_kicked_for_small_frames(side: &Side, what: &str) {
    let err = side
        .error
        .as_ref()
        .unwrap_or_else(|| panic!("a flood of {what} closed the connection"));
    assert_eq!(err.reason, ConnectionErrorReason::TooManySmallFrames, "{what}");
    assert_eq!(err.code, Code::ResourceExhausted, "{what}");
}

/// Builds a flood's frame from the ids of an open call and of an ended one.
type FloodFrame = fn(CallId, CallId) -> Frame;

#[test]
fn floods_of_credits_pongs_goaways_and_frames_for_ended_calls_exhaust_the_small_frame_budget() {
    let floods: [(&str, FloodFrame); 6] = [
        ("connection credits", |_, _| Frame::Credit {
            call_id: CallId::CONNECTION,
            increment: 1,
        }),
        ("credits on an open call", |open, _| Frame::Credit {
            call_id: open,
            increment: 1,
        }),
        ("credits on an ended call", |_, ended| Frame::Credit {
            call_id: ended,
            increment: 1,
        }),
        ("pongs nobody asked for", |_, _| Frame::Pong { payload: 42 }),
        ("graceful goaways", |_, ended| {
            Frame::GoAway(volley::wire::GoAway {
                last_call_id: ended,
                code: Code::Ok,
                reason: Bytes::from_static(b"bye"),
            })
        }),
        ("end-of-streams on an ended call", |_, ended| Frame::EndOfStream { call_id: ended }),
    ];
    for (what, frame) in floods {
        let mut pair = Pair::new();
        let ended = pair.unary_request(b"a");
        assert!(pair.server.conn.finish_call(ended));
        let open = open_stream(&mut pair);
        // 20,000 at one instant: twice the default burst.
        flood_server(&mut pair, &frame(open, ended), 20_000);
        assert_kicked_for_small_frames(&pair.server, what);
        pair.drive();
        assert!(
            goaway_reason(&pair.client).contains("small frames"),
            "{what}: {}",
            goaway_reason(&pair.client)
        );
    }
}

#[test]
fn a_client_flooded_with_statuses_for_an_ended_call_closes_the_connection() {
    let mut pair = Pair::new();
    let id = pair.unary_request(b"a");
    assert!(pair.client.conn.cancel_call(id));
    let status = Frame::Status {
        call_id: id,
        status: StatusFrame {
            code: Code::Cancelled,
            message: Bytes::new(),
            metadata: Metadata::new(),
        },
    };
    for _ in 0..20 {
        for _ in 0..1_000 {
            status.encode(&mut pair.client.inbox);
        }
        pair.client.receive(pair.now);
        if pair.client.error.is_some() {
            break;
        }
    }
    assert_kicked_for_small_frames(&pair.client, "statuses for an ended call");
}

#[test]
fn a_receiver_crediting_every_message_of_a_fast_stream_is_never_kicked() {
    let mut pair = Pair::new();
    let id = open_stream(&mut pair);
    pair.server.events();
    // The server streams 16-byte messages at 50,000 a second for 10 simulated seconds; the client
    // credits each one as it reads it, on the call and on the connection (100,000 credits a
    // second, ten times the budget's rate), plus a few stray frames a legitimate peer sends.
    let len = 16;
    for tick in 0..1_000 {
        for _ in 0..500 {
            assert_eq!(pair.server.conn.try_send_message(id, len), Ok(true), "the window never runs out");
            Frame::Credit {
                call_id: id,
                increment: len as u32,
            }
            .encode(&mut pair.server.inbox);
            Frame::Credit {
                call_id: CallId::CONNECTION,
                increment: len as u32,
            }
            .encode(&mut pair.server.inbox);
        }
        if tick % 100 == 0 {
            // A late pong, once a second.
            Frame::Pong { payload: 7 }.encode(&mut pair.server.inbox);
        }
        pair.server.receive(pair.now);
        pair.server.events();
        assert!(pair.server.error.is_none(), "kicked at tick {tick}: {:?}", pair.server.error);
        pair.advance(Duration::from_millis(10));
    }
    assert!(pair.server.conn.is_call_open(id));
    // Credits the server's messages did not earn are charged: the same client crediting every
    // byte twice over is stopped.
    let frame = Frame::Credit {
        call_id: CallId::CONNECTION,
        increment: 1,
    };
    flood_server(&mut pair, &frame, 20_000);
    assert_kicked_for_small_frames(&pair.server, "unearned credits");
}

/// PROTOCOL.md section 9, "Partial frame timeout": a frame left half sent ends the connection
/// once none of its bytes arrived for the timeout; one arriving slowly never does.
#[test]
fn a_frame_left_half_sent_closes_the_connection_after_the_partial_frame_timeout() {
    let timeout = volley::protocol::DEFAULT_PARTIAL_FRAME_TIMEOUT;
    let mut pair = Pair::new();
    let call_id = pair.client.conn.open_call(true).expect("call opens");
    let mut frame = BytesMut::new();
    request(call_id, b"half of this frame never comes").encode(&mut frame);
    let half = frame.len() / 2;

    // A slow frame: a few bytes every half timeout, so it never stalls for a whole timeout.
    let mut rest = frame.clone();
    for _ in 0..4 {
        let chunk = rest.split_to(4);
        pair.server.inbox.extend_from_slice(&chunk);
        pair.server.receive(pair.now);
        pair.advance(timeout / 2);
        assert!(pair.server.error.is_none(), "a frame still arriving is not timed out");
    }
    pair.server.inbox.extend_from_slice(&rest);
    pair.server.receive(pair.now);
    assert!(
        pair.server.conn.poll_timeout().is_none_or(|at| at > pair.now + timeout),
        "no partial frame left"
    );
    assert!(pair.server.events().iter().any(|e| matches!(e, Event::Request { .. })));

    // A stalled frame: half of it, then nothing.
    let call_id = pair.client.conn.open_call(true).expect("call opens");
    let mut frame = BytesMut::new();
    request(call_id, b"half of this frame never comes").encode(&mut frame);
    pair.server.inbox.extend_from_slice(&frame[..half]);
    pair.server.receive(pair.now);
    let deadline = pair.server.conn.poll_timeout().expect("the partial frame's deadline");
    assert_eq!(deadline, pair.now + timeout);
    pair.advance(timeout - Duration::from_millis(1));
    assert!(pair.server.error.is_none(), "not before the timeout");
    pair.advance(Duration::from_millis(1));
    let error = pair.server.error.as_ref().expect("closed at the timeout");
    assert_eq!(error.code, Code::Unavailable);
    assert_eq!(error.reason, ConnectionErrorReason::PartialFrameTimeout);
    assert!(
        goaway_reason(&pair.server).starts_with("partial frame timeout"),
        "{}",
        goaway_reason(&pair.server)
    );
}

#[test]
fn handle_read_reports_the_length_of_the_frame_it_leaves_incomplete() {
    let mut pair = Pair::new();
    let call_id = pair.client.conn.open_call(true).expect("call opens");
    let mut wire = BytesMut::new();
    request(call_id, &[7; 100_000]).encode(&mut wire);
    let frame_len = wire.len();
    let mut inbox = wire.split_to(40_000);
    let now = pair.now;
    let progress = pair.server.conn.handle_read(&mut inbox, now, usize::MAX).expect("valid bytes");
    assert_eq!((progress.frames, progress.incomplete_frame_len), (0, frame_len));
    assert_eq!(inbox.len(), 40_000, "nothing of the frame is taken before it is whole");
    inbox.extend_from_slice(&wire);
    let progress = pair.server.conn.handle_read(&mut inbox, now, usize::MAX).expect("valid bytes");
    assert_eq!((progress.frames, progress.incomplete_frame_len), (1, 0));
    assert!(matches!(&pair.server.events()[..], [Event::Request { message: Some(m), .. }] if m.len() == 100_000));
}
