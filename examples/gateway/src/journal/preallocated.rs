//! The journal file written over space zeroed ahead of it, so that a record's `fdatasync` only
//! flushes data.
//!
//! Appending to a file changes its size, and an `fdatasync` after an append must also commit
//! that size: on ext4 a journal (jbd2) commit, a second device request issued by another kernel
//! thread, on every record. Writing over blocks that are already allocated and written leaves
//! the metadata alone, so the record's `fdatasync` writes its page and flushes, nothing more.
//! [`PreallocatedFile`] therefore writes zeros [`PREALLOCATE_CHUNK`] bytes at a time past the
//! records, syncs them once, and writes records over them in place.
//!
//! The zeros past the last record read as a torn tail of zero length (`format.rs`: a record's
//! length is never 0), which the replay cuts off without counting it as torn; a clean close
//! cuts it off too, so a closed journal holds the records and nothing else.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use super::sink::Storage;

/// How much zeroed space is written ahead of the records at a time: one extra `fdatasync` of
/// 1 MiB every 1 MiB of records (about 8,000 orders).
pub(crate) const PREALLOCATE_CHUNK: u64 = 1 << 20;

/// The journal file, written at `end` over zeros prepared up to `allocated`.
#[derive(Debug)]
pub(crate) struct PreallocatedFile {
    file: File,
    /// Where the next record goes: the end of the last record written.
    end: u64,
    /// The end of the zeroed space (the file's length).
    allocated: u64,
}

impl PreallocatedFile {
    /// Writes records into `file` from `end`, the end of its last intact record (the file holds
    /// nothing after it).
    pub(crate) fn new(file: File, end: u64) -> Self {
        Self { file, end, allocated: end }
    }

    /// Zeroes space past the records until `needed` bytes fit, and makes it durable.
    fn preallocate(&mut self, needed: u64) -> io::Result<()> {
        let zeros = vec![0; PREALLOCATE_CHUNK as usize];
        while self.allocated < needed {
            self.file.write_all_at(&zeros, self.allocated)?;
            self.allocated += PREALLOCATE_CHUNK;
        }
        self.file.sync_data()
    }
}

impl Storage for PreallocatedFile {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        let needed = self.end + bytes.len() as u64;
        if needed > self.allocated {
            self.preallocate(needed)?;
        }
        self.file.write_all_at(bytes, self.end)?;
        self.end = needed;
        Ok(())
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn close(&mut self) -> io::Result<()> {
        if self.allocated > self.end {
            self.file.set_len(self.end)?;
            self.allocated = self.end;
        }
        self.file.sync_all()
    }
}
