//! A test storage whose fsyncs wait until the test releases them.
//!
//! With it a test sees what the gateway answers while a record is written but not yet durable,
//! then simulates a crash at that moment by keeping only the bytes a sync covered
//! ([`HeldDisk::crash_image`]) and replaying them.

use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use super::format::FILE_HEADER;
use super::sink::Storage;

/// An in-memory journal device shared between a test and the journal's writer thread.
#[derive(Clone, Debug, Default)]
pub(crate) struct HeldDisk(Arc<(Mutex<HeldState>, Condvar)>);

#[derive(Debug, Default)]
struct HeldState {
    /// Every byte written, synced or not.
    bytes: Vec<u8>,
    /// How many of `bytes` a finished sync covered: what survives a crash.
    synced: usize,
    /// While set, syncs wait.
    held: bool,
    /// Syncs waiting now.
    waiting: usize,
}

impl HeldDisk {
    /// A device whose syncs wait from the start.
    pub(crate) fn holding() -> Self {
        let disk = Self::default();
        disk.hold();
        disk
    }

    fn state(&self) -> MutexGuard<'_, HeldState> {
        self.0.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes the next syncs wait until [`release`](Self::release).
    pub(crate) fn hold(&self) {
        self.state().held = true;
    }

    /// Lets every waiting and later sync through.
    pub(crate) fn release(&self) {
        self.state().held = false;
        self.0.1.notify_all();
    }

    /// A guard that releases the syncs when dropped: declared after the journal's owner, it
    /// lets a failing test unwind (dropping a journal waits for its writer, stuck in a held sync).
    pub(crate) fn release_on_drop(&self) -> ReleaseOnDrop {
        ReleaseOnDrop(self.clone())
    }

    /// Blocks until a sync is waiting (the writer wrote a batch and is stuck in its fsync).
    pub(crate) fn wait_for_held_sync(&self) {
        let state = self.state();
        drop(
            self.0
                .1
                .wait_while(state, |state| state.waiting == 0)
                .unwrap_or_else(PoisonError::into_inner),
        );
    }

    /// The journal file a crash now would leave: the header and the synced bytes only.
    pub(crate) fn crash_image(&self) -> Vec<u8> {
        let state = self.state();
        let mut file = FILE_HEADER.to_vec();
        file.extend_from_slice(&state.bytes[..state.synced]);
        file
    }
}

impl Storage for HeldDisk {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.state().bytes.extend_from_slice(bytes);
        Ok(())
    }

    fn sync_data(&mut self) -> io::Result<()> {
        let mut state = self.state();
        state.waiting += 1;
        self.0.1.notify_all();
        let mut state = self
            .0
            .1
            .wait_while(state, |state| state.held)
            .unwrap_or_else(PoisonError::into_inner);
        state.waiting -= 1;
        state.synced = state.bytes.len();
        Ok(())
    }
}

/// Releases a [`HeldDisk`]'s syncs when dropped.
#[derive(Debug)]
pub(crate) struct ReleaseOnDrop(HeldDisk);

impl Drop for ReleaseOnDrop {
    fn drop(&mut self) {
        self.0.release();
    }
}
