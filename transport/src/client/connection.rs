//! `Client`: a cheap, cloneable handle over one connection.

use std::future::poll_fn;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{CallOptions, ClientBuilder};
use crate::driver::{Flush, Lane, Outcome, Shared};
use crate::error::Error;
use crate::method::CallTarget;
use crate::net::{Address, AppliedSocketOptions, ToAddress};
use crate::observe::CallObserver;
use crate::protocol::frame_too_large;
use crate::response::Response;
use crate::stats::StatsSnapshot;
use crate::status::{Code, Status};
use crate::wire::{Body, CallHead, CallId, MethodId};

/// **One connection** to a Volley server, for as long as that connection lives. Cloning is cheap
/// and shares the connection; calls from any number of tasks are multiplexed over it.
///
/// A `Client` does not reconnect. When the connection ends (the server's idle timeout, 5
/// minutes by default; a server restart or shutdown; a network failure) every later call fails
/// with UNAVAILABLE and [`Client::is_closed`] says so. For a long-lived caller use a
/// [`Channel`](crate::Channel) (or a generated client's `connect`, which builds one): it opens a
/// new connection when the old one ends or the server sends a GoAway. Use a `Client` where one
/// connection's lifetime is what you want: tests, benchmarks, a short-lived tool, or a custom
/// pool.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use volley::{CallOptions, Client, MethodId};
///
/// const ECHO: MethodId = MethodId::from_name("/echo.Echo/Say");
/// let client = Client::connect("127.0.0.1:7000").await?;
/// let reply: String = client.unary(ECHO, &"hello".to_owned(), CallOptions::default()).await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Client {
    shared: Arc<Shared>,
    info: Arc<ClientInfo>,
}

/// What a client knows about its connection that never changes. Shared by every clone of a
/// [`Client`]: when the last clone is dropped, the connection closes once its open streams end.
#[derive(Debug)]
struct ClientInfo {
    address: Address,
    socket: AppliedSocketOptions,
    shared: Arc<Shared>,
    /// The deadline of calls that set none.
    timeout: Option<Duration>,
}

impl Drop for ClientInfo {
    fn drop(&mut self) {
        self.shared.release();
    }
}

/// Cancels the call on the wire if its future is dropped before the outcome arrived.
struct CallGuard<'a> {
    shared: &'a Shared,
    call_id: CallId,
    deadline: Option<Instant>,
    done: bool,
    observer: CallObserver,
}

impl Drop for CallGuard<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut state = self.shared.lock_state();
        state.calls().remove_unary(self.call_id);
        if state.proto.cancel_call(self.call_id) {
            // Wakes the writer; no write from `Drop`.
            self.shared.send_control(state);
        } else {
            drop(state);
        }
        let expired = self.deadline.is_some_and(|at| Instant::now() >= at);
        let code = if expired { Code::DeadlineExceeded } else { Code::Cancelled };
        self.shared.stats.call_finished(code);
        self.observer.finish(self.shared.recorder(), code);
        self.shared.call_slots_freed(1);
    }
}

impl Client {
    /// The client of a connection just opened to `address`.
    pub(super) fn over(shared: Arc<Shared>, address: Address, socket: AppliedSocketOptions, timeout: Option<Duration>) -> Self {
        Self {
            info: Arc::new(ClientInfo {
                address,
                socket,
                shared: shared.clone(),
                timeout,
            }),
            shared,
        }
    }

    /// A builder for a client with non-default options.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// Connects with default options.
    pub async fn connect(address: impl ToAddress) -> Result<Self, Error> {
        Self::builder().connect(address).await
    }

    /// Makes a unary call: sends `request` to `method` (a typed [`crate::Method`], a
    /// [`MethodId`] or a full name) and waits for the response.
    ///
    /// Errors are [`Status`]es: the server's, or one the transport made (UNAVAILABLE when the
    /// connection is lost, DEADLINE_EXCEEDED when the deadline passes, RESOURCE_EXHAUSTED when
    /// the request is over the server's max frame size). Dropping the future cancels the call on
    /// the server.
    pub fn unary<Req, Resp>(
        &self,
        method: impl CallTarget<Req, Resp>,
        request: &Req,
        options: CallOptions,
    ) -> impl Future<Output = Result<Resp, Status>>
    where
        Req: prost::Message,
        Resp: prost::Message + Default,
    {
        // Straight to the attempt, not through `unary_bytes`: each async layer adds its own
        // copy of the arguments to the call's future (which a spawned call moves whole); and an
        // `async` block, for the reason given in `unary_attempt`.
        let method = method.method_id();
        async move {
            let response = self.response_of(self.unary_attempt(method, request, &options, Instant::now()).await)?;
            decode_response(response.into_inner())
        }
    }

    /// Like [`Client::unary`], returning the response with the metadata the server sent: head
    /// metadata and trailers ([`Response`]).
    pub async fn unary_response<Req, Resp>(&self, method: MethodId, request: &Req, options: CallOptions) -> Result<Response<Resp>, Status>
    where
        Req: prost::Message,
        Resp: prost::Message + Default,
    {
        let response = self.response_of(self.unary_attempt(method, request, &options, Instant::now()).await)?;
        decode_response_parts(response)
    }

    /// Like [`Client::unary`], returning the response's encoded bytes undecoded.
    pub async fn unary_bytes<Req: prost::Message>(&self, method: MethodId, request: &Req, options: CallOptions) -> Result<Bytes, Status> {
        let response = self.response_of(self.unary_attempt(method, request, &options, Instant::now()).await)?;
        Ok(response.into_inner())
    }

    /// A unary attempt as its caller sees it: the response, or the failure explained.
    fn response_of(&self, attempt: Result<Answered, Failure>) -> Result<Response<Bytes>, Status> {
        attempt.map(|answered| answered.response).map_err(|failure| self.explain(failure))
    }

    /// One unary call; a failure says whether the server certainly never started the call.
    /// `start` is when the call began (the caller's clock read, so that a call reads the clock
    /// once): a timeout without a deadline counts from it.
    #[allow(clippy::manual_async_fn, reason = "an async fn keeps room for its arguments twice in its future")]
    pub(crate) fn unary_attempt<Req: prost::Message>(
        &self,
        method: MethodId,
        request: &Req,
        options: &CallOptions,
        start: Instant,
    ) -> impl Future<Output = Result<Answered, Failure>> {
        // An `async` block, not an `async fn`: an `async fn` moves each argument into a local
        // and its future keeps room for both; the block uses them where they were captured.
        async move {
            let deadline = options.deadline_from(start, self.info.timeout);
            // Each arm builds the call's future where it is awaited: one built before the `match`
            // was copied into the awaiting state (about 100 instructions of `memcpy` per call).
            match deadline {
                None => self.start_and_wait(method, request, options, start, None).await,
                Some(at) => {
                    match tokio::time::timeout_at(at.into(), self.start_and_wait(method, request, options, start, deadline)).await {
                        Ok(result) => result,
                        Err(_) => Err(Failure {
                            status: Status::deadline_exceeded(format!(
                                "the call did not finish within its deadline ({:?} after it started)",
                                at - start
                            )),
                            not_started: false,
                        }),
                    }
                }
            }
        }
    }

    /// Waits for a call slot and room in the write queue, then opens a call and queues its
    /// Request frame: with `body` as its first message, and `end_stream` if the client sends
    /// nothing more. Unary calls get an in-flight slot, streaming calls (`!end_stream` or a
    /// streaming response) a stream slot; `stream` says which. `started` is when the caller
    /// started the call: the call head's send timestamp, read off the monotonic clock without
    /// another clock read.
    #[allow(clippy::manual_async_fn, reason = "an async fn keeps room for its arguments twice in its future")]
    pub(crate) fn open_call_as<M: prost::Message>(
        &self,
        method: MethodId,
        options: &CallOptions,
        (started, deadline): (Instant, Option<Instant>),
        mut body: Option<Body<'_, M>>,
        end_stream: bool,
        stream: bool,
    ) -> impl Future<Output = Result<CallId, Status>> {
        // An `async` block for the reason given in `unary_attempt`.
        async move {
            let shared = &*self.shared;
            let head_len = crate::wire::CALL_HEAD_FIXED_LEN + 2 + options.metadata.encoded_len();
            let body_len = body.as_ref().map_or(0, Body::len);
            // The first attempt registers no waiter: registering (and unregistering) takes the
            // Notify's lock twice per call. Only an attempt that must wait registers, and counts
            // itself waiting (a freed slot signals only when someone waits), then tries once more
            // before it sleeps, so a slot freed in between is never missed.
            let mut registered = false;
            let mut _waiting = None;
            loop {
                let notified = shared.capacity.notified();
                tokio::pin!(notified);
                if registered {
                    notified.as_mut().enable();
                }
                // A unary caller's waker goes into its record with the call, read in the same poll
                // that opens it (this never suspends): its first wait then needs no second pass
                // under the lock to register it.
                let waker = if stream {
                    None
                } else {
                    Some(poll_fn(|cx| Poll::Ready(cx.waker().clone())).await)
                };
                {
                    let mut state = shared.lock_state();
                    if let Some(status) = &state.closed {
                        return Err(status.clone());
                    }
                    let max = state.proto.peer_settings().max_frame_size;
                    if head_len + body_len > max as usize {
                        return Err(frame_too_large(head_len + body_len, max));
                    }
                    // Under the cap, or in the high lane's own room for a high-priority call that
                    // sends nothing after its Request (so 16 MiB of uploads cannot hold it back).
                    let lane = if end_stream {
                        Lane::for_priority(options.priority)
                    } else {
                        Lane::Normal
                    };
                    if shared.queue.has_room_in(lane) {
                        let head = CallHead {
                            method_id: method,
                            priority: options.priority,
                            timeout: deadline.map(|at| at.saturating_duration_since(Instant::now())),
                            sent_at_ns: crate::clock::wall_clock().unix_ns(started),
                            metadata: options.metadata.clone(),
                        };
                        let mut queue = shared.queue.lock();
                        // A call at a high priority goes in the high lane when the client sends
                        // nothing after its Request (a Cancel or a Credit, queued in the normal lane,
                        // never goes ahead of the high lane).
                        let lane = match Lane::for_priority(options.priority) {
                            Lane::High if end_stream => queue.request_lane(Lane::High),
                            _ => Lane::Normal,
                        };
                        let sent = state.proto.send_request(queue.lane(lane), &head, &mut body, end_stream);
                        match sent {
                            Ok(call_id) => {
                                if stream {
                                    state.calls().open_stream(call_id);
                                } else {
                                    state.calls().insert_unary(call_id, waker);
                                }
                                // Alone on the connection, write now; with company, let the writer
                                // batch this call with the others.
                                let flush = match (options.flush, state.proto.open_calls()) {
                                    (false, _) => Flush::Later,
                                    (true, 1) => Flush::Direct,
                                    (true, _) => Flush::Wake,
                                };
                                // Releases both locks, then writes: the reader never waits on our
                                // syscall. A wake takes the writer's waker under the queue lock
                                // still held from the append, not in a second trip through it.
                                shared.flush_appended(state, queue, flush);
                                shared.stats.call_started();
                                return Ok(call_id);
                            }
                            Err(status) if status.code() == Code::ResourceExhausted => {}
                            Err(status) => return Err(status),
                        }
                    }
                }
                if !std::mem::replace(&mut registered, true) {
                    _waiting = Some(shared.wait_for_capacity());
                    continue;
                }
                notified.await;
            }
        }
    }

    /// The connection's shared state, for the streaming calls.
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    #[allow(clippy::manual_async_fn, reason = "an async fn keeps room for its arguments twice in its future")]
    fn start_and_wait<Req: prost::Message>(
        &self,
        method: MethodId,
        request: &Req,
        options: &CallOptions,
        start: Instant,
        deadline: Option<Instant>,
    ) -> impl Future<Output = Result<Answered, Failure>> {
        // An `async` block for the reason given in `unary_attempt`.
        async move {
            let shared = &*self.shared;
            let mut observer = CallObserver::client(method);
            let call_id = match self
                .open_call_as(method, options, (start, deadline), Some(Body::prepare(request)), true, false)
                .await
            {
                Ok(call_id) => call_id,
                Err(status) => {
                    // Nothing was written: the connection was closed or closing, or the call too large.
                    observer.finish(shared.recorder(), status.code());
                    return Err(Failure { status, not_started: true });
                }
            };
            observer.client_opened(shared.recorder(), method, call_id, start);
            let mut guard = CallGuard {
                shared,
                call_id,
                deadline,
                done: false,
                observer,
            };
            // The record already holds this task's waker (`open_call_as` put it there in this same
            // poll), so the first wait returns at once without taking the lock; later polls look.
            let mut registered = true;
            let outcome = poll_fn(|cx| {
                if std::mem::take(&mut registered) {
                    return Poll::Pending;
                }
                shared.lock_state().calls().poll_outcome(call_id, cx)
            })
            .await;
            guard.done = true;
            let result = match outcome {
                Outcome::Response {
                    message,
                    metadata,
                    trailers,
                    received_at,
                } => Ok(Answered {
                    response: Response::new(message).with_metadata(metadata).with_trailers(trailers),
                    received_at,
                }),
                Outcome::Failed(status) => Err(Failure {
                    status,
                    not_started: false,
                }),
                Outcome::Refused(status) => Err(Failure { status, not_started: true }),
            };
            let (code, ended) = match &result {
                Ok(answered) => (Code::Ok, Some(answered.received_at)),
                Err(failure) => (failure.status.code(), None),
            };
            shared.stats.call_finished(code);
            // An answered call ends when the reader read its answer: no second clock read.
            guard.observer.finish_at(shared.recorder(), code, ended);
            result
        }
    }

    /// The status a caller of this `Client` sees for a failed call: a call refused because the
    /// connection has ended says that a `Client` does not reconnect, and what does.
    pub(crate) fn explain(&self, failure: Failure) -> Status {
        let status = failure.status;
        if !(failure.not_started && status.code() == Code::Unavailable && self.is_closed()) {
            return status;
        }
        let message = format!(
            "{}; this Client's connection has ended, and a Client is one connection that does not reconnect: use a Channel (or a generated client's connect()), which does",
            status.message()
        );
        Status::with_metadata(status.code(), message, status.metadata().clone())
    }

    /// The deadline of calls that set none ([`ClientBuilder::timeout`]).
    pub(crate) fn default_timeout(&self) -> Option<Duration> {
        self.info.timeout
    }

    /// The server's address.
    pub fn address(&self) -> &Address {
        &self.info.address
    }

    /// Socket options as the kernel reports them after they were applied.
    pub fn socket_options(&self) -> &AppliedSocketOptions {
        &self.info.socket
    }

    /// This connection's counters.
    pub fn stats(&self) -> StatsSnapshot {
        let mut snapshot = self.shared.stats.snapshot();
        snapshot.write_queue_bytes = self.shared.queue.queued_bytes() as u64;
        snapshot
    }

    /// Whether the connection has ended; every call on it now fails with UNAVAILABLE.
    pub fn is_closed(&self) -> bool {
        self.shared.stats.is_closed()
    }

    /// Whether the server sent a GoAway: calls still running finish, new calls need a new
    /// connection.
    pub fn is_draining(&self) -> bool {
        self.shared.lock_state().proto.is_draining()
    }

    /// Closes the connection at once; calls in flight fail with UNAVAILABLE.
    pub fn close(&self) {
        self.shared.terminate(Status::unavailable("the client closed the connection"));
    }
}

/// A unary call's answer, and when the connection read it.
#[derive(Debug)]
pub(crate) struct Answered {
    pub(crate) response: Response<Bytes>,
    /// When the reader's pass read the answer (one clock read for every answer of that read):
    /// a caller timing its call takes its end from here instead of reading the clock again.
    pub(crate) received_at: Instant,
}

/// How a unary call failed.
#[derive(Debug)]
pub(crate) struct Failure {
    /// What the caller sees.
    pub(crate) status: Status,
    /// The server certainly never started the call: it was never written, or the server's GoAway
    /// refused it. Such a call may be sent again on another connection.
    pub(crate) not_started: bool,
}

/// Decodes a unary response's message, keeping its metadata.
pub(crate) fn decode_response_parts<Resp: prost::Message + Default>(response: Response<Bytes>) -> Result<Response<Resp>, Status> {
    let (message, metadata, trailers) = response.into_parts();
    Ok(Response::new(decode_response(message)?)
        .with_metadata(metadata)
        .with_trailers(trailers))
}

/// Decodes a unary response message.
pub(crate) fn decode_response<Resp: prost::Message + Default>(message: Bytes) -> Result<Resp, Status> {
    Resp::decode(message).map_err(|err| {
        Status::internal(format!(
            "could not decode the response message: {err}; do client and server use the same .proto?"
        ))
    })
}
