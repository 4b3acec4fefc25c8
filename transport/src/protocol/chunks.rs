//! Putting chunked frames back together (docs/PROTOCOL.md section 5.12).
//!
//! A receiver that announced `RECEIVE_CHUNKS` takes frames off the stream through
//! [`Reassembly::decode_frame`]: whole frames pass through, Chunk frames are collected until the
//! frame they carry is complete, and that frame is then decoded and handled exactly as if it had
//! arrived whole (flow control, budgets and call state included).
//!
//! **One copy.** Each chunk's bytes are copied out of the read buffer as they arrive, even before
//! the rest of the chunk is in, into one buffer allocated once at the frame's declared length
//! (from the header inside the first chunk); the finished frame is decoded from that buffer
//! without another copy. So a chunk never has to fit the read buffer, the read buffer is reused
//! at once (nothing of it is held), and every byte of a chunked frame is copied once, as a whole
//! frame's bytes are when its buffer grows (`wire/codec.rs`). Measured against the copy-per-chunk
//! reassembly this replaces in docs/BENCHMARKS.md, "Zero-copy reassembly and the chunk window".
//!
//! **Memory.** One chunked frame at a time per connection, no larger than our own
//! `MAX_FRAME_SIZE` (checked on its first chunk, before anything is reserved), in at most
//! [`MAX_CHUNKS_PER_FRAME`] chunks of at least [`MIN_CHUNK_PAYLOAD`]. The frame's buffer is
//! reserved at its declared length when its first chunk's inner header is in; pages the kernel
//! has not been given bytes for are not touched, and the partial-frame timeout ends a frame left
//! half-sent.

use bytes::{Buf, BytesMut};

use crate::wire::{
    CallId, ChunkAck, Decoded, Flags, Frame, FrameHeader, FrameKind, HEADER_LEN, MAX_CHUNKS_PER_FRAME, MIN_CHUNK_PAYLOAD,
    RECEIVE_CHUNKS_ACKED, WireError, decode_frame, decode_unit,
};

/// The chunked frame being received, if any.
#[derive(Debug, Default)]
pub struct Reassembly {
    partial: Option<Partial>,
    /// Chunk payload bytes taken (whole chunks) and not yet acknowledged to the peer.
    to_ack: u64,
    /// Chunk payload bytes the peer acknowledged (ChunkAck) since [`Reassembly::take_acked`].
    acked: u64,
    /// Chunk payload bytes our writer sent and the peer has not acknowledged yet
    /// ([`Reassembly::note_sent`]).
    outstanding: u64,
    /// ChunkAck frames received since [`Reassembly::take_ack_frames`] that acknowledged more
    /// than was outstanding: charged to the small-frame budget. Acknowledgements of bytes we
    /// sent are free (a peer acknowledging what it was sent does its job).
    ack_frames: u32,
}

/// A frame whose chunks are still arriving.
#[derive(Debug)]
struct Partial {
    call_id: CallId,
    /// The frame's bytes so far, its header first; its capacity is `expected`.
    bytes: BytesMut,
    /// The whole frame's length, header included, from the header in the first chunk.
    expected: usize,
    chunks: u32,
    /// Bytes of the current chunk's payload still to come off the stream.
    chunk_left: usize,
    /// Payload bytes of the current chunk.
    chunk_len: usize,
    /// The current chunk has flag `MORE`.
    chunk_more: bool,
}

impl Reassembly {
    /// Takes the next whole frame off the front of `src`: a frame that came whole, or one whose
    /// last chunk is in `src`. `Ok(None)` when more bytes are needed; the bytes of a chunk that
    /// is only partly in `src` are taken (copied into the frame being rebuilt) all the same.
    ///
    /// ```
    /// use bytes::{Bytes, BytesMut};
    /// use volley::protocol::Reassembly;
    /// use volley::wire::{CallId, Chunk, Frame};
    ///
    /// let message = Frame::Message { call_id: CallId(1), message: Bytes::from(vec![7u8; 3000]), end_stream: false };
    /// let mut whole = BytesMut::new();
    /// message.encode(&mut whole);
    /// let mut wire = BytesMut::new();
    /// let (first, rest) = whole.split_at(1500);
    /// Chunk { call_id: CallId(1), more: true, piece: Bytes::copy_from_slice(first) }.encode(&mut wire);
    /// Chunk { call_id: CallId(1), more: false, piece: Bytes::copy_from_slice(rest) }.encode(&mut wire);
    /// let mut reassembly = Reassembly::default();
    /// assert_eq!(reassembly.decode_frame(&mut wire, 1 << 20).unwrap(), Some(message));
    /// assert!(wire.is_empty() && !reassembly.in_progress());
    /// ```
    pub fn decode_frame(&mut self, src: &mut BytesMut, max_frame_size: u32) -> Result<Option<Frame>, WireError> {
        self.decode_announced(src, max_frame_size, RECEIVE_CHUNKS_ACKED)
    }

    /// [`Reassembly::decode_frame`] for a receiver that announced `receive_chunks`: with 0, a
    /// Chunk frame is an error (`ChunkNotAnnounced`); with 2, the bytes of every chunk taken
    /// are counted for a ChunkAck ([`Reassembly::take_ack`]). ChunkAck frames the peer sends are
    /// taken off the stream whatever was announced, and counted ([`Reassembly::take_acked`]).
    pub fn decode_announced(&mut self, src: &mut BytesMut, max_frame_size: u32, receive_chunks: u32) -> Result<Option<Frame>, WireError> {
        loop {
            if let Some(partial) = self.partial.as_mut().filter(|partial| partial.chunk_left > 0) {
                let take = partial.chunk_left.min(src.len());
                if take == 0 {
                    return Ok(None);
                }
                partial.bytes.extend_from_slice(&src[..take]);
                src.advance(take);
                partial.chunk_left -= take;
                if partial.chunk_left > 0 {
                    return Ok(None);
                }
                if receive_chunks >= RECEIVE_CHUNKS_ACKED {
                    self.to_ack += partial.chunk_len as u64;
                }
                if !partial.chunk_more {
                    return self.finish(max_frame_size).map(Some);
                }
                continue;
            }
            let Some(raw) = src.first_chunk::<HEADER_LEN>() else {
                return Ok(None);
            };
            let header = FrameHeader::decode(raw, max_frame_size)?;
            if header.kind == FrameKind::Chunk && receive_chunks == 0 {
                return Err(WireError::ChunkNotAnnounced);
            }
            if header.kind != FrameKind::Chunk {
                return match decode_unit(src, max_frame_size)? {
                    None => Ok(None),
                    Some(Decoded::Frame(frame)) => {
                        self.check_whole_frame(&frame)?;
                        Ok(Some(frame))
                    }
                    Some(Decoded::ChunkAck(taken)) => {
                        let taken = u64::from(taken);
                        if taken > self.outstanding {
                            self.ack_frames = self.ack_frames.saturating_add(1);
                        }
                        let taken = taken.min(self.outstanding);
                        self.outstanding -= taken;
                        self.acked += taken;
                        continue;
                    }
                    // The header said otherwise; never reached.
                    Some(Decoded::Chunk(_)) => Err(WireError::ChunkOutOfOrder),
                };
            }
            if !self.begin_chunk(header, src, max_frame_size)? {
                return Ok(None);
            }
        }
    }

    /// Whether part of a chunked frame has arrived and the rest has not.
    pub fn in_progress(&self) -> bool {
        self.partial.is_some()
    }

    /// Bytes held for the frame in progress.
    pub fn held(&self) -> usize {
        self.partial.as_ref().map_or(0, |partial| partial.bytes.len())
    }

    /// Whether chunk bytes wait to be acknowledged ([`Reassembly::take_ack`]).
    pub fn has_ack(&self) -> bool {
        self.to_ack != 0
    }

    /// The ChunkAck to send for the chunk bytes taken since the last one, if any (several
    /// frames' worth are split at `u32::MAX`).
    pub fn take_ack(&mut self) -> Option<ChunkAck> {
        let taken = u32::try_from(self.to_ack).unwrap_or(u32::MAX);
        self.to_ack -= u64::from(taken);
        (taken != 0).then_some(ChunkAck { taken })
    }

    /// Chunk bytes the peer acknowledged since the last call, no more than were sent
    /// ([`Reassembly::note_sent`]).
    pub fn take_acked(&mut self) -> u64 {
        std::mem::take(&mut self.acked)
    }

    /// Our writer is sending `bytes` more chunk payload bytes, which the peer will acknowledge.
    pub fn note_sent(&mut self, bytes: u64) {
        self.outstanding = self.outstanding.saturating_add(bytes);
    }

    /// ChunkAck frames received since the last call that acknowledged more than was
    /// outstanding (for the small-frame budget).
    pub fn take_ack_frames(&mut self) -> u32 {
        std::mem::take(&mut self.ack_frames)
    }

    /// A whole frame between the chunks of its own call's frame would be handled before it:
    /// the sender keeps a call's frames in order, so that is a protocol error. Credit is the
    /// exception (it is about the other direction of the call).
    fn check_whole_frame(&self, frame: &Frame) -> Result<(), WireError> {
        match &self.partial {
            Some(partial) if frame.call_id() == partial.call_id && frame.kind() != FrameKind::Credit => Err(WireError::ChunkOutOfOrder),
            _ => Ok(()),
        }
    }

    /// Checks a Chunk's header (at the front of `src`) against the frame in progress, or starts
    /// a frame with it, and steps over the header. `false` when the first chunk's inner header
    /// is not in yet (nothing is taken then).
    fn begin_chunk(&mut self, header: FrameHeader, src: &mut BytesMut, max_frame_size: u32) -> Result<bool, WireError> {
        let more = header.flags.contains(Flags::MORE);
        let len = header.len as usize;
        if more && len < MIN_CHUNK_PAYLOAD {
            return Err(WireError::ChunkTooSmall);
        }
        let partial = match &mut self.partial {
            Some(partial) if partial.call_id == header.call_id => partial,
            Some(_) => return Err(WireError::ChunkOutOfOrder),
            None => {
                if len < HEADER_LEN {
                    return Err(WireError::ChunkTooSmall);
                }
                let Some(inner) = src.get(HEADER_LEN..2 * HEADER_LEN) else {
                    return Ok(false);
                };
                let inner = inner.try_into().map_err(|_| WireError::ChunkTooSmall)?;
                self.partial.insert(start(header.call_id, inner, max_frame_size)?)
            }
        };
        partial.chunks += 1;
        if partial.chunks > MAX_CHUNKS_PER_FRAME {
            return Err(WireError::TooManyChunks { max: MAX_CHUNKS_PER_FRAME });
        }
        let total = partial.bytes.len() + len;
        if total > partial.expected || (total == partial.expected) == more {
            return Err(WireError::ChunkLength);
        }
        src.advance(HEADER_LEN);
        partial.chunk_left = len;
        partial.chunk_len = len;
        partial.chunk_more = more;
        Ok(true)
    }

    /// The last chunk is in: decodes the frame from its buffer (no copy: the payload is split
    /// off it).
    fn finish(&mut self, max_frame_size: u32) -> Result<Frame, WireError> {
        let Some(mut whole) = self.partial.take().map(|partial| partial.bytes) else {
            return Err(WireError::ChunkOutOfOrder);
        };
        match decode_frame(&mut whole, max_frame_size) {
            Ok(Some(frame)) => Ok(frame),
            // A Chunk inside a Chunk (refused on the first chunk already), or (never, the
            // lengths were checked) a short frame.
            Err(WireError::ChunkNotAnnounced) | Ok(None) => Err(WireError::ChunkOutOfOrder),
            Err(err) => Err(err),
        }
    }
}

/// The first chunk of a frame: its payload starts with the whole frame's header (`inner`), which
/// is checked (kind, reserved bytes, length against our max frame size, the same call) before
/// any byte is kept; the frame's buffer is then reserved at its declared length, once.
fn start(call_id: CallId, inner: &[u8; HEADER_LEN], max_frame_size: u32) -> Result<Partial, WireError> {
    let header = FrameHeader::decode(inner, max_frame_size)?;
    if header.kind == FrameKind::Chunk || header.call_id != call_id {
        return Err(WireError::ChunkOutOfOrder);
    }
    let expected = HEADER_LEN + header.len as usize;
    Ok(Partial {
        call_id,
        bytes: BytesMut::with_capacity(expected),
        expected,
        chunks: 0,
        chunk_left: 0,
        chunk_len: 0,
        chunk_more: false,
    })
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::wire::Chunk;

    const MAX: u32 = 1 << 20;

    fn message(call: u64, len: usize) -> Frame {
        Frame::Message {
            call_id: CallId(call),
            message: Bytes::from((0..len).map(|i| i as u8).collect::<Vec<u8>>()),
            end_stream: true,
        }
    }

    /// `frame` encoded as Chunk frames of `size` bytes each (the last shorter).
    fn chunked(frame: &Frame, size: usize) -> BytesMut {
        let mut whole = BytesMut::new();
        frame.encode(&mut whole);
        let mut wire = BytesMut::new();
        let pieces: Vec<&[u8]> = whole.chunks(size).collect();
        for (i, piece) in pieces.iter().enumerate() {
            Chunk {
                call_id: frame.call_id(),
                more: i + 1 < pieces.len(),
                piece: Bytes::copy_from_slice(piece),
            }
            .encode(&mut wire);
        }
        wire
    }

    #[test]
    fn a_chunked_frame_comes_back_whole_with_other_calls_frames_between_its_chunks() {
        let big = message(1, 10_000);
        let mut chunks = chunked(&big, 4096);
        // Cut after the first chunk and put a small frame of another call in between.
        let first = chunks.split_to(HEADER_LEN + 4096);
        let small = message(3, 5);
        let mut wire = first;
        small.encode(&mut wire);
        wire.extend_from_slice(&chunks);
        let mut reassembly = Reassembly::default();
        assert_eq!(reassembly.decode_frame(&mut wire, MAX), Ok(Some(small)));
        assert!(reassembly.in_progress());
        assert_eq!(reassembly.held(), 4096);
        assert_eq!(reassembly.decode_frame(&mut wire, MAX), Ok(Some(big)));
        assert!(!reassembly.in_progress());
        assert_eq!(reassembly.decode_frame(&mut wire, MAX), Ok(None));
    }

    #[test]
    fn chunks_arriving_a_byte_at_a_time_still_make_the_frame() {
        let big = message(5, 5000);
        let wire = chunked(&big, 2000);
        let mut reassembly = Reassembly::default();
        let mut buf = BytesMut::new();
        let mut got = None;
        for byte in wire.iter() {
            buf.extend_from_slice(&[*byte]);
            if let Some(frame) = reassembly.decode_frame(&mut buf, MAX).unwrap() {
                got = Some(frame);
            }
        }
        assert_eq!(got, Some(big));
    }

    #[test]
    fn a_chunk_is_taken_as_it_arrives_into_one_buffer_of_the_frames_length() {
        let big = message(1, 200_000);
        let mut wire = chunked(&big, 65_536);
        let frame_len = HEADER_LEN + 200_000;
        let mut reassembly = Reassembly::default();
        // The first chunk's header, the inner header and 10,000 more bytes: all taken.
        let mut read = wire.split_to(HEADER_LEN + HEADER_LEN + 10_000);
        assert_eq!(reassembly.decode_frame(&mut read, MAX), Ok(None));
        assert!(read.is_empty(), "nothing of a chunk is left in the read buffer");
        assert_eq!(reassembly.held(), HEADER_LEN + 10_000);
        let capacity = reassembly.partial.as_ref().map(|partial| partial.bytes.capacity());
        assert_eq!(capacity, Some(frame_len), "reserved once, at the declared length");
        // The rest in reads of 7,000 bytes, cutting chunk headers too.
        let mut got = None;
        while !wire.is_empty() {
            read.extend_from_slice(&wire.split_to(wire.len().min(7000)));
            if let Some(frame) = reassembly.decode_frame(&mut read, MAX).unwrap() {
                got = Some(frame);
            }
            assert!(read.len() < HEADER_LEN, "only a cut chunk header waits in the read buffer");
        }
        assert_eq!(got, Some(big));
        assert!(!reassembly.in_progress());
    }

    #[test]
    fn a_first_chunk_waits_for_its_inner_header_before_anything_is_kept() {
        let mut wire = chunked(&message(1, 5000), 2048);
        let mut read = wire.split_to(HEADER_LEN + HEADER_LEN - 1);
        let mut reassembly = Reassembly::default();
        assert_eq!(reassembly.decode_frame(&mut read, MAX), Ok(None));
        assert_eq!(read.len(), 2 * HEADER_LEN - 1, "nothing taken");
        assert!(!reassembly.in_progress());
    }

    #[test]
    fn a_second_chunked_frame_before_the_first_ends_is_out_of_order() {
        let mut wire = chunked(&message(1, 5000), 2048).split_to(HEADER_LEN + 2048);
        wire.extend_from_slice(&chunked(&message(3, 5000), 2048));
        let mut reassembly = Reassembly::default();
        assert_eq!(reassembly.decode_frame(&mut wire, MAX), Err(WireError::ChunkOutOfOrder));
    }

    #[test]
    fn a_whole_frame_of_the_chunked_call_between_its_chunks_is_out_of_order_but_credit_is_not() {
        let mut chunks = chunked(&message(1, 5000), 2048);
        let mut wire = chunks.split_to(HEADER_LEN + 2048);
        Frame::Credit {
            call_id: CallId(1),
            increment: 10,
        }
        .encode(&mut wire);
        Frame::EndOfStream { call_id: CallId(1) }.encode(&mut wire);
        let mut reassembly = Reassembly::default();
        assert!(matches!(reassembly.decode_frame(&mut wire, MAX), Ok(Some(Frame::Credit { .. }))));
        assert_eq!(reassembly.decode_frame(&mut wire, MAX), Err(WireError::ChunkOutOfOrder));
    }

    #[test]
    fn a_small_chunk_that_is_not_the_last_is_refused() {
        let mut wire = chunked(&message(1, 5000), MIN_CHUNK_PAYLOAD - 1);
        let mut reassembly = Reassembly::default();
        assert_eq!(reassembly.decode_frame(&mut wire, MAX), Err(WireError::ChunkTooSmall));
    }

    #[test]
    fn a_frame_in_more_chunks_than_the_cap_is_refused() {
        let len = (MAX_CHUNKS_PER_FRAME as usize + 1) * MIN_CHUNK_PAYLOAD;
        let mut wire = chunked(&message(1, len), MIN_CHUNK_PAYLOAD);
        let mut reassembly = Reassembly::default();
        assert_eq!(
            reassembly.decode_frame(&mut wire, 64 << 20),
            Err(WireError::TooManyChunks { max: MAX_CHUNKS_PER_FRAME })
        );
    }

    #[test]
    fn a_chunked_frame_over_the_max_frame_size_is_refused_at_its_first_chunk() {
        let mut wire = chunked(&message(1, 5000), 2048).split_to(HEADER_LEN + 2048);
        let mut reassembly = Reassembly::default();
        assert_eq!(
            reassembly.decode_frame(&mut wire, 4096),
            Err(WireError::FrameTooLarge { len: 5000, max: 4096 })
        );
        assert_eq!(reassembly.held(), 0, "nothing kept");
    }

    #[test]
    fn chunks_that_overrun_or_stop_short_of_the_frame_are_refused() {
        let whole_len = HEADER_LEN + 3000;
        let mut frame = BytesMut::new();
        message(1, 3000).encode(&mut frame);
        let short = Chunk {
            call_id: CallId(1),
            more: false,
            piece: frame.clone().freeze().slice(..whole_len - 1),
        };
        let mut wire = BytesMut::new();
        short.encode(&mut wire);
        assert_eq!(Reassembly::default().decode_frame(&mut wire, MAX), Err(WireError::ChunkLength));
        let mut long = frame.clone();
        long.extend_from_slice(&[0; 1500]);
        let over = Chunk {
            call_id: CallId(1),
            more: true,
            piece: long.freeze(),
        };
        let mut wire = BytesMut::new();
        over.encode(&mut wire);
        assert_eq!(Reassembly::default().decode_frame(&mut wire, MAX), Err(WireError::ChunkLength));
    }

    #[test]
    fn a_chunk_carrying_a_chunk_or_another_calls_frame_is_refused() {
        let inner = Chunk {
            call_id: CallId(1),
            more: false,
            piece: Bytes::from(vec![0u8; 2000]),
        };
        let mut nested = BytesMut::new();
        inner.encode(&mut nested);
        let outer = Chunk {
            call_id: CallId(1),
            more: false,
            piece: nested.freeze(),
        };
        let mut wire = BytesMut::new();
        outer.encode(&mut wire);
        assert_eq!(Reassembly::default().decode_frame(&mut wire, MAX), Err(WireError::ChunkOutOfOrder));
        let mut other = chunked(&message(9, 3000), 4096);
        other[8] = 1; // the Chunk names call 1, the frame inside it call 9
        assert_eq!(Reassembly::default().decode_frame(&mut other, MAX), Err(WireError::ChunkOutOfOrder));
    }
}
