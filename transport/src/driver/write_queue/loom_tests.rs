//! loom models of the queue: no frame or wake-up lost, order kept, the cap held.

use std::future::poll_fn;

use super::*;
use crate::sync::Arc;
use crate::wire::DEFAULT_CHUNK_SIZE;

/// A queue with no cap and no socket (every write is the model's writer's).
fn unbounded_queue() -> WriteQueue {
    WriteQueue::new(BytesMut::new(), None, std::sync::Arc::default(), usize::MAX, DEFAULT_CHUNK_SIZE)
}

/// Explores every interleaving with up to two preemptions (loom's recommended bound: bugs
/// almost always show within two, and three threads with a writer loop explode past that).
fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(2);
    builder.check(f);
}

fn enqueue(queue: &WriteQueue, byte: u8) {
    let mut guard = queue.lock();
    guard.batch().buf.extend_from_slice(&[byte]);
    guard.batch().frames += 1;
}

/// The writer task's loop, recording what it writes, until the queue closes.
fn writer(queue: Arc<WriteQueue>, written: Arc<crate::sync::Mutex<Vec<u8>>>) {
    loop {
        if !loom::future::block_on(poll_fn(|cx| queue.poll_ready(cx))) {
            return;
        }
        let Some((taken, _)) = loom::future::block_on(poll_fn(|cx| queue.poll_take(cx))) else {
            return;
        };
        lock(&written).extend_from_slice(&taken.batch.buf[taken.sent..]);
        let _ = queue.give_back(taken.batch);
    }
}

/// Two callers queue a frame each and wake the writer: every frame is written exactly once,
/// and the writer never sleeps through a wake-up.
#[test]
fn loom_write_queue_never_loses_a_frame_or_a_wakeup() {
    two_producers_and_the_writer(|queue, byte| {
        enqueue(queue, byte);
        let _ = queue.begin_direct(Flush::Wake, false);
    });
}

/// The same with the wake taken under the appending lock and done after it
/// (`Shared::flush_appended`, a streamed message's path).
#[test]
fn loom_a_writer_waker_taken_while_appending_is_never_lost() {
    two_producers_and_the_writer(|queue, byte| {
        let mut guard = queue.lock();
        guard.batch().buf.extend_from_slice(&[byte]);
        guard.batch().frames += 1;
        let writer = guard.take_writer_waker();
        drop(guard);
        if let Some(writer) = writer {
            writer.wake();
        }
    });
}

/// Two producers each queue one byte (`a`, `b`) with `produce` while the writer task runs;
/// every byte is written exactly once.
fn two_producers_and_the_writer(produce: fn(&WriteQueue, u8)) {
    model(move || {
        let queue = Arc::new(unbounded_queue());
        let written = Arc::new(crate::sync::Mutex::new(Vec::new()));
        let producers: Vec<_> = [b'a', b'b']
            .into_iter()
            .map(|byte| {
                let queue = queue.clone();
                loom::thread::spawn(move || produce(&queue, byte))
            })
            .collect();
        let task = {
            let (queue, written) = (queue.clone(), written.clone());
            loom::thread::spawn(move || writer(queue, written))
        };
        for producer in producers {
            producer.join().unwrap();
        }
        queue.close();
        task.join().unwrap();
        let mut seen = lock(&written).clone();
        seen.sort_unstable();
        assert_eq!(seen, b"ab");
    });
}

/// A caller writes directly while another queues behind it and the writer task runs; the
/// direct write either finishes or hands its rest to the writer. Bytes go out exactly once,
/// and the direct caller's bytes before anything queued after it.
#[test]
fn loom_direct_write_and_handoff_keep_order_and_lose_nothing() {
    for finishes in [true, false] {
        model(move || {
            let queue = Arc::new(unbounded_queue());
            let written = Arc::new(crate::sync::Mutex::new(Vec::new()));
            enqueue(&queue, b'a');
            let direct = {
                let (queue, written) = (queue.clone(), written.clone());
                loom::thread::spawn(move || {
                    if let DirectWrite::Write { mut taken, .. } = queue.begin_direct(Flush::Direct, true) {
                        if finishes {
                            lock(&written).extend_from_slice(&taken.batch.buf);
                            taken.sent = taken.batch.len();
                        }
                        let _ = queue.end_direct(taken, finishes);
                    }
                })
            };
            let later = {
                let queue = queue.clone();
                loom::thread::spawn(move || {
                    enqueue(&queue, b'b');
                    let _ = queue.begin_direct(Flush::Wake, false);
                })
            };
            let task = {
                let (queue, written) = (queue.clone(), written.clone());
                loom::thread::spawn(move || writer(queue, written))
            };
            direct.join().unwrap();
            later.join().unwrap();
            queue.close();
            task.join().unwrap();
            let seen = lock(&written).clone();
            assert_eq!(seen, b"ab", "each byte once, in the order queued");
        });
    }
}

/// Two producers append a 2-byte frame each only while the queue is under its 2-byte cap,
/// as handlers do, while the writer takes and gives back batches: the queue never counts
/// more than the cap plus one frame, a batch being written included, and once everything
/// is written it counts nothing, so room always comes back.
#[test]
fn loom_queued_bytes_stay_under_the_cap_plus_one_frame_and_come_back_to_zero() {
    model(|| {
        let stats = std::sync::Arc::new(Stats::default());
        let queue = Arc::new(WriteQueue::new(BytesMut::new(), None, stats.clone(), 2, DEFAULT_CHUNK_SIZE));
        let written = Arc::new(crate::sync::Mutex::new(Vec::new()));
        let producers: Vec<_> = [b'a', b'b']
            .into_iter()
            .map(|byte| {
                let queue = queue.clone();
                loom::thread::spawn(move || {
                    let mut guard = queue.lock();
                    if !guard.has_room() {
                        return false;
                    }
                    guard.batch().buf.extend_from_slice(&[byte, byte]);
                    guard.batch().frames += 1;
                    drop(guard);
                    let _ = queue.begin_direct(Flush::Wake, false);
                    true
                })
            })
            .collect();
        let task = {
            let (queue, written) = (queue.clone(), written.clone());
            loom::thread::spawn(move || writer(queue, written))
        };
        let appended: usize = producers.into_iter().map(|p| usize::from(p.join().unwrap())).sum();
        queue.close();
        task.join().unwrap();
        assert!(appended >= 1, "the first producer always finds room");
        assert_eq!(lock(&written).len(), 2 * appended, "every appended frame is written once");
        assert!(stats.write_queue_peak.load(Relaxed) <= 4, "cap + one frame");
        assert_eq!(queue.queued_bytes(), 0, "nothing counts once all is written");
    });
}
