//! A batch of encoded frames ready for one vectored write: inline bytes, with large message
//! payloads spliced in by reference (`Bytes`) instead of copied. Pure data; the driver writes it.

use std::io::IoSlice;

use bytes::{Bytes, BytesMut};

use super::{HEADER_LEN, PREFACE_LEN, PREFACE_MAGIC};

/// Frames ready to be written: inline bytes, with large chunks spliced in at recorded offsets.
#[derive(Debug, Default)]
pub(crate) struct FrameBatch {
    /// Encoded frames.
    pub(crate) buf: BytesMut,
    /// `(offset, chunk)`: `chunk` is written right after `buf[..offset]`. Offsets ascend.
    chunks: Vec<(usize, Bytes)>,
    /// Frames in the batch.
    pub(crate) frames: usize,
    /// Bytes in the batch, inline and chunked.
    len: usize,
}

impl FrameBatch {
    /// An empty batch writing into `buf`.
    pub(crate) fn with_buf(buf: BytesMut) -> Self {
        Self { buf, ..Self::default() }
    }

    /// Appends a large payload by reference at the current end of the inline bytes.
    pub(crate) fn push_chunk(&mut self, chunk: Bytes) {
        self.len += chunk.len();
        self.chunks.push((self.buf.len(), chunk));
    }

    /// Appends a message payload encoded on its own (frames and all): its inline runs are
    /// copied when small and spliced by reference when large, its chunks spliced as they are.
    pub(crate) fn append_payload(&mut self, mut payload: Self) {
        let mut taken = 0;
        for (offset, chunk) in std::mem::take(&mut payload.chunks) {
            self.append_run(payload.buf.split_to(offset - taken));
            taken = offset;
            self.push_chunk(chunk);
        }
        self.append_run(payload.buf);
    }

    /// Appends a copy of `other`'s frames: its inline bytes copied, its spliced payloads by
    /// reference (for the write queue, which puts one lane's frames behind another's).
    pub(crate) fn append_batch(&mut self, other: &Self) {
        let base = self.buf.len();
        self.buf.extend_from_slice(&other.buf);
        for (offset, chunk) in &other.chunks {
            self.len += chunk.len();
            self.chunks.push((base + offset, chunk.clone()));
        }
        self.frames += other.frames;
    }

    /// Whether the batch begins with the connection's preface (its first bytes on the wire).
    pub(crate) fn starts_with_preface(&self) -> bool {
        self.buf.starts_with(&PREFACE_MAGIC)
    }

    /// Appends inline bytes: copied when small, spliced when large.
    fn append_run(&mut self, run: BytesMut) {
        if run.len() > super::encode::INLINE_PAYLOAD_MAX {
            self.push_chunk(run.freeze());
        } else {
            self.buf.extend_from_slice(&run);
        }
    }

    /// Total bytes queued.
    pub(crate) fn len(&self) -> usize {
        self.len + self.buf.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.frames == 0 && self.len() == 0
    }

    /// The batch's bytes when they are one inline run (no chunk spliced in): what a lone call's
    /// frames are, written with one iovec.
    pub(crate) fn as_contiguous(&self) -> Option<&[u8]> {
        self.chunks.is_empty().then_some(&self.buf[..])
    }

    /// Empties the batch, keeping its memory.
    pub(crate) fn clear(&mut self) {
        self.buf.clear();
        self.chunks.clear();
        self.frames = 0;
        self.len = 0;
    }

    /// The first frame boundary at or after byte `from`: where a write cut off at `from` can
    /// stop on a whole frame. Walks the frame headers from the batch's start (a batch starts
    /// on a frame, or on the connection's preface, which no frame header can look like: its
    /// first four bytes read as a length far over `MAX_FRAME_SIZE`). Headers are always inline;
    /// only payloads are chunked.
    pub(crate) fn frame_end(&self, from: usize) -> usize {
        let total = self.len();
        if from == 0 {
            return 0;
        }
        let mut at = if self.buf.starts_with(&PREFACE_MAGIC) { PREFACE_LEN } else { 0 };
        let mut chunks = self.chunks.iter().peekable();
        // Chunk bytes before `at`: the frame at `at` starts at `at - chunked` in `buf`.
        let mut chunked = 0;
        while at < from {
            let inline = at - chunked;
            let Some(header) = self.buf.get(inline..inline + HEADER_LEN) else {
                return total;
            };
            at += HEADER_LEN + u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
            while let Some((_, chunk)) = chunks.next_if(|(offset, _)| offset + chunked < at) {
                chunked += chunk.len();
            }
        }
        at.min(total)
    }

    /// Whether any frame in the batch is longer than `limit` bytes (header included). Only a
    /// frame with a payload spliced in by reference can be that long in practice, so a batch
    /// without one answers at once.
    pub(crate) fn has_frame_over(&self, limit: usize) -> bool {
        !self.chunks.is_empty() && self.frames_from(0).any(|span| span.end - span.start > limit)
    }

    /// The frames that start at or after byte `from`, in order, with where each starts and ends.
    /// Walks the headers from the batch's start, as [`FrameBatch::frame_end`] does.
    pub(crate) fn frames_from(&self, from: usize) -> FrameSpans<'_> {
        let at = if self.buf.starts_with(&PREFACE_MAGIC) { PREFACE_LEN } else { 0 };
        FrameSpans {
            batch: self,
            at,
            chunked: 0,
            next_chunk: 0,
            from,
        }
    }

    /// Fills `iov` with the batch's bytes from `from` up to, not including, `to`; returns how
    /// many it filled.
    pub(crate) fn io_slices_range<'a>(&'a self, from: usize, to: usize, iov: &mut [IoSlice<'a>]) -> usize {
        let (mut pos, mut filled) = (0, 0);
        for piece in self.pieces() {
            if filled == iov.len() || pos >= to {
                break;
            }
            let (start, end) = (pos, pos + piece.len());
            pos = end;
            if end <= from {
                continue;
            }
            let lo = from.saturating_sub(start);
            let hi = piece.len() - end.saturating_sub(to);
            iov[filled] = IoSlice::new(&piece[lo..hi]);
            filled += 1;
        }
        filled
    }

    /// The batch's bytes in write order: inline run, chunk, inline run, ..., final inline run.
    pub(crate) fn pieces(&self) -> Pieces<'_> {
        Pieces {
            buf: &self.buf,
            chunks: &self.chunks,
            next_chunk: 0,
            inline_from: 0,
            chunk_pending: false,
            done: false,
        }
    }

    /// Fills `iov` with the pieces after the first `skip` bytes; returns how many it filled.
    pub(crate) fn io_slices<'a>(&'a self, mut skip: usize, iov: &mut [IoSlice<'a>]) -> usize {
        let mut filled = 0;
        for piece in self.pieces() {
            if filled == iov.len() {
                break;
            }
            if skip >= piece.len() {
                skip -= piece.len();
                continue;
            }
            iov[filled] = IoSlice::new(&piece[skip..]);
            skip = 0;
            filled += 1;
        }
        filled
    }
}

/// Where one frame lies in a batch ([`FrameBatch::frames_from`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FrameSpan {
    /// Offset of its header's first byte.
    pub(crate) start: usize,
    /// Offset just past its payload.
    pub(crate) end: usize,
    /// Its kind byte, as written (the batch holds only frames this side encoded).
    pub(crate) kind: u8,
    /// Its call id.
    pub(crate) call_id: u64,
}

/// Iterator over a batch's frames ([`FrameBatch::frames_from`]).
#[derive(Debug)]
pub(crate) struct FrameSpans<'a> {
    batch: &'a FrameBatch,
    at: usize,
    /// Spliced bytes before `at`.
    chunked: usize,
    next_chunk: usize,
    from: usize,
}

impl Iterator for FrameSpans<'_> {
    type Item = FrameSpan;

    fn next(&mut self) -> Option<FrameSpan> {
        loop {
            let inline = self.at - self.chunked;
            let header = self.batch.buf.get(inline..inline + HEADER_LEN)?;
            let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
            let mut call = [0u8; 8];
            call.copy_from_slice(&header[8..16]);
            let span = FrameSpan {
                start: self.at,
                end: self.at + HEADER_LEN + len,
                kind: header[4],
                call_id: u64::from_le_bytes(call),
            };
            self.at = span.end;
            while let Some((offset, chunk)) = self.batch.chunks.get(self.next_chunk) {
                if offset + self.chunked >= self.at {
                    break;
                }
                self.chunked += chunk.len();
                self.next_chunk += 1;
            }
            if span.start >= self.from {
                return Some(span);
            }
        }
    }
}

/// Iterator over a batch's byte pieces: inline run, chunk, inline run, ..., final inline run.
pub(crate) struct Pieces<'a> {
    buf: &'a BytesMut,
    chunks: &'a [(usize, Bytes)],
    next_chunk: usize,
    inline_from: usize,
    chunk_pending: bool,
    done: bool,
}

impl<'a> Iterator for Pieces<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        loop {
            if self.done {
                return None;
            }
            if self.chunk_pending {
                self.chunk_pending = false;
                let chunk = &self.chunks[self.next_chunk].1;
                self.next_chunk += 1;
                if !chunk.is_empty() {
                    return Some(&chunk[..]);
                }
                continue;
            }
            let (end, last) = match self.chunks.get(self.next_chunk) {
                Some((offset, _)) => (*offset, false),
                None => (self.buf.len(), true),
            };
            let inline = &self.buf[self.inline_from..end];
            self.inline_from = end;
            self.chunk_pending = !last;
            self.done = last;
            if !inline.is_empty() {
                return Some(inline);
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn pieces(batch: &FrameBatch) -> Vec<u8> {
        let mut iov = [IoSlice::new(&[]); 8];
        let n = batch.io_slices(0, &mut iov);
        iov[..n].iter().flat_map(|s| s.iter().copied()).collect()
    }

    #[test]
    fn io_slices_splice_chunks_in_order_and_honour_skip() {
        let mut batch = FrameBatch::default();
        batch.buf.extend_from_slice(b"ab");
        batch.push_chunk(Bytes::from_static(b"CD"));
        batch.buf.extend_from_slice(b"ef");
        batch.push_chunk(Bytes::from_static(b"GH"));
        batch.frames = 2;
        assert_eq!(pieces(&batch), b"abCDefGH");
        assert_eq!(batch.len(), 8);
        let mut iov = [IoSlice::new(&[]); 8];
        let n = batch.io_slices(3, &mut iov);
        let rest: Vec<u8> = iov[..n].iter().flat_map(|s| s.iter().copied()).collect();
        assert_eq!(rest, b"DefGH");
        let mut small = [IoSlice::new(&[]); 2];
        assert_eq!(batch.io_slices(0, &mut small), 2, "stops when the iovec array is full");
    }

    #[test]
    fn an_appended_payload_copies_small_runs_and_splices_large_ones_and_its_chunks() {
        let large_run = vec![b'L'; super::super::encode::INLINE_PAYLOAD_MAX + 1];
        let mut payload = FrameBatch::default();
        payload.buf.extend_from_slice(b"tag");
        payload.push_chunk(Bytes::from_static(b"CHUNK"));
        payload.buf.extend_from_slice(&large_run);
        let mut batch = FrameBatch::default();
        batch.buf.extend_from_slice(b"head");
        batch.append_payload(payload);
        batch.buf.extend_from_slice(b"tail");
        let expected: Vec<u8> = [&b"headtagCHUNK"[..], &large_run, b"tail"].concat();
        assert_eq!(batch.pieces().flatten().copied().collect::<Vec<u8>>(), expected);
        assert_eq!(batch.len(), expected.len());
        assert_eq!(batch.buf.len(), b"headtag".len() + b"tail".len(), "the large run was not copied");
    }

    #[test]
    fn an_appended_batch_follows_with_its_spliced_payloads_in_place() {
        let mut first = FrameBatch::default();
        first.buf.extend_from_slice(b"ab");
        first.push_chunk(Bytes::from_static(b"CD"));
        first.frames = 1;
        let mut second = FrameBatch::default();
        second.push_chunk(Bytes::from_static(b"EF"));
        second.buf.extend_from_slice(b"gh");
        second.push_chunk(Bytes::from_static(b"IJ"));
        second.frames = 2;
        first.append_batch(&second);
        assert_eq!(first.pieces().flatten().copied().collect::<Vec<u8>>(), b"abCDEFghIJ");
        assert_eq!((first.len(), first.frames), (10, 3));
        assert_eq!(pieces(&second), b"EFghIJ", "the appended batch is left as it was");
    }

    #[test]
    fn frames_from_walks_headers_across_spliced_payloads_and_ranges_cut_the_bytes() {
        use crate::wire::{CallId, Flags, Frame, FrameHeader, FrameKind, Preface};
        let mut batch = FrameBatch::default();
        batch.buf.extend_from_slice(&Preface::CURRENT.encode());
        Frame::Ping { payload: 7 }.encode(&mut batch.buf);
        FrameHeader {
            len: 40_000,
            kind: FrameKind::Message,
            flags: Flags::NONE,
            call_id: CallId(3),
        }
        .encode(&mut batch.buf);
        batch.push_chunk(Bytes::from(vec![9u8; 40_000]));
        Frame::Cancel { call_id: CallId(5) }.encode(&mut batch.buf);
        let spans: Vec<FrameSpan> = batch.frames_from(0).collect();
        let ping_end = PREFACE_LEN + HEADER_LEN + 8;
        let message_end = ping_end + HEADER_LEN + 40_000;
        assert_eq!(
            spans.iter().map(|s| (s.start, s.end, s.kind, s.call_id)).collect::<Vec<_>>(),
            [
                (PREFACE_LEN, ping_end, FrameKind::Ping as u8, 0),
                (ping_end, message_end, FrameKind::Message as u8, 3),
                (message_end, message_end + HEADER_LEN, FrameKind::Cancel as u8, 5),
            ]
        );
        assert_eq!(batch.frames_from(ping_end + 1).count(), 1, "frames starting at or after");
        assert!(batch.has_frame_over(30_000));
        assert!(!batch.has_frame_over(50_000));
        let all: Vec<u8> = batch.pieces().flatten().copied().collect();
        let mut iov = [IoSlice::new(&[]); 8];
        for (from, to) in [
            (0, 3),
            (5, ping_end + 20),
            (ping_end + 20, all.len()),
            (message_end - 1, message_end + 4),
        ] {
            let n = batch.io_slices_range(from, to, &mut iov);
            let got: Vec<u8> = iov[..n].iter().flat_map(|s| s.iter().copied()).collect();
            assert_eq!(got, &all[from..to], "range {from}..{to}");
        }
    }

    #[test]
    fn frame_end_finds_the_next_frame_boundary_across_the_preface_and_chunks() {
        use crate::wire::{CallId, Flags, Frame, FrameHeader, FrameKind, Preface};
        let mut batch = FrameBatch::default();
        batch.buf.extend_from_slice(&Preface::CURRENT.encode());
        Frame::Ping { payload: 7 }.encode(&mut batch.buf);
        let first = batch.len();
        // A Message whose 40-byte payload is chunked, then a small frame.
        let header = FrameHeader {
            len: 40,
            kind: FrameKind::Message,
            flags: Flags::NONE,
            call_id: CallId(1),
        };
        header.encode(&mut batch.buf);
        batch.push_chunk(Bytes::from(vec![9u8; 40]));
        let second = batch.len();
        Frame::Ping { payload: 8 }.encode(&mut batch.buf);
        let third = batch.len();
        assert_eq!(batch.frame_end(0), 0);
        assert_eq!(batch.frame_end(3), PREFACE_LEN, "inside the preface");
        assert_eq!(batch.frame_end(PREFACE_LEN), PREFACE_LEN);
        assert_eq!(batch.frame_end(PREFACE_LEN + 1), first);
        assert_eq!(batch.frame_end(first), first);
        assert_eq!(batch.frame_end(first + 1), second, "inside a header");
        assert_eq!(batch.frame_end(first + HEADER_LEN + 5), second, "inside a chunked payload");
        assert_eq!(batch.frame_end(second + 1), third);
        assert_eq!(batch.frame_end(third), third);
        let mut no_preface = FrameBatch::default();
        Frame::Ping { payload: 1 }.encode(&mut no_preface.buf);
        assert_eq!(no_preface.frame_end(1), no_preface.len());
    }
}
