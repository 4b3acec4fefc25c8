//! The reader task: reads into a pooled buffer, decodes frames, feeds them to the protocol and
//! hands the resulting events to calls and handlers.

use std::sync::Arc;
use std::task::Waker;
use std::time::Instant;

use bytes::BytesMut;

use super::Shared;
use super::connection::{AcceptedCall, State};
use super::inflight::Outcome;
use super::read_buffer::ReadBuffers;
use crate::net::Stream;
use crate::protocol::{ConnectionError, Event, Role};
use crate::stats::Stats;
use crate::status::{Code, Status};
use crate::wire::{PREFACE_LEN, decode_frame};

pub(crate) async fn run(shared: Arc<Shared>, stream: Arc<Stream>) {
    let mut buffers = ReadBuffers::new(shared.pool.clone());
    let status = read_loop(&shared, &stream, &mut buffers).await;
    shared.terminate(status);
    buffers.release();
}

/// Runs until the connection ends; returns the status calls still open fail with.
async fn read_loop(shared: &Arc<Shared>, stream: &Stream, buffers: &mut ReadBuffers) -> Status {
    let mut preface_seen = false;
    let mut scratch = Scratch {
        wakers: Vec::with_capacity(64),
        accepted: Vec::with_capacity(64),
        completed: 0,
    };
    let max_frame_size = shared.lock_state().proto.local_settings().max_frame_size;
    // One shutdown waiter and one timer for the connection's life, not one of each per read:
    // a later deadline only moves the timer (no timer-wheel lock), and nothing is registered
    // and dropped again on every pass.
    let shutdown = shared.shutdown.notified();
    tokio::pin!(shutdown);
    let timer = tokio::time::sleep_until(tokio::time::Instant::now());
    tokio::pin!(timer);
    let mut armed: Option<Instant> = None;
    loop {
        // A client that does not read our answers must not make a server buffer without bound:
        // the server stops reading from it until the writer has drained. A client never stops
        // reading (its callers already wait for room), or two full queues would wait on each other.
        if shared.role == Role::Server && shared.queue.queued_bytes() >= shared.write_queue_cap {
            shared.wait_for_queue_room().await;
        }
        let deadline = shared.lock_state().proto.poll_timeout();
        if let Some(at) = deadline
            && armed != Some(at)
        {
            timer.as_mut().reset(at.into());
            armed = Some(at);
        }
        buffers.make_room();
        let buf = buffers.current();
        let read = tokio::select! {
            biased;
            () = &mut shutdown => return closed_status(shared, "the connection was closed locally"),
            ready = stream.readable() => ready.and_then(|()| stream.try_read_buf(buf)),
            () = &mut timer, if deadline.is_some() => {
                // Fired: arm it again on the next pass, even for the same instant.
                armed = None;
                let mut state = shared.lock_state();
                let result = state.proto.handle_timeout(Instant::now());
                shared.flush_control(&mut state);
                drop(state);
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
        let now = Instant::now();
        let mut state = shared.lock_state();
        if !preface_seen {
            let Some(raw) = buf.first_chunk::<PREFACE_LEN>().copied() else {
                continue;
            };
            let _ = buf.split_to(PREFACE_LEN);
            preface_seen = true;
            if let Err(err) = state.proto.handle_preface(&raw) {
                shared.flush_control(&mut state);
                return connection_status(&err);
            }
        }
        // Answers produced while handling this read leave together when the pass ends.
        shared.queue.cork();
        let was_established = state.proto.is_established();
        let result = handle_frames(shared, &mut state, buf, max_frame_size, now, &mut scratch);
        shared.flush_control(&mut state);
        let established_now = !was_established && state.proto.is_established();
        drop(state);
        if established_now {
            shared.established.notify_waiters();
        }
        for waker in scratch.wakers.drain(..) {
            waker.wake();
        }
        for _ in 0..std::mem::take(&mut scratch.completed) {
            shared.capacity.notify_one();
        }
        if let Some(dispatch) = &shared.dispatch {
            for call in scratch.accepted.drain(..) {
                dispatch.dispatch(shared, call);
            }
        }
        shared.queue.uncork();
        shared.close_if_drained();
        if let Err(err) = result {
            return connection_status(&err);
        }
    }
}

/// What one pass over the read buffer leaves to do once the state lock is released. Its vectors
/// keep their capacity from pass to pass.
struct Scratch {
    wakers: Vec<Waker>,
    accepted: Vec<AcceptedCall>,
    completed: usize,
}

/// Decodes and handles every complete frame in `buf`, then dispatches the events.
fn handle_frames(
    shared: &Arc<Shared>,
    state: &mut State,
    buf: &mut BytesMut,
    max_frame_size: u32,
    now: Instant,
    scratch: &mut Scratch,
) -> Result<(), ConnectionError> {
    let mut frames = 0u64;
    let result = loop {
        match decode_frame(buf, max_frame_size) {
            Ok(Some(frame)) => {
                frames += 1;
                if let Err(err) = state.proto.handle_frame(frame, now) {
                    break Err(err);
                }
            }
            Ok(None) => break Ok(()),
            Err(err) => break Err(state.proto.handle_wire_error(err)),
        }
        // Hand events over as we go so a large batch does not queue all its events first.
        if frames.is_multiple_of(64) {
            dispatch_events(shared, state, now, scratch);
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
        completed,
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
                    state.streams.open(call_id);
                }
                accepted.push(AcceptedCall {
                    call_id,
                    head,
                    message,
                    received_at: now,
                });
            }
            Event::Response {
                call_id,
                message,
                end_stream,
                ..
            } if state.streams.contains(call_id) => {
                if let Some(message) = message {
                    let _ = state.streams.push(call_id, message, false, wakers);
                }
                if end_stream {
                    state.streams.finish(call_id, Status::new(Code::Ok, ""), wakers);
                    *completed += 1;
                }
            }
            Event::Response { call_id, message, .. } => {
                let outcome = Outcome::Response {
                    message: message.unwrap_or_default(),
                };
                wakers.extend(state.inflight.complete(call_id, outcome));
                *completed += 1;
            }
            Event::Message {
                call_id,
                message,
                end_stream,
            } => {
                let len = message.len();
                match state.streams.push(call_id, message, end_stream, wakers) {
                    Some(buffered) => shared.stats.stream_buffered(buffered),
                    // Nobody reads this call's messages: credit them back at once.
                    None => state.proto.release_received(call_id, len),
                }
            }
            Event::EndOfStream { call_id } => state.streams.end(call_id, wakers),
            Event::Finished { call_id, status } => {
                *completed += 1;
                if state.streams.contains(call_id) {
                    state.streams.finish(call_id, status, wakers);
                } else {
                    let status = if status.code() == Code::Ok {
                        Status::internal("the server ended a unary call without a response message")
                    } else {
                        status
                    };
                    let outcome = if state.proto.is_refused_by_goaway(call_id) {
                        Outcome::Refused(status)
                    } else {
                        Outcome::Failed(status)
                    };
                    wakers.extend(state.inflight.complete(call_id, outcome));
                }
            }
            Event::Cancelled { call_id } => {
                let buffered = state.streams.remove(call_id, wakers);
                state.proto.release_received(call_id, buffered);
                if let Some(handler) = state.handlers.remove(&call_id) {
                    handler.abort();
                    shared.stats.call_finished(Code::Cancelled);
                }
            }
            Event::Credit { call_id } => state.streams.credit(call_id, wakers),
            Event::GoAway { .. } | Event::PongReceived => {}
        }
    }
}

fn connection_status(err: &ConnectionError) -> Status {
    let code = if err.code == Code::Ok { Code::Unavailable } else { err.code };
    let code = if matches!(code, Code::Internal | Code::ResourceExhausted | Code::FailedPrecondition) {
        code
    } else {
        Code::Unavailable
    };
    Status::new(code, err.to_string())
}

fn eof_status(shared: &Shared, clean: bool) -> Status {
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

fn closed_status(shared: &Shared, fallback: &str) -> Status {
    shared.closed_status().unwrap_or_else(|| Status::unavailable(fallback))
}
