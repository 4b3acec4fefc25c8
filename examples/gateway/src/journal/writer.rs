//! The state appenders and writers share, the writer thread, and syncing on the caller's thread.
//!
//! Appenders frame records into `State::buf` under a short lock. Whoever writes a batch takes the
//! journal's one [`Sink`] out of the state together with the pending buffer, writes and syncs
//! with no lock held, publishes the durable sequence (`on_durable`, then a watch channel) and puts
//! the sink back. Two kinds of writer take turns:
//!
//! - The writer thread, woken by an append (or a waiter) when it sleeps. Under load it carries
//!   every record that arrived during the previous batch: this is group commit.
//! - A caller about to wait for its own record ([`Shared::sync_or_hand_off`]) that finds it
//!   alone in the pending buffer and the sink idle writes it itself, on its own thread. A lone order then costs no thread
//!   hand-off: no wake-up of the writer and no wake-up back.
//!
//! The first write or fsync error fails the journal for good.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::watch;

use super::format::{MAX_RECORD_LEN, RECORD_HEADER_LEN, record_header};
use super::sink::Sink;
use super::{JournalError, JournalStats};

/// What the watch channel carries: how far the journal is durable, and whether it failed.
#[derive(Clone, Debug, Default)]
pub(crate) struct Durable {
    /// The highest sequence that is durable (0: none).
    pub(crate) sequence: u64,
    /// The first write or fsync error, if any.
    pub(crate) failure: Option<Arc<str>>,
}

/// What appenders and writers share behind the lock.
#[derive(Debug)]
pub(crate) struct State {
    /// Framed records appended but not yet taken by a writer.
    buf: Vec<u8>,
    /// How many records `buf` holds.
    pending_records: u64,
    /// The sequence the next append gets.
    next_sequence: u64,
    /// The journal is closing: write what is pending, fsync and stop.
    shutdown: bool,
    /// The first write or fsync error. Appends are refused from then on.
    failure: Option<Arc<str>>,
    /// The sink while no one writes; `None` while a writer has it.
    sink: Option<Box<Sink>>,
    /// The writer thread waits for work on `wake` with no deadline: whoever gives it work wakes
    /// it (and clears this, so one wake-up serves many appends).
    writer_sleeping: bool,
}

/// Monotonic counters behind [`JournalStats`].
#[derive(Debug)]
pub(crate) struct Counters {
    records_appended: AtomicU64,
    pub(crate) records_written: AtomicU64,
    pub(crate) bytes_written: AtomicU64,
    pub(crate) pending_bytes: AtomicU64,
    fsyncs: AtomicU64,
    fsync_nanos: AtomicU64,
    /// Every fsync's duration in nanoseconds, for percentiles (a mean hides the slow tail and
    /// the fast middle alike).
    fsync_latency: Mutex<Histogram<u64>>,
}

impl Default for Counters {
    fn default() -> Self {
        Self {
            records_appended: AtomicU64::default(),
            records_written: AtomicU64::default(),
            bytes_written: AtomicU64::default(),
            pending_bytes: AtomicU64::default(),
            fsyncs: AtomicU64::default(),
            fsync_nanos: AtomicU64::default(),
            // 3 significant figures from 1 ns to 60 s: creation cannot fail with these bounds.
            fsync_latency: Mutex::new(Histogram::new_with_bounds(1, 60_000_000_000, 3).unwrap_or_else(|_| unreachable!("valid bounds"))),
        }
    }
}

impl Counters {
    /// Counts one successful fsync that took `elapsed`.
    pub(crate) fn record_fsync(&self, elapsed: Duration) {
        self.fsyncs.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.fsync_nanos.fetch_add(nanos, Ordering::Relaxed);
        // Saturates past the histogram's 60 s bound rather than failing.
        self.fsync_latency
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .saturating_record(nanos.max(1));
    }
}

/// The state shared by the [`Journal`](super::Journal) handle, its writer thread and the callers
/// that sync on their own thread.
#[derive(Debug)]
pub(crate) struct Shared {
    state: Mutex<State>,
    /// Wakes the writer thread when records arrive, the sink comes back or the journal closes.
    wake: Condvar,
    durable: watch::Sender<Durable>,
    pub(crate) counters: Counters,
    max_pending_bytes: usize,
}

/// What the writer thread does next.
enum Next {
    /// Write this batch with this sink.
    Batch(Box<Sink>, Vec<u8>),
    /// The journal is closing and nothing is pending: sync and stop.
    Close(Box<Sink>),
    /// The journal failed: stop.
    Stop,
}

impl Shared {
    /// Shared state over `sink`, whose first `replayed` records are already durable.
    pub(crate) fn new(sink: Sink, replayed: u64, max_pending_bytes: usize) -> Self {
        Self {
            state: Mutex::new(State {
                buf: Vec::new(),
                pending_records: 0,
                next_sequence: replayed + 1,
                shutdown: false,
                failure: None,
                sink: Some(Box::new(sink)),
                writer_sleeping: false,
            }),
            wake: Condvar::new(),
            durable: watch::Sender::new(Durable {
                sequence: replayed,
                failure: None,
            }),
            counters: Counters::default(),
            max_pending_bytes,
        }
    }

    /// Locks the state. No code that can panic runs under the lock except an `append_with`
    /// encoder, whose partial record is rolled back, so a poisoned state is still consistent.
    /// Whether the writer thread waits for a wake-up (tests: only then is a deferred record
    /// certain to be the calling thread's to sync).
    #[cfg(test)]
    pub(crate) fn writer_is_asleep(&self) -> bool {
        self.lock().writer_sleeping
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Frames the payload `encode` writes into the pending buffer and returns its sequence.
    /// Wakes the writer thread for it when `wake`; otherwise the caller will (see
    /// [`hand_off`](Self::hand_off) and [`sync_or_hand_off`](Self::sync_or_hand_off)).
    pub(crate) fn append_with(&self, encode: impl FnOnce(u64, &mut Vec<u8>), wake: bool) -> Result<u64, JournalError> {
        let mut state = self.lock();
        if let Some(reason) = &state.failure {
            return Err(JournalError::Failed {
                reason: Arc::clone(reason),
            });
        }
        if state.shutdown {
            return Err(JournalError::Closed);
        }
        let start = state.buf.len();
        if start >= self.max_pending_bytes {
            return Err(JournalError::Overloaded {
                pending: start,
                limit: self.max_pending_bytes,
            });
        }
        let sequence = state.next_sequence;
        let rollback = Rollback {
            buf: &mut state.buf,
            start,
        };
        rollback.buf.extend_from_slice(&[0; RECORD_HEADER_LEN]);
        encode(sequence, rollback.buf);
        let payload = &rollback.buf[start + RECORD_HEADER_LEN..];
        if payload.is_empty() || payload.len() > MAX_RECORD_LEN as usize {
            return Err(JournalError::BadLength { len: payload.len() });
        }
        let header = record_header(payload);
        rollback.buf[start..start + RECORD_HEADER_LEN].copy_from_slice(&header);
        let len = rollback.buf.len() - start;
        rollback.disarm();

        state.next_sequence += 1;
        state.pending_records += 1;
        self.counters.records_appended.fetch_add(1, Ordering::Relaxed);
        self.counters.pending_bytes.fetch_add(len as u64, Ordering::Relaxed);
        let wake = wake && Self::writer_to_wake(&mut state);
        drop(state);
        if wake {
            self.wake.notify_one();
        }
        Ok(sequence)
    }

    /// Whether the writer thread sleeps with work to do and must be woken (once: this clears
    /// the flag). Work is pending records with the sink idle: a writer that has the sink puts it
    /// back and wakes the thread itself if records arrived meanwhile.
    fn writer_to_wake(state: &mut State) -> bool {
        let wake = state.writer_sleeping && !state.buf.is_empty() && state.sink.is_some();
        if wake {
            state.writer_sleeping = false;
        }
        wake
    }

    /// Makes sure the writer thread will write what is pending: wakes it if it sleeps.
    pub(crate) fn hand_off(&self) {
        let wake = Self::writer_to_wake(&mut self.lock());
        if wake {
            self.wake.notify_one();
        }
    }

    /// Makes the journal durable through `sequence` on this thread if it is the only record
    /// pending and the sink is idle; otherwise hands off to the writer thread. Returns whether
    /// `sequence` is durable now. Blocks for a write and, under `every`/`group`, an fsync, with
    /// no lock held.
    ///
    /// Under group commit this is the leader of leader/follower commit: a record that finds no
    /// sync in flight and nothing else pending is synced at once, however recently the last
    /// batch was taken, when that batch was a lone record too (no load: nothing would share
    /// its fsync by waiting). Records that arrive while it syncs are the followers: they pile
    /// up and the writer thread takes them as the next batch, no sooner than the interval after
    /// this one (`Sink::not_before`). After a batch of several records (load) a lone record also
    /// keeps to the interval: syncing it at once on a runtime worker took about 5 % off the
    /// records per fsync under 8 accounts × 4 unary calls (docs/BENCHMARKS.md).
    ///
    /// Only a lone record is synced here: when others are pending, load is building up and the
    /// writer thread batches them (a caller's thread, often a runtime worker, that synced other
    /// callers' records would stall its own tasks for them; measured, that cost 12-25 % of
    /// the throughput of 8 accounts × 4 unary calls under group commit).
    pub(crate) fn sync_or_hand_off(&self, sequence: u64) -> bool {
        let mut state = self.lock();
        if state.failure.is_some() || state.shutdown || state.buf.is_empty() {
            // Failed, closing (the writer thread finishes), or the record is written already or
            // being written by someone else.
            drop(state);
            return self.durable.borrow().sequence >= sequence;
        }
        let lone = state.pending_records == 1 && state.next_sequence == sequence + 1;
        let Some(sink) = state
            .sink
            .take_if(|sink| lone && (sink.last_batch_records <= 1 || sink.is_ready(Instant::now())))
        else {
            let wake = Self::writer_to_wake(&mut state);
            drop(state);
            if wake {
                self.wake.notify_one();
            }
            return false;
        };
        let mut sink = sink;
        let batch = Self::take_batch(&mut state, &mut sink);
        drop(state);
        self.write_with(sink, batch);
        self.durable.borrow().sequence >= sequence
    }

    /// Swaps the pending buffer for the sink's spare and returns it, as the next batch, and
    /// notes when it was taken (group commit takes the next one an interval later).
    fn take_batch(state: &mut State, sink: &mut Sink) -> Vec<u8> {
        sink.last_batch_at = Some(Instant::now());
        sink.last_batch_records = state.pending_records;
        state.pending_records = 0;
        std::mem::replace(&mut state.buf, std::mem::take(&mut sink.spare))
    }

    /// Writes `batch` with `sink`, taken out of the state, then puts the sink back; fails the
    /// journal on an error (the sink is dropped then: nothing is written after a failure).
    fn write_with(&self, mut sink: Box<Sink>, batch: Vec<u8>) {
        let _failure_on_panic = FailOnPanic(self);
        match sink.write_batch(self, batch) {
            Ok(()) => self.put_back(sink),
            Err(reason) => self.fail(reason),
        }
    }

    /// Returns the sink after a batch and wakes the writer thread if it has work now (records
    /// that arrived meanwhile, or the journal is closing).
    fn put_back(&self, sink: Box<Sink>) {
        let mut state = self.lock();
        state.sink = Some(sink);
        let wake = state.writer_sleeping && (!state.buf.is_empty() || state.shutdown);
        if wake {
            state.writer_sleeping = false;
        }
        drop(state);
        if wake {
            self.wake.notify_one();
        }
    }

    /// The last sequence appended (0: none).
    pub(crate) fn last_sequence(&self) -> u64 {
        self.lock().next_sequence - 1
    }

    /// A receiver of the durable sequence and failure.
    pub(crate) fn subscribe(&self) -> watch::Receiver<Durable> {
        self.durable.subscribe()
    }

    /// The durable sequence and failure now.
    pub(crate) fn durable(&self) -> Durable {
        self.durable.borrow().clone()
    }

    /// Tells the waiters that everything through `sequence` is durable.
    pub(crate) fn publish_durable(&self, sequence: u64) {
        self.durable.send_modify(|durable| durable.sequence = sequence);
    }

    /// Asks the writer to write what is pending, fsync and stop.
    pub(crate) fn shut_down(&self) {
        self.lock().shutdown = true;
        self.wake.notify_one();
    }

    /// A snapshot of the counters.
    pub(crate) fn stats(&self) -> JournalStats {
        let counters = &self.counters;
        JournalStats {
            records_appended: counters.records_appended.load(Ordering::Relaxed),
            records_written: counters.records_written.load(Ordering::Relaxed),
            bytes_written: counters.bytes_written.load(Ordering::Relaxed),
            pending_bytes: counters.pending_bytes.load(Ordering::Relaxed),
            fsyncs: counters.fsyncs.load(Ordering::Relaxed),
            fsync_time: Duration::from_nanos(counters.fsync_nanos.load(Ordering::Relaxed)),
            durable_sequence: self.durable.borrow().sequence,
        }
    }

    /// Every fsync's duration so far, in nanoseconds.
    pub(crate) fn fsync_latency(&self) -> Histogram<u64> {
        self.counters.fsync_latency.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Fails the journal: refuses appends from now on, drops what is pending, wakes every
    /// waiter with the reason and the writer thread so it stops. Only the first failure is kept.
    pub(crate) fn fail(&self, reason: String) {
        let mut state = self.lock();
        if state.failure.is_some() {
            return;
        }
        tracing::error!("journal failed, refusing further records: {reason}");
        let reason: Arc<str> = reason.into();
        state.failure = Some(Arc::clone(&reason));
        state.buf = Vec::new();
        state.pending_records = 0;
        self.counters.pending_bytes.store(0, Ordering::Relaxed);
        drop(state);
        self.durable.send_modify(|durable| durable.failure = Some(reason));
        self.wake.notify_one();
    }

    /// Waits for the writer thread's next piece of work: a batch once the sink is idle and
    /// records are pending (under group commit not before an interval after the last batch),
    /// or the close once nothing is pending.
    fn next(&self) -> Next {
        let mut state = self.lock();
        loop {
            if state.failure.is_some() {
                return Next::Stop;
            }
            let now = Instant::now();
            let current = &mut *state;
            let (pending, closing) = (!current.buf.is_empty(), current.shutdown);
            if pending && let Some(mut sink) = current.sink.take_if(|sink| closing || sink.is_ready(now)) {
                let batch = Self::take_batch(current, &mut sink);
                return Next::Batch(sink, batch);
            }
            if !pending
                && closing
                && let Some(sink) = current.sink.take()
            {
                return Next::Close(sink);
            }
            // A deadline when group commit makes pending records wait; none when nothing is
            // pending or another writer has the sink (it wakes this thread when it puts the
            // sink back with records pending or the journal closing).
            let deadline = current.sink.as_ref().filter(|_| pending).and_then(|sink| sink.not_before());
            state = match deadline {
                Some(deadline) => {
                    self.wake
                        .wait_timeout(state, deadline.saturating_duration_since(now))
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
                None => {
                    state.writer_sleeping = true;
                    let mut state = self.wake.wait(state).unwrap_or_else(PoisonError::into_inner);
                    state.writer_sleeping = false;
                    state
                }
            };
        }
    }
}

/// How late the writer thread's timed waits (the group interval) may expire: Linux lets a
/// thread's timers fire up to 50 µs late by default, a quarter of the default 200 µs interval.
const WRITER_TIMER_SLACK_NANOS: u64 = 1_000;

/// The writer thread's body: batches until shutdown or the first failure.
pub(crate) fn run(shared: Arc<Shared>) {
    let _failure_on_panic = FailOnPanic(&shared);
    tighten_timer_slack(WRITER_TIMER_SLACK_NANOS);
    loop {
        match shared.next() {
            Next::Batch(sink, batch) => shared.write_with(sink, batch),
            Next::Close(mut sink) => {
                // Closing: make everything durable whatever the policy.
                if let Err(reason) = sink.close(&shared) {
                    shared.fail(reason);
                }
                return;
            }
            Next::Stop => return,
        }
    }
}

/// Lets this thread's timers expire at most `nanos` late (best-effort: on failure the default
/// slack stays, and group commit's batches come up to 50 µs after their interval).
#[allow(unsafe_code)] // one prctl call, with its SAFETY note
fn tighten_timer_slack(nanos: u64) {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: PR_SET_TIMERSLACK takes the slack by value and touches no memory of ours.
        let result = unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, nanos as libc::c_ulong, 0, 0, 0) };
        if result != 0 {
            tracing::debug!(error = %std::io::Error::last_os_error(), "the journal's writer could not tighten its timer slack");
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = nanos;
    }
}

/// Truncates the pending buffer back to the start of a record unless disarmed, so an encoder
/// that panics or a payload of a bad length leaves no partial record behind.
struct Rollback<'a> {
    buf: &'a mut Vec<u8>,
    start: usize,
}

impl Rollback<'_> {
    fn disarm(mut self) {
        self.start = usize::MAX;
    }
}

impl Drop for Rollback<'_> {
    fn drop(&mut self) {
        if self.start != usize::MAX {
            self.buf.truncate(self.start);
        }
    }
}

/// Fails the journal if a writer unwinds (a panicking `on_durable` or fsync observer), so
/// appenders and waiters get an error instead of waiting forever for a sink that is gone.
struct FailOnPanic<'a>(&'a Shared);

impl Drop for FailOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0
                .fail("a journal writer panicked (in the on_durable callback or the fsync observer)".to_owned());
        }
    }
}
