//! `StreamSender`: the sending half of a stream.

use std::marker::PhantomData;
use std::sync::Arc;
use std::task::Poll;

use super::Deadline;
use crate::driver::{Flush, Shared, frame_too_large};
use crate::status::Status;
use crate::wire::{Body, CallId, Flags, FrameKind, encode_message_frame};

/// Sends the messages of a stream: the requests of a client-streaming or bidirectional call on
/// the client, the responses of a server-streaming or bidirectional call on the server.
///
/// [`StreamSender::send`] waits while the receiver has granted no room (flow control). Messages
/// sent back to back leave in few write syscalls; [`StreamSender::send_now`] writes at once. On
/// the client, [`StreamSender::close`] (or dropping the sender) ends the request stream.
pub struct StreamSender<T> {
    shared: Arc<Shared>,
    call_id: CallId,
    /// (server) The response head still has to go out before the first message.
    head_pending: bool,
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
            head_pending: !client,
            client,
            closed: false,
            deadline,
            _message: PhantomData,
        }
    }

    /// Sends one message, waiting for flow-control room. The message may wait in the write queue
    /// for a moment so that a burst of messages shares a write.
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
        std::future::poll_fn(|cx| {
            let mut state = self.shared.lock_state();
            if let Some(status) = &state.closed {
                return Poll::Ready(Err(status.clone()));
            }
            if let Some(status) = state.calls.failure(self.call_id) {
                return Poll::Ready(Err(status.clone()));
            }
            let len = body.as_ref().map_or(0, Body::len);
            let max = state.proto.peer_settings().max_frame_size;
            if len > max as usize {
                return Poll::Ready(Err(frame_too_large(len, max)));
            }
            match state.proto.try_send_message(self.call_id, len) {
                Ok(true) => {
                    let mut queue = self.shared.queue.lock();
                    if std::mem::take(&mut self.head_pending) {
                        encode_message_frame::<()>(
                            queue.batch(),
                            FrameKind::Response,
                            Flags::NONE,
                            self.call_id,
                            0,
                            |_| {},
                            Body::Empty,
                        );
                    }
                    let body = body.take().unwrap_or(Body::Empty);
                    encode_message_frame(queue.batch(), FrameKind::Message, Flags::NONE, self.call_id, 0, |_| {}, body);
                    drop(queue);
                    // Releases the state, then writes (or wakes the writer).
                    self.shared.flush(state, flush);
                    Poll::Ready(Ok(()))
                }
                Ok(false) => {
                    state.calls.wait_for_credit(self.call_id, cx);
                    drop(state);
                    if self.deadline.poll_expired(cx) {
                        return Poll::Ready(Err(Status::deadline_exceeded(
                            "the streaming call did not finish within its deadline",
                        )));
                    }
                    Poll::Pending
                }
                Err(status) => Poll::Ready(Err(status)),
            }
        })
        .await
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
        if state.closed.is_none() && state.proto.close_local(self.call_id) {
            let mut queue = self.shared.queue.lock();
            encode_message_frame::<()>(
                queue.batch(),
                FrameKind::EndOfStream,
                Flags::NONE,
                self.call_id,
                0,
                |_| {},
                Body::Empty,
            );
            drop(queue);
            self.shared.flush(state, flush);
        }
    }
}

impl<T> Drop for StreamSender<T> {
    fn drop(&mut self) {
        // Wakes the writer; no write from `Drop`.
        self.half_close(Flush::Wake);
    }
}
