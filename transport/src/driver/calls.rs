//! The driver's record of each call: a unary call's outcome and waker (client), a streaming
//! call's mailbox (both sides) and a running handler (server). It is the `X` of the protocol's
//! call table (`protocol::CallTable`), kept in the same slot as the call's protocol state, so a
//! frame costs one lookup for the protocol and the driver together.
//!
//! It lives inside the connection's state lock. The reader fills records and collects the wakers
//! to wake once the lock is released; calls, receivers and senders poll their record. Memory per
//! mailbox is bounded by the protocol's flow-control window: the peer may only send while it has
//! window, and window comes back only as the receiver drains. The table grows once to the
//! connection's concurrency, so the steady state allocates nothing per call.

use std::collections::VecDeque;
use std::task::{Context, Poll, Waker};

use std::time::Instant;

use bytes::Bytes;

use crate::protocol::{CallRecord, CallTable, Kept};
use crate::status::{Code, Status};
use crate::wire::{CallId, Metadata};

/// How a unary call ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The response message (OK status), with the head metadata and the trailers.
    Response {
        message: Bytes,
        metadata: Metadata,
        trailers: Metadata,
        /// When the reader's pass read the answer: its one clock read serves every answer of
        /// that read, so a caller timing its call needs no clock read of its own.
        received_at: Instant,
    },
    /// A non-OK status, or a transport failure mapped to one.
    Failed(Status),
    /// The server's GoAway refused the call: it never started, so it may be sent again elsewhere.
    Refused(Status),
}

/// What a receiver gets from [`Calls::poll_recv`].
#[derive(Debug)]
pub(crate) enum Received {
    /// Messages, now in the receiver's batch.
    Messages,
    /// The stream ended normally, with the trailing metadata of the final status if one came.
    End(Option<Metadata>),
    /// The call failed.
    Failed(Status),
}

/// A streaming call's mailbox.
#[derive(Debug, Default)]
struct Mailbox {
    inbox: VecDeque<Bytes>,
    /// Bytes in `inbox`.
    buffered: usize,
    /// The peer sends no more messages.
    ended: bool,
    /// How the call ended, once it has (OK included).
    status: Option<Status>,
    recv_waker: Option<Waker>,
    send_waker: Option<Waker>,
    /// (client) The response head's metadata, once the head arrived (until the receiver takes
    /// it). (server) Trailers a handler set for its final OK status.
    metadata: Option<Metadata>,
    /// (client) The response head arrived.
    head: bool,
    /// (server) The handler's task is being polled in a send scope that may hold messages of
    /// the call not yet queued (`streaming/scope.rs`): a send from elsewhere waits for its end.
    batching: bool,
    /// Received messages go straight in from the protocol's frame loop
    /// ([`CallRecord::keep_message`]): no event queued before carries messages of the call any
    /// more (a server's, from its Request's dispatch; a client's, from its response head's).
    direct: bool,
    /// An [`Event::Arrived`](crate::protocol::Event::Arrived) for the receiver's waker is queued.
    arrival_queued: bool,
}

/// What a call waits for.
#[derive(Debug, Default)]
enum Body {
    /// Nothing (a server's unary call: only its handler is recorded).
    #[default]
    None,
    /// (client) A unary call's outcome. `held` is a response that came without `END_STREAM`
    /// (message and head metadata), waiting for the OK status that carries its trailers.
    Unary {
        waker: Option<Waker>,
        outcome: Option<Outcome>,
        held: Option<(Bytes, Metadata)>,
    },
    /// A streaming call's messages.
    Stream(Mailbox),
}

/// One call's record. `H` is the handle of a running handler (tokio's `AbortHandle`; `()` in
/// the loom models).
#[derive(Debug)]
pub(crate) struct Record<H> {
    body: Body,
    handler: Option<H>,
}

impl<H> Default for Record<H> {
    fn default() -> Self {
        Self {
            body: Body::None,
            handler: None,
        }
    }
}

impl<H> CallRecord for Record<H> {
    fn is_idle(&self) -> bool {
        matches!(self.body, Body::None) && self.handler.is_none()
    }

    /// A stream's message goes into its mailbox here, in the protocol's frame loop: no event is
    /// queued and dispatched for it, and the call is not looked up a second time. A receiver
    /// waiting for messages is told once, by one `Event::Arrived` per read pass.
    #[inline]
    fn keep_message(&mut self, message: Bytes, end_stream: bool) -> Kept {
        match &mut self.body {
            Body::Stream(mailbox) if mailbox.direct => {
                mailbox.buffered += message.len();
                mailbox.inbox.push_back(message);
                mailbox.ended |= end_stream;
                let wake = !mailbox.arrival_queued && mailbox.recv_waker.is_some();
                mailbox.arrival_queued |= wake;
                Kept::Kept {
                    wake,
                    held: mailbox.buffered,
                }
            }
            _ => Kept::Declined(message),
        }
    }
}

/// What a call's record held when it was removed.
#[derive(Debug)]
pub(crate) struct Removed<H> {
    /// (server) The running handler, to abort (or forget, when it is the caller).
    pub(crate) handler: Option<H>,
    /// Bytes its mailbox still buffered, to credit back.
    pub(crate) buffered: usize,
    /// (server) Trailers the handler set for its final OK status.
    pub(crate) trailers: Option<Metadata>,
}

/// Every call's record, in the protocol's call table.
pub(crate) type Calls<H> = CallTable<Record<H>>;

impl<H> Calls<H> {
    fn mailbox(&mut self, call_id: CallId) -> Option<&mut Mailbox> {
        match &mut self.record_mut(call_id)?.body {
            Body::Stream(mailbox) => Some(mailbox),
            _ => None,
        }
    }

    // --- unary calls (client) ---

    /// A unary call starts waiting for its outcome.
    pub(crate) fn insert_unary(&mut self, call_id: CallId, waker: Option<Waker>) {
        self.record_or_insert(call_id).body = Body::Unary {
            waker,
            outcome: None,
            held: None,
        };
    }

    /// Records a unary call's outcome; returns the waker to wake once the lock is released.
    pub(crate) fn complete(&mut self, call_id: CallId, new: Outcome) -> Option<Waker> {
        match &mut self.record_mut(call_id)?.body {
            Body::Unary { waker, outcome, .. } => {
                outcome.get_or_insert(new);
                waker.take()
            }
            _ => None,
        }
    }

    /// Holds a unary response that came without `END_STREAM` until its final status.
    pub(crate) fn hold_response(&mut self, call_id: CallId, message: Bytes, metadata: Metadata) {
        if let Some(Record {
            body: Body::Unary { held, .. },
            ..
        }) = self.record_mut(call_id)
        {
            *held = Some((message, metadata));
        }
    }

    /// Ends a unary call with its final status: OK completes a held response with `status`'s
    /// metadata as its trailers; OK with nothing held is a server bug reported as INTERNAL;
    /// an error status fails the call. `refused` marks a call the server's GoAway refused;
    /// `received_at` is when the status was read.
    pub(crate) fn finish_unary(&mut self, call_id: CallId, status: Status, refused: bool, received_at: Instant) -> Option<Waker> {
        let held = match &mut self.record_mut(call_id)?.body {
            Body::Unary { held, .. } => held.take(),
            _ => return None,
        };
        let outcome = match (status.code(), held) {
            (Code::Ok, Some((message, metadata))) => Outcome::Response {
                message,
                metadata,
                trailers: status.metadata().clone(),
                received_at,
            },
            (Code::Ok, None) => Outcome::Failed(Status::internal("the server ended a unary call without a response message")),
            _ if refused => Outcome::Refused(status),
            _ => Outcome::Failed(status),
        };
        self.complete(call_id, outcome)
    }

    /// Takes the outcome if it is there (removing the slot), or registers the waker.
    pub(crate) fn poll_outcome(&mut self, call_id: CallId, cx: &mut Context<'_>) -> Poll<Outcome> {
        let Some(Record {
            body: Body::Unary { waker, outcome, .. },
            ..
        }) = self.record_mut(call_id)
        else {
            return Poll::Ready(Outcome::Failed(Status::internal("call slot vanished; this is a Volley bug")));
        };
        if let Some(outcome) = outcome.take() {
            self.end_unary(call_id);
            return Poll::Ready(outcome);
        }
        if !waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            *waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }

    /// Removes a unary call's slot; returns whether it was still waiting (no outcome yet).
    pub(crate) fn remove_unary(&mut self, call_id: CallId) -> bool {
        let waiting = matches!(
            self.record_mut(call_id),
            Some(Record {
                body: Body::Unary { outcome: None, .. },
                ..
            })
        );
        self.end_unary(call_id);
        waiting
    }

    /// Empties a unary call's record in place (no copy of the record out of the table) and frees
    /// its slot if the protocol is done with the call.
    fn end_unary(&mut self, call_id: CallId) {
        if let Some(record) = self.record_mut(call_id) {
            record.body = Body::None;
        }
        self.release_record(call_id);
    }

    // --- streams ---

    /// Opens a call's mailbox (if it is not there yet).
    pub(crate) fn open_stream(&mut self, call_id: CallId) {
        let record = self.record_or_insert(call_id);
        if !matches!(record.body, Body::Stream(_)) {
            record.body = Body::Stream(Mailbox::default());
        }
    }

    /// (server) Opens the mailbox of a call whose Request is being dispatched, for the request
    /// messages that follow it: they may go straight in from now on.
    pub(crate) fn open_request_stream(&mut self, call_id: CallId) {
        self.open_stream(call_id);
        if let Some(mailbox) = self.mailbox(call_id) {
            mailbox.direct = true;
        }
    }

    /// Whether the call has a mailbox.
    pub(crate) fn is_stream(&mut self, call_id: CallId) -> bool {
        self.record_mut(call_id)
            .is_some_and(|record| matches!(record.body, Body::Stream(_)))
    }

    /// Queues a received message; returns the mailbox's buffered bytes, or `None` if there is
    /// no mailbox (the caller then credits the bytes back at once).
    pub(crate) fn push(&mut self, call_id: CallId, message: Bytes, end: bool, wakers: &mut Vec<Waker>) -> Option<usize> {
        let mailbox = self.mailbox(call_id)?;
        mailbox.buffered += message.len();
        mailbox.inbox.push_back(message);
        mailbox.ended |= end;
        wakers.extend(mailbox.recv_waker.take());
        Some(mailbox.buffered)
    }

    /// (client) The response head arrived with `metadata`.
    pub(crate) fn head(&mut self, call_id: CallId, metadata: Metadata, wakers: &mut Vec<Waker>) {
        if let Some(mailbox) = self.mailbox(call_id) {
            mailbox.head = true;
            // The head's event is being dispatched: the messages after it may go straight in.
            mailbox.direct = true;
            mailbox.metadata = Some(metadata);
            wakers.extend(mailbox.recv_waker.take());
        }
    }

    /// Messages went straight into the call's mailbox (`Event::Arrived`): the receiver's waker,
    /// to wake once the lock is released.
    pub(crate) fn arrived(&mut self, call_id: CallId, wakers: &mut Vec<Waker>) {
        if let Some(mailbox) = self.mailbox(call_id) {
            mailbox.arrival_queued = false;
            wakers.extend(mailbox.recv_waker.take());
        }
    }

    /// (client) Whether the response head arrived, or the call ended without one; registers
    /// the waker otherwise. Takes the head's metadata the first time.
    pub(crate) fn poll_head(&mut self, call_id: CallId, cx: &mut Context<'_>) -> Poll<Option<Metadata>> {
        let Some(mailbox) = self.mailbox(call_id) else {
            return Poll::Ready(None);
        };
        if mailbox.head || mailbox.ended || mailbox.status.is_some() {
            return Poll::Ready(mailbox.metadata.take());
        }
        mailbox.recv_waker = Some(cx.waker().clone());
        Poll::Pending
    }

    /// (client) Takes the response head's metadata if the head arrived and it was not taken yet.
    pub(crate) fn take_head_metadata(&mut self, call_id: CallId) -> Option<Metadata> {
        self.mailbox(call_id).filter(|mailbox| mailbox.head)?.metadata.take()
    }

    /// (server) Keeps `trailers` for the call's final OK status.
    pub(crate) fn set_trailers(&mut self, call_id: CallId, trailers: Metadata) {
        if let Some(mailbox) = self.live_mailbox(call_id) {
            mailbox.metadata = Some(trailers);
        }
    }

    /// The peer half-closed.
    pub(crate) fn end(&mut self, call_id: CallId, wakers: &mut Vec<Waker>) {
        if let Some(mailbox) = self.mailbox(call_id) {
            mailbox.ended = true;
            wakers.extend(mailbox.recv_waker.take());
        }
    }

    /// The call ended with `status`: receivers see the end (or the error) after what is buffered;
    /// senders stop.
    pub(crate) fn finish(&mut self, call_id: CallId, status: Status, wakers: &mut Vec<Waker>) {
        if let Some(mailbox) = self.mailbox(call_id) {
            mailbox.ended = true;
            mailbox.status.get_or_insert(status);
            wakers.extend(mailbox.recv_waker.take());
            wakers.extend(mailbox.send_waker.take());
        }
    }

    /// Credit arrived for `call_id` (or the connection): wake the senders waiting for it.
    pub(crate) fn credit(&mut self, call_id: CallId, wakers: &mut Vec<Waker>) {
        if call_id == CallId::CONNECTION {
            for record in self.records_mut() {
                if let Body::Stream(mailbox) = &mut record.body {
                    wakers.extend(mailbox.send_waker.take());
                }
            }
        } else if let Some(mailbox) = self.mailbox(call_id) {
            wakers.extend(mailbox.send_waker.take());
        }
    }

    /// Takes every queued message, the end, or the failure; registers the waker otherwise.
    ///
    /// Messages are handed over by swapping the mailbox's queue with `batch` (empty: the
    /// receiver hands its batch out before it comes back), bytes and all: the receiver credits
    /// them back as it hands them out. So a receiver takes the lock once per read pass of
    /// messages, and no message is moved one by one.
    pub(crate) fn poll_recv(&mut self, call_id: CallId, cx: &mut Context<'_>, batch: &mut VecDeque<Bytes>) -> Poll<Received> {
        let Some(mailbox) = self.mailbox(call_id) else {
            return Poll::Ready(Received::Failed(Status::cancelled("the call has ended")));
        };
        if !mailbox.inbox.is_empty() {
            debug_assert!(batch.is_empty(), "a receiver comes back with its batch handed out");
            std::mem::swap(&mut mailbox.inbox, batch);
            mailbox.buffered = 0;
            return Poll::Ready(Received::Messages);
        }
        match &mailbox.status {
            Some(status) if status.code() != Code::Ok => return Poll::Ready(Received::Failed(status.clone())),
            Some(status) => return Poll::Ready(Received::End(Some(status.metadata().clone()))),
            None if mailbox.ended => return Poll::Ready(Received::End(None)),
            None => {}
        }
        mailbox.recv_waker = Some(cx.waker().clone());
        Poll::Pending
    }

    /// The call's failure, if it has failed (a sender checks before sending).
    pub(crate) fn failure(&mut self, call_id: CallId) -> Option<&Status> {
        self.mailbox(call_id)?.status.as_ref().filter(|s| s.code() != Code::Ok)
    }

    /// Registers a sender waiting for credit.
    pub(crate) fn wait_for_credit(&mut self, call_id: CallId, cx: &mut Context<'_>) {
        if let Some(mailbox) = self.live_mailbox(call_id) {
            mailbox.send_waker = Some(cx.waker().clone());
        }
    }

    /// The call's mailbox, opened if it has none, while the call still has a slot (open in the
    /// protocol or recorded): a handler acting on a call that has already ended (cancelled
    /// before its abort took effect) must not take a slot nothing would free.
    fn live_mailbox(&mut self, call_id: CallId) -> Option<&mut Mailbox> {
        self.record_mut(call_id)?;
        self.open_stream(call_id);
        self.mailbox(call_id)
    }

    /// A send scope of the call's handler may hold its messages from now until
    /// [`Calls::end_batching`].
    pub(crate) fn begin_batching(&mut self, call_id: CallId) {
        if let Some(mailbox) = self.live_mailbox(call_id) {
            mailbox.batching = true;
        }
    }

    /// The send scope ended with its messages queued: returns the sender that waited for it.
    pub(crate) fn end_batching(&mut self, call_id: CallId) -> Option<Waker> {
        let mailbox = self.mailbox(call_id)?;
        mailbox.batching = false;
        mailbox.send_waker.take()
    }

    /// Whether a send scope of the call's handler may hold messages not yet queued.
    pub(crate) fn is_batching(&mut self, call_id: CallId) -> bool {
        self.mailbox(call_id).is_some_and(|mailbox| mailbox.batching)
    }

    /// Removes the call's mailbox (its handler, if any, stays recorded); returns the bytes still
    /// buffered in it, to credit back.
    pub(crate) fn remove_stream(&mut self, call_id: CallId, wakers: &mut Vec<Waker>) -> usize {
        let Some(record) = self.record_mut(call_id) else { return 0 };
        let buffered = match std::mem::take(&mut record.body) {
            Body::Stream(mailbox) => {
                wakers.extend(mailbox.recv_waker);
                wakers.extend(mailbox.send_waker);
                mailbox.buffered
            }
            other => {
                record.body = other;
                0
            }
        };
        self.release_record(call_id);
        buffered
    }

    // --- handlers (server) ---

    /// Records a call's running handler.
    pub(crate) fn set_handler(&mut self, call_id: CallId, handler: H) {
        self.record_or_insert(call_id).handler = Some(handler);
    }

    /// Removes the whole record of a call that ended (answered or cancelled), in one lookup.
    pub(crate) fn take_call(&mut self, call_id: CallId, wakers: &mut Vec<Waker>) -> Removed<H> {
        // Emptied in place: a record is ~190 bytes, and a server ends every call here.
        let Some(record) = self.record_mut(call_id) else {
            return Removed {
                handler: None,
                buffered: 0,
                trailers: None,
            };
        };
        let handler = record.handler.take();
        let (buffered, trailers) = match &mut record.body {
            Body::Stream(mailbox) => {
                wakers.extend(mailbox.recv_waker.take());
                wakers.extend(mailbox.send_waker.take());
                (mailbox.buffered, mailbox.metadata.take())
            }
            Body::Unary { .. } | Body::None => (0, None),
        };
        record.body = Body::None;
        self.release_record(call_id);
        Removed {
            handler,
            buffered,
            trailers,
        }
    }

    /// Fails every call, for a connection that ended: waiting unary calls and streams get
    /// `status`; every handler is returned, to drop.
    pub(crate) fn fail_all(&mut self, status: &Status, wakers: &mut Vec<Waker>, handlers: &mut Vec<H>) {
        for record in self.records_mut() {
            match &mut record.body {
                Body::Unary { waker, outcome, .. } => {
                    if outcome.is_none() {
                        *outcome = Some(Outcome::Failed(status.clone()));
                        wakers.extend(waker.take());
                    }
                }
                Body::Stream(mailbox) => {
                    mailbox.ended = true;
                    mailbox.status.get_or_insert_with(|| status.clone());
                    wakers.extend(mailbox.recv_waker.take());
                    wakers.extend(mailbox.send_waker.take());
                }
                Body::None => {}
            }
            handlers.extend(record.handler.take());
        }
        self.release_idle_records();
    }
}

#[cfg(all(test, loom))]
mod loom_models;

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// Trailers or a credit wait for a call that has ended take no slot: nothing would free it.
    #[test]
    fn a_call_that_has_ended_gets_no_new_record() {
        let mut calls = Calls::<()>::new();
        calls.set_trailers(CallId(9), Metadata::new());
        assert_eq!(calls.occupied(), 0);
        let waker = std::task::Waker::noop();
        calls.wait_for_credit(CallId(9), &mut Context::from_waker(waker));
        assert_eq!(calls.occupied(), 0);
    }

    /// A client's mailbox takes messages straight from the frame loop only once its response
    /// head's event has been handled (a message behind the head would otherwise overtake the
    /// head's own message, still in the event queue), and asks for one wake per waiting receiver.
    #[test]
    fn a_client_mailbox_keeps_messages_only_after_its_head_and_asks_for_one_wake() {
        let mut calls = Calls::<()>::new();
        let id = CallId(1);
        calls.open_stream(id);
        let keep = |calls: &mut Calls<()>| calls.record_mut(id).unwrap().keep_message(Bytes::from_static(b"m"), false);
        assert!(matches!(keep(&mut calls), Kept::Declined(_)));
        let mut wakers = Vec::new();
        calls.head(id, Metadata::new(), &mut wakers);
        assert!(matches!(keep(&mut calls), Kept::Kept { wake: false, held: 1 }));
        let mut batch = VecDeque::new();
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(calls.poll_recv(id, &mut cx, &mut batch).is_ready());
        assert_eq!(batch.len(), 1);
        batch.clear();
        assert!(calls.poll_recv(id, &mut cx, &mut batch).is_pending());
        assert!(matches!(keep(&mut calls), Kept::Kept { wake: true, held: 1 }));
        assert!(matches!(keep(&mut calls), Kept::Kept { wake: false, held: 2 }));
        wakers.clear();
        calls.arrived(id, &mut wakers);
        assert_eq!(wakers.len(), 1);
    }

    /// A server's mailbox, opened when its Request is dispatched, takes the messages after it
    /// straight away.
    #[test]
    fn a_server_mailbox_keeps_messages_from_its_request_on() {
        let mut calls = Calls::<()>::new();
        calls.open_request_stream(CallId(2));
        let kept = calls.record_mut(CallId(2)).unwrap().keep_message(Bytes::from_static(b"mm"), true);
        assert!(matches!(kept, Kept::Kept { wake: false, held: 2 }));
    }

    /// A record stays small enough to keep a stream's mailbox inline (opening a stream
    /// allocates nothing): at most 200 bytes (192 before a unary answer carried the time its
    /// read pass read it, which saves a balanced channel's call a clock read).
    #[test]
    fn a_record_is_at_most_200_bytes() {
        let size = std::mem::size_of::<Record<tokio::task::AbortHandle>>();
        println!("one call record: {size} bytes");
        assert!(size <= 200, "{size} bytes: a call slot grew");
    }
}
