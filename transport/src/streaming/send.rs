//! `StreamSender`: the sending half of a stream.

use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::Poll;

use super::Deadline;
use crate::driver::{Flush, Shared};
use crate::protocol::frame_too_large;
use crate::status::Status;
use crate::wire::{Body, CallId, Metadata};

/// Sends the messages of a stream: the requests of a client-streaming or bidirectional call on
/// the client, the responses of a server-streaming or bidirectional call on the server.
///
/// [`StreamSender::send`] waits while the receiver has granted no room (flow control), and while
/// the connection's write queue is at its cap (the peer reads slower than we send). Messages
/// sent back to back leave in few write syscalls; [`StreamSender::send_now`] writes at once. On
/// the client, [`StreamSender::close`] (or dropping the sender) ends the request stream.
pub struct StreamSender<T> {
    shared: Arc<Shared>,
    call_id: CallId,
    /// (client) Half-close when dropped.
    client: bool,
    closed: bool,
    deadline: Deadline,
    _message: PhantomData<fn(T)>,
}

impl<T> std::fmt::Debug for StreamSender<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamSender")
            .field("call_id", &self.call_id)
            .field("closed", &self.closed)
            .finish()
    }
}

impl<T: prost::Message> StreamSender<T> {
    pub(crate) fn new(shared: Arc<Shared>, call_id: CallId, client: bool, deadline: Deadline) -> Self {
        Self {
            shared,
            call_id,
            client,
            closed: false,
            deadline,
            _message: PhantomData,
        }
    }

    /// Sends one message, waiting for flow-control room.
    ///
    /// When it goes out: the message is queued and the connection's writer task is woken. A
    /// message sent while the writer is idle leaves in the writer's next write, at once (the
    /// wake is the only delay, no timer); messages sent while a write is in progress join the
    /// next batch, so a burst shares few write syscalls. [`StreamSender::send_now`] writes from
    /// the caller's task instead when the writer is idle, saving the hop to the writer task.
    ///
    /// An `Err` means the call is over: the peer cancelled, the deadline passed, or the
    /// connection was lost. On the server, a streaming handler does not have to notice: when
    /// the client cancels or the deadline passes, the handler's task is dropped at its next
    /// wait, whatever it waits on (unlike tonic, where a spawned producer runs on until its next
    /// send fails).
    pub async fn send(&mut self, message: &T) -> Result<(), Status> {
        self.send_with(message, Flush::Wake).await
    }

    /// Sends one message and writes it at once if the connection's writer is idle (the flush
    /// hint).
    pub async fn send_now(&mut self, message: &T) -> Result<(), Status> {
        self.send_with(message, Flush::Direct).await
    }

    async fn send_with(&mut self, message: &T, flush: Flush) -> Result<(), Status> {
        if self.closed {
            return Err(Status::failed_precondition(
                "the stream was closed for sending; do not send after close",
            ));
        }
        let mut body = Some(Body::prepare(message));
        // In its handler's poll, a message goes into the poll's batch without a lock while the
        // window reserved there lasts (`scope.rs`); a flush hint other than `Wake` asks for
        // the per-message path.
        if flush == Flush::Wake && super::scope::try_batch(&self.shared, self.call_id, &mut body) {
            return Ok(());
        }
        // The wait for write-queue room, set only once the queue is found at its cap: the path
        // that finds room registers nothing.
        let mut room = std::pin::pin!(None::<tokio::sync::futures::Notified<'_>>);
        let shared_arc = &self.shared;
        let shared = &**shared_arc;
        std::future::poll_fn(|cx| {
            loop {
                let mut state = shared.lock_state();
                if let Some(status) = &state.closed {
                    return Poll::Ready(Err(status.clone()));
                }
                if let Some(status) = state.calls().failure(self.call_id) {
                    return Poll::Ready(Err(status.clone()));
                }
                let len = body.as_ref().map_or(0, Body::len);
                let max = state.proto.peer_settings().max_frame_size;
                if len > max as usize {
                    return Poll::Ready(Err(frame_too_large(len, max)));
                }
                let in_scope = super::scope::is_owner(shared_arc, self.call_id);
                if !in_scope && state.calls().is_batching(self.call_id) {
                    // The handler's poll, on another thread, holds messages of this call sent
                    // before this one: wait until it has queued them (it wakes us).
                    state.calls().wait_for_credit(self.call_id, cx);
                    drop(state);
                    if self.deadline.poll_expired(cx) {
                        return Poll::Ready(Err(Status::deadline_exceeded(
                            "the streaming call did not finish within its deadline",
                        )));
                    }
                    return Poll::Pending;
                }
                // Checked as the message is appended, before any window is charged: the queue
                // holds at most its cap plus one message, and a handler's poll's batch
                // (PROTOCOL.md section 9).
                let mut queue = shared.queue.lock();
                if in_scope {
                    super::scope::drain(self.call_id, &mut state.proto, queue.batch());
                }
                if !queue.has_room() {
                    drop(queue);
                    drop(state);
                    if self.deadline.poll_expired(cx) {
                        return Poll::Ready(Err(Status::deadline_exceeded(
                            "the streaming call did not finish within its deadline",
                        )));
                    }
                    match room.as_mut().as_pin_mut() {
                        None => {
                            // Registered first, then checked again: room opening in between
                            // is not missed.
                            room.set(Some(shared.room.notified()));
                            if let Some(notified) = room.as_mut().as_pin_mut() {
                                notified.enable();
                            }
                        }
                        Some(notified) => match notified.poll(cx) {
                            Poll::Ready(()) => room.set(None),
                            Poll::Pending => return Poll::Pending,
                        },
                    }
                    continue;
                }
                return match state.proto.send_message(queue.batch(), self.call_id, &mut body) {
                    Ok(true) => {
                        if in_scope && flush == Flush::Wake {
                            super::scope::reserve(self.call_id, &mut state);
                        }
                        // Releases both locks, then writes (or wakes the writer).
                        shared.flush_appended(state, queue, flush);
                        Poll::Ready(Ok(()))
                    }
                    Ok(false) => {
                        drop(queue);
                        state.calls().wait_for_credit(self.call_id, cx);
                        drop(state);
                        if self.deadline.poll_expired(cx) {
                            return Poll::Ready(Err(Status::deadline_exceeded(
                                "the streaming call did not finish within its deadline",
                            )));
                        }
                        Poll::Pending
                    }
                    Err(status) => Poll::Ready(Err(status)),
                };
            }
        })
        .await
    }

    /// (server) Sends the response head now, with `metadata`. The client's server-streaming call
    /// returns once the head arrives; without this the head goes out with the first message, or
    /// when the handler first waits, or with the final status, whichever comes first (so
    /// metadata must be sent before any of those). Fails with FAILED_PRECONDITION once the head
    /// has gone, and on the client.
    pub fn send_head(&mut self, metadata: &Metadata) -> Result<(), Status> {
        if self.client {
            return Err(Status::failed_precondition("a client sends its metadata in CallOptions"));
        }
        if !send_response_head(&self.shared, self.call_id, metadata, Flush::Direct) {
            return Err(Status::failed_precondition(
                "the response head was already sent (with the first message, at the handler's first wait, or by an earlier send_head), or the call is over",
            ));
        }
        Ok(())
    }

    /// (server) Trailing metadata for the call's final status when the handler ends it with OK
    /// (an error's trailers are on its `Status`). Replaces any set before.
    pub fn set_trailers(&mut self, trailers: Metadata) {
        if !self.client {
            self.shared.lock_state().calls().set_trailers(self.call_id, trailers);
        }
    }

    /// (client) Ends the request stream: the server's request stream ends after the messages
    /// already sent. Dropping the sender does the same.
    pub fn close(&mut self) {
        self.half_close(Flush::Direct);
    }
}

impl<T> StreamSender<T> {
    /// Sends EndOfStream once, on the client.
    fn half_close(&mut self, flush: Flush) {
        if std::mem::replace(&mut self.closed, true) || !self.client {
            return;
        }
        let mut state = self.shared.lock_state();
        if state.closed.is_some() {
            return;
        }
        let sent = state.proto.send_end_of_stream(self.shared.queue.lock().batch(), self.call_id);
        if sent {
            self.shared.flush(state, flush);
        }
    }
}

/// (server) Writes the call's response head with `metadata` if it has not gone out yet; returns
/// whether it wrote it.
pub(crate) fn send_response_head(shared: &Shared, call_id: CallId, metadata: &Metadata, flush: Flush) -> bool {
    let mut state = shared.lock_state();
    if state.closed.is_some() || !state.proto.send_response_head(shared.queue.lock().batch(), call_id, metadata) {
        return false;
    }
    shared.flush(state, flush);
    true
}

impl<T> Drop for StreamSender<T> {
    fn drop(&mut self) {
        // Wakes the writer; no write from `Drop`.
        self.half_close(Flush::Wake);
    }
}
