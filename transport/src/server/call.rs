//! One call on the server: its context for the handler, and the way its answer is written.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use super::ConnectionInfo;
use crate::driver::{Flush, Shared, frame_too_large};
use crate::observe::CallObserver;
use crate::status::{Code, Status};
use crate::streaming::{Deadline, StreamSender, Streaming};
use crate::wire::{Body, CallId, Flags, FrameBatch as Batch, FrameKind, Metadata, MethodId, encode_message_frame, encode_status_frame};

/// What a handler knows about its call besides the request message.
#[derive(Clone, Debug)]
pub struct CallContext {
    call_id: CallId,
    method: MethodId,
    deadline: Option<Instant>,
    metadata: Metadata,
    priority: u8,
    connection: Option<ConnectionInfo>,
}

impl CallContext {
    /// The call's id on its connection.
    pub fn call_id(&self) -> CallId {
        self.call_id
    }

    /// The method called.
    pub fn method(&self) -> MethodId {
        self.method
    }

    /// When the caller stops waiting, if it set a deadline. The handler is dropped then.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// The caller's metadata.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// The caller's priority, 0 to 255.
    pub fn priority(&self) -> u8 {
        self.priority
    }

    /// The connection the call came in on; `None` for a request made with [`Request::new`]
    /// (a handler called directly in a test).
    pub fn connection(&self) -> Option<&ConnectionInfo> {
        self.connection.as_ref()
    }
}

/// A request as a handler receives it: the decoded message and its [`CallContext`].
#[derive(Debug)]
pub struct Request<T> {
    message: T,
    context: CallContext,
}

impl<T> Request<T> {
    /// A request, for calling handlers directly in tests.
    pub fn new(message: T) -> Self {
        let context = CallContext {
            call_id: CallId(0),
            method: MethodId(0),
            deadline: None,
            metadata: Metadata::new(),
            priority: 0,
            connection: None,
        };
        Self { message, context }
    }

    /// A request from a message and a context (for generated code and tests).
    pub fn from_parts(message: T, context: CallContext) -> Self {
        Self { message, context }
    }

    /// The message, mutably (a request stream is read through it).
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.message
    }

    /// The message.
    pub fn get_ref(&self) -> &T {
        &self.message
    }

    /// The message, by value.
    pub fn into_inner(self) -> T {
        self.message
    }

    /// The call's context.
    pub fn context(&self) -> &CallContext {
        &self.context
    }

    /// The caller's metadata.
    pub fn metadata(&self) -> &Metadata {
        &self.context.metadata
    }

    /// Message and context.
    pub fn into_parts(self) -> (T, CallContext) {
        (self.message, self.context)
    }
}

/// A call accepted by the server and handed to a handler task. Answer it with
/// [`ServerCall::respond`]; if it is dropped unanswered (the handler panicked), the caller gets
/// INTERNAL.
#[derive(Debug)]
pub struct ServerCall {
    shared: Arc<Shared>,
    context: CallContext,
    message: Option<Bytes>,
    answered: bool,
    observer: CallObserver,
}

impl ServerCall {
    pub(crate) fn new(
        shared: Arc<Shared>,
        call_id: CallId,
        method: MethodId,
        deadline: Option<Instant>,
        metadata: Metadata,
        priority: u8,
        message: Option<Bytes>,
    ) -> Self {
        let identity = shared.identity.clone();
        Self {
            shared,
            context: CallContext {
                call_id,
                method,
                deadline,
                metadata,
                priority,
                connection: Some(ConnectionInfo::new(identity)),
            },
            message,
            answered: false,
            observer: CallObserver::none(),
        }
    }

    /// Watches the call with `observer` (its span and metrics).
    pub(crate) fn observed(mut self, observer: CallObserver) -> Self {
        self.observer = observer;
        self
    }

    /// The call's `tracing` span (`volley.call` at debug level, with the method, the call id
    /// and, once answered, the status), for a custom [`super::Handler`] to run its work in. It
    /// is `Span::none()` when debug spans are disabled.
    pub fn span(&self) -> &tracing::Span {
        self.observer.span()
    }

    /// The call's context.
    pub fn context(&self) -> &CallContext {
        &self.context
    }

    /// Decodes the request. A message that does not decode is answered with INVALID_ARGUMENT
    /// and `None` is returned. A call whose deadline has already passed is answered with
    /// DEADLINE_EXCEEDED without decoding.
    pub fn decode<T: prost::Message + Default>(&mut self) -> Option<Request<T>> {
        if self.context.deadline.is_some_and(|at| Instant::now() >= at) {
            self.respond::<()>(Err(Status::deadline_exceeded(
                "the call's deadline passed before its handler started",
            )));
            return None;
        }
        match T::decode(self.message.take().unwrap_or_default()) {
            Ok(message) => Some(Request {
                message,
                context: self.context.clone(),
            }),
            Err(err) => {
                self.respond::<()>(Err(Status::invalid_argument(format!(
                    "the request message does not decode: {err}; do client and server use the same .proto?"
                ))));
                None
            }
        }
    }

    /// Sends the call's answer: the response message with status OK, or the error status.
    /// Nothing is sent if the call was cancelled meanwhile.
    pub fn respond<M: prost::Message>(&mut self, result: Result<M, Status>) {
        let body = result.as_ref().map(Body::prepare);
        self.end(|batch, call_id, max| match body {
            Ok(body) if body.len() <= max as usize => {
                let flags = Flags::MESSAGE | Flags::END_STREAM;
                encode_message_frame(batch, FrameKind::Response, flags, call_id, 0, |_| {}, body);
                Code::Ok
            }
            Ok(body) => {
                let status = frame_too_large(body.len(), max);
                encode_status_frame(batch, call_id, status.code(), status.message(), status.metadata(), max);
                status.code()
            }
            Err(status) => {
                encode_status_frame(batch, call_id, status.code(), status.message(), status.metadata(), max);
                status.code()
            }
        });
    }

    /// Ends a streaming call with a status: OK when `result` is `Ok`. Messages sent before it
    /// stay ahead of it on the wire.
    pub fn finish(&mut self, result: Result<(), Status>) {
        let status = result.err().unwrap_or_else(|| Status::new(Code::Ok, ""));
        self.end(|batch, call_id, max| {
            encode_status_frame(batch, call_id, status.code(), status.message(), status.metadata(), max);
            status.code()
        });
    }

    /// The stream of request messages, for client-streaming and bidirectional methods. The call's
    /// deadline covers the stream.
    pub fn request_stream<T: prost::Message + Default>(&mut self) -> Streaming<T> {
        let first = self.message.take();
        Streaming::new(
            self.shared.clone(),
            self.context.call_id,
            first,
            Deadline::new(self.context.deadline),
            false,
        )
    }

    /// A sender of response messages, for server-streaming and bidirectional methods. End the
    /// call with [`ServerCall::finish`] once every message is sent.
    pub fn response_sender<T: prost::Message>(&self) -> StreamSender<T> {
        StreamSender::new(
            self.shared.clone(),
            self.context.call_id,
            false,
            Deadline::new(self.context.deadline),
        )
    }

    /// Writes the call's last frame with `encode` (given the batch, the call id and the peer's
    /// max frame size; returning the call's code), unless the call already ended.
    fn end(&mut self, encode: impl FnOnce(&mut Batch, CallId, u32) -> Code) {
        if std::mem::replace(&mut self.answered, true) {
            return;
        }
        let call_id = self.context.call_id;
        let shared = &*self.shared;
        let mut state = shared.lock_state();
        if state.closed.is_some() || !state.proto.finish_call(call_id) {
            // Cancelled by the client or lost with the connection.
            drop(state);
            self.observer.finish(shared.recorder(), Code::Cancelled);
            return;
        }
        let mut wakers = Vec::new();
        // The handler is this call's own task, ending: forget it, do not abort it.
        let (_handler, buffered) = state.calls.remove(call_id, &mut wakers);
        if buffered > 0 {
            state.proto.release_received(call_id, buffered);
        }
        let max = state.proto.peer_settings().max_frame_size;
        let mut queue = shared.queue.lock();
        // The last call of a quiet connection answers at once; under load the writer task
        // batches answers (and the reader corks those of inline handlers).
        let flush = if state.proto.open_calls() == 0 {
            Flush::Direct
        } else {
            Flush::Wake
        };
        let code = encode(queue.batch(), call_id, max);
        drop(queue);
        // Releases the state, then writes.
        shared.flush(state, flush);
        shared.stats.call_finished(code);
        self.observer.finish(shared.recorder(), code);
        wakers.into_iter().for_each(std::task::Waker::wake);
        // After a graceful GoAway the connection ends with its last call.
        shared.close_if_drained();
    }
}

impl Drop for ServerCall {
    fn drop(&mut self) {
        if !self.answered {
            // Reached when the handler panicked, or when its task was dropped (then the call is
            // no longer open and nothing is sent).
            self.respond::<()>(Err(Status::internal("the handler ended without answering; it may have panicked")));
        }
    }
}
