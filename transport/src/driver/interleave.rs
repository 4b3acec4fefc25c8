//! The writer's lanes: a batch holding a frame longer than a chunk is written with that frame cut
//! into Chunk frames (docs/PROTOCOL.md section 5.12), and frames queued meanwhile go out between
//! two chunks, so a 64-byte call does not wait for a 16 MiB message to be written.
//!
//! Lanes, highest first (`lane.rs`): **high** (the frames of calls at priority 128 or more),
//! **normal** (every other frame, connection frames included, in the order queued), **bulk** (call
//! frames over a chunk, from either lane). Between two chunks of a bulk frame the writer sends
//! what the high lane queued since the last chunk, and the normal lane's frames when they fit and
//! the high lane's went too, in one write (`WriteQueue::take_between_chunks`), then at least one
//! more chunk: the ratio is one chunk (64 KiB) of bulk per write of higher-lane frames, so bulk
//! always advances and the higher lanes wait for at most one write of chunks (plus what the
//! socket already holds).
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
    writer: &mut ChunkWriter,
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
        // A Request queued later waits while a Request (this frame or one after it) is still
        // to go: call ids must reach the server in increasing order.
        let requests_wait = calls_from(batch, span.start, &mut writer.later_calls);
        if shared.queue.set_in_flight(batch.len() - span.end) {
            shared.room_opened();
        }
        let frame = ChunkedFrame {
            start: span.start,
            end: span.end,
            size: chunk_size_for(len, chunk_size),
            call_id: CallId(span.call_id),
        };
        write_frame_in_chunks(shared, stream, batch, &frame, writer, requests_wait, chunk_size).await?;
        Stats::add(&shared.stats.bytes_out, (HEADER_LEN * frame.count()) as u64);
        *written = span.end;
    }
    write_range(shared, stream, batch, written, batch.len()).await
}

/// Chunks one write may carry at most (32, two iovecs each, within `MAX_IOVECS`): 2 MiB of
/// 64 KiB chunks in one `writev`, as many bytes as a whole frame's write would give the socket
/// (with 16, a 1 MiB message, 17 chunks with its header, took two writes). Without it a chunked
/// frame took one system call (and one wake-up of the reader) per chunk, which cost 1 MiB
/// messages 27-39 % of their throughput (docs/BENCHMARKS.md, "Zero-copy reassembly and the chunk window").
const CHUNKS_PER_WRITE: usize = 32;

/// What the writer task keeps between chunked frames.
#[derive(Debug, Default)]
pub(super) struct ChunkWriter {
    /// Scratch: the calls with frames after the chunked frame in its batch.
    later_calls: Vec<u64>,
    /// Chunk payload bytes sent since the connection began, against the peer's acknowledgements
    /// (`chunk_window.rs`).
    sent: u64,
    /// The peer acknowledges chunk bytes: keep at most `window` of them unacknowledged.
    pub(super) window: Option<usize>,
    /// The peer acknowledges chunk bytes (window or not): tell the protocol what is sent, so its
    /// acknowledgements are not charged as excess.
    pub(super) acked: bool,
}

/// A frame of a batch being sent as Chunk frames: where it lies and how it is cut.
struct ChunkedFrame {
    start: usize,
    end: usize,
    /// Payload of every chunk but the last.
    size: usize,
    call_id: CallId,
}

impl ChunkedFrame {
    fn count(&self) -> usize {
        (self.end - self.start).div_ceil(self.size)
    }

    /// Bytes of a whole chunk on the wire, header included.
    fn stride(&self) -> usize {
        HEADER_LEN + self.size
    }

    /// Bytes of all its chunks on the wire, headers included.
    fn wire_len(&self) -> usize {
        self.count() * HEADER_LEN + (self.end - self.start)
    }

    /// Wire offset just past chunk `index`.
    fn chunk_end(&self, index: usize) -> usize {
        ((index + 1) * self.stride()).min(self.wire_len())
    }

    /// The batch range chunk `index` carries.
    fn range(&self, index: usize) -> (usize, usize) {
        let from = self.start + index * self.size;
        (from, (from + self.size).min(self.end))
    }

    fn header(&self, index: usize) -> [u8; HEADER_LEN] {
        let (from, to) = self.range(index);
        Chunk::encode_header(self.call_id, (to - from) as u32, to < self.end)
    }
}

/// Writes `frame` as Chunk frames: up to [`CHUNKS_PER_WRITE`] of them per system call, and
/// whenever a write ends on a chunk boundary the frames queued meanwhile go out before the next
/// chunk. A write that ends inside a chunk is followed by one that finishes that chunk only.
async fn write_frame_in_chunks(
    shared: &Shared,
    stream: &Stream,
    batch: &Batch,
    frame: &ChunkedFrame,
    writer: &mut ChunkWriter,
    requests_wait: bool,
    chunk_size: usize,
) -> Result<(), Failed> {
    let (stride, wire_len) = (frame.stride(), frame.wire_len());
    let mut at = 0;
    // Chunks before this index are counted as sent (against the window, or for the protocol).
    let mut counted = 0;
    while at < wire_len {
        let first = at / stride;
        let inside = at % stride != 0;
        let last = if inside {
            first + 1
        } else {
            let most = (first + CHUNKS_PER_WRITE).min(frame.count());
            match writer.window {
                // Chunks a write that stopped short already counted go out first, uncounted.
                Some(_) if first < counted => counted.min(most),
                Some(window) => {
                    let between = Between {
                        stream,
                        later_calls: &writer.later_calls,
                        requests_wait,
                        chunk_size,
                    };
                    counted = take_window(shared, frame, first, most, window, &mut writer.sent, &between).await?;
                    counted
                }
                None if writer.acked && most > counted => {
                    let from = counted.max(first);
                    let bytes = frame.range(most - 1).1 - frame.range(from).0;
                    shared.lock_state().proto.note_chunks_sent(bytes as u64);
                    counted = most;
                    most
                }
                None => most,
            }
        };
        let mut headers = [[0u8; HEADER_LEN]; CHUNKS_PER_WRITE];
        for (index, header) in (first..last).zip(headers.iter_mut()) {
            *header = frame.header(index);
        }
        let goal = frame.chunk_end(last - 1);
        let headers = &headers;
        write_all(shared, stream, frame.chunk_end(first), &mut at, |at, iov| {
            fill_chunks(batch, frame, headers, first, at, goal, iov)
        })
        .await?;
        if at % stride == 0 && at < wire_len {
            send_between_chunks(shared, stream, &writer.later_calls, requests_wait, chunk_size).await?;
        }
    }
    Ok(())
}

/// What [`send_between_chunks`] needs, for a writer that sends frames while it waits for its
/// chunk window.
struct Between<'a> {
    stream: &'a Stream,
    later_calls: &'a [u64],
    requests_wait: bool,
    chunk_size: usize,
}

/// Waits for the chunk window to take chunk `first` of `frame`, then counts as sent the chunks
/// from `first` on that fit it (at least one, fewer than `most`). Returns the index past the
/// last chunk taken. While it waits (at a chunk boundary), frames queued that may go between
/// chunks go out at once: a high-priority answer does not wait for the peer's acknowledgement of
/// the bulk ahead of it. A peer that acknowledges nothing for the write stall timeout stalls the
/// write.
async fn take_window(
    shared: &Shared,
    frame: &ChunkedFrame,
    first: usize,
    most: usize,
    window: usize,
    sent: &mut u64,
    between: &Between<'_>,
) -> Result<usize, Failed> {
    let payload = |index: usize| {
        let (from, to) = frame.range(index);
        to - from
    };
    let wait = shared
        .chunk_window
        .wait_for_room(*sent, payload(first), window, shared.write_stall_timeout);
    tokio::pin!(wait);
    let fits = |queued: &Batch| fits_between(queued, between.later_calls, between.requests_wait, between.chunk_size);
    let mut room = loop {
        tokio::select! {
            biased;
            room = &mut wait => break room.map_err(|_| Failed::Stalled)?,
            () = std::future::poll_fn(|cx| shared.queue.poll_between_chunks(cx, fits)) => {
                send_between_chunks(shared, between.stream, between.later_calls, between.requests_wait, between.chunk_size).await?;
            }
        }
    };
    let (mut last, mut taken) = (first, 0);
    while last < most && (last == first || payload(last) <= room) {
        room = room.saturating_sub(payload(last));
        taken += payload(last);
        last += 1;
    }
    *sent += taken as u64;
    // Before the write: the peer's acknowledgement of these bytes may come right after it.
    shared.lock_state().proto.note_chunks_sent(taken as u64);
    Ok(last)
}

/// Fills `iov` with the wire bytes of `frame` from wire offset `at` up to `goal`: each chunk's
/// header (`headers[index - first]`) and its piece of `batch`. Returns the iovecs filled.
fn fill_chunks<'a>(
    batch: &'a Batch,
    frame: &ChunkedFrame,
    headers: &'a [[u8; HEADER_LEN]],
    first: usize,
    at: usize,
    goal: usize,
    iov: &mut [IoSlice<'a>],
) -> usize {
    let stride = frame.stride();
    let (mut pos, mut filled) = (at, 0);
    while pos < goal && filled + 2 <= iov.len() {
        let index = pos / stride;
        let offset = pos - index * stride;
        if offset < HEADER_LEN {
            iov[filled] = IoSlice::new(&headers[index - first][offset..]);
            filled += 1;
        }
        let (from, to) = frame.range(index);
        filled += batch.io_slices_range(from + offset.saturating_sub(HEADER_LEN), to, &mut iov[filled..]);
        pos = frame.chunk_end(index);
    }
    filled
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

/// Puts in `calls` the call ids of the frames from `from` on (connection frames and credits
/// aside), sorted: a frame of one of these calls queued later must not overtake them. Returns
/// whether one of those frames is a Request: then no Request queued later may overtake them.
fn calls_from(batch: &Batch, from: usize, calls: &mut Vec<u64>) -> bool {
    calls.clear();
    let mut requests = false;
    for span in batch.frames_from(from) {
        requests |= span.kind == FrameKind::Request as u8;
        if span.call_id != 0 && span.kind != FrameKind::Credit as u8 {
            calls.push(span.call_id);
        }
    }
    calls.sort_unstable();
    calls.dedup();
    requests
}

/// Whether frames queued later may go out before the rest of the batch being written: none is
/// a GoAway, none needs chunking itself (one chunked frame at a time), none belongs to a call in
/// `later_calls` (credits aside: they are about the other direction), and, while a Request is
/// still to go in the batch being written (`requests_wait`: the chunked frame or one after it),
/// none is a Request: a server requires call ids in increasing order, and those Requests' ids
/// are below any new call's.
fn fits_between(queued: &Batch, later_calls: &[u64], requests_wait: bool, chunk_size: usize) -> bool {
    queued.frames_from(0).all(|span| {
        let Ok(kind) = FrameKind::from_u8(span.kind) else { return false };
        kind != FrameKind::GoAway
            && !(requests_wait && kind == FrameKind::Request)
            && !is_chunked(kind, span.end - span.start, chunk_size)
            && (kind == FrameKind::Credit || later_calls.binary_search(&span.call_id).is_err())
    })
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::driver::write_queue::MAX_IOVECS;
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

    /// The wire bytes `fill_chunks` gives from `at` to `goal`, in iovecs of at most `iovecs`.
    fn wire_bytes(batch: &Batch, frame: &ChunkedFrame, mut at: usize, goal: usize, iovecs: usize) -> Vec<u8> {
        let mut out = Vec::new();
        while at < goal {
            let first = at / frame.stride();
            let last = (first + CHUNKS_PER_WRITE).min(frame.count());
            let headers: Vec<[u8; HEADER_LEN]> = (first..last).map(|index| frame.header(index)).collect();
            let mut iov = vec![IoSlice::new(&[]); iovecs];
            let count = fill_chunks(batch, frame, &headers, first, at, goal.min(frame.chunk_end(last - 1)), &mut iov);
            assert!(count > 0);
            // Take at most 1,000 bytes, as a short write would.
            let mut took = 0;
            for slice in &iov[..count] {
                let n = slice.len().min(1000 - took);
                out.extend_from_slice(&slice[..n]);
                took += n;
            }
            at += took;
        }
        out
    }

    #[test]
    fn a_frame_is_cut_into_chunks_that_put_back_together_give_the_frame() {
        let big = message(3, 70_000);
        let batch = batch_of(&[message(1, 10), big.clone()]);
        let span = batch.frames_from(0).nth(1).expect("two frames");
        let frame = ChunkedFrame {
            start: span.start,
            end: span.end,
            size: 4096,
            call_id: CallId(3),
        };
        assert_eq!(frame.count(), (70_000 + HEADER_LEN).div_ceil(4096));
        assert_eq!(frame.wire_len(), frame.count() * HEADER_LEN + 70_000 + HEADER_LEN);
        assert_eq!(frame.range(frame.count() - 1).1, span.end, "the last chunk is shorter");
        for iovecs in [2, 3, MAX_IOVECS] {
            let mut wire = bytes::BytesMut::from(&wire_bytes(&batch, &frame, 0, frame.wire_len(), iovecs)[..]);
            let mut reassembly = crate::protocol::Reassembly::default();
            assert_eq!(reassembly.decode_frame(&mut wire, 1 << 20), Ok(Some(big.clone())));
            assert!(wire.is_empty());
        }
    }

    #[test]
    fn frames_of_other_calls_go_between_chunks_but_not_the_chunked_calls_own_or_a_goaway() {
        let writing = batch_of(&[message(1, 100_000), Frame::EndOfStream { call_id: CallId(1) }, message(3, 10)]);
        let mut later = Vec::new();
        assert!(!calls_from(&writing, 0, &mut later), "no Request in the batch");
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

    #[test]
    fn a_request_later_in_the_batch_than_the_chunked_frame_keeps_new_requests_behind_it() {
        let request = |call: u64| Frame::Request {
            call_id: CallId(call),
            head: crate::wire::CallHead::default(),
            message: Some(Bytes::from_static(b"hi")),
            end_stream: true,
        };
        // A Message being chunked, with a small Request queued after it in the same batch: a
        // Request queued later (call 9) must not reach the server before call 7's.
        let writing = batch_of(&[message(1, 100_000), request(7)]);
        let mut later = Vec::new();
        let requests_wait = calls_from(&writing, 0, &mut later);
        assert!(requests_wait);
        assert!(!fits_between(&batch_of(&[request(9)]), &later, requests_wait, DEFAULT_CHUNK_SIZE));
        assert!(
            fits_between(&batch_of(&[message(5, 64)]), &later, requests_wait, DEFAULT_CHUNK_SIZE),
            "other frames still go between chunks"
        );
    }
}
