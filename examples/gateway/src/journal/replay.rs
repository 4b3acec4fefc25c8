//! Opening a journal file: the lock, the header, the memory-mapped walk over the records and the
//! truncation of a torn tail.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::Path;

use memmap2::Mmap;

use super::JournalError;
use super::format::{self, FILE_HEADER, HEADER_LEN, Header, Records};

/// The intact records of a journal as it was opened, in order, read through a memory map.
///
/// [`Journal::open`](super::Journal::open) returns it beside the journal; replay it once and drop
/// it. Appending while it is alive is fine: appends land past the mapped range.
///
/// ```no_run
/// # fn main() -> Result<(), gateway::journal::JournalError> {
/// use gateway::journal::{Journal, JournalOptions};
///
/// let (journal, replay) = Journal::open(JournalOptions::new("gateway.journal"), Box::new(|_durable| {}))?;
/// for payload in &replay {
///     // Decode `payload` and apply it.
/// #   let _ = payload;
/// }
/// let next = journal.append(b"a command")?;
/// assert_eq!(next, replay.records() + 1);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Replay {
    /// The file as it was after any truncation; `None` for a new journal.
    map: Option<Mmap>,
    records: u64,
    truncated_bytes: u64,
}

impl Replay {
    /// Nothing to replay: a journal started over storage that is not a file (tests).
    #[cfg(test)]
    pub(crate) fn empty() -> Self {
        Self {
            map: None,
            records: 0,
            truncated_bytes: 0,
        }
    }

    /// The payloads of the intact records, in journal order: the first is sequence 1.
    pub fn iter(&self) -> ReplayIter<'_> {
        let records = self.map.as_deref().and_then(|map| map.get(HEADER_LEN..)).unwrap_or_default();
        ReplayIter {
            records: Records::new(records),
            remaining: self.records,
        }
    }

    /// How many intact records there are; the next append gets this plus one.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// How many bytes of torn tail were cut off the file on open (0 if none; a tail of zeros
    /// only, the space the writer zeroes ahead of its records, is cut off but not counted).
    pub fn truncated_bytes(&self) -> u64 {
        self.truncated_bytes
    }
}

impl<'a> IntoIterator for &'a Replay {
    type Item = &'a [u8];
    type IntoIter = ReplayIter<'a>;

    fn into_iter(self) -> ReplayIter<'a> {
        self.iter()
    }
}

/// The payloads of a [`Replay`], in order.
#[derive(Clone, Debug)]
pub struct ReplayIter<'a> {
    records: Records<'a>,
    remaining: u64,
}

impl<'a> Iterator for ReplayIter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let payload = self.records.next()?;
        self.remaining = self.remaining.saturating_sub(1);
        Some(payload)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let remaining = usize::try_from(self.remaining).unwrap_or(usize::MAX);
        (remaining, Some(remaining))
    }
}

/// Opens (or creates) the journal at `path`, locks it, checks the header and cuts off a torn
/// tail. Returns the file, opened for appending, and its intact records.
pub(crate) fn open(path: &Path) -> Result<(File, Replay), JournalError> {
    let open_error = |cause| JournalError::Open {
        path: path.to_owned(),
        cause,
    };
    let io_error = |operation| move |cause| JournalError::io(path, operation, cause);

    // Not `append`: records are written at their offset, over space zeroed ahead
    // (`preallocated.rs`), which O_APPEND would ignore.
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(open_error)?;
    let metadata = file.metadata().map_err(io_error("reading the metadata"))?;
    if !metadata.is_file() {
        return Err(JournalError::NotAFile { path: path.to_owned() });
    }
    lock(&file, path)?;

    if metadata.len() < HEADER_LEN as u64 {
        let mut start = Vec::with_capacity(HEADER_LEN);
        (&file)
            .take(HEADER_LEN as u64)
            .read_to_end(&mut start)
            .map_err(io_error("reading the header"))?;
        return match format::check_header(&start) {
            Header::Missing => {
                if !start.is_empty() {
                    tracing::warn!(path = %path.display(), "journal: a crash cut the header of a new journal; rewriting it");
                }
                initialise(&file, path)?;
                Ok((
                    file,
                    Replay {
                        map: None,
                        records: 0,
                        truncated_bytes: start.len() as u64,
                    },
                ))
            }
            _ => Err(JournalError::NotAJournal { path: path.to_owned() }),
        };
    }

    let map = map_file(&file).map_err(io_error("memory-mapping the file"))?;
    match format::check_header(&map) {
        Header::Valid => {}
        Header::Missing | Header::Foreign => return Err(JournalError::NotAJournal { path: path.to_owned() }),
        Header::Version(version) => {
            return Err(JournalError::UnsupportedVersion {
                path: path.to_owned(),
                version,
            });
        }
    }
    let scan = format::scan(&map);
    let Some(torn) = scan.torn else {
        return Ok((
            file,
            Replay {
                map: Some(map),
                records: scan.records,
                truncated_bytes: 0,
            },
        ));
    };

    // Zeros after the last record are the space the writer zeroed ahead (`preallocated.rs`), left
    // by a crash or a failed journal: not torn, cut off quietly.
    let zeroed_ahead = map[scan.end..].iter().all(|&byte| byte == 0);
    // Unmap before truncating: touching a mapped page past the end of the file raises SIGBUS.
    let truncated_bytes = if zeroed_ahead { 0 } else { (map.len() - scan.end) as u64 };
    drop(map);
    file.set_len(scan.end as u64).map_err(io_error("truncating the torn tail"))?;
    file.sync_all().map_err(io_error("syncing the truncation"))?;
    if zeroed_ahead {
        let map = map_file(&file).map_err(io_error("memory-mapping the file"))?;
        return Ok((
            file,
            Replay {
                map: Some(map),
                records: scan.records,
                truncated_bytes: 0,
            },
        ));
    }
    tracing::warn!(
        path = %path.display(),
        records = scan.records,
        truncated_bytes,
        "journal: {torn} after {} intact records; truncated the torn tail ({truncated_bytes} bytes)",
        scan.records,
    );
    let map = map_file(&file).map_err(io_error("memory-mapping the file"))?;
    Ok((
        file,
        Replay {
            map: Some(map),
            records: scan.records,
            truncated_bytes,
        },
    ))
}

/// Maps `file` read-only.
#[allow(unsafe_code)]
fn map_file(file: &File) -> io::Result<Mmap> {
    // SAFETY: memmap2 requires that the mapped file is not modified (truncated or overwritten)
    // while mapped. This process owns the file and holds its exclusive advisory lock (`lock`), so
    // no other gateway writes it; this process only writes past the mapped length (records and
    // the space zeroed ahead of them), truncates below it only in `open` while no map exists,
    // and otherwise only cuts off zeroed space past the last record (`PreallocatedFile::close`).
    let map = unsafe { Mmap::map(file) }?;
    #[cfg(unix)]
    let _ = map.advise(memmap2::Advice::Sequential);
    Ok(map)
}

/// Takes the file's exclusive advisory lock (flock) so two gateways cannot share one journal. The
/// lock is released when the file is closed.
fn lock(file: &File, path: &Path) -> Result<(), JournalError> {
    match file.try_lock() {
        Ok(()) => Ok(()),
        Err(TryLockError::WouldBlock) => Err(JournalError::Locked { path: path.to_owned() }),
        Err(TryLockError::Error(cause)) if cause.kind() == io::ErrorKind::Unsupported => {
            tracing::warn!(path = %path.display(), "journal: the filesystem does not support file locks; nothing stops a second gateway from using this journal");
            Ok(())
        }
        Err(TryLockError::Error(cause)) => Err(JournalError::io(path, "locking the file", cause)),
    }
}

/// Writes the header of a new journal over an empty file (or a partial header a crash left) and
/// makes it and the directory entry durable.
fn initialise(file: &File, path: &Path) -> Result<(), JournalError> {
    let io_error = |operation| move |cause| JournalError::io(path, operation, cause);
    file.set_len(0).map_err(io_error("clearing a partial header"))?;
    // At offset 0 whatever the file's cursor (reading a partial header moved it).
    file.write_all_at(&FILE_HEADER, 0).map_err(io_error("writing the header"))?;
    file.sync_all().map_err(io_error("syncing the header"))?;
    sync_directory(path).map_err(io_error("syncing the directory"))
}

/// Makes the directory entry of a new file durable.
fn sync_directory(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        let directory = path
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        File::open(directory)?.sync_all()?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}
