//! The durable append-only journal of accepted commands.
//!
//! The gateway appends every accepted command to the journal before acknowledging it, and on
//! start replays the journal to rebuild its books, orders and seen ClOrdIDs. Payloads are opaque
//! here: the service encodes a `proto::journal::Record` into each.
//!
//! - [`Journal::open`] locks the file, replays it through a memory map and cuts off a torn tail.
//! - [`Journal::append`] (or [`append_with`](Journal::append_with)) frames a record into a
//!   pending buffer under a short lock and returns its sequence number; it never waits for disk.
//! - A dedicated writer thread writes the pending records and fsyncs them per the
//!   [`FsyncPolicy`]; [`Journal::wait_durable`] resolves once a record is durable, and the
//!   `on_durable` hook sees each new durable sequence in order.
//! - A caller about to wait for its record can write it itself instead
//!   ([`Journal::append_deferred_with`], then [`Journal::sync_or_hand_off`]): when the writer is
//!   idle and nothing else is pending, the record is written and synced on the caller's thread, which saves the two thread
//!   wake-ups of a hand-off to the writer thread and back; when the writer is busy, it is handed
//!   off and joins the writer's next batch.
//! - The first write or fsync error fails the journal for good ([`JournalError::Failed`]): no
//!   record after it is reported durable, and the service refuses orders.
//!
//! # File format
//!
//! A journal file is an 8-byte header followed by records, nothing else:
//!
//! ```text
//! file   = header record*
//! header = "VLYJRNL" (0x56 0x4c 0x59 0x4a 0x52 0x4e 0x4c)  version (0x01)
//! record = len: u32 LE  crc: u32 LE  payload: len bytes
//! ```
//!
//! - `len` is the payload's length, `1..=MAX_RECORD_LEN` (1 MiB). A reader checks it before
//!   anything else. Zero is invalid, so zeros after the last record end the records: the writer
//!   zeroes space ahead of the records (see *Durability*), and some filesystems leave a
//!   zero-filled tail after a crash. A tail of zeros only is cut off on open without counting as
//!   torn.
//! - `crc` is the CRC-32 of the payload alone: the IEEE polynomial, reflected, initial value and
//!   final XOR `0xffffffff` (CRC-32/ISO-HDLC, as zlib's `crc32` and the `crc32fast` crate compute).
//! - Record `n` (from 1) has sequence number `n`: sequences are positions, never stored.
//! - The intact records are those before the first record that is cut off by the end of the file,
//!   has a bad `len` or has a bad `crc`. Everything from there on is a torn tail (a write a crash
//!   interrupted); opening a journal truncates it and logs how many bytes it dropped. A file that
//!   does not start with the header (other than an empty file or a prefix of the header, which a
//!   crash while creating the journal leaves) is refused and left untouched.
//!
//! One record with the payload `hi`:
//!
//! ```text
//! 56 4c 59 4a 52 4e 4c 01   header: "VLYJRNL", version 1
//! 02 00 00 00               len: 2
//! ac 2a 93 d8               crc: 0xd8932aac = crc32("hi")
//! 68 69                     payload: "hi"
//! ```
//!
//! # Durability
//!
//! Under [`FsyncPolicy::EveryRecord`] and [`FsyncPolicy::Group`] a record is durable once an
//! `fdatasync` that covers it returned; under [`FsyncPolicy::Never`] once it is written to the
//! page cache (it survives a crash of the gateway but not of the machine). [`Journal::close`]
//! fsyncs whatever the policy.
//!
//! Records are written in place over space the writer zeroed (and synced) ahead of them, 1 MiB
//! at a time, rather than appended: an `fdatasync` after an append must also commit the file's
//! new size (on ext4 a jbd2 journal commit, a second device request from another kernel thread),
//! while one after a write over written blocks flushes the data alone. A clean close cuts the
//! zeroed space off again. The file holds an exclusive advisory lock (flock) while open, so
//! a second gateway on the same journal is refused.

mod error;
mod format;
#[cfg(test)]
pub(crate) mod held;
mod idle_spinner;
mod options;
mod preallocated;
mod replay;
mod sink;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

pub use self::error::JournalError;
pub use self::format::{HEADER_LEN, MAGIC, MAX_RECORD_LEN, RECORD_HEADER_LEN, VERSION};
use self::idle_spinner::IdleSpinner;
pub use self::options::{
    DEFAULT_GROUP_COMMIT_INTERVAL, DEFAULT_MAX_PENDING_BYTES, FsyncObserver, FsyncPolicy, JournalOptions, ParseFsyncPolicyError,
};
use self::preallocated::PreallocatedFile;
pub use self::replay::{Replay, ReplayIter};
use self::sink::{Sink, Storage};
use self::writer::Shared;

/// The journal: appends records, makes them durable on a writer thread and reports progress.
///
/// Share it behind an `Arc`. Close it with [`close`](Self::close) to learn whether the last
/// records made it to disk; dropping it also writes and fsyncs what is pending, best-effort.
///
/// ```no_run
/// # async fn run() -> Result<(), gateway::journal::JournalError> {
/// use gateway::journal::{FsyncPolicy, Journal, JournalOptions};
///
/// let options = JournalOptions::new("gateway.journal").with_policy(FsyncPolicy::default());
/// let (journal, replay) = Journal::open(options, Box::new(|durable| tracing::debug!(durable, "journal durable")))?;
/// for payload in &replay {
///     // Decode and apply `payload`.
/// #   let _ = payload;
/// }
/// drop(replay);
///
/// let sequence = journal.append(b"an encoded command")?;
/// journal.wait_durable(sequence).await?; // Now acknowledge the command.
/// journal.close()
/// # }
/// ```
#[derive(Debug)]
pub struct Journal {
    shared: Arc<Shared>,
    /// The writer thread, until the journal is closed.
    writer: Mutex<Option<JoinHandle<()>>>,
    path: PathBuf,
    policy: FsyncPolicy,
}

impl Journal {
    /// Opens the journal at `options.path` (creating it if missing), truncates a torn tail and
    /// starts the writer thread. Returns the journal and the intact records to replay.
    ///
    /// `on_durable` is called with the new durable sequence after each batch is durable, in
    /// increasing order, before [`wait_durable`](Self::wait_durable) callers wake; not for
    /// replayed records. It runs on the thread that wrote the batch: the writer thread, or a
    /// caller of [`sync_or_hand_off`](Self::sync_or_hand_off). Keep it short: the next batch
    /// waits for it. A panic in it fails the journal.
    ///
    /// This does blocking file IO: call it at startup, or from `spawn_blocking`.
    pub fn open(options: JournalOptions, on_durable: Box<dyn FnMut(u64) + Send>) -> Result<(Self, Replay), JournalError> {
        let (file, replay) = replay::open(&options.path)?;
        // The replay cut the file to its intact records: the next one goes at its end.
        let end = file
            .metadata()
            .map_err(|cause| JournalError::io(&options.path, "reading the metadata", cause))?
            .len();
        let storage = PreallocatedFile::new(file, end);
        let journal = Self::start(Box::new(storage), options, replay.records(), on_durable)?;
        Ok((journal, replay))
    }

    /// Starts the writer thread over `storage`, whose first `replayed` records are durable.
    pub(crate) fn start(
        storage: Box<dyn Storage>,
        options: JournalOptions,
        replayed: u64,
        on_durable: Box<dyn FnMut(u64) + Send>,
    ) -> Result<Self, JournalError> {
        let sink = Sink::new(
            storage,
            options.path.clone(),
            options.policy,
            options.fsync_observer,
            on_durable,
            replayed,
        );
        let spinner = (options.spin_while_syncing && options.policy != FsyncPolicy::Never)
            .then(IdleSpinner::start)
            .transpose()
            .map_err(|cause| JournalError::io(&options.path, "starting the spinner thread", cause))?;
        let sink = sink.with_spinner(spinner);
        let shared = Arc::new(Shared::new(sink, replayed, options.max_pending_bytes));
        let writer_shared = Arc::clone(&shared);
        let writer = std::thread::Builder::new()
            .name("volley-journal".to_owned())
            .spawn(move || writer::run(writer_shared))
            .map_err(|cause| JournalError::io(&options.path, "starting the writer thread", cause))?;
        Ok(Self {
            shared,
            writer: Mutex::new(Some(writer)),
            path: options.path,
            policy: options.policy,
        })
    }

    /// Appends a record with `payload` (1 to [`MAX_RECORD_LEN`] bytes) and returns its sequence
    /// number: 1, 2, 3… continuing after the replayed records. It does not wait for the disk;
    /// [`wait_durable`](Self::wait_durable) does.
    ///
    /// Fails with [`JournalError::Failed`] once the journal failed, and with
    /// [`JournalError::Overloaded`] while the disk lags too far behind.
    pub fn append(&self, payload: &[u8]) -> Result<u64, JournalError> {
        self.shared.append_with(|_, buf| buf.extend_from_slice(payload), true)
    }

    /// Appends a record whose payload `encode` writes, given the record's sequence number, to the
    /// end of the buffer it is passed (it must not touch what is already there). Use it when the
    /// payload contains its own sequence, as the gateway's `Record` does: the sequence and the
    /// position in the file then agree even with concurrent appenders.
    ///
    /// `encode` runs under the journal's lock: keep it to encoding. If it writes 0 or more than
    /// [`MAX_RECORD_LEN`] bytes the record is dropped, the sequence is not used and this returns
    /// [`JournalError::BadLength`].
    ///
    /// ```no_run
    /// # fn run(journal: &gateway::journal::Journal) -> Result<(), gateway::journal::JournalError> {
    /// let sequence = journal.append_with(|sequence, buf| buf.extend_from_slice(&sequence.to_le_bytes()))?;
    /// # let _ = sequence;
    /// # Ok(())
    /// # }
    /// ```
    pub fn append_with<F>(&self, encode: F) -> Result<u64, JournalError>
    where
        F: FnOnce(u64, &mut Vec<u8>),
    {
        self.shared.append_with(encode, true)
    }

    /// Appends like [`append_with`](Self::append_with) but does not wake the writer thread: the
    /// caller decides, outside any lock of its own, who writes the record, with
    /// [`sync_or_hand_off`](Self::sync_or_hand_off) (a caller about to wait for it) or
    /// [`hand_off`](Self::hand_off). Until then the record waits for the next append, waiter or
    /// close to take it along.
    ///
    /// ```no_run
    /// # async fn run(journal: &gateway::journal::Journal) -> Result<(), gateway::journal::JournalError> {
    /// let appended = journal.append_deferred_with(|_, buf| buf.extend_from_slice(b"an encoded command"))?;
    /// let sequence = appended.sequence();
    /// journal.sync_or_hand_off(appended); // Writes and syncs here if the writer is idle.
    /// journal.wait_durable(sequence).await?; // At once if it did.
    /// # Ok(())
    /// # }
    /// ```
    pub fn append_deferred_with<F>(&self, encode: F) -> Result<Deferred, JournalError>
    where
        F: FnOnce(u64, &mut Vec<u8>),
    {
        self.shared.append_with(encode, false).map(|sequence| Deferred { sequence })
    }

    /// Leaves a deferred record to the writer thread, waking it if it sleeps. Cheap: a lock and
    /// at most one wake-up.
    pub fn hand_off(&self, appended: Deferred) {
        let Deferred { sequence: _ } = appended;
        self.shared.hand_off();
    }

    /// Makes a deferred record durable on this thread when it is the only record pending and the
    /// writer is idle (under group commit also: the last batch was a lone record too, or is an
    /// interval old); otherwise
    /// hands it off to the writer thread like [`hand_off`](Self::hand_off), which batches the
    /// records that pile up under load. Returns whether the record is durable now.
    ///
    /// When the writer is idle this blocks the calling thread for one write and, under
    /// [`EveryRecord`](FsyncPolicy::EveryRecord) and [`Group`](FsyncPolicy::Group), one
    /// `fdatasync`, and runs `on_durable` and the fsync observer here. Call it only where the
    /// caller would otherwise just wait for the record (on an async runtime's worker that
    /// delays the worker's other tasks by one fsync). One writer at a time has the file, so
    /// at most one thread blocks here.
    pub fn sync_or_hand_off(&self, appended: Deferred) -> bool {
        self.shared.sync_or_hand_off(appended.sequence)
    }

    /// Resolves once the record `sequence` is durable under the policy. Fails with
    /// [`JournalError::Failed`] if the journal fails first (a record that was durable before the
    /// failure still resolves `Ok`), and with [`JournalError::NotAppended`] for a sequence that
    /// was never appended. Cancel-safe.
    pub async fn wait_durable(&self, sequence: u64) -> Result<(), JournalError> {
        let last = self.shared.last_sequence();
        if sequence > last {
            return Err(JournalError::NotAppended { sequence, last });
        }
        let mut durable = self.shared.subscribe();
        // A deferred record whose appender has not handed it off yet must not wait forever.
        if durable.borrow().sequence < sequence {
            self.shared.hand_off();
        }
        let result = durable
            .wait_for(|durable| durable.sequence >= sequence || durable.failure.is_some())
            .await;
        match result {
            Ok(durable) if durable.sequence >= sequence => Ok(()),
            Ok(durable) => Err(JournalError::Failed {
                reason: durable.failure.clone().unwrap_or_else(|| "unknown failure".into()),
            }),
            // The sender lives in `shared`, which `self` keeps alive, so this cannot happen.
            Err(_) => Err(JournalError::Failed {
                reason: "the journal's writer is gone".into(),
            }),
        }
    }

    /// The highest durable sequence (0: none).
    pub fn durable_sequence(&self) -> u64 {
        self.shared.durable().sequence
    }

    /// The last sequence appended (0: none).
    pub fn last_sequence(&self) -> u64 {
        self.shared.last_sequence()
    }

    /// Whether the writer thread is asleep (tests).
    #[cfg(test)]
    pub(crate) fn writer_is_asleep(&self) -> bool {
        self.shared.writer_is_asleep()
    }

    /// Whether a write or fsync failed, so that the journal accepts no more records.
    pub fn is_failed(&self) -> bool {
        self.failure().is_some()
    }

    /// The first write or fsync failure, with the OS error text, for the status the service
    /// refuses orders with.
    pub fn failure(&self) -> Option<Arc<str>> {
        self.shared.durable().failure
    }

    /// A snapshot of the journal's counters, for metrics.
    pub fn stats(&self) -> JournalStats {
        self.shared.stats()
    }

    /// Every `fdatasync`'s duration since the journal was opened, in nanoseconds (3 significant
    /// figures): its percentiles, where [`JournalStats::fsync_time`] gives only the total.
    pub fn fsync_latency(&self) -> hdrhistogram::Histogram<u64> {
        self.shared.fsync_latency()
    }

    /// The journal file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The fsync policy.
    pub fn policy(&self) -> FsyncPolicy {
        self.policy
    }

    /// Writes everything pending, fsyncs (whatever the policy), stops the writer thread and
    /// closes the file; later appends fail with [`JournalError::Closed`]. Fails if the journal
    /// failed at any point, so the caller knows the last records may be lost. Blocks until the
    /// writer is done; closing again does nothing more.
    pub fn close(&self) -> Result<(), JournalError> {
        self.stop();
        match self.failure() {
            Some(reason) => Err(JournalError::Failed { reason }),
            None => Ok(()),
        }
    }

    /// Shuts the writer down and waits for it.
    fn stop(&self) {
        // The lock only guards the handle: a poisoned one still holds it.
        let Some(writer) = self.writer.lock().unwrap_or_else(PoisonError::into_inner).take() else {
            return;
        };
        self.shared.shut_down();
        // A panic on the writer thread already failed the journal (`FailOnPanic`).
        let _ = writer.join();
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A record appended with [`Journal::append_deferred_with`] that no writer was told about yet.
///
/// Give it to [`Journal::sync_or_hand_off`] or [`Journal::hand_off`] once outside the locks held
/// while appending.
#[derive(Debug)]
#[must_use = "hand the record to `Journal::sync_or_hand_off` or `Journal::hand_off`, or it waits for the next append"]
pub struct Deferred {
    sequence: u64,
}

impl Deferred {
    /// The record's sequence number.
    pub fn sequence(&self) -> u64 {
        self.sequence
    }
}

/// A snapshot of a journal's counters, since it was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct JournalStats {
    /// Records appended.
    pub records_appended: u64,
    /// Records written to the file.
    pub records_written: u64,
    /// Bytes written to the file, framing included.
    pub bytes_written: u64,
    /// Bytes appended and not yet written.
    pub pending_bytes: u64,
    /// `fdatasync` calls that succeeded.
    pub fsyncs: u64,
    /// The time spent in them.
    pub fsync_time: Duration,
    /// The highest durable sequence.
    pub durable_sequence: u64,
}

#[cfg(test)]
mod tests;
