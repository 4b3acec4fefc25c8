//! Stream slots: per-call mailboxes for stream messages, shared by the reader (which fills them),
//! receivers (which drain them) and senders (which wait in them for credit).
//!
//! Memory per slot is bounded by the protocol's flow-control window: the peer may only send while
//! it has window, and window comes back only as the receiver drains its slot.

use std::collections::VecDeque;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;

use crate::protocol::{CallMap, call_map};
use crate::status::{Code, Status};
use crate::wire::{CallId, Metadata};

/// One streaming call's mailbox.
#[derive(Debug, Default)]
pub(crate) struct StreamSlot {
    inbox: VecDeque<Bytes>,
    /// Bytes in `inbox`.
    buffered: usize,
    /// The peer sends no more messages.
    ended: bool,
    /// How the call ended, once it has (OK included).
    status: Option<Status>,
    recv_waker: Option<Waker>,
    send_waker: Option<Waker>,
}

/// Stream slots by call id.
#[derive(Debug)]
pub(crate) struct Streams {
    slots: CallMap<StreamSlot>,
}

/// What a receiver gets from [`Streams::poll_recv`].
#[derive(Debug)]
pub(crate) enum Received {
    /// A message.
    Message(Bytes),
    /// The stream ended normally, with the trailing metadata of the final status if one came.
    End(Option<Metadata>),
    /// The call failed.
    Failed(Status),
}

impl Streams {
    pub(crate) fn new() -> Self {
        Self { slots: call_map(0) }
    }

    /// Opens a slot (if it is not there yet).
    pub(crate) fn open(&mut self, call_id: CallId) {
        self.slots.entry(call_id).or_default();
    }

    pub(crate) fn contains(&self, call_id: CallId) -> bool {
        self.slots.contains_key(&call_id)
    }

    /// Queues a received message; returns the slot's buffered bytes, or `None` if there is no
    /// slot (the caller then credits the bytes back at once).
    pub(crate) fn push(&mut self, call_id: CallId, message: Bytes, end: bool, wakers: &mut Vec<Waker>) -> Option<usize> {
        let slot = self.slots.get_mut(&call_id)?;
        slot.buffered += message.len();
        slot.inbox.push_back(message);
        slot.ended |= end;
        wakers.extend(slot.recv_waker.take());
        Some(slot.buffered)
    }

    /// The peer half-closed.
    pub(crate) fn end(&mut self, call_id: CallId, wakers: &mut Vec<Waker>) {
        if let Some(slot) = self.slots.get_mut(&call_id) {
            slot.ended = true;
            wakers.extend(slot.recv_waker.take());
        }
    }

    /// The call ended with `status`: receivers see the end (or the error) after what is buffered;
    /// senders stop. Returns whether there was a slot.
    pub(crate) fn finish(&mut self, call_id: CallId, status: Status, wakers: &mut Vec<Waker>) -> bool {
        let Some(slot) = self.slots.get_mut(&call_id) else { return false };
        slot.ended = true;
        slot.status.get_or_insert(status);
        wakers.extend(slot.recv_waker.take());
        wakers.extend(slot.send_waker.take());
        true
    }

    /// Credit arrived for `call_id` (or the connection): wake the senders waiting for it.
    pub(crate) fn credit(&mut self, call_id: CallId, wakers: &mut Vec<Waker>) {
        if call_id == CallId::CONNECTION {
            wakers.extend(self.slots.values_mut().filter_map(|slot| slot.send_waker.take()));
        } else if let Some(slot) = self.slots.get_mut(&call_id) {
            wakers.extend(slot.send_waker.take());
        }
    }

    /// Takes the next message, the end, or the failure; registers the waker otherwise.
    pub(crate) fn poll_recv(&mut self, call_id: CallId, cx: &mut Context<'_>) -> Poll<Received> {
        let Some(slot) = self.slots.get_mut(&call_id) else {
            return Poll::Ready(Received::Failed(Status::cancelled("the call has ended")));
        };
        if let Some(message) = slot.inbox.pop_front() {
            slot.buffered -= message.len();
            return Poll::Ready(Received::Message(message));
        }
        match &slot.status {
            Some(status) if status.code() != Code::Ok => return Poll::Ready(Received::Failed(status.clone())),
            Some(status) => return Poll::Ready(Received::End(Some(status.metadata().clone()))),
            None if slot.ended => return Poll::Ready(Received::End(None)),
            None => {}
        }
        slot.recv_waker = Some(cx.waker().clone());
        Poll::Pending
    }

    /// The call's failure, if it has failed (a sender checks before sending).
    pub(crate) fn failure(&self, call_id: CallId) -> Option<&Status> {
        self.slots.get(&call_id)?.status.as_ref().filter(|s| s.code() != Code::Ok)
    }

    /// Registers a sender waiting for credit.
    pub(crate) fn wait_for_credit(&mut self, call_id: CallId, cx: &mut Context<'_>) {
        self.slots.entry(call_id).or_default().send_waker = Some(cx.waker().clone());
    }

    /// Removes the slot; returns the bytes still buffered in it (to credit back).
    pub(crate) fn remove(&mut self, call_id: CallId, wakers: &mut Vec<Waker>) -> usize {
        match self.slots.remove(&call_id) {
            Some(slot) => {
                wakers.extend(slot.recv_waker);
                wakers.extend(slot.send_waker);
                slot.buffered
            }
            None => 0,
        }
    }

    /// Fails every stream, for a connection that ended.
    pub(crate) fn fail_all(&mut self, status: &Status, wakers: &mut Vec<Waker>) {
        for slot in self.slots.values_mut() {
            slot.ended = true;
            slot.status.get_or_insert_with(|| status.clone());
            wakers.extend(slot.recv_waker.take());
            wakers.extend(slot.send_waker.take());
        }
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use std::future::poll_fn;

    use super::*;
    use crate::protocol::{CallState, ConnectionWindows, credit_call};
    use crate::sync::{Arc, Mutex, lock};
    use crate::wire::Settings;

    /// A sender out of window waits in its slot while the reader grants credit on another
    /// thread: the sender always wakes and sends, and the windows add up.
    #[test]
    fn loom_a_sender_waiting_for_credit_always_wakes() {
        loom::model(|| {
            let settings = Settings {
                initial_call_window: 100,
                initial_connection_window: 1000,
                ..Settings::default()
            };
            let call = CallState {
                local_open: true,
                remote_open: true,
                head_received: true,
                send_window: 0,
                recv_window: 100,
                unacked: 0,
            };
            let mut streams = Streams::new();
            streams.open(CallId(1));
            let state = Arc::new(Mutex::new((ConnectionWindows::new(&settings, &settings), call, streams)));
            let reader = {
                let state = state.clone();
                loom::thread::spawn(move || {
                    let mut wakers = Vec::new();
                    {
                        let mut guard = lock(&state);
                        let (_, call, streams) = &mut *guard;
                        credit_call(call, 50).unwrap();
                        streams.credit(CallId(1), &mut wakers);
                    }
                    wakers.into_iter().for_each(Waker::wake);
                })
            };
            loom::future::block_on(poll_fn(|cx| {
                let mut guard = lock(&state);
                let (windows, call, streams) = &mut *guard;
                if windows.try_send(call, 10) {
                    Poll::Ready(())
                } else {
                    streams.wait_for_credit(CallId(1), cx);
                    Poll::Pending
                }
            }));
            reader.join().unwrap();
            assert_eq!(lock(&state).1.send_window, 40);
        });
    }
}
