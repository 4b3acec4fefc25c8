//! Closed-loop callers: each makes one call at a time until the run's window ends, and records
//! its latencies into one histogram per thread, not one per caller. An echo caller has its own
//! copy of the payload; the one-way (sink) callers share one.
//!
//! Both choices keep the harness's own cost out of what a row measures, and give each row's
//! callers the payloads its raw floor has:
//! - A small payload shared by every caller is one reference count that all of them add to and
//!   drop from on each call. On a multi-thread runtime its cache line moves between the CPUs
//!   every call: 6 % of the CPU samples of `unary_64B_16x32_mt` were `bytes`'s shared clone and
//!   drop of it. Each raw echo worker has a message of its own, so each echo caller gets one too.
//! - The raw one-way floor writes one 1 MiB buffer over and over. Four callers with a 1 MiB copy
//!   each would write 4 MiB, twice the VM's L2 cache, so the sink callers share one payload:
//!   4 callers on one CPU, no cache line moving.
//! - A histogram per caller (512 in the multi-thread row, each 128 KiB once it covers
//!   milliseconds) spreads the records over 64 MiB, so each record was a cache miss: 7 % of the
//!   samples, in `hdrhistogram`'s `record_n_inner`.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use tokio::task::JoinHandle;

use crate::scenarios::{Sample, Window, histogram, nanos, sample};
use crate::systems::Conn;

/// Histograms per run: more than the threads that run callers (at most 2 workers and the main
/// thread), so that each thread has one of its own.
const SHARDS: usize = 8;

/// Where a run's callers record their latencies: a thread records into its own shard.
struct Latencies {
    shards: [Mutex<Histogram<u64>>; SHARDS],
}

/// The shard of the calling thread: threads are numbered in the order they first record.
fn thread_shard() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SHARD: usize = NEXT.fetch_add(1, Relaxed) % SHARDS;
    }
    SHARD.with(|shard| *shard)
}

impl Latencies {
    fn new() -> Self {
        Self {
            shards: std::array::from_fn(|_| Mutex::new(histogram())),
        }
    }

    fn record(&self, nanos: u64) {
        let mut shard = self.shards[thread_shard()].lock().expect("latency shard");
        shard.record(nanos).expect("record");
    }

    fn merged(&self) -> Histogram<u64> {
        let mut all = histogram();
        for shard in &self.shards {
            all.add(&*shard.lock().expect("latency shard")).expect("merge histograms");
        }
        all
    }
}

/// Which method the callers call.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Method {
    /// The echo method: the payload comes back.
    Echo,
    /// The sink method: an empty answer (one-way rows).
    Sink,
}

/// A run's closed-loop callers, spawned.
pub(crate) struct Callers {
    tasks: Vec<JoinHandle<u64>>,
    latencies: Arc<Latencies>,
}

impl Callers {
    /// Spawns one caller per item of `conns` (a connection appears once per call it carries at a
    /// time), each calling `method` with `data` until `window` ends: echo callers with a copy of
    /// their own, sink callers with `data` itself (see the module's notes).
    pub(crate) fn spawn(conns: impl IntoIterator<Item = Conn>, data: &Bytes, method: Method, window: Window) -> Self {
        let latencies = Arc::new(Latencies::new());
        let tasks = conns
            .into_iter()
            .map(|conn| {
                let data = match method {
                    Method::Echo => Bytes::copy_from_slice(data),
                    Method::Sink => data.clone(),
                };
                tokio::spawn(closed_loop(conn, data, method, window, latencies.clone()))
            })
            .collect();
        Self { tasks, latencies }
    }

    /// Waits for every caller; the calls they made in the measured window and their latencies.
    pub(crate) async fn collect(self, duration: Duration) -> Sample {
        let mut calls = 0;
        for task in self.tasks {
            calls += task.await.expect("caller");
        }
        sample(calls, self.latencies.merged(), duration)
    }
}

/// One caller: calls one at a time until the window ends, recording each call that started
/// inside its measured part; returns how many those were.
async fn closed_loop(conn: Conn, data: Bytes, method: Method, window: Window, latencies: Arc<Latencies>) -> u64 {
    let mut calls = 0;
    loop {
        let started = Instant::now();
        if started >= window.end {
            break;
        }
        match method {
            Method::Echo => conn.echo(&data).await,
            Method::Sink => conn.sink(&data).await,
        }
        if started >= window.measure_from {
            latencies.record(nanos(started.elapsed()));
            calls += 1;
        }
    }
    calls
}
