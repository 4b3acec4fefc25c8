//! One call on the server: its context for the handler, and the way its answer is written.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use super::ConnectionInfo;
use crate::driver::{Flush, Lane, Protocol, Shared};
use crate::observe::CallObserver;
use crate::protocol::Answer;
use crate::response::{IntoResponse, Response};
use crate::status::{Code, Status};
use crate::streaming::{Deadline, StreamSender, Streaming, send_response_head};
use crate::wire::{Body, CallId, FrameBatch as Batch, Metadata, MethodId};

/// The lane of the answer of a call at a high priority: high, unless a streamed answer began
/// (its head and messages went in the normal lane, and the answer must follow them). Out of
/// line: the default priority's answers never come here.
#[cold]
#[inline(never)]
fn high_priority_answer_lane(proto: &mut Protocol, call_id: CallId) -> Lane {
    if proto.response_head_sent(call_id) {
        Lane::Normal
    } else {
        Lane::High
    }
}

/// Metadata with no entries, to lend where a call has none.
static EMPTY_METADATA: Metadata = Metadata::new();

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

    /// Resolves when the server begins a graceful shutdown ([`crate::ServerHandle::shutdown`])
    /// or the call's connection ends; at once if it has already. A long-running streaming
    /// handler (a watch, a subscription) selects on it to end its stream cleanly with OK, so
    /// the shutdown need not wait its whole drain timeout for the handler; a handler that
    /// ignores it is dropped when the drain timeout passes. Never resolves for a request made
    /// with [`Request::new`].
    ///
    /// ```no_run
    /// use volley::{Request, Status, StreamSender};
    ///
    /// async fn watch(request: Request<String>, mut updates: StreamSender<String>) -> Result<(), Status> {
    ///     let shutdown = request.context().shutdown();
    ///     tokio::pin!(shutdown);
    ///     let mut ticks = tokio::time::interval(std::time::Duration::from_secs(1));
    ///     loop {
    ///         tokio::select! {
    ///             () = &mut shutdown => return Ok(()),
    ///             _ = ticks.tick() => updates.send(&request.get_ref().clone()).await?,
    ///         }
    ///     }
    /// }
    /// ```
    pub async fn shutdown(&self) {
        match &self.connection {
            Some(connection) => connection.draining().await,
            None => std::future::pending().await,
        }
    }

    /// The connection the call came in on; `None` for a request made with [`Request::new`]
    /// (a handler called directly in a test).
    pub fn connection(&self) -> Option<&ConnectionInfo> {
        self.connection.as_ref()
    }

    /// The caller's metadata, for interceptors to change before the handler sees it.
    pub(crate) fn metadata_mut(&mut self) -> &mut Metadata {
        &mut self.metadata
    }

    /// Moves the deadline, for interceptors.
    pub(crate) fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.deadline = deadline;
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

    /// The message, mutably.
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

/// A streaming handler reads its request stream straight from the request: `request.message()`
/// until `Ok(None)`, or as a [`futures_core::Stream`]; `request.context()` stays at hand.
impl<T: prost::Message + Default> Request<Streaming<T>> {
    /// The next request message; `Ok(None)` once the client closed its stream; `Err` if the
    /// call failed (cancelled, deadline passed, connection lost). See [`Streaming::message`].
    pub async fn message(&mut self) -> Result<Option<T>, Status> {
        self.message.message().await
    }
}

impl<T: prost::Message + Default> futures_core::Stream for Request<Streaming<T>> {
    type Item = Result<T, Status>;

    fn poll_next(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<Self::Item>> {
        std::pin::Pin::new(&mut self.get_mut().message).poll_next(cx)
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
    /// The code the call ended with, once answered (for interceptors that observe outcomes).
    outcome: Option<Code>,
    observer: CallObserver,
    /// The call counted in its server's load (`volley-load`, docs/PROTOCOL.md section 14) until
    /// it is answered or dropped.
    load: Option<super::LoadTicket>,
}

/// What a server knows of a call it accepted, for [`ServerCall::new`].
pub(crate) struct Accepted {
    pub(crate) call_id: CallId,
    pub(crate) method: MethodId,
    pub(crate) deadline: Option<Instant>,
    pub(crate) metadata: Metadata,
    pub(crate) priority: u8,
    pub(crate) message: Option<Bytes>,
}

impl ServerCall {
    /// A call watched by `observer` (its span and metrics) and, with `load`, counted in its
    /// server's load until it is answered or dropped. Built in one step: no move of the
    /// finished call on the per-call path.
    pub(crate) fn new(shared: Arc<Shared>, accepted: Accepted, observer: CallObserver, load: Option<super::LoadTicket>) -> Self {
        let Accepted {
            call_id,
            method,
            deadline,
            metadata,
            priority,
            message,
        } = accepted;
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
            outcome: None,
            observer,
            load,
        }
    }

    /// The code the call ended with, once it has been answered (or found cancelled).
    pub(crate) fn outcome(&self) -> Option<Code> {
        self.outcome
    }

    /// Whether the call's answer has been sent (or the call was found cancelled).
    #[cfg_attr(not(feature = "tower"), allow(dead_code))]
    pub(crate) fn is_answered(&self) -> bool {
        self.answered
    }

    /// The context, for interceptors to change before the handler runs.
    pub(crate) fn context_mut(&mut self) -> &mut CallContext {
        &mut self.context
    }

    /// Moves the call out, leaving an answered shell whose drop sends nothing: for middleware
    /// that hands the call to a task or a service by value.
    pub(crate) fn take(&mut self) -> Self {
        let taken = Self {
            shared: self.shared.clone(),
            context: self.context.clone(),
            message: self.message.take(),
            answered: self.answered,
            outcome: self.outcome,
            observer: std::mem::replace(&mut self.observer, CallObserver::none()),
            load: self.load.take(),
        };
        self.answered = true;
        taken
    }

    /// `response` with the server's load report, if this call carries one.
    #[inline]
    fn with_load_report<T>(&self, response: Response<T>) -> Response<T> {
        match (&self.load, &self.shared.dispatch) {
            (Some(ticket), Some(dispatch)) if ticket.reports() => {
                let this_connection = self.shared.stats.calls_in_flight();
                ticket.add_report(
                    response,
                    dispatch.load_in_flight(),
                    u32::try_from(this_connection).unwrap_or(u32::MAX),
                )
            }
            _ => response,
        }
    }

    /// The call leaves its server's load (a relaxed subtract, through the connection's
    /// dispatcher, which counted it); once, however often it is called.
    #[inline]
    fn leave_load(&mut self) {
        leave_load(&mut self.load, &self.shared);
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

    /// Sends the call's answer: the response (a message, or a [`crate::Response`] with head metadata
    /// and trailers) with status OK, or the error status. Nothing is sent if the call was
    /// cancelled meanwhile.
    ///
    /// On the wire a plain OK answer is one Response frame with `END_STREAM`; head metadata rides
    /// in that frame; trailers add a Status frame with code OK after it (docs/PROTOCOL.md 5.3).
    ///
    /// It queues the answer at once, even past the connection's write-queue cap: it is for code
    /// that cannot wait, such as an inline handler on the reader task. A handler running in its
    /// own task answers with [`ServerCall::respond_when_room`], as the built-in handlers do.
    pub fn respond<R: IntoResponse>(&mut self, result: Result<R, Status>) {
        let response = result.map(|r| self.with_load_report(r.into_response()));
        let _ = self.try_end(encode_answer(&response), false);
    }

    /// [`ServerCall::respond`], once the connection's write queue is under its cap: a handler
    /// that answers faster than the peer reads waits here, with its answer, instead of growing
    /// the queue (docs/PROTOCOL.md section 9, "Write queue cap"). Nothing is dropped; if the
    /// connection ends meanwhile, the answer is not sent.
    pub async fn respond_when_room<R: IntoResponse>(&mut self, result: Result<R, Status>) {
        let response = result.map(|r| self.with_load_report(r.into_response()));
        self.end_when_room(encode_answer(&response)).await;
    }

    /// Ends a streaming call with a status: OK when `result` is `Ok`, with the trailers set by
    /// [`StreamSender::set_trailers`]. Messages sent before it stay ahead of it on the wire.
    /// Like [`ServerCall::respond`], it does not wait for write-queue room;
    /// [`ServerCall::finish_when_room`] does.
    pub fn finish(&mut self, result: Result<(), Status>) {
        let _ = self.try_end(encode_final_status(result.err()), false);
    }

    /// [`ServerCall::finish`], once the connection's write queue is under its cap (see
    /// [`ServerCall::respond_when_room`]).
    pub async fn finish_when_room(&mut self, result: Result<(), Status>) {
        self.end_when_room(encode_final_status(result.err())).await;
    }

    /// Runs a streaming handler, sending the response head (which resolves the client's call)
    /// the first time the handler waits, unless a message or `send_head` sent it before: work
    /// the handler does before its first wait, such as subscribing to what it will stream, is
    /// done by the time the client's call returns.
    pub async fn head_at_first_wait<T>(&self, handler: impl Future<Output = T>) -> T {
        let mut handler = std::pin::pin!(handler);
        let mut waited = false;
        std::future::poll_fn(|cx| {
            // The handler's stream messages sent in this poll leave together when it ends.
            let poll = crate::streaming::in_scope(&self.shared, self.context.call_id, || handler.as_mut().poll(cx));
            if poll.is_pending() && !std::mem::replace(&mut waited, true) {
                send_response_head(&self.shared, self.context.call_id, &EMPTY_METADATA, Flush::Wake);
            }
            poll
        })
        .await
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

    /// Ends the call with the answer `encode` hands the protocol (given the protocol, the batch,
    /// the call id and the trailers a handler set; returning the call's code, `None` if the call
    /// was no longer open), unless the call already ended. With `within_cap`, a write queue with
    /// no room for the answer's lane hands `encode` back unused with that lane: the caller waits
    /// for room there and tries again.
    fn try_end<F>(&mut self, encode: F, within_cap: bool) -> Result<(), (F, Lane)>
    where
        F: FnOnce(&mut Protocol, &mut Batch, CallId, Option<Metadata>) -> Option<Code>,
    {
        if self.answered {
            return Ok(());
        }
        let call_id = self.context.call_id;
        let shared = &*self.shared;
        let mut state = shared.lock_state();
        // Taken before the call is finished, so the room check and the append are one step:
        // producers append only under the cap, so the queue stays under cap + one answer.
        let mut queue = shared.queue.lock();
        let open = state.closed.is_none() && state.proto.is_call_open(call_id);
        let lane = match Lane::for_priority(self.context.priority) {
            Lane::High if open => high_priority_answer_lane(&mut state.proto, call_id),
            _ => Lane::Normal,
        };
        if within_cap && open && !queue.has_room_in(lane) {
            return Err((encode, lane));
        }
        self.answered = true;
        if !open {
            // Cancelled by the client or lost with the connection.
            drop(queue);
            drop(state);
            self.outcome = Some(Code::Cancelled);
            self.observer.finish(shared.recorder(), Code::Cancelled);
            self.leave_load();
            return Ok(());
        }
        let mut wakers = Vec::new();
        // The handler is this call's own task, ending: forget it, do not abort it. Emptied
        // before the answer so its trailers go with it; the slot goes when the protocol ends
        // the call, in the answer.
        let removed = state.calls().take_call(call_id, &mut wakers);
        let code = encode(&mut state.proto, queue.lane(lane), call_id, removed.trailers).unwrap_or(Code::Cancelled);
        if removed.buffered > 0 {
            state.proto.release_received(call_id, removed.buffered);
        }
        // The last call of a quiet connection answers at once; under load the writer task
        // batches answers (and the reader corks those of inline handlers).
        let flush = if state.proto.open_calls() == 0 {
            Flush::Direct
        } else {
            Flush::Wake
        };
        self.outcome = Some(code);
        // After a graceful GoAway the connection ends with its last call: read here, under the
        // lock this answer holds, rather than in a second pass.
        let drained = shared.is_drained(&state);
        // Releases both locks, then writes (or wakes the writer).
        shared.flush_appended(state, queue, flush);
        shared.stats.call_finished(code);
        self.observer.finish(shared.recorder(), code);
        leave_load(&mut self.load, shared);
        wakers.into_iter().for_each(std::task::Waker::wake);
        if drained {
            shared.close_drained();
        }
        Ok(())
    }

    /// [`ServerCall::try_end`] within the write-queue cap, waiting for room as often as needed.
    async fn end_when_room<F>(&mut self, mut encode: F)
    where
        F: FnOnce(&mut Protocol, &mut Batch, CallId, Option<Metadata>) -> Option<Code>,
    {
        loop {
            let lane = match self.try_end(encode, true) {
                Ok(()) => return,
                Err((unused, lane)) => {
                    encode = unused;
                    lane
                }
            };
            // Boxed: the wait is rare, and inline it would make every call's task larger.
            Box::pin(self.shared.wait_for_queue_room(lane)).await;
        }
    }
}

/// A unary (or client-streaming) answer: the response with OK, or the error status.
fn encode_answer<T: prost::Message>(
    response: &Result<crate::Response<T>, Status>,
) -> impl FnOnce(&mut Protocol, &mut Batch, CallId, Option<Metadata>) -> Option<Code> + '_ {
    let parts = response.as_ref().map(|r| (Body::prepare(r.get_ref()), r.metadata(), r.trailers()));
    move |proto, batch, call_id, _| {
        let answer = match parts {
            Ok((body, metadata, trailers)) => Answer::Response { metadata, body, trailers },
            Err(status) => Answer::Status {
                code: status.code(),
                message: status.message(),
                metadata: status.metadata(),
            },
        };
        proto.send_answer(batch, call_id, answer)
    }
}

/// A streaming call's final status: `status`, or OK with the handler's trailers.
fn encode_final_status(status: Option<Status>) -> impl FnOnce(&mut Protocol, &mut Batch, CallId, Option<Metadata>) -> Option<Code> {
    move |proto, batch, call_id, trailers| {
        let (code, message, metadata) = match &status {
            Some(status) => (status.code(), status.message(), status.metadata()),
            None => (Code::Ok, "", trailers.as_ref().unwrap_or(&EMPTY_METADATA)),
        };
        proto.send_answer::<()>(batch, call_id, Answer::Status { code, message, metadata })
    }
}

/// [`ServerCall::leave_load`] for a call whose connection is borrowed apart from it.
#[inline]
fn leave_load(load: &mut Option<super::LoadTicket>, shared: &Shared) {
    if let Some(ticket) = load.take()
        && let Some(dispatch) = &shared.dispatch
    {
        dispatch.end_load(ticket.spend());
    }
}

impl Drop for ServerCall {
    fn drop(&mut self) {
        if !self.answered {
            // Reached when the handler panicked, or when its task was dropped (then the call is
            // no longer open and nothing is sent).
            self.respond::<()>(Err(Status::internal("the handler ended without answering; it may have panicked")));
        }
        // Answered calls have left already; a call whose answer could not be sent leaves here.
        self.leave_load();
    }
}
