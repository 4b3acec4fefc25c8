//! Tests of the writer through an in-memory storage that fails or stalls on cue. The file
//! handling (open, replay, truncation, locking) is tested through the public API in
//! `tests/journal.rs`.

use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use super::*;

/// An in-memory disk shared between a test and the writer thread.
#[derive(Clone, Default)]
struct Disk(Arc<(Mutex<DiskState>, Condvar)>);

#[derive(Default)]
struct DiskState {
    bytes: Vec<u8>,
    /// How many of `bytes` were synced.
    synced: usize,
    /// The OS error the next writes fail with.
    fail_writes: Option<i32>,
    /// The OS error the next syncs fail with.
    fail_syncs: Option<i32>,
    /// While set, writes block (the writer is stuck in a slow write).
    held: bool,
    /// Writes begun, blocked or not.
    writes_started: usize,
}

impl Disk {
    fn state(&self) -> MutexGuard<'_, DiskState> {
        self.0.0.lock().expect("disk lock")
    }

    fn update(&self, change: impl FnOnce(&mut DiskState)) {
        change(&mut self.state());
        self.0.1.notify_all();
    }

    /// Waits until `writes` writes have begun.
    fn wait_for_writes(&self, writes: usize) {
        let state = self.state();
        drop(
            self.0
                .1
                .wait_while(state, |state| state.writes_started < writes)
                .expect("disk lock"),
        );
    }
}

impl Storage for Disk {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        let mut state = self.state();
        state.writes_started += 1;
        self.0.1.notify_all();
        let mut state = self.0.1.wait_while(state, |state| state.held).expect("disk lock");
        if let Some(code) = state.fail_writes {
            return Err(io::Error::from_raw_os_error(code));
        }
        state.bytes.extend_from_slice(bytes);
        Ok(())
    }

    fn sync_data(&mut self) -> io::Result<()> {
        let mut state = self.state();
        if let Some(code) = state.fail_syncs {
            return Err(io::Error::from_raw_os_error(code));
        }
        state.synced = state.bytes.len();
        Ok(())
    }
}

/// The durable sequences `on_durable` saw.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<u64>>>);

impl Seen {
    fn hook(&self) -> Box<dyn FnMut(u64) + Send> {
        let seen = self.clone();
        Box::new(move |sequence| seen.0.lock().expect("seen lock").push(sequence))
    }

    fn sequences(&self) -> Vec<u64> {
        self.0.lock().expect("seen lock").clone()
    }
}

fn start(disk: &Disk, options: JournalOptions, seen: &Seen) -> Journal {
    Journal::start(Box::new(disk.clone()), options, 0, seen.hook()).expect("writer thread starts")
}

fn options(policy: FsyncPolicy) -> JournalOptions {
    JournalOptions::new("/test/journal").with_policy(policy)
}

const ENOSPC: i32 = 28;
const EIO: i32 = 5;

fn assert_failed<T: std::fmt::Debug>(result: Result<T, JournalError>, expected: &str) {
    match result {
        Err(JournalError::Failed { reason }) => assert!(reason.contains(expected), "reason {reason:?} lacks {expected:?}"),
        other => panic!("expected Failed mentioning {expected:?}, got {other:?}"),
    }
}

#[tokio::test]
async fn a_write_failure_fails_the_journal_and_reports_nothing_durable() {
    let (disk, seen) = (Disk::default(), Seen::default());
    disk.update(|state| state.fail_writes = Some(ENOSPC));
    let journal = start(&disk, options(FsyncPolicy::default()), &seen);

    let sequence = journal.append(b"an order").expect("append before the failure is noticed");
    assert_failed(journal.wait_durable(sequence).await, "No space left on device");
    assert!(journal.is_failed());
    let reason = journal.failure().expect("a failure");
    assert!(reason.starts_with("writing 16 bytes to /test/journal failed"), "{reason}");
    assert_failed(journal.append(b"another order"), "os error 28");
    assert_eq!(journal.durable_sequence(), 0);
    assert!(seen.sequences().is_empty());
    assert_failed(journal.close(), "os error 28");
}

#[tokio::test]
async fn records_durable_before_a_failure_stay_durable_and_later_ones_never_become_durable() {
    let (disk, seen) = (Disk::default(), Seen::default());
    let journal = start(&disk, options(FsyncPolicy::EveryRecord), &seen);
    let first = journal.append(b"first").expect("append");
    journal.wait_durable(first).await.expect("first is durable");

    disk.update(|state| state.fail_writes = Some(EIO));
    let second = journal.append(b"second").expect("append");
    assert_failed(journal.wait_durable(second).await, "Input/output error");
    journal.wait_durable(first).await.expect("first is still durable");
    assert_eq!(journal.durable_sequence(), first);
    assert_eq!(seen.sequences(), [first]);
}

#[tokio::test]
async fn an_fsync_failure_fails_the_journal() {
    let (disk, seen) = (Disk::default(), Seen::default());
    disk.update(|state| state.fail_syncs = Some(EIO));
    let journal = start(&disk, options(FsyncPolicy::Group(Duration::from_micros(50))), &seen);
    let sequence = journal.append(b"an order").expect("append");
    assert_failed(journal.wait_durable(sequence).await, "fsync of /test/journal failed");
    assert_eq!(journal.stats().fsyncs, 0);
    assert!(seen.sequences().is_empty());
    assert_failed(journal.append(b"another"), "Input/output error");
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn writes_to_a_full_device_fail_the_journal() {
    // `/dev/full` fails every write with ENOSPC, like a full disk. It is a character device, so it
    // goes straight to the writer: `Journal::open` refuses anything but a regular file.
    let device = std::fs::OpenOptions::new().append(true).open("/dev/full").expect("open /dev/full");
    let journal = Journal::start(Box::new(device), JournalOptions::new("/dev/full"), 0, Box::new(|_| {})).expect("writer starts");
    let sequence = journal.append(b"an order").expect("append");
    assert_failed(journal.wait_durable(sequence).await, "No space left on device (os error 28)");
    let error = journal.append(b"next").expect_err("failed journal");
    let text = error.to_string();
    assert!(
        text.contains("writing 16 bytes to /dev/full failed: No space left on device"),
        "{text}"
    );
    assert!(text.contains("restart the gateway"), "{text}");
}

#[tokio::test]
async fn a_panicking_on_durable_fails_the_journal_instead_of_hanging() {
    let disk = Disk::default();
    let journal = Journal::start(
        Box::new(disk),
        options(FsyncPolicy::Never),
        0,
        Box::new(|_| panic!("on_durable panics")),
    )
    .expect("writer starts");
    let sequence = journal.append(b"an order").expect("append");
    assert_failed(journal.wait_durable(sequence).await, "panicked");
    assert_failed(journal.close(), "panicked");
}

#[tokio::test]
async fn group_commit_writes_and_syncs_what_arrived_during_a_write_as_one_batch() {
    let (disk, seen) = (Disk::default(), Seen::default());
    disk.update(|state| state.held = true);
    let journal = start(&disk, options(FsyncPolicy::Group(Duration::ZERO)), &seen);
    journal.append(b"first").expect("append");
    disk.wait_for_writes(1);
    for n in 2..=100u32 {
        journal.append(&n.to_le_bytes()).expect("append");
    }
    assert_eq!(journal.durable_sequence(), 0);
    disk.update(|state| state.held = false);
    journal.wait_durable(100).await.expect("durable");

    let stats = journal.stats();
    assert_eq!((stats.records_written, stats.fsyncs, stats.pending_bytes), (100, 2, 0));
    assert_eq!(seen.sequences(), [1, 100]);
    let state = disk.state();
    assert_eq!(state.synced, state.bytes.len());
}

#[tokio::test]
async fn every_record_policy_syncs_each_record_of_a_batch_separately() {
    let (disk, seen) = (Disk::default(), Seen::default());
    disk.update(|state| state.held = true);
    let journal = start(&disk, options(FsyncPolicy::EveryRecord), &seen);
    journal.append(b"first").expect("append");
    disk.wait_for_writes(1);
    for n in 2..=10u32 {
        journal.append(&n.to_le_bytes()).expect("append");
    }
    disk.update(|state| state.held = false);
    journal.wait_durable(10).await.expect("durable");
    assert_eq!(journal.stats().fsyncs, 10);
    assert_eq!(disk.state().writes_started, 10);
    assert_eq!(seen.sequences(), (1..=10).collect::<Vec<_>>());
}

#[tokio::test]
async fn appends_beyond_the_pending_bound_are_refused_until_the_disk_catches_up() {
    let (disk, seen) = (Disk::default(), Seen::default());
    disk.update(|state| state.held = true);
    let journal = start(&disk, options(FsyncPolicy::Never).with_max_pending_bytes(100), &seen);
    journal.append(b"taken by the writer").expect("append");
    disk.wait_for_writes(1);
    let mut last = 1;
    let error = loop {
        match journal.append(&[0xa5; 32]) {
            Ok(sequence) => last = sequence,
            Err(error) => break error,
        }
    };
    assert!(matches!(error, JournalError::Overloaded { limit: 100, .. }), "{error:?}");
    assert_eq!(last, 4, "three 40-byte records reach the 100-byte bound");
    assert!(error.to_string().contains("the disk cannot keep up"), "{error}");

    disk.update(|state| state.held = false);
    journal.wait_durable(last).await.expect("durable");
    assert_eq!(journal.append(b"accepted again").expect("append"), last + 1);
    assert!(!journal.is_failed());
}

#[test]
fn append_refuses_empty_and_oversized_payloads_without_using_a_sequence() {
    let (disk, seen) = (Disk::default(), Seen::default());
    let journal = start(&disk, options(FsyncPolicy::Never), &seen);
    assert!(matches!(journal.append(b""), Err(JournalError::BadLength { len: 0 })));
    let oversized = vec![0; MAX_RECORD_LEN as usize + 1];
    let error = journal.append(&oversized).expect_err("oversized");
    assert!(
        matches!(error, JournalError::BadLength { len } if len == oversized.len()),
        "{error:?}"
    );
    assert_eq!(journal.append(&oversized[1..]).expect("a record of MAX_RECORD_LEN"), 1);
    journal.close().expect("close");
    assert_eq!(disk.state().bytes.len(), RECORD_HEADER_LEN + MAX_RECORD_LEN as usize);
}

#[test]
fn a_panicking_encoder_leaves_no_partial_record_behind() {
    let (disk, seen) = (Disk::default(), Seen::default());
    let journal = start(&disk, options(FsyncPolicy::Never), &seen);
    let panicked = catch_unwind(AssertUnwindSafe(|| {
        journal.append_with(|_, buf| {
            buf.extend_from_slice(b"half an encod");
            panic!("encoder panics");
        })
    }));
    assert!(panicked.is_err());
    assert_eq!(journal.append(b"ok").expect("append after a panic"), 1);
    journal.close().expect("close");
    let state = disk.state();
    assert_eq!(format::scan(&[&format::FILE_HEADER[..], &state.bytes].concat()).records, 1);
    assert_eq!(&state.bytes[RECORD_HEADER_LEN..], b"ok");
}

#[test]
fn append_with_encodes_the_records_own_sequence() {
    let (disk, seen) = (Disk::default(), Seen::default());
    let journal = Journal::start(Box::new(disk.clone()), options(FsyncPolicy::Never), 41, seen.hook()).expect("writer starts");
    for expected in 42..45u64 {
        let sequence = journal
            .append_with(|sequence, buf| buf.extend_from_slice(&sequence.to_le_bytes()))
            .expect("append");
        assert_eq!(sequence, expected);
    }
    journal.close().expect("close");
    let file = [&format::FILE_HEADER[..], &disk.state().bytes].concat();
    let sequences: Vec<u64> = format::Records::new(&file[HEADER_LEN..])
        .map(|payload| u64::from_le_bytes(payload.try_into().expect("8 bytes")))
        .collect();
    assert_eq!(sequences, [42, 43, 44]);
    assert_eq!(seen.sequences().last(), Some(&44));
}

#[test]
fn dropping_the_journal_writes_and_syncs_what_is_pending() {
    let (disk, seen) = (Disk::default(), Seen::default());
    disk.update(|state| state.held = true);
    let journal = start(&disk, options(FsyncPolicy::Never), &seen);
    journal.append(b"first").expect("append");
    disk.wait_for_writes(1);
    journal.append(b"second").expect("append");
    let releaser = {
        let disk = disk.clone();
        std::thread::spawn(move || disk.update(|state| state.held = false))
    };
    drop(journal);
    releaser.join().expect("releaser");
    let state = disk.state();
    assert_eq!(state.bytes.len(), 2 * RECORD_HEADER_LEN + b"first".len() + b"second".len());
    assert_eq!(state.synced, state.bytes.len(), "closing syncs even under FsyncPolicy::Never");
    assert_eq!(seen.sequences().last(), Some(&2));
}

#[tokio::test]
async fn the_fsync_observer_sees_every_fsync() {
    let observed = Arc::new(Mutex::new(0u64));
    let counter = Arc::clone(&observed);
    let options = options(FsyncPolicy::EveryRecord).with_fsync_observer(move |_| *counter.lock().expect("lock") += 1);
    let (disk, seen) = (Disk::default(), Seen::default());
    let journal = start(&disk, options, &seen);
    for n in 1..=5u8 {
        journal.append(&[n]).expect("append");
    }
    journal.wait_durable(5).await.expect("durable");
    assert_eq!(journal.stats().fsyncs, 5);
    assert_eq!(*observed.lock().expect("lock"), 5);
}

#[tokio::test]
async fn wait_durable_refuses_a_sequence_never_appended() {
    let (disk, seen) = (Disk::default(), Seen::default());
    let journal = start(&disk, options(FsyncPolicy::default()), &seen);
    journal.append(b"one").expect("append");
    let error = journal.wait_durable(2).await.expect_err("never appended");
    assert!(matches!(error, JournalError::NotAppended { sequence: 2, last: 1 }), "{error:?}");
    journal.wait_durable(0).await.expect("sequence 0 is trivially durable");
}

/// Waits (up to 5 s) until the writer thread sleeps: a writer thread still in its first loop
/// takes a pending record itself, so only then is a deferred record the calling thread's to sync.
fn until_the_writer_sleeps(journal: &Journal) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !journal.writer_is_asleep() {
        assert!(std::time::Instant::now() < deadline, "the writer thread never went to sleep");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// An `on_durable` hook that notes which thread saw each durable sequence.
fn thread_hook(seen: &Arc<Mutex<Vec<(u64, std::thread::ThreadId)>>>) -> Box<dyn FnMut(u64) + Send> {
    let seen = Arc::clone(seen);
    Box::new(move |sequence| seen.lock().expect("seen lock").push((sequence, std::thread::current().id())))
}

#[test]
fn sync_or_hand_off_writes_and_syncs_on_the_calling_thread_when_the_writer_is_idle() {
    let (disk, seen) = (Disk::default(), Arc::default());
    let journal = Journal::start(Box::new(disk.clone()), options(FsyncPolicy::EveryRecord), 0, thread_hook(&seen)).expect("writer starts");
    until_the_writer_sleeps(&journal);
    let appended = journal
        .append_deferred_with(|_, buf| buf.extend_from_slice(b"an order"))
        .expect("append");
    assert_eq!(appended.sequence(), 1);
    assert!(journal.sync_or_hand_off(appended), "durable on return");
    assert_eq!(journal.durable_sequence(), 1);
    assert_eq!(*seen.lock().expect("seen lock"), [(1, std::thread::current().id())]);
    assert_eq!(journal.stats().fsyncs, 1);
    let state = disk.state();
    assert_eq!((state.synced, state.bytes.len()), (RECORD_HEADER_LEN + 8, RECORD_HEADER_LEN + 8));
}

#[tokio::test]
async fn sync_or_hand_off_hands_off_at_once_while_the_writer_is_busy() {
    let (disk, seen) = (Disk::default(), Arc::default());
    disk.update(|state| state.held = true);
    let journal = Journal::start(Box::new(disk.clone()), options(FsyncPolicy::EveryRecord), 0, thread_hook(&seen)).expect("writer starts");
    journal.append(b"first").expect("append");
    disk.wait_for_writes(1); // The writer thread is stuck writing the first record.
    let appended = journal
        .append_deferred_with(|_, buf| buf.extend_from_slice(b"second"))
        .expect("append");
    assert!(!journal.sync_or_hand_off(appended), "handed off, not durable yet");
    assert_eq!(journal.durable_sequence(), 0);

    disk.update(|state| state.held = false);
    journal.wait_durable(2).await.expect("durable");
    let seen = seen.lock().expect("seen lock").clone();
    assert_eq!(seen.iter().map(|(sequence, _)| *sequence).collect::<Vec<_>>(), [1, 2]);
    assert!(
        seen.iter().all(|(_, thread)| *thread != std::thread::current().id()),
        "the writer thread wrote both: {seen:?}"
    );
}

#[tokio::test]
async fn a_deferred_record_nobody_hands_off_becomes_durable_for_its_waiter() {
    let (disk, seen) = (Disk::default(), Seen::default());
    let journal = start(&disk, options(FsyncPolicy::EveryRecord), &seen);
    let appended = journal
        .append_deferred_with(|_, buf| buf.extend_from_slice(b"forgotten"))
        .expect("append");
    let sequence = appended.sequence();
    drop(appended);
    tokio::time::timeout(Duration::from_secs(10), journal.wait_durable(sequence))
        .await
        .expect("the waiter wakes the writer")
        .expect("durable");
    assert_eq!(seen.sequences(), [1]);
}

#[test]
fn group_commit_syncs_a_lone_record_at_once_even_within_the_interval() {
    let interval = Duration::from_secs(60);
    let (disk, seen) = (Disk::default(), Arc::default());
    let journal =
        Journal::start(Box::new(disk.clone()), options(FsyncPolicy::Group(interval)), 0, thread_hook(&seen)).expect("writer starts");
    until_the_writer_sleeps(&journal);
    for payload in [&b"first"[..], b"second", b"third"] {
        let appended = journal
            .append_deferred_with(|_, buf| buf.extend_from_slice(payload))
            .expect("append");
        assert!(
            journal.sync_or_hand_off(appended),
            "a record that finds no sync in flight and nothing else pending is synced at once"
        );
    }
    assert_eq!(journal.stats().fsyncs, 3);
    let here = std::thread::current().id();
    assert_eq!(*seen.lock().expect("seen lock"), [(1, here), (2, here), (3, here)]);
    let state = disk.state();
    assert_eq!(state.synced, state.bytes.len());
}

#[tokio::test]
async fn group_commit_batches_the_records_that_arrive_during_a_sync_an_interval_after_it() {
    let interval = Duration::from_millis(200);
    let (disk, seen) = (Disk::default(), Seen::default());
    let journal = Arc::new(start(&disk, options(FsyncPolicy::Group(interval)), &seen));
    until_the_writer_sleeps(&journal);
    disk.update(|state| state.held = true);
    let leader_began = std::time::Instant::now();
    let leader = {
        let journal = Arc::clone(&journal);
        std::thread::spawn(move || {
            let appended = journal
                .append_deferred_with(|_, buf| buf.extend_from_slice(b"leader"))
                .expect("append");
            journal.sync_or_hand_off(appended)
        })
    };
    disk.wait_for_writes(1); // The leader is writing on its own thread.
    for n in 2..=4u32 {
        let appended = journal
            .append_deferred_with(|_, buf| buf.extend_from_slice(&n.to_le_bytes()))
            .expect("append");
        assert!(!journal.sync_or_hand_off(appended), "a follower waits for the sync in flight");
    }
    disk.update(|state| state.held = false);
    assert!(leader.join().expect("leader thread"), "the leader's record is durable on return");
    journal.wait_durable(4).await.expect("durable");
    assert!(
        leader_began.elapsed() >= interval,
        "the followers' batch was taken no sooner than the interval after the leader's"
    );
    let stats = journal.stats();
    assert_eq!(
        (stats.records_written, stats.fsyncs),
        (4, 2),
        "the three followers shared one fsync"
    );
    assert_eq!(seen.sequences(), [1, 4]);

    // After a batch of several (load), a lone record within the interval is not synced at once:
    // the writer thread takes it once the interval has passed.
    let followers_taken = std::time::Instant::now();
    let lone = journal
        .append_deferred_with(|_, buf| buf.extend_from_slice(b"after the followers"))
        .expect("append");
    assert!(!journal.sync_or_hand_off(lone), "within the interval after a batch of several");
    journal.wait_durable(5).await.expect("durable");
    assert!(followers_taken.elapsed() >= interval / 2, "it waited for the rest of the interval");
    assert_eq!(seen.sequences(), [1, 4, 5]);
}

#[tokio::test]
async fn a_write_failure_on_the_calling_thread_fails_the_journal() {
    let (disk, seen) = (Disk::default(), Seen::default());
    disk.update(|state| state.fail_writes = Some(EIO));
    let journal = start(&disk, options(FsyncPolicy::EveryRecord), &seen);
    until_the_writer_sleeps(&journal);
    let appended = journal
        .append_deferred_with(|_, buf| buf.extend_from_slice(b"an order"))
        .expect("append");
    assert!(!journal.sync_or_hand_off(appended));
    assert!(journal.is_failed());
    assert_failed(journal.wait_durable(1).await, "Input/output error");
    assert_failed(journal.append(b"next"), "Input/output error");
    assert!(seen.sequences().is_empty());
    assert_failed(journal.close(), "Input/output error");
}

#[test]
fn a_panicking_on_durable_on_the_calling_thread_fails_the_journal_and_close_returns() {
    let journal = Journal::start(
        Box::new(Disk::default()),
        options(FsyncPolicy::EveryRecord),
        0,
        Box::new(|_| panic!("on_durable panics")),
    )
    .expect("writer starts");
    until_the_writer_sleeps(&journal);
    let appended = journal
        .append_deferred_with(|_, buf| buf.extend_from_slice(b"an order"))
        .expect("append");
    let panicked = catch_unwind(AssertUnwindSafe(|| journal.sync_or_hand_off(appended)));
    assert!(panicked.is_err());
    assert_failed(journal.append(b"next"), "panicked");
    assert_failed(journal.close(), "panicked");
}

#[tokio::test]
async fn sync_or_hand_off_leaves_a_record_with_others_pending_to_the_writer_thread() {
    let (disk, seen) = (Disk::default(), Arc::default());
    let journal = Journal::start(Box::new(disk.clone()), options(FsyncPolicy::EveryRecord), 0, thread_hook(&seen)).expect("writer starts");
    let first = journal
        .append_deferred_with(|_, buf| buf.extend_from_slice(b"first"))
        .expect("append");
    let second = journal
        .append_deferred_with(|_, buf| buf.extend_from_slice(b"second"))
        .expect("append");
    journal.hand_off(first);
    // Two records pending (or both taken by the writer already): not synced on this thread.
    journal.sync_or_hand_off(second);
    journal.wait_durable(2).await.expect("durable");
    let seen = seen.lock().expect("seen lock").clone();
    assert_eq!(seen.iter().map(|(sequence, _)| *sequence).collect::<Vec<_>>(), [1, 2]);
    assert!(
        seen.iter().all(|(_, thread)| *thread != std::thread::current().id()),
        "the writer thread batches records that pile up: {seen:?}"
    );
}
