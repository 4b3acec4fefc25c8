//! The sans-IO connection state machine: state and the frames both roles handle here; what only
//! a server receives (Request, Cancel) in `server_frames.rs`, what only a client receives
//! (Response, Status) in `client_frames.rs`; bytes in (preface and decode loop) in `read.rs`,
//! local commands in `commands.rs`, output in `output.rs`, the clock in `timers.rs`.

mod client_frames;
mod commands;
mod output;
mod read;
mod send;
mod server_frames;
mod timers;

use std::collections::VecDeque;
use std::time::Instant;

use bytes::Bytes;

pub use self::read::ReadProgress;
pub(crate) use self::send::{Answer, encode_reserved_message, frame_too_large};
use super::budget::Bucket;
use super::calls::{CallRecord, CallState, CallTable, Kept};
use super::flow::ConnectionWindows;
use super::{
    ConnectionConfig, ConnectionError, ConnectionErrorReason as Reason, Event, FREE_CREDITS_PER_MESSAGE, MAX_FLOW_VIOLATIONS,
    SMALL_FRAME_PAYLOAD,
};
use crate::status::Status;
use crate::wire::{CallId, Code, Frame, GoAway, PREFACE_LEN, Preface, Settings, StatusFrame, WireError};

/// Which end of the connection this is. Clients open calls; servers answer them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Opens calls.
    Client,
    /// Answers calls.
    Server,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    AwaitingPreface,
    AwaitingSettings,
    Open,
    Closed,
}

/// Control frames waiting to be written. Each kind holds at most one pending frame, except call
/// frames, which are bounded by the open calls and the error budget.
#[derive(Debug, Default)]
struct Control {
    preface_and_settings: bool,
    pong: Option<u64>,
    ping: Option<u64>,
    goaway: Option<GoAway>,
    call_frames: VecDeque<Frame>,
}

/// A frame partly received: when its timeout is checked next (moved on only when that check
/// finds bytes arrived since, so the driver's timer is not re-armed on every read), and when its
/// bytes last arrived.
#[derive(Clone, Copy, Debug)]
struct PartialFrame {
    check_from: Instant,
    progress_at: Instant,
}

/// One side of a Volley connection, without IO.
///
/// It takes the peer's preface and frames ([`Connection::handle_preface`],
/// [`Connection::handle_frame`]), local commands ([`Connection::open_call`],
/// [`Connection::cancel_call`], [`Connection::finish_call`], [`Connection::go_away`]) and the
/// current time, and yields frames to send ([`Connection::poll_transmit`]), events for the
/// application ([`Connection::poll_event`]) and the next instant it must be woken at
/// ([`Connection::poll_timeout`]). It never reads a clock, touches a socket or spawns.
///
/// Call frames carrying messages are encoded by the driver straight into its write buffer, after
/// the state machine has approved the command; control frames come from `poll_transmit`.
///
/// Each call has one slot in the connection's call table, holding the protocol's state and a
/// record `X` of the driver's own ([`CallRecord`]: a unary call's outcome, a stream's mailbox, a
/// handler), so a frame costs one lookup however many layers care about its call. A connection
/// on its own ([`Connection::new`]) keeps no records.
#[derive(Debug)]
pub struct Connection<X = ()> {
    role: Role,
    config: ConnectionConfig,
    phase: Phase,
    peer_settings: Settings,
    calls: CallTable<X>,
    /// (client) The id the next call gets.
    next_call_id: u64,
    /// (server) The highest call id the peer opened.
    highest_peer_call: CallId,
    goaway_sent: Option<CallId>,
    goaway_received: Option<CallId>,
    control: Control,
    events: VecDeque<Event>,
    started_at: Instant,
    last_received_at: Instant,
    /// A frame is partly received: the instant its timeout is checked at next, and when its last
    /// bytes arrived ([`super::DEFAULT_PARTIAL_FRAME_TIMEOUT`]).
    partial_frame: Option<PartialFrame>,
    /// When a frame other than a ping or pong last arrived, for the idle timeout.
    last_active_at: Instant,
    ping_outstanding: Option<(u64, Instant)>,
    next_ping_payload: u64,
    last_peer_ping_at: Option<Instant>,
    ping_strikes: u32,
    cancels: Bucket,
    errors: Bucket,
    /// Charged for cheap frames (see [`super::DEFAULT_SMALL_FRAME_BUDGET`]).
    small_frames: Bucket,
    /// Credit frames the peer may still send free of `small_frames`: [`FREE_CREDITS_PER_MESSAGE`]
    /// for each stream message we sent.
    earned_credits: u64,
    windows: ConnectionWindows,
    flow_violations: u32,
    /// The most bytes a record held after keeping a message, since the last `handle_read`
    /// returned it ([`ReadProgress::kept_peak`]).
    kept_peak: usize,
    scratch: Vec<CallId>,
    /// The chunked frame being received (docs/PROTOCOL.md section 5.12).
    chunks: crate::protocol::Reassembly,
}

impl Connection {
    /// A connection that has sent nothing yet; its preface and settings are the first thing
    /// [`Connection::poll_transmit`] writes.
    pub fn new(role: Role, config: ConnectionConfig, now: Instant) -> Self {
        Self::with_records(role, config, now)
    }
}

impl<X: CallRecord> Connection<X> {
    /// A connection like [`Connection::new`] whose call table keeps a driver record `X` beside
    /// each call's protocol state (see [`CallRecord`]).
    pub fn with_records(role: Role, config: ConnectionConfig, now: Instant) -> Self {
        // The table starts empty and grows to the connection's real concurrency once, then keeps
        // its memory (up to a peak, `calls::SHRINK_ABOVE`): idle connections stay cheap and the
        // steady state still allocates nothing.
        Self {
            role,
            phase: Phase::AwaitingPreface,
            peer_settings: Settings::default(),
            calls: CallTable::new(),
            next_call_id: 1,
            highest_peer_call: CallId::CONNECTION,
            goaway_sent: None,
            goaway_received: None,
            control: Control {
                preface_and_settings: true,
                ..Control::default()
            },
            // Empty until the first frame that yields an event (an event is ~112 bytes).
            events: VecDeque::new(),
            started_at: now,
            last_received_at: now,
            partial_frame: None,
            last_active_at: now,
            ping_outstanding: None,
            next_ping_payload: 1,
            last_peer_ping_at: None,
            ping_strikes: 0,
            cancels: Bucket::new(config.cancel_budget),
            windows: ConnectionWindows::new(&config.settings, &Settings::default()),
            flow_violations: 0,
            kept_peak: 0,
            errors: Bucket::new(config.error_budget),
            small_frames: Bucket::new(config.small_frame_budget),
            earned_credits: 0,
            scratch: Vec::new(),
            chunks: crate::protocol::Reassembly::default(),
            config,
        }
    }

    /// This side's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The settings we announce.
    pub fn local_settings(&self) -> &Settings {
        &self.config.settings
    }

    /// The peer's settings (the defaults until its settings frame arrives).
    pub fn peer_settings(&self) -> &Settings {
        &self.peer_settings
    }

    /// Whether the handshake is complete (the peer's settings arrived).
    pub fn is_established(&self) -> bool {
        self.phase == Phase::Open
    }

    /// Whether the connection has failed or been closed; nothing more will be accepted.
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// Calls currently open.
    pub fn open_calls(&self) -> usize {
        self.calls.open_calls()
    }

    /// Ids of the calls currently open, in no particular order.
    pub fn open_call_ids(&self) -> impl Iterator<Item = CallId> + '_ {
        self.calls.ids()
    }

    /// Whether `call_id` is open (neither finished nor cancelled).
    pub fn is_call_open(&mut self, call_id: CallId) -> bool {
        self.calls.state_mut(call_id).is_some()
    }

    /// The call table, for the driver's records (see [`CallRecord`]).
    pub(crate) fn calls(&mut self) -> &mut CallTable<X> {
        &mut self.calls
    }

    /// Whether a GoAway was sent or received, so no new calls start here.
    pub fn is_draining(&self) -> bool {
        self.goaway_sent.is_some() || self.goaway_received.is_some()
    }

    /// (client) Whether the peer's GoAway refused `call_id`: a server never starts a call above
    /// the last call id of its GoAway, so such a call is safe to send again on a new connection.
    pub fn is_refused_by_goaway(&self, call_id: CallId) -> bool {
        self.role == Role::Client && self.goaway_received.is_some_and(|last| call_id > last)
    }

    /// Takes the peer's 8-byte preface.
    pub fn handle_preface(&mut self, raw: &[u8; PREFACE_LEN]) -> Result<(), ConnectionError> {
        let result = Preface::decode(raw).and_then(|preface| preface.check_version()).map_err(|err| {
            let code = if matches!(err, WireError::UnsupportedVersion(_)) {
                Code::FailedPrecondition
            } else {
                Code::Internal
            };
            ConnectionError {
                code,
                reason: Reason::Wire(err),
            }
        });
        match result {
            Ok(()) if self.phase == Phase::AwaitingPreface => {
                self.phase = Phase::AwaitingSettings;
                Ok(())
            }
            Ok(()) => self.fail(ConnectionError::protocol(Reason::BadHandshake)),
            Err(err) => self.fail(err),
        }
    }

    /// Takes a decoding error from the driver: the connection fails with a GoAway naming it.
    pub fn handle_wire_error(&mut self, err: WireError) -> ConnectionError {
        match self.fail(err.into()) {
            Err(err) => err,
            Ok(()) => unreachable!("fail always returns Err"),
        }
    }

    /// Takes one frame from the peer.
    pub fn handle_frame(&mut self, frame: Frame, now: Instant) -> Result<(), ConnectionError> {
        if self.phase == Phase::Closed {
            return Ok(());
        }
        self.last_received_at = now;
        if !matches!(frame, Frame::Ping { .. } | Frame::Pong { .. }) {
            self.last_active_at = now;
        }
        match self.dispatch(frame, now) {
            Ok(()) => Ok(()),
            Err(err) => self.fail(err),
        }
    }

    /// [`Connection::handle_frame`] for a Message frame received while the connection is open,
    /// given as its parts (the read loop's path for stream messages).
    #[inline]
    fn handle_message_frame(&mut self, call_id: CallId, message: Bytes, end_stream: bool, now: Instant) -> Result<(), ConnectionError> {
        self.last_received_at = now;
        self.last_active_at = now;
        match self.on_message(call_id, message, end_stream, now) {
            Ok(()) => Ok(()),
            Err(err) => self.fail(err),
        }
    }

    fn dispatch(&mut self, frame: Frame, now: Instant) -> Result<(), ConnectionError> {
        match (self.phase, frame) {
            (Phase::AwaitingSettings, Frame::Settings(settings)) => {
                let old = std::mem::replace(&mut self.peer_settings, settings);
                self.windows.on_peer_settings(&old, &settings, self.calls.states_mut());
                self.phase = Phase::Open;
                Ok(())
            }
            (Phase::AwaitingPreface | Phase::AwaitingSettings, _) | (_, Frame::Settings(_)) => {
                Err(ConnectionError::protocol(Reason::BadHandshake))
            }
            (_, Frame::Ping { payload }) => self.on_ping(payload, now),
            (_, Frame::Pong { payload }) => {
                if self.ping_outstanding.is_some_and(|(sent, _)| sent == payload) {
                    self.ping_outstanding = None;
                    self.events.push_back(Event::PongReceived);
                    Ok(())
                } else {
                    // A pong that answers no ping of ours is free for the peer to repeat.
                    self.charge_cheap_frame(now)
                }
            }
            (_, Frame::GoAway(goaway)) => {
                // A peer sends one or two in a connection's life; repeating them costs it nothing.
                self.charge_cheap_frame(now)?;
                self.on_goaway(goaway)
            }
            (_, Frame::Credit { call_id, increment }) => self.on_credit(call_id, increment, now),
            (
                _,
                Frame::Message {
                    call_id,
                    message,
                    end_stream,
                },
            ) => self.on_message(call_id, message, end_stream, now),
            (_, Frame::EndOfStream { call_id }) => {
                if !self.is_call_open(call_id) {
                    // Legitimate only in a race with the call's end: once per call.
                    self.charge_cheap_frame(now)?;
                }
                if self.accept_inbound(call_id, true, now)? {
                    self.events.push_back(Event::EndOfStream { call_id });
                }
                Ok(())
            }
            (_, frame) => match self.role {
                Role::Server => self.on_server_frame(frame, now),
                Role::Client => self.on_client_frame(frame, now),
            },
        }
    }

    fn on_ping(&mut self, payload: u64, now: Instant) -> Result<(), ConnectionError> {
        let min = std::time::Duration::from_millis(u64::from(self.config.settings.min_ping_interval_ms));
        let too_soon = self.last_peer_ping_at.is_some_and(|last| now.saturating_duration_since(last) < min);
        self.last_peer_ping_at = Some(now);
        if too_soon {
            self.ping_strikes += 1;
            if self.ping_strikes >= self.config.max_ping_strikes {
                return Err(ConnectionError::calm(Reason::TooManyPings));
            }
        } else {
            self.ping_strikes = 0;
        }
        // At most one pong pending: a newer ping replaces an unanswered one.
        self.control.pong = Some(payload);
        Ok(())
    }

    fn on_goaway(&mut self, goaway: GoAway) -> Result<(), ConnectionError> {
        let last = goaway.last_call_id;
        self.goaway_received = Some(self.goaway_received.map_or(last, |prev| prev.min(last)));
        if self.role == Role::Client {
            let mut refused = std::mem::take(&mut self.scratch);
            self.calls.drain_above(last, &mut refused);
            for call_id in refused.drain(..) {
                let status = Status::unavailable("the server is going away and did not start this call; retry on a new connection");
                self.events.push_back(Event::Finished { call_id, status });
            }
            self.scratch = refused;
        }
        self.events.push_back(Event::GoAway { last_call_id: last });
        if goaway.code != Code::Ok {
            return Err(ConnectionError {
                code: Code::Unavailable,
                reason: Reason::PeerGoAway(goaway.reason_str().to_owned()),
            });
        }
        Ok(())
    }

    /// A frame for `call_id` that is not open: fine if the call existed (a race with its end),
    /// a protocol error if it never did.
    fn check_known(&self, call_id: CallId) -> Result<(), ConnectionError> {
        let highest = match self.role {
            Role::Server => self.highest_peer_call,
            Role::Client => CallId(self.next_call_id - 1),
        };
        if call_id > highest {
            Err(ConnectionError::protocol(Reason::UnknownCall(call_id.0)))
        } else {
            Ok(())
        }
    }

    /// Checks that the peer may still send on `call_id`; `Ok(false)` means drop the frame.
    fn accept_inbound(&mut self, call_id: CallId, end_stream: bool, now: Instant) -> Result<bool, ConnectionError> {
        let Some(state) = self.calls.state_mut(call_id) else {
            self.check_known(call_id)?;
            return Ok(false);
        };
        if !state.remote_open || !state.head_received {
            // The peer broke the call's sequence: end the call, keep the connection.
            let message = match self.role {
                Role::Server => "protocol error: frame after the end of the request stream",
                Role::Client => "protocol error: the server sent a frame out of sequence on this call",
            };
            self.reset_call(call_id, Code::Internal, message, now)?;
            return Ok(false);
        }
        if end_stream {
            state.remote_open = false;
        }
        Ok(true)
    }

    /// Ends a call the peer broke, keeping the connection: the server answers with a Status and
    /// drops the handler; the client fails the call and cancels it. Charged to the error budget.
    fn reset_call(&mut self, call_id: CallId, code: Code, message: &'static str, now: Instant) -> Result<(), ConnectionError> {
        self.calls.close(call_id);
        match self.role {
            Role::Server => {
                self.events.push_back(Event::Cancelled { call_id });
                self.queue_status(call_id, code, message, now)
            }
            Role::Client => {
                self.events.push_back(Event::Finished {
                    call_id,
                    status: Status::new(code, message),
                });
                self.queue_call_frame(Frame::Cancel { call_id }, now)
            }
        }
    }

    /// Inline into the frame loop (a stream's every message comes here), its rare outcomes out
    /// of line.
    #[inline(always)]
    fn on_message(&mut self, call_id: CallId, message: Bytes, end_stream: bool, now: Instant) -> Result<(), ConnectionError> {
        // Charged before anything else, so frames for ended calls count too.
        if message.len() < SMALL_FRAME_PAYLOAD {
            self.charge_cheap_frame(now)?;
        }
        // One lookup for the protocol's state and the driver's record (what `accept_inbound`
        // checks, then the window, then the record).
        let Some((state, record)) = self.calls.open_call_mut(call_id) else {
            return self.check_known(call_id);
        };
        if !state.remote_open || !state.head_received {
            return self.message_out_of_sequence(call_id, end_stream, now);
        }
        if end_stream {
            state.remote_open = false;
        }
        if !self.windows.on_receive(state, message.len()) {
            return self.message_over_window(call_id, now);
        }
        match record.keep_message(message, end_stream) {
            Kept::Kept { wake, held } => {
                self.kept_peak = self.kept_peak.max(held);
                if wake {
                    self.events.push_back(Event::Arrived { call_id });
                }
            }
            Kept::Declined(message) => self.events.push_back(Event::Message {
                call_id,
                message,
                end_stream,
            }),
        }
        Ok(())
    }

    /// A message on a call the peer had ended or whose head has not come: the call is reset.
    #[cold]
    #[inline(never)]
    fn message_out_of_sequence(&mut self, call_id: CallId, end_stream: bool, now: Instant) -> Result<(), ConnectionError> {
        self.accept_inbound(call_id, end_stream, now).map(drop)
    }

    /// A message with no window left: the call is reset, the connection after too many.
    #[cold]
    #[inline(never)]
    fn message_over_window(&mut self, call_id: CallId, now: Instant) -> Result<(), ConnectionError> {
        self.flow_violations += 1;
        if self.flow_violations > MAX_FLOW_VIOLATIONS {
            return Err(ConnectionError::calm(Reason::FlowControl));
        }
        let text = "flow-control violation: a message arrived with no window left; wait for credit before sending";
        self.reset_call(call_id, Code::ResourceExhausted, text, now)
    }

    fn on_credit(&mut self, call_id: CallId, increment: u32, now: Instant) -> Result<(), ConnectionError> {
        // Charged before anything else, so credits for ended calls count too.
        if self.earned_credits > 0 {
            self.earned_credits -= 1;
        } else {
            self.charge_cheap_frame(now)?;
        }
        let result = if call_id == CallId::CONNECTION {
            self.windows.credit_connection(increment)
        } else if let Some(state) = self.calls.state_mut(call_id) {
            super::flow::credit_call(state, increment)
        } else {
            return self.check_known(call_id);
        };
        result.map_err(|_| ConnectionError::protocol(Reason::FlowControl))?;
        self.events.push_back(Event::Credit { call_id });
        Ok(())
    }

    /// Spends a token of the small-frame budget on a cheap frame the peer sent; when it is empty,
    /// the connection fails with GoAway RESOURCE_EXHAUSTED.
    fn charge_cheap_frame(&mut self, now: Instant) -> Result<(), ConnectionError> {
        if self.small_frames.try_spend(now) {
            Ok(())
        } else {
            Err(ConnectionError::calm(Reason::TooManySmallFrames))
        }
    }

    fn queue_status(&mut self, call_id: CallId, code: Code, message: &'static str, now: Instant) -> Result<(), ConnectionError> {
        let status = StatusFrame {
            code,
            message: Bytes::from_static(message.as_bytes()),
            metadata: Default::default(),
        };
        self.queue_call_frame(Frame::Status { call_id, status }, now)
    }

    /// Queues a frame we generate in answer to the peer, charged to the error budget.
    fn queue_call_frame(&mut self, frame: Frame, now: Instant) -> Result<(), ConnectionError> {
        if !self.errors.try_spend(now) {
            return Err(ConnectionError::calm(Reason::TooManyErrors));
        }
        self.control.call_frames.push_back(frame);
        Ok(())
    }

    /// Ends the connection: queues a GoAway naming the error (unless one with an error was sent)
    /// and refuses everything after. Always returns `Err(err)`.
    fn fail(&mut self, err: ConnectionError) -> Result<(), ConnectionError> {
        if self.phase != Phase::Closed {
            self.phase = Phase::Closed;
            let reason = err.reason.to_string();
            // The reason must fit the GoAway's u16 length and the smallest frame a peer accepts.
            let limit = crate::wire::MAX_STATUS_MESSAGE_LEN.min(crate::wire::MIN_FRAME_SIZE as usize - 12);
            let reason = crate::wire::truncate_text(&reason, limit).to_owned();
            self.control.goaway = Some(GoAway {
                last_call_id: self.highest_peer_call,
                code: err.code,
                reason: Bytes::from(reason),
            });
            self.calls.clear();
        }
        Err(err)
    }
}
