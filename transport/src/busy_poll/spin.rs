//! `spin_on`: runs a future to completion on the calling thread without ever sleeping in the
//! kernel, so a call's outcome is seen the moment another thread (a connection's poller)
//! delivers it.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;

use super::IdleStrategy;
use super::idle::Idler;

/// Runs `future` on the calling thread until it completes, polling it again as soon as it is
/// woken and waiting between wake-ups as `idle` says (never `PAUSE`).
///
/// This is the caller's half of the busy-poll mode: a connection's poller thread delivers a
/// call's outcome and wakes the call's waker, which here only sets a flag (and unparks the
/// thread if `idle` parked it), so no thread is woken through the kernel when the caller spins.
/// Futures that need tokio (timers, spawning) need a runtime context: enter one first
/// (`Handle::enter`); `spin_on` does not drive that runtime, so it must keep running on other
/// threads (a connection's writer task lives there). A spinning caller spends its core while it waits; use it on a thread
/// pinned to a core of its own, or with [`IdleStrategy::SpinThenYield`] beside the poller.
///
/// ```
/// use volley::busy_poll::{IdleStrategy, spin_on};
///
/// let answer = spin_on(async { 6 * 7 }, IdleStrategy::Spin);
/// assert_eq!(answer, 42);
/// ```
pub fn spin_on<F: Future>(future: F, idle: IdleStrategy) -> F::Output {
    spin_on_with(future, idle, || false)
}

/// [`spin_on`] that calls `io` while `future` waits: it may make progress for the future (poll
/// a connection's socket) and says whether it did.
pub(crate) fn spin_on_with<F: Future>(future: F, idle: IdleStrategy, mut io: impl FnMut() -> bool) -> F::Output {
    let flag = Arc::new(SpinWaker {
        woken: AtomicBool::new(true),
        thread: std::thread::current(),
    });
    let waker = Waker::from(flag.clone());
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    let mut idler = Idler::new(idle);
    loop {
        if flag.woken.swap(false, Ordering::AcqRel) {
            if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
                return output;
            }
            idler.reset();
        } else if io() {
            idler.reset();
        } else {
            idler.idle();
        }
    }
}

/// The waker of [`spin_on`]: a flag, and the thread to unpark if its idle strategy parked it.
#[derive(Debug)]
struct SpinWaker {
    woken: AtomicBool,
    thread: Thread,
}

impl Wake for SpinWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        // A futex wake only if the thread is parked; otherwise one atomic swap.
        self.thread.unpark();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn spin_on_sees_a_wake_from_another_thread() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            tx.send(7u32).unwrap();
        });
        let parking = IdleStrategy::SpinThenPark {
            spins: 10,
            yields: 10,
            min_park: Duration::from_millis(1),
            max_park: Duration::from_secs(5),
        };
        let started = std::time::Instant::now();
        assert_eq!(spin_on(rx, parking).unwrap(), 7);
        // The wake unparked the thread: it did not sleep out a 5 s park.
        assert!(started.elapsed() < Duration::from_secs(2));
        sender.join().unwrap();
    }
}
