//! Putting chunked frames back together (docs/PROTOCOL.md section 5.12).
//!
//! A receiver that announced `RECEIVE_CHUNKS` takes frames off the stream through
//! [`Reassembly::decode_frame`]: whole frames pass through, Chunk frames are collected until the
//! frame they carry is complete, and that frame is then decoded and handled exactly as if it had
//! arrived whole (flow control, budgets and call state included). Memory is bounded like an
//! unchunked frame's: one chunked frame at a time per connection, no larger than our own
//! `MAX_FRAME_SIZE` (checked on its first chunk, before anything is kept), grown with the bytes
//! received, in at most [`MAX_CHUNKS_PER_FRAME`] chunks of at least [`MIN_CHUNK_PAYLOAD`].

use bytes::BytesMut;

use crate::wire::{
    CallId, Chunk, Decoded, Frame, FrameHeader, FrameKind, HEADER_LEN, MAX_CHUNKS_PER_FRAME, MIN_CHUNK_PAYLOAD, WireError, decode_frame,
    decode_unit,
};

/// The chunked frame being received, if any.
#[derive(Debug, Default)]
pub struct Reassembly {
    partial: Option<Partial>,
}

/// A frame whose chunks are still arriving.
#[derive(Debug)]
struct Partial {
    call_id: CallId,
    /// The frame's bytes so far, its header first.
    bytes: BytesMut,
    /// The whole frame's length, header included, from the header in the first chunk.
    expected: usize,
    chunks: u32,
}

impl Reassembly {
    /// Takes the next whole frame off the front of `src`: a frame that came whole, or one whose
    /// last chunk is in `src`. `Ok(None)` when more bytes are needed.
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
        loop {
            match decode_unit(src, max_frame_size)? {
                None => return Ok(None),
                Some(Decoded::Frame(frame)) => {
                    self.check_whole_frame(&frame)?;
                    return Ok(Some(frame));
                }
                Some(Decoded::Chunk(chunk)) => {
                    if let Some(frame) = self.handle_chunk(chunk, max_frame_size)? {
                        return Ok(Some(frame));
                    }
                }
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

    /// A whole frame between the chunks of its own call's frame would be handled before it:
    /// the sender keeps a call's frames in order, so that is a protocol error. Credit is the
    /// exception (it is about the other direction of the call).
    fn check_whole_frame(&self, frame: &Frame) -> Result<(), WireError> {
        match &self.partial {
            Some(partial) if frame.call_id() == partial.call_id && frame.kind() != FrameKind::Credit => Err(WireError::ChunkOutOfOrder),
            _ => Ok(()),
        }
    }

    /// Adds a chunk; returns the frame once its last chunk is in.
    fn handle_chunk(&mut self, chunk: Chunk, max_frame_size: u32) -> Result<Option<Frame>, WireError> {
        if chunk.more && chunk.piece.len() < MIN_CHUNK_PAYLOAD {
            return Err(WireError::ChunkTooSmall);
        }
        let partial = match &mut self.partial {
            Some(partial) if partial.call_id == chunk.call_id => partial,
            Some(_) => return Err(WireError::ChunkOutOfOrder),
            None => self.partial.insert(start(&chunk, max_frame_size)?),
        };
        partial.chunks += 1;
        if partial.chunks > MAX_CHUNKS_PER_FRAME {
            return Err(WireError::TooManyChunks { max: MAX_CHUNKS_PER_FRAME });
        }
        let total = partial.bytes.len() + chunk.piece.len();
        if total > partial.expected || (total == partial.expected) == chunk.more {
            return Err(WireError::ChunkLength);
        }
        // Grows by doubling, never past the declared length (checked against our max frame
        // size on the first chunk): memory follows the bytes received, as for a whole frame.
        partial.bytes.extend_from_slice(&chunk.piece);
        if chunk.more {
            return Ok(None);
        }
        let Some(mut whole) = self.partial.take().map(|partial| partial.bytes) else {
            return Ok(None);
        };
        match decode_frame(&mut whole, max_frame_size) {
            Ok(Some(frame)) => Ok(Some(frame)),
            // A Chunk inside a Chunk, or (never, the length was checked) a short frame.
            Err(WireError::ChunkNotAnnounced) | Ok(None) => Err(WireError::ChunkOutOfOrder),
            Err(err) => Err(err),
        }
    }
}

/// The first chunk of a frame: its piece starts with the whole frame's header, which is checked
/// (kind, reserved bytes, length against our max frame size, the same call) before any byte is
/// kept.
fn start(chunk: &Chunk, max_frame_size: u32) -> Result<Partial, WireError> {
    let Some(raw) = chunk.piece.first_chunk::<HEADER_LEN>() else {
        return Err(WireError::ChunkTooSmall);
    };
    let header = FrameHeader::decode(raw, max_frame_size)?;
    if header.kind == FrameKind::Chunk || header.call_id != chunk.call_id {
        return Err(WireError::ChunkOutOfOrder);
    }
    let expected = HEADER_LEN + header.len as usize;
    Ok(Partial {
        call_id: chunk.call_id,
        bytes: BytesMut::with_capacity(chunk.piece.len().min(expected)),
        expected,
        chunks: 0,
    })
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

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
