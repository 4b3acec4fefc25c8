//! The per-connection write queue: callers append encoded frames, the writer task takes
//! everything queued in one swap and writes it with one vectored write.
//!
//! Small frames are encoded straight into the queue's buffer; large message payloads are queued
//! by reference (`Bytes`) and written from their own memory, never copied.

use std::io::IoSlice;
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};

use crate::sync::{Mutex, MutexGuard, lock};

/// Payloads above this size (16 KiB) are queued by reference rather than copied into the batch
/// buffer: copying small ones is cheaper than an extra iovec, copying large ones is not.
pub(crate) const INLINE_PAYLOAD_MAX: usize = 16 * 1024;

/// Frames ready to be written: inline bytes, with large chunks spliced in at recorded offsets.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    /// Encoded frames.
    pub(crate) buf: BytesMut,
    /// `(offset, chunk)`: `chunk` is written right after `buf[..offset]`. Offsets ascend.
    chunks: Vec<(usize, Bytes)>,
    /// Frames in the batch.
    pub(crate) frames: usize,
    /// Bytes in the batch, inline and chunked.
    len: usize,
}

impl Batch {
    /// An empty batch writing into `buf`.
    pub(crate) fn with_buf(buf: BytesMut) -> Self {
        Self { buf, ..Self::default() }
    }

    /// Appends a large payload by reference at the current end of the inline bytes.
    pub(crate) fn push_chunk(&mut self, chunk: Bytes) {
        self.len += chunk.len();
        self.chunks.push((self.buf.len(), chunk));
    }

    /// Total bytes queued.
    pub(crate) fn len(&self) -> usize {
        self.len + self.buf.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.frames == 0 && self.len() == 0
    }

    /// Empties the batch, keeping its memory.
    pub(crate) fn clear(&mut self) {
        self.buf.clear();
        self.chunks.clear();
        self.frames = 0;
        self.len = 0;
    }

    /// The batch's bytes in write order: inline run, chunk, inline run, ..., final inline run.
    pub(crate) fn pieces(&self) -> Pieces<'_> {
        Pieces {
            buf: &self.buf,
            chunks: &self.chunks,
            next_chunk: 0,
            inline_from: 0,
            chunk_pending: false,
            done: false,
        }
    }

    /// Fills `iov` with the pieces after the first `skip` bytes; returns how many it filled.
    pub(crate) fn io_slices<'a>(&'a self, mut skip: usize, iov: &mut [IoSlice<'a>]) -> usize {
        let mut filled = 0;
        for piece in self.pieces() {
            if filled == iov.len() {
                break;
            }
            if skip >= piece.len() {
                skip -= piece.len();
                continue;
            }
            iov[filled] = IoSlice::new(&piece[skip..]);
            skip = 0;
            filled += 1;
        }
        filled
    }
}

/// Iterator over a batch's byte pieces: inline run, chunk, inline run, ..., final inline run.
pub(crate) struct Pieces<'a> {
    buf: &'a BytesMut,
    chunks: &'a [(usize, Bytes)],
    next_chunk: usize,
    inline_from: usize,
    chunk_pending: bool,
    done: bool,
}

impl<'a> Iterator for Pieces<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        loop {
            if self.done {
                return None;
            }
            if self.chunk_pending {
                self.chunk_pending = false;
                let chunk = &self.chunks[self.next_chunk].1;
                self.next_chunk += 1;
                if !chunk.is_empty() {
                    return Some(&chunk[..]);
                }
                continue;
            }
            let (end, last) = match self.chunks.get(self.next_chunk) {
                Some((offset, _)) => (*offset, false),
                None => (self.buf.len(), true),
            };
            let inline = &self.buf[self.inline_from..end];
            self.inline_from = end;
            self.chunk_pending = !last;
            self.done = last;
            if !inline.is_empty() {
                return Some(inline);
            }
        }
    }
}

#[derive(Debug)]
struct Pending {
    batch: Batch,
    writer: Option<Waker>,
    closed: bool,
}

/// A queue of encoded frames shared by the callers of a connection and its writer task.
#[derive(Debug)]
pub(crate) struct WriteQueue {
    inner: Mutex<Pending>,
}

/// Exclusive access to the queued batch. Dropping it after adding frames wakes the writer.
pub(crate) struct QueueGuard<'a> {
    guard: MutexGuard<'a, Pending>,
    frames_before: usize,
    flush: bool,
}

impl QueueGuard<'_> {
    /// The batch to append frames to; count them with [`QueueGuard::add_frames`].
    pub(crate) fn batch(&mut self) -> &mut Batch {
        &mut self.guard.batch
    }

    /// Leaves the writer asleep on drop: the frames go out with the next flushing enqueue.
    pub(crate) fn no_flush(&mut self) {
        self.flush = false;
    }
}

impl Drop for QueueGuard<'_> {
    fn drop(&mut self) {
        if self.flush && self.guard.batch.frames > self.frames_before {
            if let Some(waker) = self.guard.writer.take() {
                waker.wake();
            }
        }
    }
}

impl WriteQueue {
    pub(crate) fn new(buf: BytesMut) -> Self {
        Self {
            inner: Mutex::new(Pending {
                batch: Batch::with_buf(buf),
                writer: None,
                closed: false,
            }),
        }
    }

    /// Locks the queue to append frames.
    pub(crate) fn lock(&self) -> QueueGuard<'_> {
        let guard = lock(&self.inner);
        let frames_before = guard.batch.frames;
        QueueGuard {
            guard,
            frames_before,
            flush: true,
        }
    }

    /// Swaps everything queued into `spare` (which must be empty). `Ready(false)` once the queue
    /// is closed and drained; `Pending` (with the waker registered) while it is empty.
    pub(crate) fn poll_take(&self, cx: &mut Context<'_>, spare: &mut Batch) -> Poll<bool> {
        debug_assert!(spare.is_empty());
        let mut pending = lock(&self.inner);
        if !pending.batch.is_empty() {
            std::mem::swap(&mut pending.batch, spare);
            return Poll::Ready(true);
        }
        if pending.closed {
            return Poll::Ready(false);
        }
        if !pending.writer.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            pending.writer = Some(cx.waker().clone());
        }
        Poll::Pending
    }

    /// Bytes waiting for the writer.
    pub(crate) fn queued_bytes(&self) -> usize {
        lock(&self.inner).batch.len()
    }

    /// Stops the writer once it has drained what is queued.
    pub(crate) fn close(&self) {
        let mut pending = lock(&self.inner);
        pending.closed = true;
        if let Some(waker) = pending.writer.take() {
            waker.wake();
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn pieces(batch: &Batch) -> Vec<u8> {
        let mut iov = [IoSlice::new(&[]); 8];
        let n = batch.io_slices(0, &mut iov);
        iov[..n].iter().flat_map(|s| s.iter().copied()).collect()
    }

    #[test]
    fn io_slices_splice_chunks_in_order_and_honour_skip() {
        let mut batch = Batch::default();
        batch.buf.extend_from_slice(b"ab");
        batch.push_chunk(Bytes::from_static(b"CD"));
        batch.buf.extend_from_slice(b"ef");
        batch.push_chunk(Bytes::from_static(b"GH"));
        batch.frames = 2;
        assert_eq!(pieces(&batch), b"abCDefGH");
        assert_eq!(batch.len(), 8);
        let mut iov = [IoSlice::new(&[]); 8];
        let n = batch.io_slices(3, &mut iov);
        let rest: Vec<u8> = iov[..n].iter().flat_map(|s| s.iter().copied()).collect();
        assert_eq!(rest, b"DefGH");
        let mut small = [IoSlice::new(&[]); 2];
        assert_eq!(batch.io_slices(0, &mut small), 2, "stops when the iovec array is full");
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use std::future::poll_fn;

    use super::*;
    use crate::sync::Arc;

    #[test]
    fn loom_write_queue_never_loses_a_frame_or_a_wakeup() {
        loom::model(|| {
            let queue = Arc::new(WriteQueue::new(BytesMut::new()));
            let producers: Vec<_> = [b'a', b'b']
                .into_iter()
                .map(|byte| {
                    let queue = queue.clone();
                    loom::thread::spawn(move || {
                        let mut guard = queue.lock();
                        guard.batch().buf.extend_from_slice(&[byte]);
                        guard.batch().frames += 1;
                    })
                })
                .collect();
            let writer = {
                let queue = queue.clone();
                loom::thread::spawn(move || {
                    let mut seen = Vec::new();
                    let mut batch = Batch::default();
                    while seen.len() < 2 {
                        let more = loom::future::block_on(poll_fn(|cx| queue.poll_take(cx, &mut batch)));
                        assert!(more);
                        seen.extend_from_slice(&batch.buf);
                        batch.clear();
                    }
                    seen.sort_unstable();
                    seen
                })
            };
            for producer in producers {
                producer.join().unwrap();
            }
            assert_eq!(writer.join().unwrap(), b"ab");
        });
    }
}
