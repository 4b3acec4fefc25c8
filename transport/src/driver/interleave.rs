//! The writer's lanes: a batch holding a frame longer than a chunk is written with that frame cut
//! into Chunk frames (docs/PROTOCOL.md section 5.12), and frames queued meanwhile go out between
//! two chunks, so a 64-byte call does not wait for a 16 MiB message to be written.
//!
//! Lanes, highest first: **control** (connection frames: credits, pings, pongs), **high** and
//! **normal** (every call frame up to a chunk, in the order queued), **bulk** (call frames over a
//! chunk). Between two chunks of a bulk frame the writer sends everything the higher lanes queued
//! since the last chunk, in one write, then at least one more chunk: the ratio is one chunk
//! (64 KiB) of bulk per batch of higher-lane frames, so bulk always advances and the higher
//! lanes wait for at most one chunk (plus what the socket already holds).
//!
//! Order is kept where the protocol needs it: a frame of a call that still has frames in the
//! batch being written (the chunked frame's own call included) waits behind them, and so does
//! a GoAway (it goes last). One chunked frame is in progress at a time, as the receiver requires.

use std::io::IoSlice;

use super::Shared;
use super::writer::{Failed, write_all};
use crate::net::Stream;
use crate::stats::Stats;
use crate::wire::{CallId, Chunk, FrameBatch as Batch, FrameKind, HEADER_LEN, chunk_size_for, is_chunked};

/// Writes `batch` from byte `written` on (a frame boundary, or inside a frame a caller's direct
/// write began, which is finished whole first), cutting each frame over `chunk_size` into
/// chunks and sending frames queued meanwhile between them. `later_calls` is scratch space kept
/// by the writer task.
pub(super) async fn write_chunked(
    shared: &Shared,
    stream: &Stream,
    batch: &Batch,
    written: &mut usize,
    chunk_size: usize,
    later_calls: &mut Vec<u64>,
) -> Result<(), Failed> {
    let boundary = batch.frame_end(*written);
    write_range(shared, stream, batch, written, boundary).await?;
    for span in batch.frames_from(boundary) {
        let Ok(kind) = FrameKind::from_u8(span.kind) else { continue };
        let len = span.end - span.start;
        if !is_chunked(kind, len, chunk_size) {
            continue;
        }
        // The frames before it, whole.
        write_range(shared, stream, batch, written, span.start).await?;
        calls_from(batch, span.start, later_calls);
        let requests_wait = kind == FrameKind::Request;
        if shared.queue.set_in_flight(batch.len() - span.end) {
            shared.room_opened();
        }
        for (from, to) in chunk_ranges(span.start, span.end, chunk_size_for(len, chunk_size)) {
            let header = Chunk::encode_header(CallId(span.call_id), (to - from) as u32, to < span.end);
            let mut done = 0;
            write_all(shared, stream, HEADER_LEN + to - from, &mut done, |at, iov| {
                let mut count = 0;
                if at < HEADER_LEN {
                    iov[0] = IoSlice::new(&header[at..]);
                    count = 1;
                }
                count + batch.io_slices_range(from + at.saturating_sub(HEADER_LEN), to, &mut iov[count..])
            })
            .await?;
            Stats::add(&shared.stats.bytes_out, HEADER_LEN as u64);
            *written = to;
            if to < span.end {
                send_between_chunks(shared, stream, later_calls, requests_wait, chunk_size).await?;
            }
        }
    }
    write_range(shared, stream, batch, written, batch.len()).await
}

/// Writes `batch[*written..to]`, advancing `written`.
async fn write_range(shared: &Shared, stream: &Stream, batch: &Batch, written: &mut usize, to: usize) -> Result<(), Failed> {
    write_all(shared, stream, to, written, |at, iov| batch.io_slices_range(at, to, iov)).await
}

/// Sends the frames queued since the writer took its batch, if they may overtake the rest of
/// it ([`fits_between`]).
async fn send_between_chunks(
    shared: &Shared,
    stream: &Stream,
    later_calls: &[u64],
    requests_wait: bool,
    chunk_size: usize,
) -> Result<(), Failed> {
    let fits = |queued: &Batch| fits_between(queued, later_calls, requests_wait, chunk_size);
    let Some((between, room)) = shared.queue.take_between_chunks(fits) else {
        return Ok(());
    };
    if room {
        shared.room_opened();
    }
    let mut done = 0;
    let result = write_all(shared, stream, between.len(), &mut done, |at, iov| between.io_slices(at, iov)).await;
    Stats::add(&shared.stats.bytes_out, done as u64);
    if result.is_ok() {
        Stats::add(&shared.stats.frames_out, between.frames as u64);
    }
    if shared.queue.give_back_between_chunks(between) {
        shared.room_opened();
    }
    result
}

/// The call ids of the frames from `from` on (connection frames and credits aside), sorted: a
/// frame of one of these calls queued later must not overtake them.
fn calls_from(batch: &Batch, from: usize, calls: &mut Vec<u64>) {
    calls.clear();
    calls.extend(
        batch
            .frames_from(from)
            .filter(|span| span.call_id != 0 && span.kind != FrameKind::Credit as u8)
            .map(|span| span.call_id),
    );
    calls.sort_unstable();
    calls.dedup();
}

/// Whether frames queued later may go out before the rest of the batch being written: none is
/// a GoAway, none needs chunking itself (one chunked frame at a time), none belongs to a call in
/// `later_calls` (credits aside: they are about the other direction), and, while a Request is
/// being chunked (`requests_wait`), none is a Request: a server requires call ids in increasing
/// order, and the chunked Request's id is below any new call's.
fn fits_between(queued: &Batch, later_calls: &[u64], requests_wait: bool, chunk_size: usize) -> bool {
    queued.frames_from(0).all(|span| {
        let Ok(kind) = FrameKind::from_u8(span.kind) else { return false };
        kind != FrameKind::GoAway
            && !(requests_wait && kind == FrameKind::Request)
            && !is_chunked(kind, span.end - span.start, chunk_size)
            && (kind == FrameKind::Credit || later_calls.binary_search(&span.call_id).is_err())
    })
}

/// The byte ranges of a frame at `start..end` cut into chunks of `size` (the last shorter).
fn chunk_ranges(start: usize, end: usize, size: usize) -> impl Iterator<Item = (usize, usize)> {
    (start..end).step_by(size.max(1)).map(move |from| (from, (from + size).min(end)))
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::wire::{DEFAULT_CHUNK_SIZE, Frame};

    fn batch_of(frames: &[Frame]) -> Batch {
        let mut batch = Batch::default();
        for frame in frames {
            frame.encode(&mut batch.buf);
            batch.frames += 1;
        }
        batch
    }

    fn message(call: u64, len: usize) -> Frame {
        Frame::Message {
            call_id: CallId(call),
            message: Bytes::from(vec![1u8; len]),
            end_stream: false,
        }
    }

    #[test]
    fn a_frame_is_cut_into_chunks_of_the_size_with_a_shorter_last() {
        let ranges: Vec<_> = chunk_ranges(100, 100 + 2 * 64 + 10, 64).collect();
        assert_eq!(ranges, [(100, 164), (164, 228), (228, 238)]);
        assert_eq!(chunk_ranges(0, 64, 64).count(), 1);
    }

    #[test]
    fn frames_of_other_calls_go_between_chunks_but_not_the_chunked_calls_own_or_a_goaway() {
        let writing = batch_of(&[message(1, 100_000), Frame::EndOfStream { call_id: CallId(1) }, message(3, 10)]);
        let mut later = Vec::new();
        calls_from(&writing, 0, &mut later);
        assert_eq!(later, [1, 3]);
        let other_call = batch_of(&[message(5, 64), Frame::Ping { payload: 1 }]);
        assert!(fits_between(&other_call, &later, false, DEFAULT_CHUNK_SIZE));
        let credit_for_the_chunked_call = batch_of(&[Frame::Credit {
            call_id: CallId(1),
            increment: 9,
        }]);
        assert!(fits_between(&credit_for_the_chunked_call, &later, false, DEFAULT_CHUNK_SIZE));
        let same_call = batch_of(&[message(5, 64), Frame::Cancel { call_id: CallId(1) }]);
        assert!(
            !fits_between(&same_call, &later, false, DEFAULT_CHUNK_SIZE),
            "a call's frames keep their order"
        );
        let later_in_batch = batch_of(&[message(3, 64)]);
        assert!(!fits_between(&later_in_batch, &later, false, DEFAULT_CHUNK_SIZE));
        let another_bulk = batch_of(&[message(7, 100_000)]);
        assert!(
            !fits_between(&another_bulk, &later, false, DEFAULT_CHUNK_SIZE),
            "one chunked frame at a time"
        );
        let goaway = batch_of(&[Frame::GoAway(crate::wire::GoAway {
            last_call_id: CallId(0),
            code: crate::wire::Code::Ok,
            reason: Bytes::new(),
        })]);
        assert!(!fits_between(&goaway, &later, false, DEFAULT_CHUNK_SIZE), "a GoAway goes last");
        let new_call = batch_of(&[Frame::Request {
            call_id: CallId(9),
            head: crate::wire::CallHead::default(),
            message: Some(Bytes::from_static(b"hi")),
            end_stream: true,
        }]);
        assert!(fits_between(&new_call, &later, false, DEFAULT_CHUNK_SIZE));
        assert!(
            !fits_between(&new_call, &later, true, DEFAULT_CHUNK_SIZE),
            "no Request overtakes a chunked Request (call ids arrive in order)"
        );
    }
}
