//! The per-connection write queue: callers append encoded frames, the writer task takes
//! everything queued in one swap and writes it with one vectored write.
//!
//! Small frames are encoded straight into the queue's buffer; large message payloads are queued
//! by reference (`Bytes`) and written from their own memory, never copied.
//!
//! Who writes is a choice per enqueue ([`Flush`]). A lone call writes the queue out itself with
//! one non-blocking `writev` (under the queue lock, so bytes never interleave), costing no task
//! wake-up. Under load, enqueues wake the writer task instead, which then takes everything queued
//! meanwhile in one `writev`: many calls per syscall. The reader corks the queue while it handles
//! a batch of frames, so the answers of one read go out together.

use std::io::{self, IoSlice};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};

use crate::net::Stream;
use crate::stats::Stats;
use crate::sync::{Mutex, MutexGuard, lock};

/// iovecs per `writev` call (64): enough for many chunked messages, far below IOV_MAX (1024).
pub(crate) const MAX_IOVECS: usize = 64;

/// Non-blocking write attempts a caller makes before leaving the rest to the writer task (4).
const DIRECT_WRITE_ATTEMPTS: usize = 4;

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
    /// Bytes at the front of `batch` already written by a caller.
    sent: usize,
    /// The writer task holds a batch it is writing: nobody else may write now.
    busy: bool,
    /// Flushes are held back (see [`WriteQueue::cork`]).
    corked: bool,
    writer: Option<Waker>,
    closed: bool,
}

/// A queue of encoded frames shared by the callers of a connection and its writer task.
#[derive(Debug)]
pub(crate) struct WriteQueue {
    inner: Mutex<Pending>,
    /// The socket, for writes by callers; `None` leaves all writing to the writer task.
    direct: Option<Arc<Stream>>,
    stats: Arc<Stats>,
}

/// What happens to frames once they are queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flush {
    /// Write them now from this task if the writer is idle (latency first).
    Direct,
    /// Wake the writer task, so later enqueues can join the same write (throughput first).
    Wake,
    /// Neither: they go out with the next flushing enqueue.
    Later,
}

/// Exclusive access to the queued batch. Dropping it after adding frames flushes them as set
/// with [`QueueGuard::set_flush`] (by default, [`Flush::Wake`]).
pub(crate) struct QueueGuard<'a> {
    guard: MutexGuard<'a, Pending>,
    queue: &'a WriteQueue,
    frames_before: usize,
    flush: Flush,
}

impl QueueGuard<'_> {
    /// The batch to append frames to; count them with [`QueueGuard::add_frames`].
    pub(crate) fn batch(&mut self) -> &mut Batch {
        &mut self.guard.batch
    }

    /// How the frames added through this guard are flushed.
    pub(crate) fn set_flush(&mut self, flush: Flush) {
        self.flush = flush;
    }
}

impl Drop for QueueGuard<'_> {
    fn drop(&mut self) {
        if self.guard.batch.frames == self.frames_before {
            return;
        }
        self.queue.flush_locked(&mut self.guard, self.flush);
    }
}

impl Pending {
    /// Writes the batch with non-blocking `writev`s; `true` when all of it went out. Errors are
    /// left for the writer task, which ends the connection on them.
    fn write_direct(&mut self, stream: &Stream, stats: &Stats) -> bool {
        for _ in 0..DIRECT_WRITE_ATTEMPTS {
            let mut iov = [IoSlice::new(&[]); MAX_IOVECS];
            let count = self.batch.io_slices(self.sent, &mut iov);
            match stream.try_write_vectored(&iov[..count]) {
                Ok(0) => return false,
                Ok(n) => {
                    Stats::add(&stats.write_syscalls, 1);
                    self.sent += n;
                    if self.sent == self.batch.len() {
                        Stats::add(&stats.frames_out, self.batch.frames as u64);
                        Stats::add(&stats.bytes_out, self.sent as u64);
                        self.batch.clear();
                        self.sent = 0;
                        return true;
                    }
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        false
    }
}

impl WriteQueue {
    /// A queue writing into `buf`; with `direct`, callers write to the socket themselves when the
    /// writer task is idle.
    pub(crate) fn new(buf: BytesMut, direct: Option<Arc<Stream>>, stats: Arc<Stats>) -> Self {
        let pending = Pending {
            batch: Batch::with_buf(buf),
            sent: 0,
            busy: false,
            corked: false,
            writer: None,
            closed: false,
        };
        Self {
            inner: Mutex::new(pending),
            direct,
            stats,
        }
    }

    /// Locks the queue to append frames.
    pub(crate) fn lock(&self) -> QueueGuard<'_> {
        let guard = lock(&self.inner);
        let frames_before = guard.batch.frames;
        QueueGuard {
            guard,
            queue: self,
            frames_before,
            flush: Flush::Wake,
        }
    }

    /// Holds every flush back until [`WriteQueue::uncork`]: the reader corks while it handles a
    /// read's frames, so the answers to them leave in one write.
    pub(crate) fn cork(&self) {
        lock(&self.inner).corked = true;
    }

    /// Ends [`WriteQueue::cork`] and flushes what was queued meanwhile, directly if it can.
    pub(crate) fn uncork(&self) {
        let mut pending = lock(&self.inner);
        pending.corked = false;
        if !pending.batch.is_empty() {
            self.flush_locked(&mut pending, Flush::Direct);
        }
    }

    fn flush_locked(&self, pending: &mut Pending, flush: Flush) {
        if pending.corked || flush == Flush::Later {
            return;
        }
        if let (Flush::Direct, Some(stream), false, false) = (flush, &self.direct, pending.busy, pending.closed)
            && pending.write_direct(stream, &self.stats)
        {
            return;
        }
        if let Some(waker) = pending.writer.take() {
            waker.wake();
        }
    }

    /// Swaps everything queued into `spare` (which must be empty) and marks the writer busy until
    /// [`WriteQueue::finish_write`]. Returns the number of bytes at the front of the batch that
    /// are already written; `Ready(None)` once the queue is closed and drained; `Pending` (with
    /// the waker registered) while it is empty.
    pub(crate) fn poll_take(&self, cx: &mut Context<'_>, spare: &mut Batch) -> Poll<Option<usize>> {
        debug_assert!(spare.is_empty());
        let mut pending = lock(&self.inner);
        if !pending.batch.is_empty() {
            std::mem::swap(&mut pending.batch, spare);
            pending.busy = true;
            return Poll::Ready(Some(std::mem::take(&mut pending.sent)));
        }
        if pending.closed {
            return Poll::Ready(None);
        }
        if !pending.writer.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            pending.writer = Some(cx.waker().clone());
        }
        Poll::Pending
    }

    /// Ends the write [`WriteQueue::poll_take`] started.
    pub(crate) fn finish_write(&self) {
        lock(&self.inner).busy = false;
    }

    /// Bytes waiting to be written.
    pub(crate) fn queued_bytes(&self) -> usize {
        let pending = lock(&self.inner);
        pending.batch.len() - pending.sent
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
            let queue = Arc::new(WriteQueue::new(BytesMut::new(), None, std::sync::Arc::default()));
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
                        let skip = loom::future::block_on(poll_fn(|cx| queue.poll_take(cx, &mut batch)));
                        assert_eq!(skip, Some(0));
                        seen.extend_from_slice(&batch.buf);
                        batch.clear();
                        queue.finish_write();
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
