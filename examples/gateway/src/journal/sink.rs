//! The file side of a journal: writing a batch, syncing it per the policy and publishing what is
//! durable.
//!
//! A journal has exactly one [`Sink`]. It lives in the shared state while nobody writes, and
//! whoever writes a batch takes it out first: the writer thread, or a caller of
//! [`Journal::sync_or_hand_off`](super::Journal::sync_or_hand_off) that found it idle. Holding the
//! sink is what makes a writer, so batches reach the file, become durable and are published in
//! sequence order whoever writes them, and no lock is held during the IO.

use std::fs::File;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::format::RECORD_HEADER_LEN;
use super::idle_spinner::IdleSpinner;
use super::writer::Shared;
use super::{FsyncObserver, FsyncPolicy};

/// A writer buffer that grew past this is dropped after use rather than kept, so one burst does
/// not pin its memory forever.
const MAX_SPARE_CAPACITY: usize = 4 << 20;

/// Where the writer puts the bytes: the journal file, or in tests a storage that fails on cue.
pub(crate) trait Storage: Send + 'static {
    /// Writes all of `bytes` at the end of the journal.
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Makes everything written so far durable (`fdatasync`).
    fn sync_data(&mut self) -> io::Result<()>;
    /// The journal is closing and everything written is durable: release what only a writer
    /// needs (the zeroed space ahead of the records).
    fn close(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Storage for File {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        Write::write_all(self, bytes)
    }

    fn sync_data(&mut self) -> io::Result<()> {
        Self::sync_data(self)
    }
}

/// The journal file and everything only a writer touches.
pub(crate) struct Sink {
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
    /// How many records the last batch carried: after a lone record's batch, the next lone
    /// record is synced at once, within the group interval (see `Shared::sync_or_hand_off`).
    pub(crate) last_batch_records: u64,
    /// The buffer swapped in for the pending one when a batch is taken, to reuse its memory.
    pub(crate) spare: Vec<u8>,
    /// Keeps the syncing thread's CPU busy during each fsync, if asked for.
    pub(crate) spinner: Option<IdleSpinner>,
}

impl Sink {
    /// A sink over `storage` whose first `written` records are already durable.
    pub(crate) fn new(
        storage: Box<dyn Storage>,
        path: PathBuf,
        policy: FsyncPolicy,
        fsync_observer: Option<FsyncObserver>,
        on_durable: Box<dyn FnMut(u64) + Send>,
        written: u64,
    ) -> Self {
        Self {
            storage,
            path,
            policy,
            fsync_observer,
            on_durable,
            written,
            unsynced: false,
            last_batch_at: None,
            last_batch_records: 0,
            spare: Vec::new(),
            spinner: None,
        }
    }

    /// Keeps the syncing thread's CPU busy during each fsync with `spinner`.
    pub(crate) fn with_spinner(mut self, spinner: Option<IdleSpinner>) -> Self {
        self.spinner = spinner;
        self
    }

    /// Whether the next batch may be taken at `now`; under group commit not before an interval
    /// after the last one was taken.
    pub(crate) fn is_ready(&self, now: Instant) -> bool {
        self.not_before().is_none_or(|deadline| now >= deadline)
    }

    /// When the next batch may be taken, if group commit makes it wait.
    pub(crate) fn not_before(&self) -> Option<Instant> {
        match self.policy {
            FsyncPolicy::Group(interval) => self.last_batch_at.and_then(|last| last.checked_add(interval)),
            FsyncPolicy::EveryRecord | FsyncPolicy::Never => None,
        }
    }

    /// Writes a batch of framed records, applies the policy and publishes what became durable;
    /// then keeps the batch's buffer as the next spare. The error is the failure reason.
    pub(crate) fn write_batch(&mut self, shared: &Shared, mut batch: Vec<u8>) -> Result<(), String> {
        let result = self.write_and_sync(shared, &batch);
        shared.counters.pending_bytes.fetch_sub(batch.len() as u64, Ordering::Relaxed);
        batch.clear();
        if batch.capacity() <= MAX_SPARE_CAPACITY {
            self.spare = batch;
        }
        result
    }

    /// Makes everything written durable whatever the policy (the journal is closing).
    pub(crate) fn close(&mut self, shared: &Shared) -> Result<(), String> {
        if self.unsynced {
            self.sync(shared)?;
        }
        self.storage
            .close()
            .map_err(|error| format!("closing {} failed: {error}", self.path.display()))
    }

    fn write_and_sync(&mut self, shared: &Shared, batch: &[u8]) -> Result<(), String> {
        match self.policy {
            FsyncPolicy::EveryRecord => {
                let mut rest = batch;
                while let Some(header) = rest.first_chunk::<4>() {
                    // The framing was written by `append_with`, so the length is in range.
                    let len = RECORD_HEADER_LEN + u32::from_le_bytes(*header) as usize;
                    let (record, tail) = rest.split_at(len.min(rest.len()));
                    rest = tail;
                    self.write(shared, record, 1)?;
                    self.sync(shared)?;
                    self.publish(shared);
                }
            }
            FsyncPolicy::Group(_) => {
                self.write(shared, batch, count_records(batch))?;
                self.sync(shared)?;
                self.publish(shared);
            }
            FsyncPolicy::Never => {
                self.write(shared, batch, count_records(batch))?;
                self.publish(shared);
            }
        }
        Ok(())
    }

    fn write(&mut self, shared: &Shared, bytes: &[u8], records: u64) -> Result<(), String> {
        self.storage
            .write_all(bytes)
            .map_err(|error| format!("writing {} bytes to {} failed: {error}", bytes.len(), self.path.display()))?;
        self.unsynced = true;
        self.written += records;
        shared.counters.records_written.fetch_add(records, Ordering::Relaxed);
        shared.counters.bytes_written.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    fn sync(&mut self, shared: &Shared) -> Result<(), String> {
        if let Some(spinner) = &self.spinner {
            spinner.before_sync();
        }
        let started = Instant::now();
        let result = self.storage.sync_data();
        let elapsed = started.elapsed();
        result.map_err(|error| format!("fsync of {} failed: {error}", self.path.display()))?;
        self.unsynced = false;
        shared.counters.record_fsync(elapsed);
        if let Some(observer) = &self.fsync_observer {
            observer(elapsed);
        }
        Ok(())
    }

    /// Reports everything written as durable: first to `on_durable`, then to the waiters, so
    /// when `wait_durable(n)` returns, `on_durable` has seen `n`.
    fn publish(&mut self, shared: &Shared) {
        (self.on_durable)(self.written);
        shared.publish_durable(self.written);
    }
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink")
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
