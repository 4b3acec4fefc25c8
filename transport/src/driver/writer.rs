//! The writer task: writes whatever callers could not write themselves, waiting for the socket
//! when it is full.

use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;

use super::Shared;
use super::write_queue::MAX_IOVECS;
use crate::net::Stream;
use crate::stats::Stats;
use crate::status::Status;
use crate::wire::FrameBatch as Batch;

/// How long a connection ended by its write stall timeout waits for the socket to take the rest
/// of the frame in progress and the GoAway (1 s, restarted by every byte it takes): the peer
/// read nothing for the whole stall timeout, so this is only for one that has just come back.
/// Past it the socket is reset. The connection's slot is already free by then.
pub(crate) const STALLED_GOAWAY_TIMEOUT: Duration = super::linger::LINGER_TIMEOUT;

pub(crate) async fn run(shared: Arc<Shared>, stream: Arc<Stream>) {
    let mut write_failed = false;
    // Scratch and window for chunked writes (`interleave.rs`): allocated on the first one only.
    let mut chunk_writer = super::interleave::ChunkWriter::default();
    // Set when a write stalled: whether the GoAway and FIN went out.
    let mut stall_ended = None;
    // On a multi-thread runtime, tasks about to queue frames (handlers finishing, callers woken
    // by the same read) run on other workers at the same moment: yielding once lets them join
    // this write, with no timer. On a current-thread runtime they have already run by the time
    // the writer is polled, and a yield would only cost a pass of the IO driver.
    let yield_first =
        tokio::runtime::Handle::try_current().is_ok_and(|runtime| runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    while poll_fn(|cx| shared.queue.poll_ready(cx)).await {
        if yield_first {
            yield_while_frames_join(&shared).await;
        }
        let Some((taken, room)) = poll_fn(|cx| shared.queue.poll_take(cx)).await else {
            break;
        };
        if room {
            // Callers may be waiting for room; the queue is empty now.
            shared.room_opened();
        }
        let mut written = taken.sent;
        let chunked = taken.batch.has_frame_over(shared.chunk_size) && {
            let state = shared.lock_state();
            let (peer, window) = (state.proto.peer_settings(), state.proto.chunk_window());
            chunk_writer.acked = peer.acks_chunks();
            chunk_writer.window = (peer.acks_chunks() && window > 0).then_some(window);
            peer.accepts_chunks()
        };
        let result = if chunked {
            // Boxed: only batches with a frame over a chunk take this path, and inline its state
            // would make every connection's writer task larger.
            Box::pin(super::interleave::write_chunked(
                &shared,
                &stream,
                &taken.batch,
                &mut written,
                shared.chunk_size,
                &mut chunk_writer,
            ))
            .await
        } else {
            write_batch(&shared, &stream, &taken.batch, &mut written).await
        };
        Stats::add(&shared.stats.bytes_out, (written - taken.sent) as u64);
        match result {
            Ok(()) => {
                Stats::add(&shared.stats.frames_out, taken.batch.frames as u64);
                if shared.queue.give_back(taken.batch) {
                    // Its bytes counted against the cap until now.
                    shared.room_opened();
                }
            }
            Err(Failed::Stalled) if chunked => {
                // Stalled inside a chunked frame: the rest of it cannot go out as one whole
                // frame before a GoAway, so the connection is reset (docs/PROTOCOL.md 5.12).
                let _ = shared.queue.give_back(taken.batch);
                stream.reset_on_close();
                write_failed = true;
                shared.terminate(Status::unavailable(format!(
                    "the peer took no bytes for {:?} (write stall timeout) in the middle of a chunked frame; retry on a new connection",
                    shared.write_stall_timeout
                )));
                break;
            }
            Err(Failed::Stalled) => {
                // Boxed: rare, and inline its state would make every connection's writer task
                // larger.
                let ended_cleanly = Box::pin(end_stalled(&shared, &stream, &taken.batch, written)).await;
                let _ = shared.queue.give_back(taken.batch);
                stall_ended = Some(ended_cleanly);
                break;
            }
            Err(Failed::Io(err)) => {
                // The connection ends below, which wakes every waiter.
                let _ = shared.queue.give_back(taken.batch);
                write_failed = true;
                shared.terminate(Status::unavailable(format!(
                    "connection lost while writing: {err}; retry on a new connection"
                )));
                break;
            }
        }
    }
    let linger = match stall_ended {
        Some(ended_cleanly) => ended_cleanly,
        None => {
            // Everything queued before the close went out; send FIN so the peer sees a clean end.
            stream.shutdown_write();
            !write_failed && shared.closed_status().is_some()
        }
    };
    // Ended (not a graceful drain, where the reader keeps reading until the peer's EOF): the
    // reader stops reading, so read on until the peer has seen our GoAway, rather than let unread
    // bytes turn the close into a reset.
    if linger {
        super::linger::linger(&stream).await;
    }
    for buf in shared.queue.take_buffers() {
        shared.pool.give(buf);
    }
}

/// Most yields before a write on a multi-thread runtime.
const MAX_YIELDS: usize = 3;

/// Yields to the runtime until a yield brings no new frames (at most [`MAX_YIELDS`] times): the
/// first lets the callers and handlers woken with this writer queue theirs, and further ones go
/// on only while callers on the other workers are still adding to the batch. No timer: a quiet
/// connection pays one yield, as before.
async fn yield_while_frames_join(shared: &Shared) {
    let mut queued = shared.queue.queued_bytes();
    for _ in 0..MAX_YIELDS {
        tokio::task::yield_now().await;
        let now = shared.queue.queued_bytes();
        if now == queued {
            return;
        }
        queued = now;
    }
}

/// Why a write did not finish.
pub(super) enum Failed {
    /// The socket took nothing for the write stall timeout.
    Stalled,
    Io(io::Error),
}

/// Writes `batch` from byte `written` on, advancing `written`.
async fn write_batch(shared: &Shared, stream: &Stream, batch: &Batch, written: &mut usize) -> Result<(), Failed> {
    write_all(shared, stream, batch.len(), written, |at, iov| batch.io_slices(at, iov)).await
}

/// Writes bytes `*written..total` of what `fill` describes (`fill(at, iov)` fills `iov` with the
/// bytes from `at` on and returns how many it filled), advancing `written`; waits for the socket
/// when it is full, up to the write stall timeout.
pub(super) async fn write_all<'a>(
    shared: &Shared,
    stream: &Stream,
    total: usize,
    written: &mut usize,
    fill: impl Fn(usize, &mut [IoSlice<'a>]) -> usize,
) -> Result<(), Failed> {
    let stats = &shared.stats;
    while *written < total {
        // The iovecs live only for the syscall: kept across the wait below, they would make
        // every connection's writer task 1 KiB larger.
        let result = {
            let mut iov = [IoSlice::new(&[]); MAX_IOVECS];
            let count = fill(*written, &mut iov);
            stream.try_write_vectored(&iov[..count])
        };
        match result {
            Ok(0) => return Err(Failed::Io(io::ErrorKind::WriteZero.into())),
            Ok(n) => {
                Stats::add(&stats.write_syscalls, 1);
                *written += n;
            }
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                match tokio::time::timeout(shared.write_stall_timeout, stream.writable()).await {
                    Ok(ready) => ready.map_err(Failed::Io)?,
                    Err(_) => return Err(Failed::Stalled),
                }
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(Failed::Io(err)),
        }
    }
    Ok(())
}

/// Ends a connection whose socket took nothing for the write stall timeout, `written` bytes
/// into `batch`. The connection fails at once (calls get UNAVAILABLE, the server's slot frees,
/// frames queued behind `batch` and the rest of it are dropped); then the rest of the frame in
/// progress and a GoAway `UNAVAILABLE` go out if the socket takes them within
/// [`STALLED_GOAWAY_TIMEOUT`], so the peer reads every frame written before the GoAway, whole,
/// and then FIN: returns `true`, and the caller lingers. If the socket takes them not, it is
/// reset when it closes (the bytes it holds would otherwise wait for a peer that does not read),
/// and this returns `false`.
async fn end_stalled(shared: &Shared, stream: &Stream, batch: &Batch, written: usize) -> bool {
    let mut goaway = BytesMut::new();
    {
        let mut state = shared.lock_state();
        let _ = state.proto.handle_write_stall();
        state.proto.poll_transmit(&mut goaway);
    }
    shared.terminate(Status::unavailable(format!(
        "the peer took no bytes for {:?} (write stall timeout): it stopped reading; retry on a new connection",
        shared.write_stall_timeout
    )));
    let end = batch.frame_end(written);
    let tail_end = end + goaway.len();
    let mut at = written;
    while at < tail_end {
        let result = {
            let mut iov = [IoSlice::new(&[]); MAX_IOVECS];
            let count = tail_slices(batch, at, end, &goaway, &mut iov);
            stream.try_write_vectored(&iov[..count])
        };
        match result {
            Ok(0) => break,
            Ok(n) => {
                Stats::add(&shared.stats.write_syscalls, 1);
                Stats::add(&shared.stats.bytes_out, n as u64);
                at += n;
            }
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                match tokio::time::timeout(STALLED_GOAWAY_TIMEOUT, stream.writable()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) | Err(_) => break,
                }
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    if at < tail_end {
        tracing::debug!("write stall: the socket took not the GoAway; resetting the connection");
        stream.reset_on_close();
        return false;
    }
    stream.shutdown_write();
    true
}

/// The iovecs for the bytes of `batch` from `at` to `end` (the end of the frame in progress),
/// then `goaway`; once `at` is past `end`, the rest of `goaway`.
fn tail_slices<'a>(batch: &'a Batch, at: usize, end: usize, goaway: &'a [u8], iov: &mut [IoSlice<'a>]) -> usize {
    if at >= end {
        iov[0] = IoSlice::new(&goaway[at - end..]);
        return 1;
    }
    let (mut skip, mut left, mut filled) = (at, end - at, 0);
    for piece in batch.pieces() {
        if left == 0 || filled + 1 == iov.len() {
            break;
        }
        if skip >= piece.len() {
            skip -= piece.len();
            continue;
        }
        let piece = &piece[skip..];
        let piece = &piece[..piece.len().min(left)];
        skip = 0;
        left -= piece.len();
        iov[filled] = IoSlice::new(piece);
        filled += 1;
    }
    if left == 0 {
        // The GoAway follows only the whole frame.
        iov[filled] = IoSlice::new(goaway);
        filled += 1;
    }
    filled
}
