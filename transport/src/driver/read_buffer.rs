//! The reader's buffers: frames are split off and handed out as `Bytes` that callers may hold
//! for a while, so the buffer they came from cannot always be reused at once. A small ring of
//! buffers lets the reader move on to one whose frames have all been dropped, and reclaim it
//! without allocating.

use bytes::BytesMut;

use crate::buf::BufferPool;

/// Free space below which the reader looks for room before reading (8 KiB).
const MIN_READ_SPACE: usize = 8 * 1024;

/// Buffers in the ring at most (4): with 64 KiB buffers, a caller would have to hold responses
/// spanning 192 KiB of traffic before the reader had to allocate.
const RING: usize = 4;

/// The buffer being read into, and older ones waiting for their frames to be dropped.
#[derive(Debug)]
pub(crate) struct ReadBuffers {
    current: BytesMut,
    spares: Vec<BytesMut>,
    pool: BufferPool,
    capacity: usize,
}

impl ReadBuffers {
    pub(crate) fn new(pool: BufferPool) -> Self {
        let current = pool.take();
        let capacity = current.capacity().max(MIN_READ_SPACE * 2);
        Self {
            current,
            spares: Vec::with_capacity(RING - 1),
            pool,
            capacity,
        }
    }

    /// The buffer to read into and decode from.
    pub(crate) fn current(&mut self) -> &mut BytesMut {
        &mut self.current
    }

    /// Makes sure the current buffer has room for a read, reusing memory whose frames have all
    /// been dropped. Allocates only when every buffer in the ring is still referenced, or when a
    /// frame larger than a buffer is arriving.
    pub(crate) fn make_room(&mut self) {
        let unread = self.current.len();
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

    /// Returns the buffers to the pool.
    pub(crate) fn release(self) {
        self.pool.give(self.current);
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
            buffers.make_room();
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
}
