//! The lanes' order, between chunks and at a take; the preface first.

use std::task::Waker;

use bytes::Bytes;

use super::*;
use crate::wire::{CallHead, CallId, DEFAULT_CHUNK_SIZE, Frame, Preface, Settings};

fn queue() -> WriteQueue {
    WriteQueue::new(BytesMut::new(), None, Arc::default(), usize::MAX, DEFAULT_CHUNK_SIZE)
}

/// Queues a Cancel of `call` (a frame that names its call) in `lane`.
fn cancel(queue: &WriteQueue, lane: Lane, call: u64) {
    let mut guard = queue.lock();
    let batch = guard.lane(lane);
    Frame::Cancel { call_id: CallId(call) }.encode(&mut batch.buf);
    batch.frames += 1;
}

fn calls(batch: &Batch) -> Vec<u64> {
    batch.frames_from(0).map(|span| span.call_id).collect()
}

/// What the writer task takes next, given back at once.
fn take(queue: &WriteQueue) -> Vec<u64> {
    let Poll::Ready(Some((taken, _))) = queue.poll_take(&mut Context::from_waker(Waker::noop())) else {
        panic!("nothing to take");
    };
    let order = calls(&taken.batch);
    assert_eq!(taken.batch.frames, order.len());
    let _ = queue.give_back(taken.batch);
    order
}

#[test]
fn every_take_writes_the_high_lanes_frames_first_and_the_normal_lanes_with_them() {
    let queue = queue();
    for (lane, call) in [(Lane::Normal, 1), (Lane::High, 3), (Lane::Normal, 5), (Lane::High, 7)] {
        cancel(&queue, lane, call);
    }
    assert_eq!(take(&queue), [3, 7, 1, 5], "high first, each lane in the order queued");
    assert_eq!(queue.queued_bytes(), 0);
    // A steady high lane never leaves the normal lane behind: every take takes both.
    for call in (9..40).step_by(4) {
        cancel(&queue, Lane::Normal, call);
        cancel(&queue, Lane::High, call + 2);
        assert_eq!(take(&queue), [call + 2, call]);
    }
    cancel(&queue, Lane::High, 41);
    assert_eq!(take(&queue), [41], "a high lane alone is taken without a copy");
    cancel(&queue, Lane::Normal, 43);
    assert_eq!(take(&queue), [43]);
}

#[test]
fn the_connections_preface_and_settings_stay_ahead_of_the_high_lane() {
    let queue = queue();
    {
        let mut guard = queue.lock();
        let batch = guard.batch();
        batch.buf.extend_from_slice(&Preface::CURRENT.encode());
        Frame::Settings(Settings::default()).encode(&mut batch.buf);
        batch.frames += 1;
    }
    // Queued behind them, in the normal lane: a Cancel queued after it must not overtake it.
    cancel(&queue, Lane::High, 3);
    cancel(&queue, Lane::Normal, 3);
    let Poll::Ready(Some((taken, _))) = queue.poll_take(&mut Context::from_waker(Waker::noop())) else {
        panic!("nothing to take");
    };
    assert!(taken.batch.starts_with_preface());
    assert_eq!(calls(&taken.batch), [0, 3, 3]);
    let _ = queue.give_back(taken.batch);
    cancel(&queue, Lane::Normal, 5);
    cancel(&queue, Lane::High, 7);
    assert_eq!(take(&queue), [7, 5], "once the preface is out, the high lane is open");
}

#[test]
fn between_chunks_the_high_lane_goes_alone_when_the_normal_lane_must_wait_never_the_reverse() {
    let queue = queue();
    cancel(&queue, Lane::Normal, 1);
    cancel(&queue, Lane::High, 3);
    // Call 1 has frames in the batch being written: its frames queued later must wait.
    let not_call = |call: u64| move |batch: &Batch| !calls(batch).contains(&call);
    let (between, _) = queue.take_between_chunks(not_call(1)).expect("the high lane fits");
    assert_eq!(calls(&between), [3]);
    let _ = queue.give_back_between_chunks(between);
    assert!(queue.take_between_chunks(not_call(1)).is_none(), "the normal lane still waits");
    // The high lane cannot go: the normal lane, which may hold a frame queued after it for
    // the same call (a Cancel after its Request), waits with it.
    cancel(&queue, Lane::High, 5);
    assert!(queue.take_between_chunks(not_call(5)).is_none());
    let (between, _) = queue.take_between_chunks(|_| true).expect("both lanes fit");
    assert_eq!(calls(&between), [5, 1], "the high lane first");
    let _ = queue.give_back_between_chunks(between);
    assert_eq!(queue.queued_bytes(), 0);
}

#[test]
fn a_high_priority_request_goes_in_the_normal_lane_while_a_request_waits_there() {
    let queue = queue();
    assert_eq!(queue.lock().request_lane(Lane::High), Lane::High);
    assert_eq!(queue.lock().request_lane(Lane::Normal), Lane::Normal);
    {
        let mut guard = queue.lock();
        let batch = guard.batch();
        Frame::Request {
            call_id: CallId(1),
            head: CallHead::default(),
            message: Some(Bytes::from_static(b"x")),
            end_stream: true,
        }
        .encode(&mut batch.buf);
        batch.frames += 1;
    }
    // Call 3's Request must not reach the server before call 1's.
    assert_eq!(queue.lock().request_lane(Lane::High), Lane::Normal);
    cancel(&queue, Lane::Normal, 5);
    assert_eq!(take(&queue), [1, 5]);
    assert_eq!(queue.lock().request_lane(Lane::High), Lane::High);
}
