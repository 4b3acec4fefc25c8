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
    free: Mutex<Free>,
}

/// The pooled buffers and the fewest there were since the last [`BufferPool::release_idle`].
#[derive(Debug, Default)]
struct Free {
    /// A stack: `take` pops the most recently given buffer, so the bottom holds the idlest.
    buffers: Vec<BytesMut>,
    /// The fewest buffers pooled since the last `release_idle`: that many sat unused throughout.
    low_water: usize,
}

impl BufferPool {
    /// A pool with the given sizes.
    pub fn new(config: BufferPoolConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                free: Mutex::new(Free {
                    buffers: Vec::with_capacity(config.max_pooled),
                    low_water: 0,
                }),
            }),
        }
    }

    /// An empty buffer: a recycled one if any, otherwise a new one of the configured capacity.
    pub fn take(&self) -> BytesMut {
        let recycled = {
            let mut free = lock(&self.inner.free);
            let recycled = free.buffers.pop();
            free.low_water = free.low_water.min(free.buffers.len());
            recycled
        };
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
        if free.buffers.len() < config.max_pooled {
            free.buffers.push(buf);
        }
    }

    /// Drops the buffers that sat in the pool, untaken, since the previous call (the fewest it
    /// held since then), and starts a new period; returns how many it dropped.
    ///
    /// Called once when a burst of connections has ended and again after a quiet period
    /// ([`crate::memory`]), it keeps what the traffic after the burst still takes and frees
    /// the rest: hysteresis, so a pool in steady use is not emptied and refilled.
    ///
    /// ```
    /// use volley::buf::BufferPool;
    ///
    /// let pool = BufferPool::default();
    /// let buffers = [pool.take(), pool.take(), pool.take()];
    /// buffers.into_iter().for_each(|buf| pool.give(buf));
    /// pool.release_idle(); // starts a period with 3 pooled
    /// let busy = pool.take(); // the traffic of the period needs one
    /// pool.give(busy);
    /// assert_eq!(pool.release_idle(), 2, "two sat unused all period");
    /// assert_eq!(pool.pooled(), 1);
    /// ```
    pub fn release_idle(&self) -> usize {
        let idle: Vec<BytesMut> = {
            let mut free = lock(&self.inner.free);
            let unused = free.low_water.min(free.buffers.len());
            let idle = free.buffers.drain(..unused).collect();
            free.low_water = free.buffers.len();
            idle
        };
        // Freed outside the lock: a large buffer's free may be a `munmap`.
        let released = idle.len();
        drop(idle);
        released
    }

    /// Capacity of a fresh buffer from [`BufferPool::take`].
    pub fn buffer_capacity(&self) -> usize {
        self.inner.config.buffer_capacity
    }

    /// Buffers currently pooled.
    pub fn pooled(&self) -> usize {
        lock(&self.inner.free).buffers.len()
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
    fn release_idle_drops_what_no_take_needed_since_the_previous_release() {
        let pool = BufferPool::new(BufferPoolConfig {
            max_pooled: 8,
            buffer_capacity: 64,
            max_retained_capacity: 1024,
        });
        // A burst: six buffers out at once, then all back.
        let burst: Vec<_> = (0..6).map(|_| pool.take()).collect();
        burst.into_iter().for_each(|buf| pool.give(buf));
        assert_eq!(pool.pooled(), 6);
        // The burst emptied the pool, so the first period's low-water mark is 0: nothing idle yet.
        assert_eq!(pool.release_idle(), 0);
        assert_eq!(pool.pooled(), 6);
        // After the burst, steady traffic holds two buffers at a time.
        for _ in 0..10 {
            let (a, b) = (pool.take(), pool.take());
            pool.give(a);
            pool.give(b);
        }
        assert_eq!(pool.release_idle(), 4, "four sat unused through the quiet period");
        assert_eq!(pool.pooled(), 2, "what the steady traffic uses stays pooled");
        // A period with no take at all releases everything.
        assert_eq!(pool.release_idle(), 2);
        assert_eq!(pool.pooled(), 0);
        assert_eq!(pool.release_idle(), 0);
    }

    #[test]
    fn release_idle_keeps_the_most_recently_used_buffers() {
        let pool = BufferPool::new(BufferPoolConfig {
            max_pooled: 8,
            buffer_capacity: 64,
            max_retained_capacity: 1024,
        });
        let (old, recent) = (pool.take(), pool.take());
        let recent_ptr = recent.as_ptr();
        pool.give(old);
        pool.give(recent);
        pool.release_idle();
        let busy = pool.take();
        pool.give(busy);
        assert_eq!(pool.release_idle(), 1);
        assert_eq!(pool.take().as_ptr(), recent_ptr, "the buffer the traffic took is the one kept");
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
