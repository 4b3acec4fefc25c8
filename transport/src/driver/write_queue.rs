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
//! must wait (`interleave.rs`).
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
use crate::sync::atomic::Ordering::Relaxed;
use crate::sync::{Mutex, MutexGuard, lock};
use crate::wire::{DEFAULT_CHUNK_SIZE, FrameBatch as Batch, FrameKind};

/// iovecs per `writev` call (64): enough for many chunked messages, far below IOV_MAX (1024).
pub(crate) const MAX_IOVECS: usize = 64;

/// Capacity a written batch may keep for the next one (1 MiB): a burst of small frames (a
/// queue that backed up to its cap) grows a batch's buffer, and that memory is freed once the
/// burst is written instead of staying with the connection for its life.
const MAX_RETAINED_BATCH: usize = 1024 * 1024;

/// Non-blocking write attempts a caller makes before leaving the rest to the writer task (4).
const DIRECT_WRITE_ATTEMPTS: usize = 4;

/// A batch taken out of the queue for writing, with the bytes of it already written.
#[derive(Debug)]
pub(crate) struct Taken {
    pub(crate) batch: Batch,
    /// Bytes at the front of `batch` already written.
    pub(crate) sent: usize,
}

#[derive(Debug)]
struct Pending {
    /// Frames queued in the normal lane and not yet taken by a writer.
    filling: Batch,
    /// Frames queued in the high lane and not yet taken: a take puts them ahead of `filling`.
    /// Empty (and unallocated) until a call at a high priority queues a frame.
    high: Batch,
    /// The empty batch a writer swaps in for `filling`; `None` while a batch is taken. Two batches
    /// per connection, ping-ponged, so the steady state never allocates.
    spare: Option<Batch>,
    /// A batch a caller started writing but could not finish (the socket was full): the writer
    /// task writes the rest before anything queued later.
    handoff: Option<Taken>,
    /// Bytes of the batch a writer has taken, not yet known written: they count against the
    /// cap until the batch comes back, so the cap bounds all the memory the queue holds.
    in_flight: usize,
    /// Frames the writer took out to send between two chunks of a large frame
    /// ([`WriteQueue::take_between_chunks`]): their bytes, counted against the cap until they
    /// come back.
    between_chunks: usize,
    /// The batch swapped in for `filling` when frames go out between chunks; allocated the first
    /// time a connection interleaves, then reused.
    between_spare: Option<Batch>,
    /// Flushes are held back (see [`WriteQueue::cork`]).
    corked: bool,
    writer: Option<Waker>,
    closed: bool,
}

impl Pending {
    /// Someone holds a taken batch (or left one for the writer): nobody else may write now.
    fn writing(&self) -> bool {
        self.spare.is_none()
    }

    /// Whether no lane holds a frame to take.
    fn lanes_empty(&self) -> bool {
        self.filling.is_empty() && self.high.is_empty()
    }

    /// Swaps the queued frames out for writing, the high lane's ahead of the normal lane's.
    fn take(&mut self) -> Option<Taken> {
        if let Some(taken) = self.handoff.take() {
            return Some(taken);
        }
        if self.spare.is_none() || self.lanes_empty() {
            return None;
        }
        if !self.high.is_empty() {
            self.put_high_first();
        }
        let spare = self.spare.take()?;
        Some(Taken {
            batch: std::mem::replace(&mut self.filling, spare),
            sent: 0,
        })
    }

    /// Moves the high lane's frames into `filling`, ahead of the frames there: copied (with
    /// their large payloads by reference) only when both lanes hold frames. (Nothing enters the
    /// high lane while `filling` starts with the connection's preface: [`QueueGuard::lane`].)
    fn put_high_first(&mut self) {
        if self.filling.is_empty() {
            std::mem::swap(&mut self.filling, &mut self.high);
        } else {
            self.high.append_batch(&self.filling);
            self.filling.clear();
            std::mem::swap(&mut self.filling, &mut self.high);
        }
    }

    /// [`Pending::take`], counting the taken bytes as in flight until they come back.
    fn take_counted(&mut self) -> Option<Taken> {
        let taken = self.take()?;
        self.in_flight = taken.batch.len() - taken.sent;
        Some(taken)
    }

    fn queued_bytes(&self) -> usize {
        self.filling.len()
            + self.high.len()
            + self.in_flight
            + self.between_chunks
            + self.handoff.as_ref().map_or(0, |taken| taken.batch.len() - taken.sent)
    }

    fn wake_writer(&mut self) {
        if let Some(waker) = self.writer.take() {
            waker.wake();
        }
    }
}

/// A queue of encoded frames shared by the callers of a connection and its writer task.
#[derive(Debug)]
pub(crate) struct WriteQueue {
    inner: Mutex<Pending>,
    /// The socket, for writes by callers; `None` leaves all writing to the writer task.
    direct: Option<Arc<Stream>>,
    stats: Arc<Stats>,
    /// Bytes queued past which callers wait for room ([`WriteQueue::queued_bytes`]).
    cap: usize,
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
    pub(crate) fn new(buf: BytesMut, direct: Option<Arc<Stream>>, stats: Arc<Stats>, cap: usize) -> Self {
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
        }
    }

    /// Locks the queue to append frames.
    pub(crate) fn lock(&self) -> QueueGuard<'_> {
        QueueGuard {
            guard: lock(&self.inner),
            queue: self,
        }
    }

    /// Publishes the queued bytes for lock-free readers ([`WriteQueue::queued_bytes`], metrics).
    /// Returns whether the queue just went from at or over its cap to under it: callers waiting
    /// for room must be woken.
    fn publish(&self, pending: &Pending) -> bool {
        let now = pending.queued_bytes();
        let before = self.stats.write_queue_bytes.swap(now as u64, Relaxed) as usize;
        // Every publish runs under the queue's lock, so a load and a store keep the peak exact
        // (no read-modify-write on the path of every enqueue).
        if now as u64 > self.stats.write_queue_peak.load(Relaxed) {
            self.stats.write_queue_peak.store(now as u64, Relaxed);
        }
        before >= self.cap && now < self.cap
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
        let chunkable = pending.filling.has_frame_over(DEFAULT_CHUNK_SIZE) || pending.high.has_frame_over(DEFAULT_CHUNK_SIZE);
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
        if !pending.writer.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            pending.writer = Some(cx.waker().clone());
        }
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
        if !pending.writer.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            pending.writer = Some(cx.waker().clone());
        }
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

    /// Takes the frames queued since the writer took its batch, lane by lane when `fits`
    /// accepts the lane's frames, for the writer to send between two chunks of a large frame:
    /// `Some` with the frames (the high lane's first) and whether room opened under the cap.
    /// The high lane goes even when the normal lane must wait, never the other way round.
    /// Nothing while corked (a read's
    /// answers leave together). The frames come back with
    /// [`WriteQueue::give_back_between_chunks`].
    pub(crate) fn take_between_chunks(&self, fits: impl Fn(&Batch) -> bool) -> Option<(Batch, bool)> {
        let mut pending = lock(&self.inner);
        if pending.corked || pending.between_chunks != 0 {
            return None;
        }
        let high_waits = !pending.high.is_empty();
        let high = high_waits && fits(&pending.high);
        // The normal lane never goes ahead of frames the high lane holds: a frame queued after
        // them there (a Cancel) may belong to their call.
        let normal = (high || !high_waits) && !pending.filling.is_empty() && fits(&pending.filling);
        if !high && !normal {
            return None;
        }
        let fresh = pending.between_spare.take().unwrap_or_default();
        let batch = if high {
            let mut batch = std::mem::replace(&mut pending.high, fresh);
            if normal {
                batch.append_batch(&pending.filling);
                pending.filling.clear();
            }
            batch
        } else {
            std::mem::replace(&mut pending.filling, fresh)
        };
        pending.between_chunks = batch.len();
        let room = self.publish(&pending);
        Some((batch, room))
    }

    /// Sets the bytes of the taken batch that count against the cap: the writer, once it starts
    /// cutting a frame into chunks, counts that frame out (it is the "one message" the cap
    /// allows past it), so callers waiting for room do not wait for all of it to be written.
    /// Returns whether room opened under the cap.
    #[must_use = "callers waiting for room must be woken when it opens"]
    pub(crate) fn set_in_flight(&self, bytes: usize) -> bool {
        let mut pending = lock(&self.inner);
        pending.in_flight = bytes;
        self.publish(&pending)
    }

    /// Returns frames [`WriteQueue::take_between_chunks`] gave out, written. Returns whether room
    /// opened under the cap.
    #[must_use = "callers waiting for room must be woken when it opens"]
    pub(crate) fn give_back_between_chunks(&self, mut batch: Batch) -> bool {
        recycle(&mut batch);
        let mut pending = lock(&self.inner);
        pending.between_spare = Some(batch);
        pending.between_chunks = 0;
        self.publish(&pending)
    }

    /// Bytes waiting to be written, a batch being written now included. Lock-free.
    pub(crate) fn queued_bytes(&self) -> usize {
        self.stats.write_queue_bytes.load(Relaxed) as usize
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

/// Empties a written batch for reuse; a buffer grown past [`MAX_RETAINED_BATCH`] is freed.
fn recycle(batch: &mut Batch) {
    batch.clear();
    if batch.buf.capacity() > MAX_RETAINED_BATCH {
        batch.buf = BytesMut::new();
    }
}

/// Writes `taken` with non-blocking `writev`s; `true` when all of it went out. Errors are left
/// for the writer task, which ends the connection on them.
fn write_direct(stream: &Stream, taken: &mut Taken, stats: &Stats) -> bool {
    for _ in 0..DIRECT_WRITE_ATTEMPTS {
        let mut iov = [IoSlice::new(&[]); MAX_IOVECS];
        let count = taken.batch.io_slices(taken.sent, &mut iov);
        match stream.try_write_vectored(&iov[..count]) {
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

#[cfg(all(test, not(loom)))]
mod tests {
    use std::task::Waker;

    use bytes::Bytes;

    use super::*;
    use crate::wire::{CallHead, CallId, Frame, Preface, Settings};

    fn queue() -> WriteQueue {
        WriteQueue::new(BytesMut::new(), None, Arc::default(), usize::MAX)
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
}

#[cfg(all(test, loom))]
mod loom_tests {
    use std::future::poll_fn;

    use super::*;
    use crate::sync::Arc;

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
            let queue = Arc::new(WriteQueue::new(BytesMut::new(), None, std::sync::Arc::default(), usize::MAX));
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
                let queue = Arc::new(WriteQueue::new(BytesMut::new(), None, std::sync::Arc::default(), usize::MAX));
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
            let queue = Arc::new(WriteQueue::new(BytesMut::new(), None, stats.clone(), 2));
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
}
