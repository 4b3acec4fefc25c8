//! Counters one thread writes and any thread reads, and the pool of per-thread shards that holds
//! them: what lets a call record its metrics without a locked read-modify-write.
//!
//! A [`SoleCounter`] is added to with a plain load and store (no `lock` prefix): correct only
//! while one thread at a time writes it, which a shard guarantees by belonging to one thread.
//! A [`ShardPool`] hands each recording thread a shard of its own ([`ShardPool::adopt`]), takes
//! it back when the thread exits ([`ShardPool::release`]) and hands it to the next thread that
//! adopts one, counts included: the hand-over goes through the pool's mutex, so the next owner's
//! first store comes after the last owner's last one, and nothing counted is lost. Every shard
//! ever made stays in the pool's list, so a reader sums all of them ([`ShardPool::shards`]) and
//! sees every count stored before it read: a scrape right after N calls ended (on any threads
//! that handed their end over to the scraper, as a joined thread or an awaited call does) sees
//! N. Memory is bounded by the most threads that recorded at once.
//!
//! Compiled under `cfg(loom)` too (for its model), hence its own imports only.

use crate::sync::atomic::{AtomicU64, Ordering::Relaxed};
use crate::sync::{Arc, Mutex, lock};

/// What a count is kept in: a shared atomic (locked add) or a [`SoleCounter`] (plain add).
pub(crate) trait Count: Default {
    /// Adds `n`.
    fn add(&self, n: u64);
    /// The count now.
    fn read(&self) -> u64;
}

impl Count for AtomicU64 {
    #[inline]
    fn add(&self, n: u64) {
        self.fetch_add(n, Relaxed);
    }

    #[inline]
    fn read(&self) -> u64 {
        self.load(Relaxed)
    }
}

/// A counter written by one thread at a time (its shard's owner), read by any: adding is a
/// relaxed load and a relaxed store, which compile to a plain `add` on memory. Two threads
/// adding at once would lose counts (never memory safety); a shard's owner is the only writer.
#[derive(Debug, Default)]
pub(crate) struct SoleCounter(AtomicU64);

impl Count for SoleCounter {
    #[inline]
    fn add(&self, n: u64) {
        self.0.store(self.0.load(Relaxed).wrapping_add(n), Relaxed);
    }

    #[inline]
    fn read(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// Per-thread shards of `T`: adopted by a thread, released when it exits, reused by the next.
#[derive(Debug)]
pub(crate) struct ShardPool<T> {
    inner: Mutex<Shards<T>>,
}

#[derive(Debug)]
struct Shards<T> {
    /// Every shard made, owned or free: what a reader sums.
    all: Vec<Arc<T>>,
    /// Shards whose thread exited, for the next thread that adopts one.
    free: Vec<Arc<T>>,
}

impl<T> Default for ShardPool<T> {
    fn default() -> Self {
        Self {
            inner: Mutex::new(Shards {
                all: Vec::new(),
                free: Vec::new(),
            }),
        }
    }
}

impl<T> ShardPool<T> {
    /// A shard for the calling thread to write alone until it releases it: a released one
    /// (its counts kept) or, when none is free, a new one from `make`. Once per thread.
    pub(crate) fn adopt(&self, make: impl FnOnce() -> T) -> Arc<T> {
        let mut shards = lock(&self.inner);
        if let Some(shard) = shards.free.pop() {
            return shard;
        }
        let shard = Arc::new(make());
        shards.all.push(shard.clone());
        shard
    }

    /// The owner of `shard` stops writing it (its thread exits); the next [`ShardPool::adopt`]
    /// may hand it out.
    pub(crate) fn release(&self, shard: Arc<T>) {
        lock(&self.inner).free.push(shard);
    }

    /// Every shard, owned or free, for a reader to sum.
    pub(crate) fn shards(&self) -> Vec<Arc<T>> {
        lock(&self.inner).all.clone()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_released_shard_goes_to_the_next_thread_with_its_counts() {
        let pool: ShardPool<SoleCounter> = ShardPool::default();
        let first = pool.adopt(SoleCounter::default);
        first.add(3);
        pool.release(first);
        let second = pool.adopt(SoleCounter::default);
        assert_eq!(second.read(), 3, "the counts go with the shard");
        second.add(2);
        let third = pool.adopt(SoleCounter::default);
        third.add(1);
        assert_eq!(pool.shards().iter().map(|c| c.read()).sum::<u64>(), 6);
        assert_eq!(pool.shards().len(), 2, "a freed shard is reused, not added to");
    }

    #[test]
    fn shards_of_exited_threads_are_summed_exactly() {
        let pool = std::sync::Arc::new(ShardPool::<SoleCounter>::default());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let pool = pool.clone();
                std::thread::spawn(move || {
                    let shard = pool.adopt(SoleCounter::default);
                    for _ in 0..10_000 {
                        shard.add(1);
                    }
                    pool.release(shard);
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("no panic");
        }
        assert_eq!(pool.shards().iter().map(|c| c.read()).sum::<u64>(), 40_000);
    }
}

#[cfg(all(test, loom))]
mod loom_models {
    use loom::thread;

    use super::*;

    /// A thread records through a shard it adopts and then releases (exits) while the main
    /// thread adopts one, records and reads: the main thread may get the other's shard
    /// (through the pool's mutex), and its own count lands on top of the other's, never over
    /// it. Once both are done every count is there.
    #[test]
    fn loom_a_sole_counter_handed_over_keeps_every_count() {
        loom::model(|| {
            let pool = Arc::new(ShardPool::<SoleCounter>::default());
            let other = {
                let pool = pool.clone();
                thread::spawn(move || {
                    let shard = pool.adopt(SoleCounter::default);
                    shard.add(1);
                    pool.release(shard);
                })
            };
            let shard = pool.adopt(SoleCounter::default);
            shard.add(2);
            let seen: u64 = pool.shards().iter().map(|c| c.read()).sum();
            assert!((2..=3).contains(&seen), "saw {seen}");
            other.join().expect("recorder");
            assert_eq!(pool.shards().iter().map(|c| c.read()).sum::<u64>(), 3);
        });
    }
}
