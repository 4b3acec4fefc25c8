//! Local commands: what the application asks of the connection.

use bytes::Bytes;

use super::{CallState, Connection, Phase, Role};
use crate::protocol::CallRecord;
use crate::status::Status;
use crate::wire::{CallId, Code, Frame, GoAway};

impl<X: CallRecord> Connection<X> {
    /// (client) Opens a call and returns its id; the driver then writes the Request frame.
    /// Fails with UNAVAILABLE once the connection is closing and RESOURCE_EXHAUSTED at the peer's
    /// concurrency limit (callers normally wait for a slot before calling this).
    pub fn open_call(&mut self, end_stream: bool) -> Result<CallId, Status> {
        debug_assert_eq!(self.role, Role::Client);
        if self.phase == Phase::Closed || self.goaway_received.is_some() {
            return Err(Status::unavailable("the connection is closing; retry on a new connection"));
        }
        if self.calls.open_calls() >= self.peer_settings.max_concurrent_calls as usize {
            return Err(Status::resource_exhausted(
                "the server's max concurrent calls are in use; retry when a call finishes",
            ));
        }
        let call_id = CallId(self.next_call_id);
        self.next_call_id += 1;
        self.calls.open(call_id, {
            let (send_window, recv_window) = self.windows.call_windows(&self.peer_settings);
            CallState {
                local_open: !end_stream,
                remote_open: true,
                head_received: false,
                head_sent: false,
                send_window,
                recv_window,
                unacked: 0,
            }
        });
        Ok(call_id)
    }

    /// (client) Abandons a call that has not finished: a Cancel frame is queued. Returns whether
    /// the call was still open.
    pub fn cancel_call(&mut self, call_id: CallId) -> bool {
        if self.calls.close(call_id).is_none() || self.phase == Phase::Closed {
            return false;
        }
        self.control.call_frames.push_back(Frame::Cancel { call_id });
        true
    }

    /// Records that we half-close `call_id` (the driver writes the frame with END_STREAM).
    /// Returns whether the call was open for sending.
    pub fn close_local(&mut self, call_id: CallId) -> bool {
        let open = match self.calls.state_mut(call_id) {
            Some(state) if state.local_open => {
                state.local_open = false;
                true
            }
            _ => false,
        };
        if self.role == Role::Server {
            // A server's final frame ends the call whatever the client still sends.
            self.calls.close(call_id);
        } else {
            self.calls.retire_if_done(call_id);
        }
        open
    }

    /// (server) Records that the call ends now (the driver writes its final Response or Status).
    /// Returns `false` when the call is no longer open (cancelled, or the connection failed), in
    /// which case nothing must be written.
    pub fn finish_call(&mut self, call_id: CallId) -> bool {
        self.phase != Phase::Closed && self.calls.close(call_id).is_some()
    }

    /// (server) Whether the call's response head is still to be sent, marking it sent: the
    /// caller then writes the Response frame (without `END_STREAM`) before anything else on the
    /// call. `false` once the head went out, or when the call is not open for sending.
    pub fn take_response_head(&mut self, call_id: CallId) -> bool {
        if self.phase == Phase::Closed {
            return false;
        }
        match self.calls.state_mut(call_id) {
            Some(state) if state.local_open && !state.head_sent => {
                state.head_sent = true;
                true
            }
            _ => false,
        }
    }

    /// (server) Whether the call's response head went out (a streamed answer began). `false`
    /// for a call that is not open.
    #[inline]
    pub fn response_head_sent(&mut self, call_id: CallId) -> bool {
        self.calls.state_mut(call_id).is_some_and(|state| state.head_sent)
    }

    /// Asks to send a stream message of `len` bytes on `call_id`. `Ok(true)`: send it now (the
    /// windows are charged). `Ok(false)`: wait for an [`Event::Credit`]. `Err`: the call is not
    /// open for sending.
    pub fn try_send_message(&mut self, call_id: CallId, len: usize) -> Result<bool, Status> {
        if self.phase == Phase::Closed {
            return Err(Status::unavailable("the connection is closed"));
        }
        match self.calls.state_mut(call_id) {
            Some(state) if state.local_open => {
                let sent = self.windows.try_send(state, len);
                if sent {
                    // The peer may now credit this message back, on the call and the connection.
                    self.earned_credits = self.earned_credits.saturating_add(super::FREE_CREDITS_PER_MESSAGE);
                }
                Ok(sent)
            }
            Some(_) => Err(Status::failed_precondition("the stream was already closed for sending")),
            None => Err(Status::cancelled("the call has ended")),
        }
    }

    /// Reserves up to `want` bytes of send window on `call_id` (and the connection) for stream
    /// messages encoded later with [`encode_reserved_message`](super::encode_reserved_message)
    /// and queued with [`Connection::send_reserved`]; returns the bytes granted (0 when either
    /// window is empty or the call is not open for sending). Unused bytes go back with
    /// [`Connection::return_reserved`].
    pub(crate) fn reserve_send(&mut self, call_id: CallId, want: usize) -> usize {
        if self.phase == Phase::Closed {
            return 0;
        }
        match self.calls.state_mut(call_id) {
            Some(state) if state.local_open => self.windows.reserve(state, want),
            _ => 0,
        }
    }

    /// Gives back `bytes` of send window reserved on `call_id` and not sent.
    pub(crate) fn return_reserved(&mut self, call_id: CallId, bytes: usize) {
        if bytes > 0 {
            let call = self.calls.state_mut(call_id);
            self.windows.give_back(call, bytes);
        }
    }

    /// Records that the application consumed `len` bytes of messages received on `call_id`;
    /// credit frames go out once half a window is owed.
    pub fn release_received(&mut self, call_id: CallId, len: usize) {
        if self.phase == Phase::Closed {
            return;
        }
        let call = self.calls.state_mut(call_id);
        self.windows.release(call_id, call, len, &mut self.control.call_frames);
    }

    /// (server) Starts a graceful shutdown: a GoAway with code OK and the last accepted call id
    /// is queued; later calls are refused with UNAVAILABLE; open calls run to the end.
    pub fn go_away(&mut self, reason: &'static str) {
        if self.goaway_sent.is_none() && self.phase != Phase::Closed {
            self.goaway_sent = Some(self.highest_peer_call);
            let reason = Bytes::from_static(reason.as_bytes());
            self.control.goaway = Some(GoAway {
                last_call_id: self.highest_peer_call,
                code: Code::Ok,
                reason,
            });
        }
    }
}
