//! Pacing for the open-loop generator: wait for each call's send time without keeping a CPU busy.
//! [`Pacing::Spin`] keeps the earlier generator's behaviour for comparison.
//!
//! tokio's timer has a 1 ms resolution (it rounds deadlines up to the next millisecond), far too
//! coarse for calls microseconds apart, and spinning on `tokio::task::yield_now` keeps the client
//! thread runnable all the time: pinned to one CPU with the servers, that spinning takes CPU time
//! from them. So gaps longer than [`SLEEP_ABOVE`] are slept on a helper thread (`nanosleep`, which may
//! wake up to the timer slack late, 50 µs by default on Linux), which wakes the generator
//! [`WAKE_EARLY`] before the send time; the rest of the gap, and every shorter gap, is waited by
//! yielding both to the kernel (`sched_yield`, so a server thread on the same CPU runs first) and
//! to the runtime (so responses are handled).

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

/// Gaps longer than this are slept; shorter ones are yielded away.
pub(crate) const SLEEP_ABOVE: Duration = Duration::from_micros(100);

/// The helper thread wakes the generator this long before the send time, to absorb the kernel's
/// timer slack (50 µs by default) and the wake-up; the remainder is yielded away.
pub(crate) const WAKE_EARLY: Duration = Duration::from_micros(70);

/// How the open-loop generator waits for a send time (`--pacing`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Pacing {
    /// Sleeps on a helper thread for gaps over [`SLEEP_ABOVE`]; yields to the kernel and the
    /// runtime for shorter ones.
    Sleep,
    /// The earlier generator: yields to the runtime only (a spin when nothing else is ready),
    /// and uses tokio's timer for gaps over 2 ms.
    Spin,
}

impl Pacing {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Sleep => "sleep",
            Self::Spin => "spin",
        }
    }
}

/// A sleep request: the instant to wake at and whom to tell.
type Request = (Instant, oneshot::Sender<()>);

/// Paces one generator. Dropping it stops the helper thread.
#[derive(Debug)]
pub(crate) struct Pacer {
    /// `None` with [`Pacing::Spin`].
    requests: Option<mpsc::Sender<Request>>,
    thread: Option<JoinHandle<()>>,
}

impl Pacer {
    /// Starts the helper thread (none for [`Pacing::Spin`]).
    pub(crate) fn start(pacing: Pacing) -> Self {
        if pacing == Pacing::Spin {
            return Self {
                requests: None,
                thread: None,
            };
        }
        let (requests, incoming) = mpsc::channel::<Request>();
        let thread = std::thread::Builder::new()
            .name("volley-bench-pacer".into())
            .spawn(move || {
                while let Ok((wake_at, done)) = incoming.recv() {
                    let now = Instant::now();
                    if wake_at > now {
                        std::thread::sleep(wake_at - now);
                    }
                    let _ = done.send(());
                }
            })
            .expect("spawn the pacer thread");
        Self {
            requests: Some(requests),
            thread: Some(thread),
        }
    }

    /// Returns at `at` or just after, sleeping while the send time is far and yielding near it.
    pub(crate) async fn wait_until(&self, at: Instant) {
        loop {
            let now = Instant::now();
            if now >= at {
                return;
            }
            if self.requests.is_none() {
                // Pacing::Spin, as the generator was before the pacer.
                if at - now > Duration::from_millis(2) {
                    tokio::time::sleep_until(at.into()).await;
                } else {
                    tokio::task::yield_now().await;
                }
                continue;
            }
            if at - now > SLEEP_ABOVE
                && let Some(requests) = &self.requests
            {
                let (done, woken) = oneshot::channel();
                if requests.send((at - WAKE_EARLY, done)).is_ok() {
                    let _ = woken.await;
                    continue;
                }
            }
            std::thread::yield_now();
            tokio::task::yield_now().await;
        }
    }
}

impl Drop for Pacer {
    fn drop(&mut self) {
        // Closing the channel ends the helper's loop.
        drop(self.requests.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_until_returns_at_or_after_the_instant_even_for_long_gaps() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        for pacing in [Pacing::Sleep, Pacing::Spin] {
            let pacer = Pacer::start(pacing);
            runtime.block_on(async {
                for gap in [
                    Duration::ZERO,
                    Duration::from_micros(20),
                    Duration::from_micros(500),
                    Duration::from_millis(3),
                ] {
                    let at = Instant::now() + gap;
                    pacer.wait_until(at).await;
                    assert!(Instant::now() >= at, "{pacing:?} returned early for a gap of {gap:?}");
                }
            });
        }
    }
}
