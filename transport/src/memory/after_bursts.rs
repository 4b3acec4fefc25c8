//! The server's side of returning memory: the connection count goes in, and once a burst has
//! ended the pool's idle buffers are released and the allocator trimmed off the async workers.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Notify;
use tokio::time::Instant;

use super::MemoryReturn;
use super::burst::{BurstDetector, Change};
use crate::buf::BufferPool;
use crate::sync::{Mutex, lock};

/// Watches a server's connection count and returns memory after each burst that ends.
#[derive(Debug)]
pub(crate) struct AfterBursts {
    config: MemoryReturn,
    detector: Mutex<BurstDetector>,
    /// Woken when a settle period starts, so [`AfterBursts::run`] sleeps until its deadline.
    settle_started: Notify,
    pool: BufferPool,
    returns: AtomicU64,
}

impl AfterBursts {
    pub(crate) fn new(config: MemoryReturn, pool: BufferPool) -> Self {
        Self {
            config,
            detector: Mutex::new(BurstDetector::new(config.min_burst, config.settle)),
            settle_started: Notify::new(),
            pool,
            returns: AtomicU64::new(0),
        }
    }

    /// The server now has `live` connections. Cheap: no syscall, one short lock.
    pub(crate) fn handle_live(&self, live: usize) {
        if !self.config.enabled {
            return;
        }
        let change = lock(&self.detector).handle_live(Instant::now().into_std(), live);
        if change == Change::SettleStarted {
            // Buffers the burst left in the pool and no connection has taken since: the settle
            // period measures what the traffic after the burst still takes.
            self.pool.release_idle();
            self.settle_started.notify_one();
        }
    }

    /// How many times memory was returned.
    pub(crate) fn returns(&self) -> u64 {
        self.returns.load(Ordering::Relaxed)
    }

    /// Returns memory whenever a burst has ended; never completes. Cancel-safe: the state is in
    /// the detector, so the accept loop may drop and recreate this future at every accept.
    pub(crate) async fn run(&self) {
        if !self.config.enabled {
            return std::future::pending().await;
        }
        loop {
            let settle_started = self.settle_started.notified();
            let deadline = lock(&self.detector).deadline();
            match deadline {
                None => settle_started.await,
                Some(deadline) => {
                    tokio::time::sleep_until(Instant::from_std(deadline)).await;
                    self.poll_return();
                }
            }
        }
    }

    /// Returns memory if the detector says a burst has ended by now.
    fn poll_return(&self) {
        if !lock(&self.detector).poll_return(Instant::now().into_std()) {
            return;
        }
        let released = self.pool.release_idle();
        self.returns.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(released, "a burst of connections ended: returning memory");
        if self.config.trim_allocator {
            // A walk over every arena, with madvise calls: off the async workers.
            drop(tokio::task::spawn_blocking(super::return_free_memory));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::buf::BufferPoolConfig;

    fn pool() -> BufferPool {
        BufferPool::new(BufferPoolConfig {
            max_pooled: 32,
            buffer_capacity: 64,
            max_retained_capacity: 1024,
        })
    }

    /// A burst: `n` buffers out at once, then all back.
    fn burst(pool: &BufferPool, n: usize) {
        let taken: Vec<_> = (0..n).map(|_| pool.take()).collect();
        taken.into_iter().for_each(|buf| pool.give(buf));
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_burst_then_idle_the_pool_is_emptied_and_memory_returned_once() {
        let pool = pool();
        let config = MemoryReturn {
            min_burst: 100,
            trim_allocator: false,
            ..MemoryReturn::default()
        };
        let after = std::sync::Arc::new(AfterBursts::new(config, pool.clone()));
        let runner = tokio::spawn({
            let after = after.clone();
            async move { after.run().await }
        });
        for live in 1..=1_000 {
            after.handle_live(live);
        }
        burst(&pool, 32);
        assert_eq!(pool.pooled(), 32);
        for live in (1..1_000).rev() {
            after.handle_live(live);
        }
        tokio::time::sleep(DEFAULT_SETTLE_MINUS_A_LITTLE).await;
        assert_eq!(after.returns(), 0, "not before the settle period has passed");
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(after.returns(), 1);
        assert_eq!(pool.pooled(), 0, "no connection took a buffer while the server was idle");
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(after.returns(), 1, "once per burst");
        runner.abort();
    }

    const DEFAULT_SETTLE_MINUS_A_LITTLE: Duration = Duration::from_millis(490);

    #[tokio::test(start_paused = true)]
    async fn the_pool_keeps_what_the_traffic_after_a_burst_takes() {
        let pool = pool();
        let config = MemoryReturn {
            min_burst: 100,
            trim_allocator: false,
            ..MemoryReturn::default()
        };
        let after = std::sync::Arc::new(AfterBursts::new(config, pool.clone()));
        let runner = tokio::spawn({
            let after = after.clone();
            async move { after.run().await }
        });
        after.handle_live(1_000);
        burst(&pool, 32);
        after.handle_live(4);
        // Four connections keep reading during the settle period: four buffers at a time.
        for _ in 0..10 {
            burst(&pool, 4);
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(after.returns(), 1);
        assert_eq!(pool.pooled(), 4, "the steady traffic's buffers stay pooled");
        runner.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn disabled_never_releases_anything() {
        let pool = pool();
        let after = std::sync::Arc::new(AfterBursts::new(MemoryReturn::disabled(), pool.clone()));
        let runner = tokio::spawn({
            let after = after.clone();
            async move { after.run().await }
        });
        after.handle_live(1_000);
        burst(&pool, 32);
        after.handle_live(0);
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!((after.returns(), pool.pooled()), (0, 32));
        runner.abort();
    }
}
