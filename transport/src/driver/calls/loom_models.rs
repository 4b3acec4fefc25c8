//! Loom models of the call records under the connection's state lock: a reader completing or
//! ending a call while its caller polls, cancels or waits for credit, on the one call table.

use std::future::poll_fn;
use std::task::{Poll, Waker};

use bytes::Bytes;

use super::*;
use crate::protocol::{CallState, ConnectionWindows, credit_call};
use crate::sync::{Arc, Mutex, lock};
use crate::wire::Settings;

/// A call's protocol state with no send window: a unary call that sent its request and waits
/// for the response head (`streaming` false), or a stream both sides still send on, its head
/// received (`streaming` true).
fn call_state(streaming: bool, recv_window: i64) -> CallState {
    CallState {
        local_open: streaming,
        remote_open: true,
        head_received: streaming,
        head_sent: false,
        send_window: 0,
        recv_window,
        unacked: 0,
    }
}

/// The reader completes a call while the caller polls it: the caller always ends with the
/// outcome, never hangs, and the slot is gone afterwards.
#[test]
fn loom_inflight_completion_races_with_poll() {
    loom::model(|| {
        let table = Arc::new(Mutex::new(Calls::<()>::new()));
        lock(&table).insert_unary(CallId(1), None);
        let reader = {
            let table = table.clone();
            loom::thread::spawn(move || {
                let waker = lock(&table).complete(
                    CallId(1),
                    Outcome::Response {
                        message: Bytes::from_static(b"ok"),
                        metadata: Metadata::new(),
                        trailers: Metadata::new(),
                        received_at: std::time::Instant::now(),
                    },
                );
                if let Some(waker) = waker {
                    waker.wake();
                }
            })
        };
        let outcome = loom::future::block_on(poll_fn(|cx| lock(&table).poll_outcome(CallId(1), cx)));
        assert!(matches!(outcome, Outcome::Response { message, .. } if message == "ok"));
        reader.join().unwrap();
        assert_eq!(lock(&table).occupied(), 0);
    });
}

/// A caller that gives up races with the reader's completion: either the reader finds no
/// slot, or the removal sees the outcome; the table ends empty either way.
#[test]
fn loom_inflight_cancel_races_with_completion() {
    loom::model(|| {
        let table = Arc::new(Mutex::new(Calls::<()>::new()));
        lock(&table).insert_unary(CallId(1), None);
        let reader = {
            let table = table.clone();
            loom::thread::spawn(move || lock(&table).complete(CallId(1), Outcome::Failed(Status::cancelled("x"))).is_some())
        };
        let was_waiting = lock(&table).remove_unary(CallId(1));
        let woke = reader.join().unwrap();
        assert!(!woke, "no waker was registered");
        let _ = was_waiting;
        assert_eq!(lock(&table).occupied(), 0);
    });
}

/// One slot holds the protocol's state and the caller's record: the reader closes the call
/// in the protocol and completes the record while the caller polls it. The caller always gets
/// the outcome, and the slot is freed exactly when both sides are done, whatever the order.
#[test]
fn loom_one_slot_is_freed_when_protocol_and_caller_are_both_done() {
    loom::model(|| {
        let table = Arc::new(Mutex::new(Calls::<()>::new()));
        {
            let mut table = lock(&table);
            table.open(CallId(1), call_state(false, 0));
            table.insert_unary(CallId(1), None);
        }
        let reader = {
            let table = table.clone();
            loom::thread::spawn(move || {
                let waker = {
                    let mut table = lock(&table);
                    table.close(CallId(1));
                    table.complete(CallId(1), Outcome::Failed(Status::unavailable("x")))
                };
                if let Some(waker) = waker {
                    waker.wake();
                }
            })
        };
        let outcome = loom::future::block_on(poll_fn(|cx| lock(&table).poll_outcome(CallId(1), cx)));
        assert!(matches!(outcome, Outcome::Failed(_)));
        reader.join().unwrap();
        let table = lock(&table);
        assert_eq!(table.occupied(), 0, "the slot outlived both sides");
        assert_eq!(table.open_calls(), 0);
    });
}

/// A caller cancelling (closing the call and dropping its record) races with the reader's
/// answer for the same call: the table ends empty and counts no open call either way.
#[test]
fn loom_a_cancel_racing_the_answer_leaves_no_slot() {
    loom::model(|| {
        let table = Arc::new(Mutex::new(Calls::<()>::new()));
        {
            let mut table = lock(&table);
            table.open(CallId(7), call_state(false, 0));
            table.insert_unary(CallId(7), None);
        }
        let reader = {
            let table = table.clone();
            loom::thread::spawn(move || {
                let mut table = lock(&table);
                let was_open = table.close(CallId(7)).is_some();
                let waker = table.complete(CallId(7), Outcome::Failed(Status::cancelled("x")));
                (was_open, waker.is_some())
            })
        };
        let cancelled = {
            let mut table = lock(&table);
            let was_open = table.close(CallId(7)).is_some();
            table.remove_unary(CallId(7));
            was_open
        };
        let (answered, woke) = reader.join().unwrap();
        assert!(cancelled ^ answered, "exactly one side closed the call");
        assert!(!woke, "no waker was registered");
        let table = lock(&table);
        assert_eq!(table.occupied(), 0);
        assert_eq!(table.open_calls(), 0);
    });
}

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
        let call = call_state(true, 100);
        let mut streams = Calls::<()>::new();
        streams.open_stream(CallId(1));
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

/// The reader keeps stream messages straight in a mailbox (no event per message) in two read
/// passes while the receiver drains it on another thread: the receiver's waker is taken through
/// the one `Event::Arrived` a pass queues (at most one per waiting receiver), and the receiver
/// always gets both messages, never hanging on a lost wake.
#[test]
fn loom_a_receiver_waiting_for_kept_messages_always_wakes() {
    loom::model(|| {
        let table = Arc::new(Mutex::new(Calls::<()>::new()));
        lock(&table).open_request_stream(CallId(1));
        let reader = {
            let table = table.clone();
            loom::thread::spawn(move || {
                for _ in 0..2 {
                    let mut wakers = Vec::new();
                    {
                        // One read pass: the frame loop keeps the message, then the pass
                        // dispatches the event it queued, all under the lock.
                        let mut calls = lock(&table);
                        let kept = calls.record_mut(CallId(1)).unwrap().keep_message(Bytes::from_static(b"m"), false);
                        let Kept::Kept { wake, .. } = kept else {
                            panic!("a server mailbox keeps its messages");
                        };
                        if wake {
                            calls.arrived(CallId(1), &mut wakers);
                        }
                    }
                    wakers.into_iter().for_each(Waker::wake);
                }
            })
        };
        let mut batch = VecDeque::new();
        let mut received = 0;
        loom::future::block_on(poll_fn(|cx| {
            loop {
                if batch.pop_front().is_some() {
                    received += 1;
                    continue;
                }
                if received == 2 {
                    return Poll::Ready(());
                }
                match lock(&table).poll_recv(CallId(1), cx, &mut batch) {
                    Poll::Ready(Received::Messages) => {}
                    Poll::Ready(other) => panic!("unexpected {other:?}"),
                    Poll::Pending => return Poll::Pending,
                }
            }
        }));
        reader.join().unwrap();
    });
}
