//! A bounded pool of `BytesMut`.

use bytes::BytesMut;

use crate::sync::{Arc, Mutex, lock};

/// Buffers the pool keeps at most (32): enough for the read buffers of a busy server's churn of
/// short connections; a burst of connections beyond it frees its buffers when it ends (256 kept
/// up to 16 MiB of fresh buffers after a burst: issue #15).
pub const DEFAULT_MAX_POOLED: usize = 32;

/// Capacity of a fresh buffer (64 KiB): one socket read or a write batch of many small frames.
pub const DEFAULT_BUFFER_CAPACITY: usize = 64 * 1024;

/// Largest capacity a returned buffer may have and still be kept (128 KiB, twice a fresh
/// buffer); a buffer grown for a large message or a backed-up write batch is dropped rather than
/// pinned in the pool, so the pool holds at most 32 × 128 KiB = 4 MiB (it was 1 MiB each, up to
/// 32 MiB in all: issue #15).
pub const DEFAULT_MAX_RETAINED_CAPACITY: usize = 128 * 1024;

/// Sizes of a [`BufferPool`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BufferPoolConfig {
    /// See [`DEFAULT_MAX_POOLED`].
    pub max_pooled: usize,
    /// See [`DEFAULT_BUFFER_CAPACITY`].
    pub buffer_capacity: usize,
    /// See [`DEFAULT_MAX_RETAINED_CAPACITY`].
    pub max_retained_capacity: usize,
}

impl Default for BufferPoolConfig {
    fn default() -> Self {
        Self {
            max_pooled: DEFAULT_MAX_POOLED,
            buffer_capacity: DEFAULT_BUFFER_CAPACITY,
            max_retained_capacity: DEFAULT_MAX_RETAINED_CAPACITY,
        }
    }
}

/// A shared, bounded pool of empty `BytesMut`. Cloning shares the pool.
///
/// ```
/// use volley::buf::BufferPool;
///
/// let pool = BufferPool::default();
/// let mut buf = pool.take();
/// buf.extend_from_slice(b"frame bytes");
/// pool.give(buf);
/// assert_eq!(pool.pooled(), 1);
/// assert!(pool.take().is_empty(), "buffers come back cleared");
/// ```
#[derive(Clone, Debug, Default)]
pub struct BufferPool {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    config: BufferPoolConfig,
    free: Mutex<Vec<BytesMut>>,
}

impl BufferPool {
    /// A pool with the given sizes.
    pub fn new(config: BufferPoolConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                free: Mutex::new(Vec::with_capacity(config.max_pooled)),
            }),
        }
    }

    /// An empty buffer: a recycled one if any, otherwise a new one of the configured capacity.
    pub fn take(&self) -> BytesMut {
        let recycled = lock(&self.inner.free).pop();
        recycled.unwrap_or_else(|| BytesMut::with_capacity(self.inner.config.buffer_capacity))
    }

    /// Returns a buffer. It is cleared and kept unless the pool is full, the buffer grew past
    /// the retained capacity, or it still shares memory with frozen `Bytes` (then it is dropped).
    pub fn give(&self, mut buf: BytesMut) {
        let config = &self.inner.config;
        if buf.capacity() > config.max_retained_capacity || buf.capacity() < config.buffer_capacity / 2 {
            return;
        }
        buf.clear();
        let mut free = lock(&self.inner.free);
        if free.len() < config.max_pooled {
            free.push(buf);
        }
    }

    /// Capacity of a fresh buffer from [`BufferPool::take`].
    pub fn buffer_capacity(&self) -> usize {
        self.inner.config.buffer_capacity
    }

    /// Buffers currently pooled.
    pub fn pooled(&self) -> usize {
        lock(&self.inner.free).len()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn pool_keeps_at_most_max_pooled_buffers() {
        let pool = BufferPool::new(BufferPoolConfig {
            max_pooled: 2,
            buffer_capacity: 64,
            max_retained_capacity: 1024,
        });
        for _ in 0..5 {
            pool.give(BytesMut::with_capacity(64));
        }
        assert_eq!(pool.pooled(), 2);
    }

    #[test]
    fn pool_drops_oversized_and_shrunken_buffers() {
        let pool = BufferPool::new(BufferPoolConfig {
            max_pooled: 8,
            buffer_capacity: 64,
            max_retained_capacity: 1024,
        });
        pool.give(BytesMut::with_capacity(4096));
        pool.give(BytesMut::with_capacity(8));
        assert_eq!(pool.pooled(), 0);
    }

    #[test]
    fn recycled_buffer_is_the_same_allocation() {
        let pool = BufferPool::default();
        let buf = pool.take();
        let ptr = buf.as_ptr();
        pool.give(buf);
        assert_eq!(pool.take().as_ptr(), ptr);
    }
}
