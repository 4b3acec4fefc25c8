//! The reader's buffers: frames are split off and handed out as `Bytes` that callers may hold
//! for a while, so the buffer they came from cannot always be reused at once. A small ring of
//! buffers lets the reader move on to one whose frames have all been dropped, and reclaim it
//! without allocating.
//!
//! A connection starts on a small buffer of its own and takes pooled buffers only once traffic
//! fills it: a connection that handshakes and then idles (or a burst of them) costs 512 bytes of
//! read buffer, not 64 KiB.

use bytes::BytesMut;

use crate::buf::BufferPool;

/// Free space below which the reader looks for room before reading (8 KiB).
const MIN_READ_SPACE: usize = 8 * 1024;

/// Buffers in the ring at most (4): with 64 KiB buffers, a caller would have to hold responses
/// spanning 192 KiB of traffic before the reader had to allocate.
const RING: usize = 4;

/// Capacity of a connection's first read buffer (512 bytes): the handshake (60 bytes) and a few
/// small frames fit. The first time it has less than half of it free, the reader moves to pooled
/// buffers.
const STARTER_CAPACITY: usize = 512;

/// The buffer being read into, and older ones waiting for their frames to be dropped.
#[derive(Debug)]
pub(crate) struct ReadBuffers {
    current: BytesMut,
    /// `current` is the starter buffer (no pooled buffer taken yet).
    starter: bool,
    spares: Vec<BytesMut>,
    pool: BufferPool,
    capacity: usize,
    /// Reads stop at the end of a large frame (see [`ReadBuffers::make_room`]).
    frame_sized: bool,
}

impl ReadBuffers {
    pub(crate) fn new(pool: BufferPool) -> Self {
        let capacity = pool.buffer_capacity().max(MIN_READ_SPACE * 2);
        Self {
            current: BytesMut::with_capacity(STARTER_CAPACITY),
            starter: true,
            spares: Vec::new(),
            pool,
            capacity,
            frame_sized: false,
        }
    }

    /// Has reads stop at the end of a large frame in progress, so that large frames one after
    /// another land at the same address: for a Unix socket, where a read brings at most what the
    /// sender's `SO_SNDBUF` holds (384 KiB by default), so stopping costs at most one more read
    /// per frame. Over TCP the receive queue may hold megabytes, and a read past the frame's end
    /// takes the next frame too, whose answer then leaves in the same write (measured: a TCP
    /// server that stopped made 1.7 writes per 1 MiB call instead of 1.1).
    pub(crate) fn frame_sized(mut self, frame_sized: bool) -> Self {
        self.frame_sized = frame_sized;
        self
    }

    /// The buffer to read into and decode from.
    pub(crate) fn current(&mut self) -> &mut BytesMut {
        &mut self.current
    }

    /// Makes sure the current buffer has room for a read, reusing memory whose frames have all
    /// been dropped. Allocates only when every buffer in the ring is still referenced, or when a
    /// frame larger than a buffer is arriving.
    ///
    /// `incomplete_frame_len` is the length of the frame the buffer starts with, when the last
    /// pass left it incomplete (`ReadProgress::incomplete_frame_len`; 0 if none or unknown).
    /// With [`ReadBuffers::frame_sized`], while the buffer already has room for all of it,
    /// nothing changes, even if less than [`MIN_READ_SPACE`] is left: the decoder sized the
    /// buffer for that frame (`wire/codec.rs`),
    /// and growing it here would double a large frame's buffer (`BytesMut::reserve`), after which
    /// the frames that follow alternate between its two halves and a receiver of 1 MiB frames
    /// writes 2 MiB of memory over and over instead of 1 MiB (dearer kernel copies: the cache no
    /// longer holds both ends' buffers).
    pub(crate) fn make_room(&mut self, incomplete_frame_len: usize) {
        let unread = self.current.len();
        if self.frame_sized && incomplete_frame_len > unread && self.current.capacity() >= incomplete_frame_len {
            return;
        }
        if self.starter {
            if self.current.capacity() - unread >= STARTER_CAPACITY / 2 {
                return;
            }
            // Traffic: move to pooled buffers for good. The starter is freed once the frames
            // read from it are dropped.
            self.starter = false;
            let mut next = self.pool.take();
            next.reserve(unread + MIN_READ_SPACE);
            next.extend_from_slice(&self.current);
            self.current = next;
            return;
        }
        let wanted = self.capacity.max(unread + MIN_READ_SPACE);
        if self.current.capacity() - unread >= MIN_READ_SPACE || self.current.try_reclaim(wanted - unread) {
            return;
        }
        if let Some(index) = self
            .spares
            .iter_mut()
            .position(|spare| spare.is_empty() && spare.try_reclaim(wanted))
        {
            let mut next = self.spares.swap_remove(index);
            next.extend_from_slice(&self.current);
            self.current.clear();
            let previous = std::mem::replace(&mut self.current, next);
            self.spares.push(previous);
            return;
        }
        if self.spares.len() < RING - 1 && unread < self.capacity {
            let mut next = self.pool.take();
            next.extend_from_slice(&self.current);
            self.current.clear();
            let previous = std::mem::replace(&mut self.current, next);
            self.spares.push(previous);
            return;
        }
        self.current.reserve(wanted - unread);
    }

    /// Returns the buffers to the pool (not the starter: it is no pool buffer).
    pub(crate) fn release(self) {
        if !self.starter {
            self.pool.give(self.current);
        }
        for spare in self.spares {
            self.pool.give(spare);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn reader_moves_to_a_reclaimable_buffer_instead_of_allocating() {
        let mut buffers = ReadBuffers::new(BufferPool::default());
        let mut held = Vec::new();
        for round in 0..40 {
            buffers.make_room(0);
            let buf = buffers.current();
            let free = buf.capacity() - buf.len();
            buf.resize(buf.len() + free.min(4096), round as u8);
            let frame = buf.split().freeze();
            held.push(frame);
            // Callers drop what they hold, but a little later than the reader moves on.
            if held.len() > 2 {
                held.remove(0);
            }
        }
        assert!(buffers.spares.len() < RING, "the ring stays bounded");
    }

    #[test]
    fn large_frames_one_after_another_land_at_the_same_address() {
        const FRAME: usize = 1 << 20;
        let mut buffers = ReadBuffers::new(BufferPool::default()).frame_sized(true);
        let mut starts = Vec::new();
        for _ in 0..4 {
            // As the decoder leaves it once a frame's header is in: room for the whole frame
            // (the first frame moves off the starter buffer).
            buffers.make_room(0);
            let buf = buffers.current();
            buf.reserve(FRAME);
            starts.push(buf.as_ptr() as usize);
            // All but a few bytes arrive: less than MIN_READ_SPACE is left, all the frame needs.
            buf.resize(FRAME - 100, 1);
            buffers.make_room(FRAME);
            let buf = buffers.current();
            assert!(buf.capacity() - buf.len() >= 100);
            assert_eq!(buf.as_ptr() as usize, *starts.last().unwrap(), "the frame is not moved");
            buf.resize(FRAME, 1);
            // Handed out and dropped (an inline handler) before the next read.
            drop(buf.split().freeze());
        }
        assert!(starts[1..].windows(2).all(|pair| pair[0] == pair[1]), "{starts:x?}");
    }

    #[test]
    fn an_idle_connection_keeps_its_small_starter_buffer() {
        let pool = BufferPool::default();
        let mut buffers = ReadBuffers::new(pool.clone());
        // A handshake's worth of bytes, read and consumed.
        buffers.make_room(0);
        buffers.current().extend_from_slice(&[0; 100]);
        drop(buffers.current().split());
        buffers.make_room(0);
        assert!(buffers.starter);
        assert!(buffers.current().capacity() <= STARTER_CAPACITY);
        buffers.release();
        assert_eq!(pool.pooled(), 0, "no pooled buffer was taken");
    }

    #[test]
    fn traffic_moves_the_reader_to_pooled_buffers_keeping_unread_bytes() {
        let pool = BufferPool::default();
        let mut buffers = ReadBuffers::new(pool.clone());
        buffers.make_room(0);
        buffers.current().extend_from_slice(&[7; STARTER_CAPACITY - 10]);
        buffers.make_room(0);
        assert!(!buffers.starter);
        assert_eq!(&buffers.current()[..], &[7; STARTER_CAPACITY - 10][..]);
        assert!(buffers.current().capacity() - buffers.current().len() >= MIN_READ_SPACE);
        buffers.current().clear();
        buffers.release();
        assert_eq!(pool.pooled(), 1, "the pooled buffer goes back");
    }
}
