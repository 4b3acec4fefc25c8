//! The journal through its public API, on real files in a temporary directory: round trips,
//! reopening, torn tails, bad headers, fsync policies, group commit, locking and permissions.
//! Failures of the disk itself (ENOSPC, EIO) are tested in `src/journal/tests.rs`.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gateway::journal::{FsyncPolicy, HEADER_LEN, Journal, JournalError, JournalOptions, MAX_RECORD_LEN, RECORD_HEADER_LEN};

fn no_hook() -> Box<dyn FnMut(u64) + Send> {
    Box::new(|_| {})
}

fn open(path: &Path, policy: FsyncPolicy) -> (Journal, Vec<Vec<u8>>, u64) {
    let (journal, replay) = Journal::open(JournalOptions::new(path).with_policy(policy), no_hook()).expect("journal opens");
    let records: Vec<Vec<u8>> = replay.iter().map(<[u8]>::to_vec).collect();
    assert_eq!(records.len() as u64, replay.records());
    (journal, records, replay.truncated_bytes())
}

fn payload(n: u64) -> Vec<u8> {
    format!("command number {n}").into_bytes()
}

/// A journal with `n` records, closed.
fn journal_with(path: &Path, n: u64) {
    let (journal, records, _) = open(path, FsyncPolicy::Never);
    assert!(records.is_empty());
    for i in 1..=n {
        assert_eq!(journal.append(&payload(i)).expect("append"), i);
    }
    journal.close().expect("close");
}

fn payloads(range: std::ops::RangeInclusive<u64>) -> Vec<Vec<u8>> {
    range.map(payload).collect()
}

fn temp_journal() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("gateway.journal");
    (dir, path)
}

#[tokio::test]
async fn records_round_trip_through_close_and_reopen() {
    let (_dir, path) = temp_journal();
    let (journal, records, truncated) = open(&path, FsyncPolicy::default());
    assert_eq!((records.len(), truncated), (0, 0));
    for i in 1..=100 {
        assert_eq!(journal.append(&payload(i)).expect("append"), i);
    }
    journal.wait_durable(100).await.expect("durable");
    journal.close().expect("close");

    let (journal, records, truncated) = open(&path, FsyncPolicy::default());
    assert_eq!(records, payloads(1..=100));
    assert_eq!(truncated, 0);
    assert_eq!(journal.durable_sequence(), 100);
}

#[tokio::test]
async fn sequences_continue_after_reopen() {
    let (_dir, path) = temp_journal();
    journal_with(&path, 3);
    let (journal, records, _) = open(&path, FsyncPolicy::EveryRecord);
    assert_eq!(records.len(), 3);
    assert_eq!(journal.last_sequence(), 3);
    assert_eq!(journal.append(&payload(4)).expect("append"), 4);
    journal.wait_durable(4).await.expect("durable");
    journal.close().expect("close");
    let (_journal, records, _) = open(&path, FsyncPolicy::EveryRecord);
    assert_eq!(records, payloads(1..=4));
}

#[test]
fn a_missing_file_starts_a_new_journal_with_just_a_header() {
    let (_dir, path) = temp_journal();
    let (journal, records, truncated) = open(&path, FsyncPolicy::default());
    assert_eq!((records.len(), truncated, journal.last_sequence()), (0, 0, 0));
    journal.close().expect("close");
    assert_eq!(fs::read(&path).expect("read"), b"VLYJRNL\x01");
}

#[test]
fn an_empty_file_gets_a_header() {
    let (_dir, path) = temp_journal();
    fs::write(&path, b"").expect("write");
    let (journal, records, _) = open(&path, FsyncPolicy::default());
    assert!(records.is_empty());
    drop(journal);
    assert_eq!(fs::read(&path).expect("read"), b"VLYJRNL\x01");
}

#[test]
fn a_header_cut_short_by_a_crash_is_rewritten() {
    let (_dir, path) = temp_journal();
    fs::write(&path, b"VLYJ").expect("write");
    let (journal, records, truncated) = open(&path, FsyncPolicy::default());
    assert_eq!((records.len(), truncated), (0, 4));
    assert_eq!(journal.append(b"first").expect("append"), 1);
    journal.close().expect("close");
    let (_journal, records, _) = open(&path, FsyncPolicy::default());
    assert_eq!(records, [b"first"]);
}

#[test]
fn a_tail_cut_at_any_offset_of_the_last_record_is_truncated_and_appending_resumes() {
    let (dir, path) = temp_journal();
    journal_with(&path, 3);
    let whole = fs::read(&path).expect("read");
    let good_end = whole.len() - RECORD_HEADER_LEN - payload(3).len();
    for cut in good_end + 1..whole.len() {
        let torn = dir.path().join(format!("torn-{cut}.journal"));
        fs::write(&torn, &whole[..cut]).expect("write");

        let (journal, records, truncated) = open(&torn, FsyncPolicy::Never);
        assert_eq!(records, payloads(1..=2), "cut at {cut}");
        assert_eq!(truncated, (cut - good_end) as u64, "cut at {cut}");
        assert_eq!(fs::metadata(&torn).expect("metadata").len(), good_end as u64, "cut at {cut}");
        assert_eq!(journal.append(b"after the tear").expect("append"), 3);
        journal.close().expect("close");

        let (_journal, records, truncated) = open(&torn, FsyncPolicy::Never);
        assert_eq!(truncated, 0);
        assert_eq!(records.last().map(Vec::as_slice), Some(&b"after the tear"[..]), "cut at {cut}");
        assert_eq!(records.len(), 3);
    }
}

#[test]
fn a_flipped_byte_in_the_last_payload_is_truncated() {
    let (_dir, path) = temp_journal();
    journal_with(&path, 3);
    let mut bytes = fs::read(&path).expect("read");
    let good_end = bytes.len() - RECORD_HEADER_LEN - payload(3).len();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x20;
    fs::write(&path, &bytes).expect("write");

    let (journal, records, truncated) = open(&path, FsyncPolicy::Never);
    assert_eq!(records, payloads(1..=2));
    assert_eq!(truncated, (bytes.len() - good_end) as u64);
    assert_eq!(fs::metadata(&path).expect("metadata").len(), good_end as u64);
    assert_eq!(journal.append(b"replacement").expect("append"), 3);
}

#[test]
fn a_len_over_the_max_is_treated_as_torn() {
    let (_dir, path) = temp_journal();
    journal_with(&path, 2);
    let good_end = fs::metadata(&path).expect("metadata").len();
    let mut bytes = fs::read(&path).expect("read");
    bytes.extend_from_slice(&(MAX_RECORD_LEN + 1).to_le_bytes());
    bytes.extend_from_slice(&[0; 4]);
    bytes.extend_from_slice(&[0x42; 64]);
    fs::write(&path, &bytes).expect("write");

    let (_journal, records, truncated) = open(&path, FsyncPolicy::Never);
    assert_eq!(records, payloads(1..=2));
    assert_eq!(truncated, 8 + 64);
    assert_eq!(fs::metadata(&path).expect("metadata").len(), good_end);
}

#[test]
fn a_file_with_another_header_is_refused_and_left_untouched() {
    let (_dir, path) = temp_journal();
    let contents = b"# my precious notes, not a journal\n".repeat(10);
    fs::write(&path, &contents).expect("write");
    let error = Journal::open(JournalOptions::new(&path), no_hook()).expect_err("not a journal");
    assert!(matches!(error, JournalError::NotAJournal { .. }), "{error:?}");
    assert!(error.to_string().contains("left untouched"), "{error}");
    assert_eq!(fs::read(&path).expect("read"), contents);

    fs::write(&path, b"ELF").expect("write");
    let error = Journal::open(JournalOptions::new(&path), no_hook()).expect_err("not a journal");
    assert!(matches!(error, JournalError::NotAJournal { .. }), "{error:?}");
    assert_eq!(fs::read(&path).expect("read"), b"ELF");
}

#[test]
fn a_journal_of_a_newer_version_is_refused_and_left_untouched() {
    let (_dir, path) = temp_journal();
    let mut contents = b"VLYJRNL\x02".to_vec();
    contents.extend_from_slice(&[0xff; 20]);
    fs::write(&path, &contents).expect("write");
    let error = Journal::open(JournalOptions::new(&path), no_hook()).expect_err("newer version");
    assert!(matches!(error, JournalError::UnsupportedVersion { version: 2, .. }), "{error:?}");
    assert_eq!(fs::read(&path).expect("read"), contents);
}

#[test]
fn a_second_open_of_a_journal_in_use_is_refused() {
    let (_dir, path) = temp_journal();
    let (journal, _, _) = open(&path, FsyncPolicy::default());
    let error = Journal::open(JournalOptions::new(&path), no_hook()).expect_err("locked");
    assert!(matches!(error, JournalError::Locked { .. }), "{error:?}");
    assert!(error.to_string().contains("probably another gateway"), "{error}");
    journal.close().expect("close");
    let (_journal, _, _) = open(&path, FsyncPolicy::default());
}

#[test]
fn a_directory_is_not_a_journal() {
    let dir = tempfile::tempdir().expect("temp dir");
    let error = Journal::open(JournalOptions::new(dir.path()), no_hook()).expect_err("a directory");
    assert!(
        matches!(error, JournalError::Open { .. } | JournalError::NotAFile { .. }),
        "{error:?}"
    );
}

#[test]
fn a_missing_directory_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("no-such-directory").join("gateway.journal");
    let error = Journal::open(JournalOptions::new(&path), no_hook()).expect_err("missing directory");
    let text = error.to_string();
    assert!(matches!(error, JournalError::Open { .. }), "{error:?}");
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.contains("No such file or directory"), "{text}");
}

#[cfg(unix)]
#[test]
fn a_read_only_directory_is_a_clear_error() {
    use std::os::unix::fs::PermissionsExt;

    let dir = tempfile::tempdir().expect("temp dir");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o555)).expect("chmod");
    // Root (and some capabilities) ignore permissions: then there is nothing to test.
    if fs::write(dir.path().join("probe"), b"").is_ok() {
        eprintln!("skipped: this process may write to a read-only directory (running as root?)");
        return;
    }
    let path = dir.path().join("gateway.journal");
    let error = Journal::open(JournalOptions::new(&path), no_hook()).expect_err("read-only directory");
    let text = error.to_string();
    assert!(matches!(error, JournalError::Open { .. }), "{error:?}");
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.contains("Permission denied"), "{text}");
    assert!(text.contains("fix the permissions or choose another --journal path"), "{text}");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod back");
}

#[tokio::test]
async fn every_policy_makes_wait_durable_return() {
    for policy in [
        FsyncPolicy::EveryRecord,
        FsyncPolicy::Group(Duration::from_micros(200)),
        FsyncPolicy::Group(Duration::ZERO),
        FsyncPolicy::Never,
    ] {
        let (_dir, path) = temp_journal();
        let (journal, _, _) = open(&path, policy);
        for i in 1..=20 {
            let sequence = journal.append(&payload(i)).expect("append");
            journal.wait_durable(sequence).await.expect("durable");
            assert!(journal.durable_sequence() >= sequence, "{policy}");
        }
        let stats = journal.stats();
        assert_eq!(
            (stats.records_appended, stats.records_written, stats.durable_sequence),
            (20, 20, 20),
            "{policy}"
        );
        assert_eq!(
            stats.bytes_written,
            payloads(1..=20).iter().map(|p| (RECORD_HEADER_LEN + p.len()) as u64).sum::<u64>()
        );
        match policy {
            FsyncPolicy::EveryRecord => assert_eq!(stats.fsyncs, 20),
            FsyncPolicy::Never => assert_eq!(stats.fsyncs, 0, "the Never policy does not fsync"),
            FsyncPolicy::Group(_) => assert!((1..=20).contains(&stats.fsyncs), "{stats:?}"),
        }
        journal.close().expect("close");
        let (_journal, records, _) = open(&path, policy);
        assert_eq!(records, payloads(1..=20), "{policy}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_commit_shares_fsyncs_between_concurrent_appenders() {
    let (_dir, path) = temp_journal();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let hook = {
        let seen = Arc::clone(&seen);
        Box::new(move |sequence| seen.lock().expect("lock").push(sequence))
    };
    let options = JournalOptions::new(&path).with_policy(FsyncPolicy::Group(Duration::from_millis(1)));
    let (journal, _replay) = Journal::open(options, hook).expect("open");
    let journal = Arc::new(journal);

    let tasks: Vec<_> = (0..8u64)
        .map(|task| {
            let journal = Arc::clone(&journal);
            tokio::spawn(async move {
                let mut sequences = Vec::new();
                for i in 0..125 {
                    sequences.push(journal.append(&payload(task * 1000 + i)).expect("append"));
                }
                for sequence in sequences {
                    journal.wait_durable(sequence).await.expect("durable");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }

    let stats = journal.stats();
    assert_eq!((stats.records_written, stats.durable_sequence), (1000, 1000));
    assert!(stats.fsyncs < stats.records_written, "group commit batches records: {stats:?}");
    let seen = seen.lock().expect("lock").clone();
    assert!(
        seen.windows(2).all(|pair| pair[0] < pair[1]),
        "on_durable sequences increase: {seen:?}"
    );
    assert_eq!(seen.last(), Some(&1000));
    assert_eq!(seen.len() as u64, stats.fsyncs, "one on_durable call per group commit");

    Arc::into_inner(journal).expect("the only reference").close().expect("close");
    let (_journal, records, _) = open(&path, FsyncPolicy::Never);
    assert_eq!(records.len(), 1000);
}

#[test]
fn dropping_without_close_keeps_the_records() {
    let (_dir, path) = temp_journal();
    let (journal, _, _) = open(&path, FsyncPolicy::Never);
    for i in 1..=10 {
        journal.append(&payload(i)).expect("append");
    }
    drop(journal);
    let (_journal, records, _) = open(&path, FsyncPolicy::Never);
    assert_eq!(records, payloads(1..=10));
}

#[test]
fn the_file_starts_with_the_documented_header() {
    let (_dir, path) = temp_journal();
    let (journal, _, _) = open(&path, FsyncPolicy::Never);
    journal.append(b"hi").expect("append");
    journal.close().expect("close");
    let bytes = fs::read(&path).expect("read");
    assert_eq!(bytes.len(), HEADER_LEN + RECORD_HEADER_LEN + 2);
    assert_eq!(
        bytes,
        [
            0x56, 0x4c, 0x59, 0x4a, 0x52, 0x4e, 0x4c, 0x01, 0x02, 0x00, 0x00, 0x00, 0xac, 0x2a, 0x93, 0xd8, 0x68, 0x69
        ]
    );
}

#[tokio::test]
async fn records_are_written_over_zeroed_space_and_a_crash_leaves_no_torn_tail() {
    let (dir, path) = temp_journal();
    let (journal, _, _) = open(&path, FsyncPolicy::EveryRecord);
    for i in 1..=20 {
        journal.append(&payload(i)).expect("append");
    }
    journal.wait_durable(20).await.expect("durable");
    // While the journal is open the file reaches past its records, zeroed ahead of them: this
    // is what a crash (or a failed journal, which never closes) leaves behind.
    let records_end = HEADER_LEN + (1..=20).map(|i| RECORD_HEADER_LEN + payload(i).len()).sum::<usize>();
    let crashed = fs::read(&path).expect("read");
    assert!(crashed.len() > records_end, "{} bytes, records end at {records_end}", crashed.len());
    assert!(crashed[records_end..].iter().all(|&byte| byte == 0), "only zeros after the records");
    let copy = dir.path().join("crashed.journal");
    fs::write(&copy, &crashed).expect("write the copy");

    let (reopened, records, truncated) = open(&copy, FsyncPolicy::EveryRecord);
    assert_eq!(records, payloads(1..=20));
    assert_eq!(truncated, 0, "zeroed space is not a torn record");
    assert_eq!(reopened.append(&payload(21)).expect("append"), 21);
    reopened.close().expect("close");
    let (_, records, _) = open(&copy, FsyncPolicy::EveryRecord);
    assert_eq!(records, payloads(1..=21));

    // A clean close cuts the zeroed space off: the file is its records and nothing else.
    journal.close().expect("close");
    assert_eq!(fs::metadata(&path).expect("metadata").len(), records_end as u64);
}

#[tokio::test]
async fn records_beyond_one_zeroed_chunk_replay_whole() {
    let (_dir, path) = temp_journal();
    let (journal, _, _) = open(&path, FsyncPolicy::Never);
    // 1,500 records of 1 KiB: more than the 1 MiB zeroed at a time, so records cross from one
    // chunk into the next.
    let big = |i: u64| {
        let mut bytes = payload(i);
        bytes.resize(1024, b'.');
        bytes
    };
    for i in 1..=1_500 {
        journal.append(&big(i)).expect("append");
    }
    journal.wait_durable(1_500).await.expect("durable");
    drop(journal);
    let (_journal, records, truncated) = open(&path, FsyncPolicy::Never);
    assert_eq!(records, (1..=1_500).map(big).collect::<Vec<_>>());
    assert_eq!(truncated, 0);
}

#[test]
fn a_torn_record_in_zeroed_space_is_still_cut_and_counted() {
    let (_dir, path) = temp_journal();
    journal_with(&path, 3);
    let good_end = fs::metadata(&path).expect("metadata").len() as usize;
    // A crash in the middle of writing record 4 over the zeroed space: part of its framing,
    // then zeros.
    let mut bytes = fs::read(&path).expect("read");
    bytes.extend_from_slice(&[40, 0, 0, 0, 1, 2]);
    bytes.resize(good_end + 4096, 0);
    fs::write(&path, &bytes).expect("write");
    let (_journal, records, truncated) = open(&path, FsyncPolicy::Never);
    assert_eq!(records, payloads(1..=3));
    assert_eq!(truncated, 4096, "a tail that is not all zeros is torn");
}

#[tokio::test]
async fn with_the_spinner_every_record_is_durable_and_replays() {
    for policy in [FsyncPolicy::EveryRecord, FsyncPolicy::Group(Duration::from_micros(50))] {
        let (_dir, path) = temp_journal();
        let options = JournalOptions::new(&path).with_policy(policy).with_spin_while_syncing(true);
        let (journal, replay) = Journal::open(options, no_hook()).expect("journal opens");
        drop(replay);
        for i in 1..=50 {
            let sequence = journal.append(&payload(i)).expect("append");
            journal.wait_durable(sequence).await.expect("durable");
        }
        let stats = journal.stats();
        assert_eq!((stats.records_written, stats.durable_sequence), (50, 50), "{policy}");
        assert!(stats.fsyncs >= 1, "{policy}: {stats:?}");
        journal.close().expect("close");
        let (_journal, records, truncated) = open(&path, policy);
        assert_eq!((records, truncated), (payloads(1..=50), 0), "{policy}");
    }
}
