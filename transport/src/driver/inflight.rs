//! The client's table of calls waiting for their outcome.
//!
//! It lives inside the connection's state lock: the reader completes a slot and wakes its call;
//! the call's future takes the outcome, or removes its slot when dropped early. The table is
//! sized up front, so the steady state allocates nothing.

use std::task::{Context, Poll, Waker};

use bytes::Bytes;

use crate::protocol::{CallMap, call_map};
use crate::status::Status;
use crate::wire::CallId;

/// How a unary call ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The response message (OK status).
    Response { message: Bytes },
    /// A non-OK status, or a transport failure mapped to one.
    Failed(Status),
    /// The server's GoAway refused the call: it never started, so it may be sent again elsewhere.
    Refused(Status),
}

#[derive(Debug, Default)]
struct Slot {
    waker: Option<Waker>,
    outcome: Option<Outcome>,
}

/// Calls waiting for their outcome, by id.
#[derive(Debug)]
pub(crate) struct InFlight {
    slots: CallMap<Slot>,
}

impl InFlight {
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self { slots: call_map(capacity) }
    }

    pub(crate) fn insert(&mut self, call_id: CallId) {
        self.slots.insert(call_id, Slot::default());
    }

    /// Records the outcome; returns the waker to wake once the lock is released.
    pub(crate) fn complete(&mut self, call_id: CallId, outcome: Outcome) -> Option<Waker> {
        let slot = self.slots.get_mut(&call_id)?;
        if slot.outcome.is_none() {
            slot.outcome = Some(outcome);
        }
        slot.waker.take()
    }

    /// Takes the outcome if it is there (removing the slot), or registers the waker.
    pub(crate) fn poll(&mut self, call_id: CallId, cx: &mut Context<'_>) -> Poll<Outcome> {
        let Some(slot) = self.slots.get_mut(&call_id) else {
            return Poll::Ready(Outcome::Failed(Status::internal("call slot vanished; this is a Volley bug")));
        };
        if let Some(outcome) = slot.outcome.take() {
            self.slots.remove(&call_id);
            return Poll::Ready(outcome);
        }
        if !slot.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            slot.waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }

    /// Removes a call's slot; returns whether it was still waiting (no outcome yet).
    pub(crate) fn remove(&mut self, call_id: CallId) -> bool {
        self.slots.remove(&call_id).is_some_and(|slot| slot.outcome.is_none())
    }

    /// Fails every waiting call with `status`, pushing their wakers to `wakers`.
    pub(crate) fn fail_all(&mut self, status: &Status, wakers: &mut Vec<Waker>) {
        for slot in self.slots.values_mut() {
            if slot.outcome.is_none() {
                slot.outcome = Some(Outcome::Failed(status.clone()));
                wakers.extend(slot.waker.take());
            }
        }
    }

    #[cfg(loom)]
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use std::future::poll_fn;

    use super::*;
    use crate::sync::{Arc, Mutex, lock};

    /// The reader completes a call while the caller polls it: the caller always ends with the
    /// outcome, never hangs, and the slot is gone afterwards.
    #[test]
    fn loom_inflight_completion_races_with_poll() {
        loom::model(|| {
            let table = Arc::new(Mutex::new(InFlight::with_capacity(4)));
            lock(&table).insert(CallId(1));
            let reader = {
                let table = table.clone();
                loom::thread::spawn(move || {
                    let waker = lock(&table).complete(
                        CallId(1),
                        Outcome::Response {
                            message: Bytes::from_static(b"ok"),
                        },
                    );
                    if let Some(waker) = waker {
                        waker.wake();
                    }
                })
            };
            let outcome = loom::future::block_on(poll_fn(|cx| lock(&table).poll(CallId(1), cx)));
            assert!(matches!(outcome, Outcome::Response { message, .. } if message == "ok"));
            reader.join().unwrap();
            assert_eq!(lock(&table).len(), 0);
        });
    }

    /// A caller that gives up races with the reader's completion: either the reader finds no
    /// slot, or the removal sees the outcome; the table ends empty either way.
    #[test]
    fn loom_inflight_cancel_races_with_completion() {
        loom::model(|| {
            let table = Arc::new(Mutex::new(InFlight::with_capacity(4)));
            lock(&table).insert(CallId(1));
            let reader = {
                let table = table.clone();
                loom::thread::spawn(move || lock(&table).complete(CallId(1), Outcome::Failed(Status::cancelled("x"))).is_some())
            };
            let was_waiting = lock(&table).remove(CallId(1));
            let woke = reader.join().unwrap();
            assert!(!woke, "no waker was registered");
            let _ = was_waiting;
            assert_eq!(lock(&table).len(), 0);
        });
    }
}
