//! The writer task: writes whatever callers could not write themselves, waiting for the socket
//! when it is full.

use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::sync::Arc;

use super::Shared;
use super::write_queue::MAX_IOVECS;
use crate::net::Stream;
use crate::stats::Stats;
use crate::status::Status;
use crate::wire::FrameBatch as Batch;

pub(crate) async fn run(shared: Arc<Shared>, stream: Arc<Stream>) {
    let mut write_failed = false;
    // On a multi-thread runtime, tasks about to queue frames (handlers finishing, callers woken
    // by the same read) run on other workers at the same moment: yielding once lets them join
    // this write, with no timer. On a current-thread runtime they have already run by the time
    // the writer is polled, and a yield would only cost a pass of the IO driver.
    let yield_first =
        tokio::runtime::Handle::try_current().is_ok_and(|runtime| runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    while poll_fn(|cx| shared.queue.poll_ready(cx)).await {
        if yield_first {
            tokio::task::yield_now().await;
        }
        let Some((taken, room)) = poll_fn(|cx| shared.queue.poll_take(cx)).await else {
            break;
        };
        if room {
            // Callers may be waiting for room; the queue is empty now.
            shared.room_opened();
        }
        let result = write_batch(&shared, &stream, &taken.batch, taken.sent).await;
        Stats::add(&shared.stats.frames_out, taken.batch.frames as u64);
        Stats::add(&shared.stats.bytes_out, (taken.batch.len() - taken.sent) as u64);
        if shared.queue.give_back(taken.batch) {
            // Its bytes counted against the cap until now.
            shared.room_opened();
        }
        if let Err(err) = result {
            write_failed = true;
            shared.terminate(Status::unavailable(format!(
                "connection lost while writing: {err}; retry on a new connection"
            )));
            break;
        }
    }
    // Everything queued before the close went out; send FIN so the peer sees a clean end.
    stream.shutdown_write();
    // Ended (not a graceful drain, where the reader keeps reading until the peer's EOF): the
    // reader stops reading, so read on until the peer has seen our GoAway, rather than let unread
    // bytes turn the close into a reset.
    if !write_failed && shared.closed_status().is_some() {
        let mut scratch = shared.pool.take();
        super::linger::linger(&stream, &mut scratch).await;
        shared.pool.give(scratch);
    }
    for buf in shared.queue.take_buffers() {
        shared.pool.give(buf);
    }
}

/// Writes `batch` from byte `written` on; fails if the socket takes nothing for the stall timeout.
async fn write_batch(shared: &Shared, stream: &Stream, batch: &Batch, mut written: usize) -> io::Result<()> {
    let stats = &shared.stats;
    let total = batch.len();
    while written < total {
        // The iovecs live only for the syscall: kept across the wait below, they would make
        // every connection's writer task 1 KiB larger.
        let result = {
            let mut iov = [IoSlice::new(&[]); MAX_IOVECS];
            let count = batch.io_slices(written, &mut iov);
            stream.try_write_vectored(&iov[..count])
        };
        match result {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                Stats::add(&stats.write_syscalls, 1);
                written += n;
            }
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                let stall = shared.write_stall_timeout;
                match tokio::time::timeout(stall, stream.writable()).await {
                    Ok(ready) => ready?,
                    Err(_) => {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            format!("the peer took no bytes for {stall:?} (write stall timeout): it stopped reading"),
                        ));
                    }
                }
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}
