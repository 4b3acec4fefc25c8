//! The server's side of returning memory: the connection count goes in, and once a burst has
//! ended the pool's idle buffers are released and the allocator trimmed off the async workers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::MemoryReturn;
use super::burst::{BurstDetector, Change};
use crate::buf::BufferPool;
use crate::sync::{Mutex, lock};

/// How often the calls in flight are read (250 ms): a burst of calls shorter than this may go
/// unseen, and its memory waits for the next burst that is seen.
const CALLS_READ_EVERY: Duration = Duration::from_millis(250);

/// Watches a server's connection count and calls in flight, and returns memory after each
/// burst of either that ends.
#[derive(Debug)]
pub(crate) struct AfterBursts {
    config: MemoryReturn,
    state: Mutex<State>,
    /// Woken when a settle period starts, so [`AfterBursts::run`] sleeps until its deadline.
    settle_started: Notify,
    pool: BufferPool,
    returns: AtomicU64,
}

#[derive(Debug)]
struct State {
    connections: BurstDetector,
    calls: BurstDetector,
    /// When the calls in flight are next read.
    next_calls_read: Instant,
}

impl AfterBursts {
    pub(crate) fn new(config: MemoryReturn, pool: BufferPool) -> Self {
        Self {
            config,
            state: Mutex::new(State {
                connections: BurstDetector::new(config.min_burst, config.settle),
                calls: BurstDetector::new(config.min_call_burst, config.settle),
                next_calls_read: Instant::now(),
            }),
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
        let change = lock(&self.state).connections.handle_live(Instant::now().into_std(), live);
        self.handle_change(change);
    }

    fn handle_change(&self, change: Change) {
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

    /// Returns memory whenever a burst has ended, reading the calls in flight from
    /// `calls_in_flight` (`None`: not counted) every [`CALLS_READ_EVERY`]; never completes.
    /// Cancel-safe: the state and its deadlines are kept in `self`, so the accept loop may drop
    /// and recreate this future at every accept.
    pub(crate) async fn run(&self, calls_in_flight: impl Fn() -> Option<usize>) {
        if !self.config.enabled {
            return std::future::pending().await;
        }
        loop {
            let settle_started = self.settle_started.notified();
            let wake_at = {
                let state = lock(&self.state);
                let settled = [state.connections.deadline(), state.calls.deadline()].into_iter().flatten().min();
                match settled {
                    Some(settled) => Instant::from_std(settled).min(state.next_calls_read),
                    None => state.next_calls_read,
                }
            };
            tokio::select! {
                () = settle_started => {}
                () = tokio::time::sleep_until(wake_at) => self.handle_timer(&calls_in_flight),
            }
        }
    }

    /// Reads the calls in flight when due, then returns memory if a burst has ended by now.
    fn handle_timer(&self, calls_in_flight: &impl Fn() -> Option<usize>) {
        let now = Instant::now();
        let mut state = lock(&self.state);
        if now >= state.next_calls_read {
            state.next_calls_read = now + CALLS_READ_EVERY;
            if let Some(calls) = calls_in_flight() {
                let change = state.calls.handle_live(now.into_std(), calls);
                if change == Change::SettleStarted {
                    drop(state);
                    self.handle_change(change);
                    state = lock(&self.state);
                }
            }
        }
        let now = now.into_std();
        // Both are polled: a return serves both bursts, so each starts over from its count now.
        let connections_ended = state.connections.poll_return(now);
        let calls_ended = state.calls.poll_return(now);
        drop(state);
        if connections_ended || calls_ended {
            self.return_memory();
        }
    }

    fn return_memory(&self) {
        let released = self.pool.release_idle();
        self.returns.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(released, "a burst of connections or calls ended: returning memory");
        if self.config.trim_allocator {
            // A walk over every arena, with madvise calls: off the async workers.
            drop(tokio::task::spawn_blocking(super::return_free_memory));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    use super::*;
    use crate::buf::BufferPoolConfig;

    fn pool() -> BufferPool {
        BufferPool::new(BufferPoolConfig {
            max_pooled: 32,
            buffer_capacity: 64,
            max_retained_capacity: 1024,
        })
    }

    /// An `AfterBursts` over `pool` with `config` (no allocator trim), its task running and
    /// reading the calls in flight from `calls` when given.
    fn watching(
        pool: &BufferPool,
        config: MemoryReturn,
        calls: Option<Arc<AtomicUsize>>,
    ) -> (Arc<AfterBursts>, tokio::task::JoinHandle<()>) {
        let config = MemoryReturn {
            trim_allocator: false,
            ..config
        };
        let after = Arc::new(AfterBursts::new(config, pool.clone()));
        let runner = tokio::spawn({
            let after = after.clone();
            async move { after.run(move || calls.as_ref().map(|calls| calls.load(Ordering::Relaxed))).await }
        });
        (after, runner)
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
            ..MemoryReturn::default()
        };
        let (after, runner) = watching(&pool, config, None);
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
            ..MemoryReturn::default()
        };
        let (after, runner) = watching(&pool, config, None);
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
        let (after, runner) = watching(&pool, MemoryReturn::disabled(), None);
        after.handle_live(1_000);
        burst(&pool, 32);
        after.handle_live(0);
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!((after.returns(), pool.pooled()), (0, 32));
        runner.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_calls_that_ends_returns_memory_once() {
        let pool = pool();
        let config = MemoryReturn {
            min_call_burst: 1_000,
            ..MemoryReturn::default()
        };
        let calls = Arc::new(AtomicUsize::new(0));
        let (after, runner) = watching(&pool, config, Some(calls.clone()));
        after.handle_live(1);
        calls.store(4_000, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs(1)).await;
        calls.store(0, Ordering::Relaxed);
        tokio::time::sleep(CALLS_READ_EVERY).await;
        assert_eq!(after.returns(), 0, "not before the settle period has passed");
        tokio::time::sleep(crate::memory::DEFAULT_SETTLE + CALLS_READ_EVERY).await;
        assert_eq!(after.returns(), 1);
        // Steady calls under the burst size never return memory.
        for step in 0..100 {
            calls.store(100 + (step * 37) % 500, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(after.returns(), 1);
        runner.abort();
    }
}
