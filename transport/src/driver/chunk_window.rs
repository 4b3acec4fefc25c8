//! The writer's chunk window (docs/PROTOCOL.md section 5.12): toward a peer that acknowledges
//! chunk bytes (`RECEIVE_CHUNKS` = 2), the writer keeps at most [`DEFAULT_CHUNK_WINDOW`] bytes of
//! chunk payload written and not yet acknowledged. The socket buffers then hold at most that
//! much of a bulk frame ahead of a frame of another call, instead of the megabytes the kernel
//! autotunes them to on loopback.
//!
//! The reader adds what each ChunkAck acknowledges ([`ChunkWindow::acked`]); the writer counts
//! what it sends and waits here for room.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

#[cfg(doc)]
use crate::wire::DEFAULT_CHUNK_WINDOW;

/// Chunk bytes acknowledged by the peer, and a wake-up for a writer waiting for them.
#[derive(Debug, Default)]
pub(crate) struct ChunkWindow {
    /// Chunk payload bytes the peer has acknowledged since the connection began.
    acked: AtomicU64,
    /// Woken on every acknowledgement (one stored permit when the writer is not waiting).
    notify: Notify,
}

/// The writer gave up waiting for an acknowledgement.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct WindowStalled;

impl ChunkWindow {
    /// The peer acknowledged `bytes` more chunk bytes (reader side).
    pub(crate) fn acked(&self, bytes: u64) {
        if bytes != 0 {
            self.acked.fetch_add(bytes, Ordering::Release);
            self.notify.notify_one();
        }
    }

    /// Room for chunk bytes once `sent` were sent in all, with a window of `window`.
    pub(crate) fn room(&self, sent: u64, window: usize) -> usize {
        let in_flight = sent.saturating_sub(self.acked.load(Ordering::Acquire));
        (window as u64).saturating_sub(in_flight) as usize
    }

    /// Waits until `want` bytes fit the window (or nothing is in flight, for a chunk larger
    /// than the window), for at most `stall` without an acknowledgement. Returns the room.
    pub(crate) async fn wait_for_room(&self, sent: u64, want: usize, window: usize, stall: Duration) -> Result<usize, WindowStalled> {
        loop {
            let room = self.room(sent, window);
            if room >= want || room == window {
                return Ok(room);
            }
            if tokio::time::timeout(stall, self.notify.notified()).await.is_err() {
                return Err(WindowStalled);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_is_the_window_less_what_is_unacknowledged() {
        let window = ChunkWindow::default();
        assert_eq!(window.room(0, 1000), 1000);
        assert_eq!(window.room(700, 1000), 300);
        window.acked(500);
        assert_eq!(window.room(700, 1000), 800);
        // A peer acknowledging more than was sent opens no more than the window.
        window.acked(10_000);
        assert_eq!(window.room(700, 1000), 1000);
    }

    #[tokio::test(start_paused = true)]
    async fn a_writer_waits_for_an_acknowledgement_and_gives_up_after_the_stall_timeout() {
        let window = std::sync::Arc::new(ChunkWindow::default());
        let stall = Duration::from_secs(5);
        assert_eq!(window.wait_for_room(1000, 500, 1000, stall).await, Err(WindowStalled));
        let acker = window.clone();
        let waiting = tokio::spawn(async move { acker.wait_for_room(1000, 500, 1000, stall).await });
        tokio::task::yield_now().await;
        window.acked(600);
        assert_eq!(waiting.await.ok(), Some(Ok(600)));
    }
}
