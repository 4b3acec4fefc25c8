//! The state behind the write queue's lock: the lanes of queued frames, the batches that take
//! turns being written, and the bytes that count against the cap.

use std::task::Waker;

use bytes::BytesMut;

use crate::wire::FrameBatch as Batch;

/// Capacity a written batch may keep for the next one (1 MiB): a burst of small frames (a
/// queue that backed up to its cap) grows a batch's buffer, and that memory is freed once the
/// burst is written instead of staying with the connection for its life.
const MAX_RETAINED_BATCH: usize = 1024 * 1024;

/// A batch taken out of the queue for writing, with the bytes of it already written.
#[derive(Debug)]
pub(crate) struct Taken {
    pub(crate) batch: Batch,
    /// Bytes at the front of `batch` already written.
    pub(crate) sent: usize,
}

/// Everything the queue's lock guards.
#[derive(Debug)]
pub(super) struct Pending {
    /// Frames queued in the normal lane and not yet taken by a writer.
    pub(super) filling: Batch,
    /// Frames queued in the high lane and not yet taken: a take puts them ahead of `filling`.
    /// Empty (and unallocated) until a call at a high priority queues a frame.
    pub(super) high: Batch,
    /// The empty batch a writer swaps in for `filling`; `None` while a batch is taken. Two batches
    /// per connection, ping-ponged, so the steady state never allocates.
    pub(super) spare: Option<Batch>,
    /// A batch a caller started writing but could not finish (the socket was full): the writer
    /// task writes the rest before anything queued later.
    pub(super) handoff: Option<Taken>,
    /// Bytes of the batch a writer has taken, not yet known written: they count against the
    /// cap until the batch comes back, so the cap bounds all the memory the queue holds.
    pub(super) in_flight: usize,
    /// Frames the writer took out to send between two chunks of a large frame
    /// ([`super::WriteQueue::take_between_chunks`]): their bytes, counted against the cap until they
    /// come back.
    pub(super) between_chunks: usize,
    /// The batch swapped in for `filling` when frames go out between chunks; allocated the first
    /// time a connection interleaves, then reused.
    pub(super) between_spare: Option<Batch>,
    /// Flushes are held back (see [`super::WriteQueue::cork`]).
    pub(super) corked: bool,
    pub(super) writer: Option<Waker>,
    pub(super) closed: bool,
}

impl Pending {
    /// Someone holds a taken batch (or left one for the writer): nobody else may write now.
    pub(super) fn writing(&self) -> bool {
        self.spare.is_none()
    }

    /// Whether no lane holds a frame to take.
    pub(super) fn lanes_empty(&self) -> bool {
        self.filling.is_empty() && self.high.is_empty()
    }

    /// Swaps the queued frames out for writing, the high lane's ahead of the normal lane's.
    pub(super) fn take(&mut self) -> Option<Taken> {
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
    /// high lane while `filling` starts with the connection's preface: [`super::QueueGuard::lane`].)
    pub(super) fn put_high_first(&mut self) {
        if self.filling.is_empty() {
            std::mem::swap(&mut self.filling, &mut self.high);
        } else {
            self.high.append_batch(&self.filling);
            self.filling.clear();
            std::mem::swap(&mut self.filling, &mut self.high);
        }
    }

    /// [`Pending::take`], counting the taken bytes as in flight until they come back.
    pub(super) fn take_counted(&mut self) -> Option<Taken> {
        let taken = self.take()?;
        self.in_flight = taken.batch.len() - taken.sent;
        Some(taken)
    }

    pub(super) fn queued_bytes(&self) -> usize {
        self.filling.len()
            + self.high.len()
            + self.in_flight
            + self.between_chunks
            + self.handoff.as_ref().map_or(0, |taken| taken.batch.len() - taken.sent)
    }

    /// Keeps `waker` as the writer task's, to be woken by the next flush (no clone when the
    /// one kept already wakes the same task).
    pub(super) fn register_writer(&mut self, waker: &Waker) {
        if !self.writer.as_ref().is_some_and(|writer| writer.will_wake(waker)) {
            self.writer = Some(waker.clone());
        }
    }

    pub(super) fn wake_writer(&mut self) {
        if let Some(waker) = self.writer.take() {
            waker.wake();
        }
    }
}

/// Empties a written batch for reuse; a buffer grown past [`MAX_RETAINED_BATCH`] is freed.
pub(super) fn recycle(batch: &mut Batch) {
    batch.clear();
    if batch.buf.capacity() > MAX_RETAINED_BATCH {
        batch.buf = BytesMut::new();
    }
}
