//! The per-connection write queue: callers append encoded frames, the writer task takes
//! everything queued in one swap and writes it with one vectored write.
//!
//! Small frames are encoded straight into the queue's buffer; large message payloads are queued
//! by reference (`Bytes`) and written from their own memory, never copied.
//!
//! Who writes is a choice per enqueue ([`Flush`]), made after every lock is released. A lone call
//! takes the queued batch out (so nobody else writes meanwhile) and writes it itself with one
//! non-blocking `writev`, costing no task wake-up; what it cannot finish it hands to the writer
//! task. Under load, enqueues wake the writer task instead, which yields once so that tasks about
//! to queue frames join, then takes everything queued in one swap: many calls per syscall. A
//! caller that finds a write in progress never writes itself. The reader corks the queue while
//! it handles a read's frames, so the answers to one read go out together.
//!
//! Frames are queued in one of two lanes ([`Lane`]): high (the frames of calls at a high
//! priority) and normal (everything else). Every write takes both, the high lane's frames
//! first; between two chunks of a bulk frame the high lane goes even when the normal lane
//! must wait (`interleave.rs`). The queue's cap bounds both lanes together; the high lane also
//! has room of its own ([`HIGH_LANE_SHARE`]), so that bulk over the cap cannot hold back a
//! high-priority answer either.
//!
//! No syscall happens under a lock: not the queue's (a write works on a batch swapped out of
//! it), not the connection state's ([`WriteQueue::flush`] takes an [`Unlocked`] proof that only
//! the state guard's release makes), and none in `Drop`.

use std::io::{self, IoSlice};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::BytesMut;

use super::Lane;
use crate::net::Stream;
use crate::stats::Stats;
use crate::sync::atomic::AtomicUsize;
use crate::sync::atomic::Ordering::Relaxed;
use crate::sync::{Mutex, MutexGuard, lock};
use crate::wire::{FrameBatch as Batch, FrameKind};

mod between_chunks;
mod pending;

pub(crate) use pending::Taken;
use pending::{Pending, recycle};

/// iovecs per `writev` call (64): enough for many chunked messages, far below IOV_MAX (1024).
pub(crate) const MAX_IOVECS: usize = 64;

/// Non-blocking write attempts a caller makes before leaving the rest to the writer task (4).
const DIRECT_WRITE_ATTEMPTS: usize = 4;

/// The part of the cap the high lane may hold on its own (1/8: 1 MiB of the default 8 MiB).
/// A high-priority frame may be queued while the queue is under its cap, or while the high
/// lane's unwritten bytes are under `cap / HIGH_LANE_SHARE` whatever the normal lane holds: a
/// 64-byte answer is not held back by 16 MiB of bulk over the cap, and a peer that sends only
/// high-priority calls and reads nothing still makes the queue hold at most the cap and this
/// share (each plus one message).
pub(crate) const HIGH_LANE_SHARE: usize = 8;

/// A queue of encoded frames shared by the callers of a connection and its writer task.
#[derive(Debug)]
pub(crate) struct WriteQueue {
    inner: Mutex<Pending>,
    /// The socket, for writes by callers; `None` leaves all writing to the writer task.
    direct: Option<Arc<Stream>>,
    stats: Arc<Stats>,
    /// Bytes queued past which callers wait for room ([`WriteQueue::queued_bytes`]).
    cap: usize,
    /// The high lane's own room: `cap / HIGH_LANE_SHARE`.
    high_room: usize,
    /// The high lane's unwritten bytes as of the last publish, for lock-free readers.
    high_queued: AtomicUsize,
    /// Frames over this many bytes are cut into chunks by the writer task (never written whole
    /// by a caller): the connection's chunk size.
    chunk_size: usize,
}

/// What happens to frames once they are queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flush {
    /// Write them now from this task if nobody is writing (latency first).
    Direct,
    /// Wake the writer task, so later enqueues can join the same write (throughput first).
    Wake,
    /// Neither: they go out with the next flushing enqueue.
    Later,
}

/// What [`WriteQueue::begin_direct`] decided.
#[derive(Debug)]
enum DirectWrite {
    /// Nothing for this task to write; `room` as in [`WriteQueue::publish`].
    Done { room: bool },
    /// This task writes `taken`, then calls [`WriteQueue::end_direct`].
    Write { taken: Taken, room: bool },
}

/// Proof that the caller holds no connection-state lock, required to write to the socket from a
/// caller's task. Only [`super::Shared::flush`] (which consumes the state guard first) and the
/// reader between passes (which holds no lock there) make one.
#[derive(Debug)]
pub(crate) struct Unlocked(());

impl Unlocked {
    /// Asserts that the calling task holds no connection-state lock.
    pub(super) fn assert() -> Self {
        Self(())
    }
}

/// Exclusive access to the queued frames, to append to them. Dropping it releases the queue;
/// nothing is written then: flushing is a separate step ([`WriteQueue::flush`]) taken after every
/// lock is released.
pub(crate) struct QueueGuard<'a> {
    guard: MutexGuard<'a, Pending>,
    queue: &'a WriteQueue,
}

impl QueueGuard<'_> {
    /// The batch to append frames to (count them in `frames`): the normal lane.
    pub(crate) fn batch(&mut self) -> &mut Batch {
        &mut self.guard.filling
    }

    /// The batch of `lane` to append frames to (count them in `frames`). Every frame of a call
    /// that keeps an order with its other frames must go in one lane: callers put a call in the
    /// high lane only for frames that nothing of the call queued earlier precedes.
    /// Until the connection's preface has been taken, everything goes in the normal lane, behind
    /// it, in the order queued.
    pub(crate) fn lane(&mut self, lane: Lane) -> &mut Batch {
        match lane {
            Lane::High if !self.guard.filling.starts_with_preface() => &mut self.guard.high,
            _ => &mut self.guard.filling,
        }
    }

    /// The lane for a Request of a call in `lane`: the high lane only while the normal lane
    /// holds no Request, since the high lane is written first and a server requires call ids in
    /// increasing order (docs/PROTOCOL.md section 6.1).
    pub(crate) fn request_lane(&self, lane: Lane) -> Lane {
        let waiting = |batch: &Batch| batch.frames_from(0).any(|span| span.kind == FrameKind::Request as u8);
        match lane {
            Lane::High if !waiting(&self.guard.filling) => Lane::High,
            _ => Lane::Normal,
        }
    }

    /// Whether the bytes waiting are under the queue's cap. Handler output is appended only
    /// then, checked under this lock as it appends, so the queue holds at most the cap plus one
    /// message of it (PROTOCOL.md section 9, "Write queue cap").
    pub(crate) fn has_room(&self) -> bool {
        self.guard.queued_bytes() < self.queue.cap
    }

    /// [`QueueGuard::has_room`] for a frame in `lane`: the high lane also has room of its own
    /// ([`HIGH_LANE_SHARE`]).
    pub(crate) fn has_room_in(&self, lane: Lane) -> bool {
        self.has_room() || (lane == Lane::High && self.guard.high.len() < self.queue.high_room)
    }

    /// What a [`Flush::Wake`] flush would wake, taken under this lock: the writer task's waker
    /// when frames wait and the queue is not corked. The caller wakes it once its locks are
    /// released, saving the flush's own trip through the lock.
    pub(crate) fn take_writer_waker(&mut self) -> Option<Waker> {
        if self.guard.corked || self.guard.lanes_empty() {
            return None;
        }
        self.guard.writer.take()
    }
}

impl Drop for QueueGuard<'_> {
    fn drop(&mut self) {
        self.queue.publish(&self.guard);
    }
}

impl WriteQueue {
    /// A queue writing into `buf` (and a second buffer taken from the same pool as needed); with
    /// `direct`, callers write to the socket themselves when nobody else is writing.
    pub(crate) fn new(buf: BytesMut, direct: Option<Arc<Stream>>, stats: Arc<Stats>, cap: usize, chunk_size: usize) -> Self {
        let pending = Pending {
            filling: Batch::with_buf(buf),
            high: Batch::default(),
            spare: Some(Batch::default()),
            handoff: None,
            in_flight: 0,
            between_chunks: 0,
            between_spare: None,
            corked: false,
            writer: None,
            closed: false,
        };
        Self {
            inner: Mutex::new(pending),
            direct,
            stats,
            cap,
            high_room: cap / HIGH_LANE_SHARE,
            high_queued: AtomicUsize::new(0),
            chunk_size,
        }
    }

    /// Locks the queue to append frames.
    pub(crate) fn lock(&self) -> QueueGuard<'_> {
        QueueGuard {
            guard: lock(&self.inner),
            queue: self,
        }
    }

    /// Publishes the queued bytes for lock-free readers ([`WriteQueue::queued_bytes`],
    /// [`WriteQueue::has_room_in`], metrics). Returns whether room just opened: the queue went
    /// from at or over its cap to under it, or, over the cap, the high lane went under its own
    /// room. Callers waiting for room must then be woken.
    fn publish(&self, pending: &Pending) -> bool {
        let now = pending.queued_bytes();
        // Every publish runs under the queue's lock, so a load and a store keep the queued
        // bytes, the peak and the high lane's bytes exact (no locked read-modify-write on the
        // path of every enqueue).
        let before = self.stats.write_queue_bytes.load(Relaxed) as usize;
        if before != now {
            self.stats.write_queue_bytes.store(now as u64, Relaxed);
        }
        if now as u64 > self.stats.write_queue_peak.load(Relaxed) {
            self.stats.write_queue_peak.store(now as u64, Relaxed);
        }
        let high = pending.high.len();
        let high_before = self.high_queued.load(Relaxed);
        if high != high_before {
            self.high_queued.store(high, Relaxed);
        }
        (before >= self.cap && now < self.cap) || (now >= self.cap && high_before >= self.high_room && high < self.high_room)
    }

    /// Sends what is queued as `flush` says: writes it from this task when nobody else is writing
    /// (`Direct`), or wakes the writer task (`Wake`). Nothing while corked. Returns whether room
    /// opened under the cap (see [`WriteQueue::publish`]).
    #[must_use = "callers waiting for room must be woken when it opens"]
    pub(crate) fn flush(&self, flush: Flush, _unlocked: Unlocked) -> bool {
        match self.begin_direct(flush, self.direct.is_some()) {
            DirectWrite::Done { room } => room,
            DirectWrite::Write { mut taken, room } => {
                let done = match &self.direct {
                    Some(stream) => write_direct(stream, &mut taken, &self.stats),
                    None => false,
                };
                room | self.end_direct(taken, done)
            }
        }
    }

    /// The first half of a flush: wakes the writer, or takes the queued batch for a write from
    /// this task (then nobody else writes until [`WriteQueue::end_direct`]).
    fn begin_direct(&self, flush: Flush, can_write: bool) -> DirectWrite {
        let done = DirectWrite::Done { room: false };
        if flush == Flush::Later {
            return done;
        }
        let mut pending = lock(&self.inner);
        if pending.corked || pending.lanes_empty() {
            return done;
        }
        // A frame long enough to be chunked goes to the writer task, which cuts it so that
        // frames queued later can go out between its chunks (`driver/interleave.rs`); a
        // caller writing it whole would hold them back behind all of it.
        let chunkable = pending.filling.has_frame_over(self.chunk_size) || pending.high.has_frame_over(self.chunk_size);
        if flush == Flush::Wake || !can_write || pending.writing() || pending.closed || chunkable {
            // A caller that finds a write in progress never writes itself: its frames join the
            // writer's next batch.
            pending.wake_writer();
            return done;
        }
        let Some(taken) = pending.take_counted() else { return done };
        let room = self.publish(&pending);
        DirectWrite::Write { taken, room }
    }

    /// The second half of a direct flush: the batch comes back written (`done`) for reuse, or
    /// partly written for the writer task to finish before anything queued later.
    fn end_direct(&self, mut taken: Taken, done: bool) -> bool {
        let mut pending = lock(&self.inner);
        pending.in_flight = 0;
        if done {
            recycle(&mut taken.batch);
            pending.spare = Some(taken.batch);
            if pending.closed || (!pending.lanes_empty() && !pending.corked) {
                // Frames queued during our write: the writer takes them all in one batch.
                pending.wake_writer();
            }
        } else {
            pending.handoff = Some(taken);
            pending.wake_writer();
        }
        self.publish(&pending)
    }

    /// Holds every flush back until [`WriteQueue::uncork`]: the reader corks while it handles a
    /// read's frames, so the answers to them leave in one write.
    pub(crate) fn cork(&self) {
        lock(&self.inner).corked = true;
    }

    /// Ends [`WriteQueue::cork`] and flushes what was queued meanwhile, directly if it can.
    /// Returns whether room opened under the cap.
    #[must_use = "callers waiting for room must be woken when it opens"]
    pub(crate) fn uncork(&self, unlocked: Unlocked) -> bool {
        lock(&self.inner).corked = false;
        self.flush(Flush::Direct, unlocked)
    }

    /// Whether anything waits to be taken: the writer task polls this, then yields once so that
    /// tasks about to queue frames join the batch, then takes.
    pub(crate) fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<bool> {
        let mut pending = lock(&self.inner);
        if pending.handoff.is_some() || (!pending.lanes_empty() && !pending.writing()) {
            return Poll::Ready(true);
        }
        if pending.closed && !pending.writing() && pending.lanes_empty() {
            return Poll::Ready(false);
        }
        pending.register_writer(cx.waker());
        Poll::Pending
    }

    /// Takes everything queued for the writer task: `Ready(Some)` with the batch, the bytes of
    /// it already written and whether room opened under the cap; `Ready(None)` once the queue is
    /// closed and drained; `Pending` (waker registered) while there is nothing to take or a
    /// caller is writing.
    pub(crate) fn poll_take(&self, cx: &mut Context<'_>) -> Poll<Option<(Taken, bool)>> {
        let mut pending = lock(&self.inner);
        if let Some(taken) = pending.take_counted() {
            let room = self.publish(&pending);
            return Poll::Ready(Some((taken, room)));
        }
        if pending.closed && !pending.writing() {
            return Poll::Ready(None);
        }
        pending.register_writer(cx.waker());
        Poll::Pending
    }

    /// Returns a batch [`WriteQueue::poll_take`] gave out, written, for reuse. Returns whether
    /// room opened under the cap (its bytes no longer count).
    #[must_use = "callers waiting for room must be woken when it opens"]
    pub(crate) fn give_back(&self, mut batch: Batch) -> bool {
        recycle(&mut batch);
        let mut pending = lock(&self.inner);
        pending.spare = Some(batch);
        pending.in_flight = 0;
        self.publish(&pending)
    }

    /// Bytes waiting to be written, a batch being written now included. Lock-free.
    pub(crate) fn queued_bytes(&self) -> usize {
        self.stats.write_queue_bytes.load(Relaxed) as usize
    }

    /// Whether a frame in `lane` may be queued: the queue is under its cap, or the frame is in
    /// the high lane and that lane is under its own room ([`HIGH_LANE_SHARE`]). Lock-free, as of
    /// the last publish; [`QueueGuard::has_room_in`] is the exact check under the lock.
    pub(crate) fn has_room_in(&self, lane: Lane) -> bool {
        self.queued_bytes() < self.cap || (lane == Lane::High && self.high_queued.load(Relaxed) < self.high_room)
    }

    /// Stops the writer once it has drained what is queued.
    pub(crate) fn close(&self) {
        let mut pending = lock(&self.inner);
        pending.closed = true;
        pending.wake_writer();
    }

    /// Gives back the queue's buffers (for the pool), once the writer has stopped.
    pub(crate) fn take_buffers(&self) -> impl Iterator<Item = BytesMut> {
        let mut pending = lock(&self.inner);
        let filling = std::mem::take(&mut pending.filling.buf);
        let high = std::mem::take(&mut pending.high.buf);
        let spare = pending.spare.take().map(|batch| batch.buf);
        let between = pending.between_spare.take().map(|batch| batch.buf);
        let high = (high.capacity() > 0).then_some(high);
        std::iter::once(filling).chain(high).chain(spare).chain(between)
    }
}

/// Writes `taken` with non-blocking `writev`s; `true` when all of it went out. Errors are left
/// for the writer task, which ends the connection on them.
fn write_direct(stream: &Stream, taken: &mut Taken, stats: &Stats) -> bool {
    for _ in 0..DIRECT_WRITE_ATTEMPTS {
        match write_vectored_from(stream, &taken.batch, taken.sent) {
            Ok(0) => return false,
            Ok(n) => {
                Stats::add(&stats.write_syscalls, 1);
                taken.sent += n;
                if taken.sent == taken.batch.len() {
                    Stats::add(&stats.frames_out, taken.batch.frames as u64);
                    Stats::add(&stats.bytes_out, taken.sent as u64);
                    return true;
                }
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    false
}

/// One non-blocking `writev` of `batch` from byte `sent` on. A batch of one inline run (a lone
/// call's frames) goes with one iovec; only a batch with chunks spliced in fills the
/// [`MAX_IOVECS`] array, whose initialisation alone is most of a small write's user-space
/// instructions.
fn write_vectored_from(stream: &Stream, batch: &Batch, sent: usize) -> io::Result<usize> {
    if let Some(inline) = batch.as_contiguous() {
        return stream.try_write_vectored(&[IoSlice::new(&inline[sent..])]);
    }
    let mut iov = [IoSlice::new(&[]); MAX_IOVECS];
    let count = batch.io_slices(sent, &mut iov);
    stream.try_write_vectored(&iov[..count])
}

#[cfg(all(test, not(loom)))]
mod tests;

#[cfg(all(test, loom))]
mod loom_tests;
