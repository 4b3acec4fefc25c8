//! Call frames we send. Each method checks a local command against the call's state (as the
//! public commands in `commands.rs` do) and, when the call may go on, encodes the frame into the
//! caller's batch with `wire`'s encoders, so the core writes every byte of every frame: the
//! driver and the API layers hand it messages, never frame layouts.

use crate::protocol::CallRecord;
use crate::status::Status;
use crate::wire::{Body, CallHead, CallId, Code, Flags, FrameBatch, FrameKind, Metadata, encode_message_frame, encode_status_frame};

use super::{Connection, Role};

/// The status a caller gets for a message the peer's max frame size cannot carry.
pub(crate) fn frame_too_large(len: usize, max: u32) -> Status {
    Status::resource_exhausted(format!(
        "message of {len} bytes is over the peer's max frame size of {max} bytes; send smaller messages or raise max_frame_size on the peer"
    ))
}

/// How a server ends a call.
#[derive(Debug)]
pub(crate) enum Answer<'a, M> {
    /// A response message with its head metadata; `trailers`, when not empty, follow in an OK
    /// Status (without them the Response carries `END_STREAM`).
    Response {
        metadata: &'a Metadata,
        body: Body<'a, M>,
        trailers: &'a Metadata,
    },
    /// A final status: an error, or OK ending a streamed response (with its trailers).
    Status {
        code: Code,
        message: &'a str,
        metadata: &'a Metadata,
    },
}

impl<X: CallRecord> Connection<X> {
    /// (client) Opens a call ([`Connection::open_call`]) and encodes its Request frame: `head`,
    /// then the first message if there is one, taken out of `body` only when the call opens (a
    /// caller waiting for a free call slot tries again with it). The caller has checked the frame
    /// against the peer's max frame size.
    pub(crate) fn send_request<M: prost::Message>(
        &mut self,
        batch: &mut FrameBatch,
        head: &CallHead,
        body: &mut Option<Body<'_, M>>,
        end_stream: bool,
    ) -> Result<CallId, Status> {
        let call_id = self.open_call(end_stream)?;
        let body = body.take();
        let flags = Flags::NONE
            .set_if(Flags::MESSAGE, body.is_some())
            .set_if(Flags::END_STREAM, end_stream);
        let encode_head = |buf: &mut bytes::BytesMut| head.encode(buf);
        let head_len = head.encoded_len();
        match body {
            Some(body) => encode_message_frame(batch, FrameKind::Request, flags, call_id, head_len, encode_head, body),
            None => encode_message_frame::<()>(batch, FrameKind::Request, flags, call_id, head_len, encode_head, Body::Empty),
        }
        Ok(call_id)
    }

    /// Sends a stream message on `call_id` if the windows allow ([`Connection::try_send_message`]):
    /// `Ok(true)` once it is taken out of `body` and encoded (on a server, after the response
    /// head if that has not gone out yet), `Ok(false)` to wait for credit with `body` left in
    /// place, `Err` when the call is not open for sending.
    pub(crate) fn send_message<M: prost::Message>(
        &mut self,
        batch: &mut FrameBatch,
        call_id: CallId,
        body: &mut Option<Body<'_, M>>,
    ) -> Result<bool, Status> {
        let len = body.as_ref().map_or(0, Body::len);
        if !self.try_send_message(call_id, len)? {
            return Ok(false);
        }
        if self.role == Role::Server && self.take_response_head(call_id) {
            encode_response_head(batch, call_id, &Metadata::new());
        }
        // Lazily: an eager `Body::Empty` is dropped when unused, which some builds do with an
        // out-of-line call per streamed message (docs/BENCHMARKS.md, "Priority lanes by the
        // call's priority").
        #[allow(clippy::unnecessary_lazy_evaluations)]
        let body = body.take().unwrap_or_else(|| Body::Empty);
        encode_message_frame(batch, FrameKind::Message, Flags::NONE, call_id, 0, |_| {}, body);
        Ok(true)
    }

    /// Queues `messages` stream messages of `call_id` encoded ahead into `frames` with
    /// [`encode_reserved_message`], in window reserved with [`Connection::reserve_send`]: appended
    /// to `batch` (on a server, after the response head if that has not gone out yet) while the
    /// call is open for sending; `false`, with nothing appended, once it is not (the caller then
    /// returns the window they took with [`Connection::return_reserved`]).
    pub(crate) fn send_reserved(&mut self, batch: &mut FrameBatch, call_id: CallId, frames: &FrameBatch, messages: usize) -> bool {
        if !self.calls.state_mut(call_id).is_some_and(|state| state.local_open) {
            return false;
        }
        if self.role == Role::Server && self.take_response_head(call_id) {
            encode_response_head(batch, call_id, &Metadata::new());
        }
        // The peer may credit each of them back, as for one sent by `send_message`.
        self.earned_credits = self
            .earned_credits
            .saturating_add(super::FREE_CREDITS_PER_MESSAGE.saturating_mul(messages as u64));
        batch.append_batch(frames);
        true
    }

    /// (server) Encodes the call's response head with `metadata` if it has not gone out yet
    /// ([`Connection::take_response_head`]); returns whether it did.
    pub(crate) fn send_response_head(&mut self, batch: &mut FrameBatch, call_id: CallId, metadata: &Metadata) -> bool {
        if !self.take_response_head(call_id) {
            return false;
        }
        encode_response_head(batch, call_id, metadata);
        true
    }

    /// (client) Half-closes the call ([`Connection::close_local`]) and encodes its EndOfStream;
    /// returns whether the call was open for sending.
    pub(crate) fn send_end_of_stream(&mut self, batch: &mut FrameBatch, call_id: CallId) -> bool {
        if !self.close_local(call_id) {
            return false;
        }
        encode_message_frame::<()>(batch, FrameKind::EndOfStream, Flags::NONE, call_id, 0, |_| {}, Body::Empty);
        true
    }

    /// (server) Ends the call ([`Connection::finish_call`]) and encodes `answer`, fitted to the
    /// peer's max frame size (a response too large for it becomes RESOURCE_EXHAUSTED, a status's
    /// message is cut and its trailers dropped if they cannot fit). Returns the code the client
    /// sees, or `None` when the call is no longer open and nothing was written.
    pub(crate) fn send_answer<M: prost::Message>(
        &mut self,
        batch: &mut FrameBatch,
        call_id: CallId,
        answer: Answer<'_, M>,
    ) -> Option<Code> {
        if !self.finish_call(call_id) {
            return None;
        }
        let max = self.peer_settings.max_frame_size;
        let code = match answer {
            Answer::Response { metadata, body, trailers } => {
                let head_len = if metadata.is_empty() { 0 } else { 2 + metadata.encoded_len() };
                if head_len + body.len() > max as usize {
                    let status = frame_too_large(head_len + body.len(), max);
                    encode_status_frame(batch, call_id, status.code(), status.message(), status.metadata(), max);
                    return Some(status.code());
                }
                let flags = Flags::MESSAGE
                    .set_if(Flags::METADATA, head_len > 0)
                    .set_if(Flags::END_STREAM, trailers.is_empty());
                let head = |buf: &mut bytes::BytesMut| {
                    if head_len > 0 {
                        metadata.encode(buf);
                    }
                };
                encode_message_frame(batch, FrameKind::Response, flags, call_id, head_len, head, body);
                if !trailers.is_empty() {
                    encode_status_frame(batch, call_id, Code::Ok, "", trailers, max);
                }
                Code::Ok
            }
            Answer::Status { code, message, metadata } => {
                encode_status_frame(batch, call_id, code, message, metadata, max);
                code
            }
        };
        Some(code)
    }
}

/// Encodes a stream message of `call_id` whose window was reserved with
/// [`Connection::reserve_send`] into `frames`, a batch of the caller's own (no lock held), for
/// [`Connection::send_reserved`] to queue. Only small messages ([`Body::Inline`]) are encoded
/// ahead; the caller sends others with [`Connection::send_message`].
pub(crate) fn encode_reserved_message<M: prost::Message>(frames: &mut FrameBatch, call_id: CallId, body: Body<'_, M>) {
    debug_assert!(matches!(body, Body::Inline(..)));
    encode_message_frame(frames, FrameKind::Message, Flags::NONE, call_id, 0, |_| {}, body);
}

/// A Response frame without a message: the head of a streamed response.
fn encode_response_head(batch: &mut FrameBatch, call_id: CallId, metadata: &Metadata) {
    let head_len = if metadata.is_empty() { 0 } else { 2 + metadata.encoded_len() };
    let flags = Flags::NONE.set_if(Flags::METADATA, head_len > 0);
    let head = |buf: &mut bytes::BytesMut| {
        if head_len > 0 {
            metadata.encode(buf);
        }
    };
    encode_message_frame::<()>(batch, FrameKind::Response, flags, call_id, head_len, head, Body::Empty);
}
