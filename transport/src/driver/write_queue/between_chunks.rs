//! What the writer takes out of the queue between two chunks of a large frame (`interleave.rs`):
//! the frames queued since it took its batch, the high lane's first, and their bytes counted
//! against the cap until they come back.

use std::task::{Context, Poll};

use super::{Pending, WriteQueue, recycle};
use crate::sync::lock;
use crate::wire::FrameBatch as Batch;

impl WriteQueue {
    /// Takes the frames queued since the writer took its batch, lane by lane when `fits`
    /// accepts the lane's frames, for the writer to send between two chunks of a large frame:
    /// `Some` with the frames (the high lane's first) and whether room opened under the cap.
    /// The high lane goes even when the normal lane must wait, never the other way round.
    /// Nothing while corked (a read's answers leave together). The frames come back with
    /// [`WriteQueue::give_back_between_chunks`].
    pub(crate) fn take_between_chunks(&self, fits: impl Fn(&Batch) -> bool) -> Option<(Batch, bool)> {
        let mut pending = lock(&self.inner);
        let (high, normal) = lanes_between_chunks(&pending, &fits);
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

    /// Ready once [`WriteQueue::take_between_chunks`] with `fits` would take frames; otherwise
    /// registers the writer's waker, which the next flush wakes (every enqueue while the writer
    /// is busy flushes to it). For the writer waiting for its chunk window: frames queued
    /// meanwhile go out at the chunk boundary it stopped on, without waiting for the window.
    pub(crate) fn poll_between_chunks(&self, cx: &mut Context<'_>, fits: impl Fn(&Batch) -> bool) -> Poll<()> {
        let mut pending = lock(&self.inner);
        if lanes_between_chunks(&pending, &fits) != (false, false) {
            return Poll::Ready(());
        }
        pending.register_writer(cx.waker());
        Poll::Pending
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
}

/// Which lanes' frames may go between two chunks now, `(high, normal)`: none while corked (a
/// read's answers leave together) or while frames taken between chunks are out; a lane whose
/// frames `fits` accepts; the normal lane never ahead of frames the high lane holds (a frame
/// queued after them there, a Cancel, may belong to their call).
fn lanes_between_chunks(pending: &Pending, fits: impl Fn(&Batch) -> bool) -> (bool, bool) {
    if pending.corked || pending.between_chunks != 0 {
        return (false, false);
    }
    let high_waits = !pending.high.is_empty();
    let high = high_waits && fits(&pending.high);
    let normal = (high || !high_waits) && !pending.filling.is_empty() && fits(&pending.filling);
    (high, normal)
}
