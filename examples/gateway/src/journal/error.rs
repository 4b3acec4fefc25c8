//! What can go wrong with a journal, and what to do about it.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use super::format::MAX_RECORD_LEN;

/// A journal error. Each variant says what failed and what to do.
///
/// Errors from [`Journal::open`](super::Journal::open) carry the path and the OS error text.
/// Once a write or an fsync fails, the journal is failed for good: every later `append` and
/// every `wait_durable` for a record that was not yet durable returns [`Failed`](Self::Failed).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JournalError {
    /// The file could not be opened or created for reading and writing.
    #[error("journal file {} cannot be opened for reading and writing: {cause}; fix the permissions or choose another --journal path", path.display())]
    Open {
        /// The journal file.
        path: PathBuf,
        /// The OS error.
        cause: io::Error,
    },
    /// The path is not a regular file (a directory, a device, a pipe).
    #[error("journal path {} is not a regular file; choose another --journal path", path.display())]
    NotAFile {
        /// The journal path.
        path: PathBuf,
    },
    /// Another process (another gateway) holds the journal's lock.
    #[error("journal file {} is locked by another process, probably another gateway; stop it or choose another --journal path", path.display())]
    Locked {
        /// The journal file.
        path: PathBuf,
    },
    /// The file does not start with the journal header: it is someone else's file. It was not
    /// modified.
    #[error("{} is not a Volley journal (it does not start with the `VLYJRNL` header); it was left untouched: choose another --journal path", path.display())]
    NotAJournal {
        /// The file.
        path: PathBuf,
    },
    /// The journal was written in a format version this build cannot read. It was not modified.
    #[error("journal file {} has format version {version} but this gateway reads version {}; run the gateway version that wrote it", path.display(), super::format::VERSION)]
    UnsupportedVersion {
        /// The journal file.
        path: PathBuf,
        /// The version byte found.
        version: u8,
    },
    /// Reading, mapping, truncating or initialising the file failed while opening it.
    #[error("journal file {}: {operation} failed: {cause}; check the disk (space, permissions, health) and restart", path.display())]
    Io {
        /// The journal file.
        path: PathBuf,
        /// What was being done.
        operation: &'static str,
        /// The OS error.
        cause: io::Error,
    },
    /// A write or an fsync failed earlier, so the journal accepts no more records. Records that
    /// were durable before stay durable; no later record was or will be reported durable.
    #[error(
        "the journal is failed and accepts no more records: {reason}; fix the cause and restart the gateway, which replays the journal"
    )]
    Failed {
        /// The first failure, with the OS error text.
        reason: Arc<str>,
    },
    /// The journal was closed (the gateway is shutting down); nothing more is appended.
    #[error("the journal is closed: the gateway is shutting down")]
    Closed,
    /// More bytes wait to be written than [`JournalOptions::max_pending_bytes`](super::JournalOptions::max_pending_bytes)
    /// allows: the disk is slower than the order rate.
    #[error(
        "the journal's writer is {pending} bytes behind (limit {limit}): the disk cannot keep up; retry later or raise the pending limit"
    )]
    Overloaded {
        /// The bytes waiting.
        pending: usize,
        /// The limit.
        limit: usize,
    },
    /// A payload is empty or longer than [`MAX_RECORD_LEN`].
    #[error("a journal record must be 1 to {MAX_RECORD_LEN} bytes but this one is {len} bytes; this is a bug in the caller")]
    BadLength {
        /// The payload's length.
        len: usize,
    },
    /// `wait_durable` was asked about a sequence number that was never appended.
    #[error("journal sequence {sequence} was never appended (the last is {last}); this is a bug in the caller")]
    NotAppended {
        /// The sequence asked about.
        sequence: u64,
        /// The last sequence appended.
        last: u64,
    },
}

impl JournalError {
    pub(crate) fn io(path: impl Into<PathBuf>, operation: &'static str, cause: io::Error) -> Self {
        Self::Io {
            path: path.into(),
            operation,
            cause,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_open_error_names_the_path_the_os_error_and_the_fix() {
        let error = JournalError::Open {
            path: "/x/y".into(),
            cause: io::Error::from_raw_os_error(13),
        };
        let text = error.to_string();
        assert!(text.starts_with("journal file /x/y cannot be opened"), "{text}");
        assert!(text.contains("(os error 13)"), "{text}");
        assert!(text.contains("fix the permissions or choose another --journal path"), "{text}");
    }
}
