//! The state appenders and the writer thread share, and the writer thread itself.
//!
//! Appenders frame records into `State::buf` under a short lock and wake the writer when the
//! buffer turns non-empty. The writer swaps the buffer out, writes it with one `write_all`,
//! applies the fsync policy, calls `on_durable` and then publishes the durable sequence on a
//! watch channel. The first write or fsync error fails the journal for good.

use std::fs::File;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::watch;

use super::format::{MAX_RECORD_LEN, RECORD_HEADER_LEN, record_header};
use super::{FsyncObserver, FsyncPolicy, JournalError, JournalStats};

/// A writer buffer that grew past this is dropped after use rather than kept, so one burst does
/// not pin its memory forever.
const MAX_SPARE_CAPACITY: usize = 4 << 20;

/// Where the writer puts the bytes: the journal file, or in tests a storage that fails on cue.
pub(crate) trait Storage: Send + 'static {
    /// Writes all of `bytes` at the end of the journal.
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Makes everything written so far durable (`fdatasync`).
    fn sync_data(&mut self) -> io::Result<()>;
}

impl Storage for File {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        Write::write_all(self, bytes)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        Self::sync_data(self)
    }
}

/// What the watch channel carries: how far the journal is durable, and whether it failed.
#[derive(Clone, Debug, Default)]
pub(crate) struct Durable {
    /// The highest sequence that is durable (0: none).
    pub(crate) sequence: u64,
    /// The first write or fsync error, if any.
    pub(crate) failure: Option<Arc<str>>,
}

/// What appenders and the writer share behind the lock.
#[derive(Debug)]
pub(crate) struct State {
    /// Framed records appended but not yet taken by the writer.
    buf: Vec<u8>,
    /// The sequence the next append gets.
    next_sequence: u64,
    /// The journal is closing: write what is pending, fsync and stop.
    shutdown: bool,
    /// The first write or fsync error. Appends are refused from then on.
    failure: Option<Arc<str>>,
}

/// Monotonic counters behind [`JournalStats`].
#[derive(Debug)]
struct Counters {
    records_appended: AtomicU64,
    records_written: AtomicU64,
    bytes_written: AtomicU64,
    pending_bytes: AtomicU64,
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

/// The state shared by the [`Journal`](super::Journal) handle and its writer thread.
#[derive(Debug)]
pub(crate) struct Shared {
    state: Mutex<State>,
    /// Wakes the writer when records arrive or the journal closes.
    wake: Condvar,
    durable: watch::Sender<Durable>,
    counters: Counters,
    max_pending_bytes: usize,
}

impl Shared {
    /// Shared state for a journal whose first `replayed` records are already durable.
    pub(crate) fn new(replayed: u64, max_pending_bytes: usize) -> Self {
        Self {
            state: Mutex::new(State {
                buf: Vec::new(),
                next_sequence: replayed + 1,
                shutdown: false,
                failure: None,
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
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Frames the payload `encode` writes into the pending buffer and returns its sequence.
    pub(crate) fn append_with(&self, encode: impl FnOnce(u64, &mut Vec<u8>)) -> Result<u64, JournalError> {
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
        self.counters.records_appended.fetch_add(1, Ordering::Relaxed);
        self.counters.pending_bytes.fetch_add(len as u64, Ordering::Relaxed);
        drop(state);
        if start == 0 {
            self.wake.notify_one();
        }
        Ok(sequence)
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

    /// Fails the journal: refuses appends from now on, drops what is pending and wakes every
    /// waiter with the reason. Only the first failure is kept.
    pub(crate) fn fail(&self, reason: String) {
        let mut state = self.lock();
        if state.failure.is_some() {
            return;
        }
        tracing::error!("journal failed, refusing further records: {reason}");
        let reason: Arc<str> = reason.into();
        state.failure = Some(Arc::clone(&reason));
        state.buf = Vec::new();
        self.counters.pending_bytes.store(0, Ordering::Relaxed);
        drop(state);
        self.durable.send_modify(|durable| durable.failure = Some(reason));
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

/// The writer thread's own state.
pub(crate) struct Writer {
    pub(crate) shared: Arc<Shared>,
    pub(crate) storage: Box<dyn Storage>,
    pub(crate) path: PathBuf,
    pub(crate) policy: FsyncPolicy,
    pub(crate) fsync_observer: Option<FsyncObserver>,
    pub(crate) on_durable: Box<dyn FnMut(u64) + Send>,
    /// The highest sequence written (durable once synced).
    pub(crate) written: u64,
    /// Whether bytes were written since the last fsync.
    pub(crate) unsynced: bool,
    /// When the last batch was taken: group commit takes the next one an interval later.
    pub(crate) last_batch_at: Option<Instant>,
}

impl Writer {
    /// The thread's body: batches until shutdown or the first failure.
    pub(crate) fn run(mut self) {
        let _failure_on_panic = FailOnPanic(Arc::clone(&self.shared));
        let mut spare = Vec::new();
        while let Some(batch) = self.next_batch(spare) {
            let result = self.write_batch(&batch);
            self.shared.counters.pending_bytes.fetch_sub(batch.len() as u64, Ordering::Relaxed);
            if let Err(reason) = result {
                return self.shared.fail(reason);
            }
            spare = batch;
            spare.clear();
            if spare.capacity() > MAX_SPARE_CAPACITY {
                spare = Vec::new();
            }
        }
        // Closing: make everything durable whatever the policy.
        if self.unsynced
            && let Err(reason) = self.sync()
        {
            self.shared.fail(reason);
        }
    }

    /// Waits for the next batch (under group commit, until an interval after the previous batch
    /// started) and swaps it out for `spare`; `None` when the journal is closing and nothing is
    /// pending.
    fn next_batch(&mut self, mut spare: Vec<u8>) -> Option<Vec<u8>> {
        let not_before = match self.policy {
            FsyncPolicy::Group(interval) => self.last_batch_at.and_then(|last| last.checked_add(interval)),
            _ => None,
        };
        let mut state = self.shared.lock();
        loop {
            if state.failure.is_some() {
                return None;
            }
            if !state.buf.is_empty() {
                let now = Instant::now();
                match not_before {
                    Some(deadline) if now < deadline && !state.shutdown => {
                        state = self
                            .shared
                            .wake
                            .wait_timeout(state, deadline - now)
                            .unwrap_or_else(PoisonError::into_inner)
                            .0;
                    }
                    _ => break,
                }
            } else if state.shutdown {
                return None;
            } else {
                state = self.shared.wake.wait(state).unwrap_or_else(PoisonError::into_inner);
            }
        }
        std::mem::swap(&mut state.buf, &mut spare);
        drop(state);
        self.last_batch_at = Some(Instant::now());
        Some(spare)
    }

    /// Writes a batch of framed records and applies the policy; the error is the failure reason.
    fn write_batch(&mut self, batch: &[u8]) -> Result<(), String> {
        match self.policy {
            FsyncPolicy::EveryRecord => {
                let mut rest = batch;
                while let Some(header) = rest.first_chunk::<4>() {
                    // The framing was written by `append_with`, so the length is in range.
                    let len = RECORD_HEADER_LEN + u32::from_le_bytes(*header) as usize;
                    let (record, tail) = rest.split_at(len.min(rest.len()));
                    rest = tail;
                    self.write(record, 1)?;
                    self.sync()?;
                    self.publish();
                }
            }
            FsyncPolicy::Group(_) => {
                self.write(batch, count_records(batch))?;
                self.sync()?;
                self.publish();
            }
            FsyncPolicy::Never => {
                self.write(batch, count_records(batch))?;
                self.publish();
            }
        }
        Ok(())
    }

    fn write(&mut self, bytes: &[u8], records: u64) -> Result<(), String> {
        self.storage
            .write_all(bytes)
            .map_err(|error| format!("writing {} bytes to {} failed: {error}", bytes.len(), self.path.display()))?;
        self.unsynced = true;
        self.written += records;
        self.shared.counters.records_written.fetch_add(records, Ordering::Relaxed);
        self.shared.counters.bytes_written.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    fn sync(&mut self) -> Result<(), String> {
        let started = Instant::now();
        let result = self.storage.sync_data();
        let elapsed = started.elapsed();
        result.map_err(|error| format!("fsync of {} failed: {error}", self.path.display()))?;
        self.unsynced = false;
        let counters = &self.shared.counters;
        counters.fsyncs.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        counters.fsync_nanos.fetch_add(nanos, Ordering::Relaxed);
        // Saturates past the histogram's 60 s bound rather than failing.
        counters
            .fsync_latency
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .saturating_record(nanos.max(1));
        if let Some(observer) = &self.fsync_observer {
            observer(elapsed);
        }
        Ok(())
    }

    /// Reports everything written as durable: first to `on_durable`, then to the waiters, so
    /// when `wait_durable(n)` returns, `on_durable` has seen `n`.
    fn publish(&mut self) {
        (self.on_durable)(self.written);
        let written = self.written;
        self.shared.durable.send_modify(|durable| durable.sequence = written);
    }
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("path", &self.path)
            .field("policy", &self.policy)
            .field("written", &self.written)
            .finish_non_exhaustive()
    }
}

/// Counts the framed records in a batch.
fn count_records(mut batch: &[u8]) -> u64 {
    let mut records = 0;
    while let Some(header) = batch.first_chunk::<4>() {
        let len = RECORD_HEADER_LEN + u32::from_le_bytes(*header) as usize;
        batch = batch.get(len..).unwrap_or_default();
        records += 1;
    }
    records
}

/// Fails the journal if the writer thread unwinds (a panicking `on_durable` or fsync observer),
/// so appenders and waiters get an error instead of waiting forever.
struct FailOnPanic(Arc<Shared>);

impl Drop for FailOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0
                .fail("the journal's writer thread panicked (in the on_durable callback or the fsync observer)".to_owned());
        }
    }
}
