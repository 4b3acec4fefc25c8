//! `Streaming`: the receiving half of a stream.

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use futures_core::Stream;

use super::Deadline;
use crate::driver::{Flush, Received, Shared};
use crate::observe::CallObserver;
use crate::status::{Code, Status};
use crate::wire::{CallId, Metadata};

/// A stream of messages arriving on a call: the responses of a server-streaming or bidirectional
/// call on the client, the requests of a client-streaming or bidirectional call on the server.
///
/// Read it with [`Streaming::message`] or as a [`futures_core::Stream`]. Each message read
/// returns its bytes to the sender's flow-control window. On the client, dropping it before the
/// end cancels the call.
pub struct Streaming<T> {
    shared: Arc<Shared>,
    call_id: CallId,
    first: Option<Bytes>,
    /// Messages taken from the call's mailbox (all it held, swapped out under one lock), handed
    /// out without the connection's lock.
    batch: VecDeque<Bytes>,
    /// Bytes of `batch` messages handed out and not yet credited back: credited after every
    /// [`CREDIT_EVERY`] messages, and when the receiver comes back for more.
    handed_out: usize,
    /// Messages counted in `handed_out`.
    handed_count: usize,
    deadline: Deadline,
    cancel_on_drop: bool,
    outcome: Option<Code>,
    /// The status a failed stream ended with, returned again if it is polled after the end.
    failure: Option<Status>,
    trailers: Option<Metadata>,
    /// (client) The response head's metadata, once the head arrived.
    metadata: Option<Metadata>,
    /// On the client, the call's span and metrics, finished when the stream is dropped.
    observer: CallObserver,
    /// (client) What a client interceptor runs when the call ends; see [`Streaming::on_end`].
    on_end: Option<OnEnd>,
    _message: PhantomData<fn() -> T>,
}

/// A callback given the code a client stream ended with.
pub(crate) type OnEnd = Box<dyn FnOnce(Code) + Send + Sync>;

impl<T> std::fmt::Debug for Streaming<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Streaming")
            .field("call_id", &self.call_id)
            .field("outcome", &self.outcome)
            .finish()
    }
}

impl<T: prost::Message + Default> Streaming<T> {
    pub(crate) fn new(shared: Arc<Shared>, call_id: CallId, first: Option<Bytes>, deadline: Deadline, client: bool) -> Self {
        Self {
            shared,
            call_id,
            first,
            batch: VecDeque::new(),
            handed_out: 0,
            handed_count: 0,
            deadline,
            cancel_on_drop: client,
            outcome: None,
            failure: None,
            trailers: None,
            metadata: None,
            observer: CallObserver::none(),
            on_end: None,
            _message: PhantomData,
        }
    }

    /// Runs `on_end` with the call's code when the (client) stream is dropped.
    pub(crate) fn on_end(&mut self, on_end: OnEnd) {
        self.on_end = Some(on_end);
    }

    /// Watches the call with `observer` (the client's span and metrics).
    pub(crate) fn observed(mut self, observer: CallObserver) -> Self {
        self.observer = observer;
        self
    }

    /// The next message; `Ok(None)` at the end of the stream; `Err` with the call's status if it
    /// failed (on the client, the server's status).
    pub async fn message(&mut self) -> Result<Option<T>, Status> {
        std::future::poll_fn(|cx| self.poll_message(cx)).await
    }

    /// (client) The metadata of the server's response head, once the head has arrived: at once
    /// for a stream returned by a server-streaming call, after the first message (or the end)
    /// for a bidirectional one. `None` if the call ended without a head (a failure, or an
    /// empty stream).
    pub fn metadata(&self) -> Option<&Metadata> {
        self.metadata.as_ref()
    }

    /// (client) Waits until the server's response head arrived (the handler took the call) or
    /// the call ended; fails with the call's status if it failed before its head (an unknown
    /// method, a refusal, a handler that failed at once) or the deadline passed.
    pub(crate) async fn wait_for_head(&mut self) -> Result<(), Status> {
        std::future::poll_fn(|cx| {
            let mut state = self.shared.lock_state();
            let Poll::Ready(metadata) = state.calls().poll_head(self.call_id, cx) else {
                drop(state);
                if self.deadline.poll_expired(cx) {
                    return Poll::Ready(Err(self.expire()));
                }
                return Poll::Pending;
            };
            let failure = match metadata {
                Some(_) => None,
                None => state.calls().failure(self.call_id).cloned(),
            };
            drop(state);
            self.metadata = metadata;
            Poll::Ready(match failure {
                Some(status) => {
                    self.outcome = Some(status.code());
                    self.failure = Some(status.clone());
                    Err(status)
                }
                None => Ok(()),
            })
        })
        .await
    }

    /// The trailing metadata of the call's final status, once the stream has ended with OK (a
    /// failed call's metadata is on its `Status`).
    pub fn trailers(&self) -> Option<&Metadata> {
        self.trailers.as_ref()
    }

    /// Reads exactly one message and the end of the stream: the response of a client-streaming
    /// call.
    pub async fn single(mut self) -> Result<T, Status> {
        let message = self
            .message()
            .await?
            .ok_or_else(|| Status::internal("the stream ended without its message"))?;
        match self.message().await? {
            None => Ok(message),
            Some(_) => Err(Status::internal("the stream carried more than one message")),
        }
    }

    /// The common case inline: a message of the batch taken under the last lock. (The batch is
    /// empty while `first` is set and once the stream has an outcome.)
    #[inline(always)]
    fn poll_message(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<T>, Status>> {
        match self.batch.pop_front() {
            Some(bytes) => Poll::Ready(self.hand_out(bytes)),
            None => self.poll_mailbox(cx),
        }
    }

    /// The first message, the end, or the mailbox's next batch under the lock.
    #[inline(never)]
    fn poll_mailbox(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<T>, Status>> {
        if let Some(bytes) = self.first.take() {
            return Poll::Ready(decode(bytes).map(Some));
        }
        if let Some(code) = self.outcome {
            return Poll::Ready(if code == Code::Ok {
                Ok(None)
            } else {
                Err(self
                    .failure
                    .clone()
                    .unwrap_or_else(|| Status::new(code, "the stream already failed")))
            });
        }
        let mut state = self.shared.lock_state();
        // The messages handed out since the last credit, credited under the lock taken anyway.
        if self.handed_out > 0 {
            self.handed_count = 0;
            state.proto.release_received(self.call_id, std::mem::take(&mut self.handed_out));
        }
        if self.cancel_on_drop && self.metadata.is_none() {
            self.metadata = state.calls().take_head_metadata(self.call_id);
        }
        let received = match state.calls().poll_recv(self.call_id, cx, &mut self.batch) {
            Poll::Ready(received) => received,
            Poll::Pending => {
                self.shared.send_control(state);
                if self.deadline.poll_expired(cx) {
                    return Poll::Ready(Err(self.expire()));
                }
                return Poll::Pending;
            }
        };
        self.shared.send_control(state);
        Poll::Ready(match received {
            Received::Messages => match self.batch.pop_front() {
                Some(bytes) => self.hand_out(bytes),
                None => Err(Status::internal("a stream's mailbox handed over no message; this is a Volley bug")),
            },
            Received::End(trailers) => {
                self.trailers = trailers;
                self.outcome = Some(Code::Ok);
                Ok(None)
            }
            Received::Failed(status) => {
                self.outcome = Some(status.code());
                self.failure = Some(status.clone());
                Err(status)
            }
        })
    }

    /// Hands out a message of the batch, crediting its bytes back with the next
    /// [`CREDIT_EVERY`] - 1 messages' (or when the receiver next takes the lock).
    #[inline(always)]
    fn hand_out(&mut self, bytes: Bytes) -> Result<Option<T>, Status> {
        self.handed_out += bytes.len();
        self.handed_count += 1;
        if self.handed_count >= CREDIT_EVERY {
            self.credit_handed_out();
        }
        decode(bytes).map(Some)
    }

    /// Credits back the bytes of the batch's messages handed out so far.
    #[inline(never)]
    fn credit_handed_out(&mut self) {
        self.handed_count = 0;
        let len = std::mem::take(&mut self.handed_out);
        let mut state = self.shared.lock_state();
        state.proto.release_received(self.call_id, len);
        self.shared.send_control(state);
    }

    /// The deadline passed: the call is cancelled on the wire and fails on both halves.
    fn expire(&mut self) -> Status {
        let status = Status::deadline_exceeded("the streaming call did not finish within its deadline");
        let mut wakers = Vec::new();
        let mut state = self.shared.lock_state();
        state.calls().finish(self.call_id, status.clone(), &mut wakers);
        if self.cancel_on_drop && state.proto.cancel_call(self.call_id) {
            self.shared.queue_control(&mut state);
        }
        self.shared.flush(state, Flush::Wake);
        wakers.into_iter().for_each(Waker::wake);
        self.outcome = Some(Code::DeadlineExceeded);
        self.failure = Some(status.clone());
        status
    }
}

/// Messages a receiver hands out between two credits (32): the lock and the call's lookup are
/// paid once per 32 messages, and a receiver holds back at most 32 messages' credit (never more
/// than the window, which bounds the mailbox its batch came from).
const CREDIT_EVERY: usize = 32;

fn decode<T: prost::Message + Default>(bytes: Bytes) -> Result<T, Status> {
    T::decode(bytes).map_err(|err| {
        Status::internal(format!(
            "a stream message does not decode: {err}; do both sides use the same .proto?"
        ))
    })
}

impl<T: prost::Message + Default> Stream for Streaming<T> {
    type Item = Result<T, Status>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.outcome.is_some_and(|code| code != Code::Ok) && this.first.is_none() {
            return Poll::Ready(None);
        }
        this.poll_message(cx).map(Result::transpose)
    }
}

impl<T> Drop for Streaming<T> {
    fn drop(&mut self) {
        let mut wakers = Vec::new();
        let mut state = self.shared.lock_state();
        let batched: usize = self.batch.iter().map(Bytes::len).sum::<usize>() + self.handed_out;
        let buffered = state.calls().remove_stream(self.call_id, &mut wakers) + batched;
        state.proto.release_received(self.call_id, buffered);
        let cancelled = self.cancel_on_drop && state.proto.cancel_call(self.call_id);
        // Wakes the writer; no write from `Drop`.
        self.shared.send_control(state);
        if self.cancel_on_drop {
            let code = if cancelled {
                Code::Cancelled
            } else {
                self.outcome.unwrap_or(Code::Ok)
            };
            self.shared.stats.call_finished(code);
            self.observer.finish(self.shared.recorder(), code);
            self.shared.call_slots_freed(1);
            if let Some(on_end) = self.on_end.take() {
                on_end(code);
            }
        }
        wakers.into_iter().for_each(Waker::wake);
        // The last call of a dropped client closes its connection.
        self.shared.close_if_drained();
    }
}
