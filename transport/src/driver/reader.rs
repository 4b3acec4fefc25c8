//! The reader task: reads into its buffers (`read_buffer.rs`), decodes frames, feeds them to the protocol and
//! hands the resulting events to calls and handlers. The per-read work (`handle_pass`,
//! `dispatch_accepted`, `dispatch_held`, `must_stop_reading`, `end_pass`) is shared with the busy-poll thread (`poller.rs`).

use std::collections::VecDeque;
use std::sync::Arc;
use std::task::Waker;
use std::time::Instant;

use bytes::BytesMut;

use super::Shared;
use super::calls::Outcome;
use super::connection::{AcceptedCall, State};
use super::lane::Lane;
use super::read_buffer::ReadBuffers;
use super::write_queue::Unlocked;
use crate::net::Stream;
use crate::protocol::{ConnectionError, Event, Role};
use crate::stats::Stats;
use crate::status::{Code, Status};
use crate::wire::{self, Metadata};

pub(crate) async fn run(shared: Arc<Shared>, stream: Arc<Stream>) {
    let mut buffers = ReadBuffers::new(shared.pool.clone()).frame_sized(stream.is_unix());
    let status = read_loop(&shared, &stream, &mut buffers).await;
    shared.terminate(status);
    buffers.release();
}

/// Runs until the connection ends; returns the status calls still open fail with.
async fn read_loop(shared: &Arc<Shared>, stream: &Stream, buffers: &mut ReadBuffers) -> Status {
    let mut scratch = Scratch::new();
    // One shutdown waiter and one timer for the connection's life, not one of each per read:
    // a later deadline only moves the timer (no timer-wheel lock), and nothing is registered
    // and dropped again on every pass.
    let shutdown = shared.shutdown.notified();
    tokio::pin!(shutdown);
    let timer = tokio::time::sleep_until(tokio::time::Instant::now());
    tokio::pin!(timer);
    let mut armed: Option<Instant> = None;
    // When the last read whose pass was skipped (see below) arrived, until a pass runs again.
    let mut skipped_read_at: Option<Instant> = None;
    loop {
        if let Err(status) = dispatch_held(shared, &mut scratch) {
            return status;
        }
        // A client that does not read our answers must not make a server buffer without bound:
        // at the cap the server holds back the calls it reads and stops reading once they reach
        // the read-ahead budget (see `must_stop_reading`).
        // The lane of the first call held back, if any: room there lets it go.
        let holding = scratch.accepted.front().map(AcceptedCall::lane);
        if must_stop_reading(shared, &scratch) {
            shared.wait_for_queue_room(holding.unwrap_or(Lane::Normal)).await;
        }
        let deadline = shared.lock_state().proto.poll_timeout();
        // Moved only when the deadline comes sooner than the timer: a later one (the idle or
        // keepalive deadline moves with every frame) lets the timer fire early, finds nothing
        // due, and arms it for the new instant then. Moving a timer takes the time driver's
        // lock, which every pass would otherwise pay.
        if let Some(at) = deadline
            && armed.is_none_or(|armed| at < armed)
        {
            timer.as_mut().reset(at.into());
            armed = Some(at);
        }
        buffers.make_room(scratch.incomplete_frame_len);
        let buf = buffers.current();
        let read = tokio::select! {
            biased;
            () = &mut shutdown => return closed_status(shared, "the connection was closed locally"),
            // Room opened under the cap: dispatch the calls held back (at the loop's top).
            () = shared.wait_for_queue_room(holding.unwrap_or(Lane::Normal)), if holding.is_some() => continue,
            ready = stream.readable() => ready.and_then(|()| stream.try_read_buf(buf)),
            () = &mut timer, if deadline.is_some() => {
                // Fired: arm it again on the next pass, even for the same instant.
                armed = None;
                if let Some(at) = skipped_read_at.take() {
                    // The protocol learns of the bytes read without a pass before it judges
                    // the frame in progress (the partial-frame timeout), as of when they came.
                    let result = handle_pass_at(shared, buf, &mut scratch, at);
                    if let Err(status) = end_pass(shared, result) {
                        return status;
                    }
                }
                let mut state = shared.lock_state();
                let result = state.proto.handle_timeout(Instant::now());
                shared.send_control(state);
                if let Err(err) = result {
                    return connection_status(&err);
                }
                // An idle timeout sends a GoAway; with no calls open the connection ends now.
                shared.close_if_drained();
                continue;
            }
        };
        match read {
            Ok(0) => return eof_status(shared, buf.is_empty()),
            Ok(n) => Stats::add(&shared.stats.bytes_in, n as u64),
            Err(err) if matches!(err.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted) => continue,
            Err(err) => {
                return Status::unavailable(format!("connection lost while reading: {err}; retry on a new connection"));
            }
        }
        if scratch.incomplete_frame_len > buf.len() {
            // A large frame still incomplete: the pass would only find it so and make room for
            // the rest. Make the room and read on, without the pass's state lock, cork and
            // wake-ups (a 1 MiB frame arrives in three or four reads on a Unix socket).
            wire::make_room_for(buf, scratch.incomplete_frame_len);
            skipped_read_at = Some(Instant::now());
            continue;
        }
        skipped_read_at = None;
        let result = handle_pass(shared, buf, &mut scratch);
        // At the cap the calls not dispatched stay held until room opens.
        dispatch_accepted(shared, &mut scratch);
        if let Err(status) = end_pass(shared, result) {
            return status;
        }
    }
}

/// The work of one read pass once bytes have arrived in `buf`, up to the dispatch of accepted
/// calls: with the write queue corked, the protocol handles every complete frame; then, with
/// no lock held, waiting calls are woken. Shared by the reader task and the busy-poll thread
/// (`poller.rs`), which then call [`dispatch_accepted`] and [`end_pass`].
pub(super) fn handle_pass(shared: &Arc<Shared>, buf: &mut BytesMut, scratch: &mut Scratch) -> Result<(), ConnectionError> {
    handle_pass_at(shared, buf, scratch, Instant::now())
}

/// [`handle_pass`] for bytes that arrived at `now`.
fn handle_pass_at(shared: &Arc<Shared>, buf: &mut BytesMut, scratch: &mut Scratch, now: Instant) -> Result<(), ConnectionError> {
    let (result, established_now, chunks_acked) = {
        let mut state = shared.lock_state();
        // Answers produced while handling this read leave together when the pass ends.
        shared.queue.cork();
        let was_established = state.proto.is_established();
        let result = handle_frames(shared, &mut state, buf, now, scratch);
        let chunks_acked = state.proto.take_chunk_acks();
        shared.queue_control(&mut state);
        (result, !was_established && state.proto.is_established(), chunks_acked)
    };
    // Wakes a writer waiting for its chunk window, with no lock held.
    shared.chunk_window.acked(chunks_acked);
    if established_now {
        shared.established.notify_waiters();
    }
    for waker in scratch.wakers.drain(..) {
        waker.wake();
    }
    shared.call_slots_freed(std::mem::take(&mut scratch.completed));
    result
}

/// Dispatches the pass's accepted calls (a server's), highest priority first, while the write
/// queue has room for each one's answer (checked before each call: an inline handler answers on
/// the reader and cannot wait for room): under the cap, or for a high-priority call, in the high
/// lane's own room. The rest stay *held* in `scratch` for [`dispatch_held`].
pub(super) fn dispatch_accepted(shared: &Arc<Shared>, scratch: &mut Scratch) {
    let Some(dispatch) = &shared.dispatch else {
        return;
    };
    // A no-op when all are equal; idempotent on a second try.
    super::priority::order_by_priority(&mut scratch.accepted);
    // Metrics time the answers given here (inline handlers) by one clock read at the end, when
    // they leave together, not one each.
    let answers = crate::observe::PassAnswers::begin(shared.recorder());
    while scratch.accepted.front().is_some_and(|call| shared.queue.has_room_in(call.lane())) {
        let Some(call) = scratch.accepted.pop_front() else {
            break;
        };
        scratch.held_bytes -= call.message.as_ref().map_or(0, |message| message.len());
        dispatch.dispatch(shared, call);
    }
    answers.end();
}

/// Dispatches the calls held back at the cap once the write queue has room for the first of
/// them again, as a pass of its own (corked, so their answers leave together).
pub(super) fn dispatch_held(shared: &Arc<Shared>, scratch: &mut Scratch) -> Result<(), Status> {
    if !scratch.accepted.front().is_some_and(|call| shared.queue.has_room_in(call.lane())) {
        return Ok(());
    }
    shared.queue.cork();
    dispatch_accepted(shared, scratch);
    end_pass(shared, Ok(()))
}

/// Whether a server's reader stops reading: its write queue is at the cap *and* the calls held
/// back meanwhile carry [`Shared::write_queue_cap`] bytes of request messages. It does not stop
/// at the cap alone, because the frames that let the writer drain may still be unread: the
/// ChunkAcks a chunk window waits for, behind requests in the same stream. So a client that reads
/// none of our answers makes a server hold at most the cap in answers (plus one message) and as
/// much again in requests (plus one message), in at most `max_concurrent_calls` held calls. A
/// client never stops reading (its callers already wait for room), or two full queues would wait
/// on each other.
pub(super) fn must_stop_reading(shared: &Shared, scratch: &Scratch) -> bool {
    shared.role == Role::Server && shared.queue.queued_bytes() >= shared.write_queue_cap && scratch.held_bytes >= shared.write_queue_cap
}

/// Ends a read pass: writes the pass's answers if nobody else is writing (no lock is held
/// here), closes a drained connection, and turns a protocol error into the status the
/// connection ends with.
pub(super) fn end_pass(shared: &Shared, result: Result<(), ConnectionError>) -> Result<(), Status> {
    if shared.queue.uncork(Unlocked::assert()) {
        shared.room_opened();
    }
    shared.close_if_drained();
    result.map_err(|err| connection_status(&err))
}

/// What one pass over the read buffer leaves to do once the state lock is released. Its vectors
/// keep their capacity from pass to pass.
pub(super) struct Scratch {
    wakers: Vec<Waker>,
    /// Calls accepted and not yet dispatched: a pass's, or those held back at the cap.
    accepted: VecDeque<AcceptedCall>,
    /// The request message bytes of `accepted`.
    held_bytes: usize,
    completed: usize,
    /// What the last pass left at the front of the read buffer: the length of an incomplete
    /// frame (`ReadProgress::incomplete_frame_len`), or 0.
    pub(super) incomplete_frame_len: usize,
}

impl Scratch {
    /// Empty until the first pass needs them (an idle connection holds none), then they keep
    /// their capacity.
    pub(super) fn new() -> Self {
        Self {
            wakers: Vec::new(),
            accepted: VecDeque::new(),
            held_bytes: 0,
            completed: 0,
            incomplete_frame_len: 0,
        }
    }
}

/// Frames the protocol handles before their events are handed over (64), so a large read does
/// not queue all its events first.
const FRAMES_PER_HANDOFF: usize = 64;

/// Has the protocol handle every complete frame in `buf` (the preface first), handing the events
/// over as it goes.
fn handle_frames(
    shared: &Arc<Shared>,
    state: &mut State,
    buf: &mut BytesMut,
    now: Instant,
    scratch: &mut Scratch,
) -> Result<(), ConnectionError> {
    let mut frames = 0;
    scratch.incomplete_frame_len = 0;
    let result = loop {
        match state.proto.handle_read(buf, now, FRAMES_PER_HANDOFF) {
            Ok(progress) => {
                frames += progress.frames as u64;
                if progress.kept_peak > 0 {
                    shared.stats.stream_buffered(progress.kept_peak);
                }
                if !progress.more {
                    scratch.incomplete_frame_len = progress.incomplete_frame_len;
                    break Ok(());
                }
                dispatch_events(shared, state, now, scratch);
            }
            Err(err) => break Err(err),
        }
    };
    Stats::add(&shared.stats.frames_in, frames);
    dispatch_events(shared, state, now, scratch);
    result
}

/// Hands client outcomes to waiting calls and collects accepted server calls.
fn dispatch_events(shared: &Shared, state: &mut State, now: Instant, scratch: &mut Scratch) {
    let Scratch {
        wakers,
        accepted,
        held_bytes,
        completed,
        ..
    } = scratch;
    while let Some(event) = state.proto.poll_event() {
        match event {
            Event::Request {
                call_id,
                head,
                message,
                end_stream,
            } => {
                if !end_stream {
                    // Request messages may arrive before the handler runs: give them a mailbox.
                    state.calls().open_request_stream(call_id);
                }
                *held_bytes += message.as_ref().map_or(0, |message| message.len());
                accepted.push_back(AcceptedCall {
                    call_id,
                    head,
                    message,
                    received_at: now,
                });
            }
            Event::Response {
                call_id,
                metadata,
                message,
                end_stream,
            } if state.calls().is_stream(call_id) => {
                state.calls().head(call_id, metadata, wakers);
                if let Some(message) = message {
                    let _ = state.calls().push(call_id, message, false, wakers);
                }
                if end_stream {
                    state.calls().finish(call_id, Status::new(Code::Ok, ""), wakers);
                    *completed += 1;
                }
            }
            Event::Response {
                call_id,
                metadata,
                message,
                end_stream: true,
            } => {
                let outcome = Outcome::Response {
                    message: message.unwrap_or_default(),
                    metadata,
                    trailers: Metadata::new(),
                    received_at: now,
                };
                wakers.extend(state.calls().complete(call_id, outcome));
                *completed += 1;
            }
            Event::Response {
                call_id,
                metadata,
                message,
                end_stream: false,
            } => state.calls().hold_response(call_id, message.unwrap_or_default(), metadata),
            Event::Message {
                call_id,
                message,
                end_stream,
            } => {
                let len = message.len();
                match state.calls().push(call_id, message, end_stream, wakers) {
                    Some(buffered) => shared.stats.stream_buffered(buffered),
                    // Nobody reads this call's messages: credit them back at once.
                    None => state.proto.release_received(call_id, len),
                }
            }
            Event::Arrived { call_id } => state.calls().arrived(call_id, wakers),
            Event::EndOfStream { call_id } => state.calls().end(call_id, wakers),
            Event::Finished { call_id, status } => {
                *completed += 1;
                if state.calls().is_stream(call_id) {
                    state.calls().finish(call_id, status, wakers);
                } else {
                    let refused = state.proto.is_refused_by_goaway(call_id);
                    wakers.extend(state.calls().finish_unary(call_id, status, refused, now));
                }
            }
            Event::Cancelled { call_id } => {
                let removed = state.calls().take_call(call_id, wakers);
                state.proto.release_received(call_id, removed.buffered);
                if let Some(handler) = removed.handler {
                    handler.abort();
                    shared.stats.call_finished(Code::Cancelled);
                }
            }
            Event::Credit { call_id } => state.calls().credit(call_id, wakers),
            Event::GoAway { .. } | Event::PongReceived => {}
        }
    }
}

pub(super) fn connection_status(err: &ConnectionError) -> Status {
    let code = if err.code == Code::Ok { Code::Unavailable } else { err.code };
    let code = if matches!(code, Code::Internal | Code::ResourceExhausted | Code::FailedPrecondition) {
        code
    } else {
        Code::Unavailable
    };
    Status::new(code, err.to_string())
}

pub(super) fn eof_status(shared: &Shared, clean: bool) -> Status {
    if let Some(status) = shared.closed_status() {
        return status;
    }
    let draining = shared.lock_state().proto.is_draining();
    match (draining, clean) {
        (true, true) => Status::unavailable("the peer closed the connection after a graceful goaway; retry on a new connection"),
        (_, true) => Status::unavailable("the peer closed the connection; retry on a new connection"),
        (_, false) => Status::unavailable("the peer closed the connection in the middle of a frame; retry on a new connection"),
    }
}

pub(super) fn closed_status(shared: &Shared, fallback: &str) -> Status {
    shared.closed_status().unwrap_or_else(|| Status::unavailable(fallback))
}
