//! The open-loop generator: sends unary calls at a fixed rate, each at its intended time (or as
//! soon after as possible), and records latency from the intended time, so a stalled system is
//! charged for the calls it delayed (no coordinated omission). The [`Pacer`] waits between sends
//! without spinning.
//!
//! Two ways to carry the calls in flight (`--open-loop-calls`):
//! - [`CallTasks::Inline`] (the default): the generator's own task polls every call in flight
//!   (a `FuturesUnordered`). Per call it costs one allocation and no scheduler work, so on one CPU
//!   the run measures the system under test rather than the generator.
//! - [`CallTasks::Spawn`]: a tokio task per call, as the earlier generator did (and as a service
//!   that spawns per request does). Each call then also pays a task's allocation of the whole
//!   call future, its scheduling, a semaphore permit and two shared locks for the histogram.

use std::future::poll_fn;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::stream::{FuturesUnordered, StreamExt};
use hdrhistogram::Histogram;

use crate::pacer::{Pacer, Pacing};
use crate::scenarios::{Sample, Window, cpu_in, cpu_of, histogram, nanos};
use crate::systems::Conn;

/// Most calls an open-loop run keeps in flight; later calls wait (and their wait counts, since
/// latency runs from the intended send time).
const MAX_IN_FLIGHT: usize = 4096;

/// How the generator carries the calls in flight (`--open-loop-calls`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum CallTasks {
    /// The generator's task polls every call in flight itself.
    Inline,
    /// A tokio task per call (the earlier generator).
    Spawn,
}

impl CallTasks {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Inline => "inline",
            Self::Spawn => "spawn",
        }
    }
}

/// An open-loop run's target and generator.
#[derive(Clone, Copy, Debug)]
pub(crate) struct OpenLoop {
    /// Calls per second asked for.
    pub(crate) rate: f64,
    /// How the generator waits for each send time.
    pub(crate) pacing: Pacing,
    /// How the calls in flight are carried.
    pub(crate) calls: CallTasks,
}

/// The send schedule: call `k` is due at `start + k / rate`.
struct Schedule {
    start: Instant,
    interval: Duration,
    sent: u32,
}

impl Schedule {
    fn new(rate: f64) -> Self {
        Self {
            start: Instant::now(),
            interval: Duration::from_secs_f64(1.0 / rate),
            sent: 0,
        }
    }

    /// When the next call is due.
    fn next_due(&self) -> Instant {
        self.start + self.interval * self.sent
    }
}

/// Runs the open loop on `conn` for `warmup` then `duration`.
pub(crate) async fn run(conn: Conn, data: Bytes, open_loop: OpenLoop, warmup: Duration, duration: Duration) -> Sample {
    let window = Window::starting_now(warmup, duration);
    let cpu = cpu_in(window);
    let (recorded, last_done, hist) = match open_loop.calls {
        CallTasks::Inline => inline(&conn, &data, open_loop, window).await,
        CallTasks::Spawn => spawned(conn, data, open_loop, window).await,
    };
    Sample {
        calls: recorded,
        // Achieved rate: calls sent in the window over the time until the last one finished.
        elapsed: last_done
            .unwrap_or(window.end)
            .saturating_duration_since(window.measure_from)
            .max(duration),
        hist,
        target_rate: Some(open_loop.rate),
        pacing: Some(open_loop.pacing),
        calls_carried: Some(open_loop.calls),
        writes: None,
        rss_kib: None,
        cpu_seconds: cpu_of(cpu).await,
        allocs: None,
    }
}

/// What a finished call reports: when it was due, whether it falls in the measured window, when
/// it finished.
type Finished = (Instant, bool, Instant);

/// The calls recorded, the last one's end and the latency histogram of the measured calls.
type Outcome = (u64, Option<Instant>, Histogram<u64>);

/// [`CallTasks::Inline`]: one task sends every call and polls every call in flight.
async fn inline(conn: &Conn, data: &Bytes, open_loop: OpenLoop, window: Window) -> Outcome {
    let mut hist = histogram();
    let mut last_done = None;
    let mut recorded = 0u64;
    let mut record = |(intended, measured, done): Finished| {
        if measured {
            hist.record(nanos(done - intended)).expect("record");
            last_done = Some(done);
        }
    };
    let mut in_flight = FuturesUnordered::new();
    let pacer = Pacer::start(open_loop.pacing);
    let mut schedule = Schedule::new(open_loop.rate);
    loop {
        // Record every call that has finished, without waiting; this also gives the calls just
        // pushed their first poll, which sends them.
        poll_fn(|cx| {
            while let Poll::Ready(Some(finished)) = in_flight.poll_next_unpin(cx) {
                record(finished);
            }
            Poll::Ready(())
        })
        .await;
        let intended = schedule.next_due();
        let now = Instant::now();
        if intended >= window.end || now >= window.end {
            // Past the window; when overloaded, the calls still due are not sent (and not
            // counted): the achieved rate shows the shortfall.
            break;
        }
        if in_flight.len() >= MAX_IN_FLIGHT {
            if let Some(finished) = in_flight.next().await {
                record(finished);
            }
            continue;
        }
        if intended > now {
            // Wait for the send time, recording calls as they finish meanwhile.
            let mut gap = pin!(pacer.wait_until(intended));
            loop {
                tokio::select! {
                    biased;
                    Some(finished) = in_flight.next() => record(finished),
                    () = &mut gap => break,
                }
            }
            continue;
        }
        let measured = intended >= window.measure_from;
        recorded += u64::from(measured);
        in_flight.push(async move {
            conn.echo(data).await;
            (intended, measured, Instant::now())
        });
        schedule.sent += 1;
        // Behind schedule the loop never waits: let the runtime run the connection's own tasks
        // (reader, writer) once this task's budget is spent, as tokio's own primitives do.
        tokio::task::consume_budget().await;
    }
    while let Some(finished) = in_flight.next().await {
        record(finished);
    }
    (recorded, last_done, hist)
}

/// [`CallTasks::Spawn`]: a tokio task per call.
async fn spawned(conn: Conn, data: Bytes, open_loop: OpenLoop, window: Window) -> Outcome {
    let hist = Arc::new(Mutex::new(histogram()));
    let last_done = Arc::new(Mutex::new(None::<Instant>));
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
    let pacer = Pacer::start(open_loop.pacing);
    let mut schedule = Schedule::new(open_loop.rate);
    let mut recorded = 0u64;
    loop {
        let intended = schedule.next_due();
        let now = Instant::now();
        if intended >= window.end || now >= window.end {
            break;
        }
        if intended > now {
            pacer.wait_until(intended).await;
            continue;
        }
        let permit = permits.clone().acquire_owned().await.expect("semaphore");
        let measured = intended >= window.measure_from;
        recorded += u64::from(measured);
        let (conn, data, hist, last_done) = (conn.clone(), data.clone(), hist.clone(), last_done.clone());
        tokio::spawn(async move {
            conn.echo(&data).await;
            let done = Instant::now();
            if measured {
                hist.lock().expect("histogram").record(nanos(done - intended)).expect("record");
                *last_done.lock().expect("last") = Some(done);
            }
            drop(permit);
        });
        schedule.sent += 1;
    }
    let _all = permits.acquire_many(MAX_IN_FLIGHT as u32).await.expect("semaphore");
    let last_done = *last_done.lock().expect("last");
    let hist = hist.lock().expect("histogram").clone();
    (recorded, last_done, hist)
}
