//! Stream framing: finding frames in a byte buffer, and writing frames in place.

use bytes::{Buf, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::{CallId, Chunk, ChunkAck, Flags, Frame, FrameHeader, FrameKind, HEADER_LEN, WireError};

/// The least buffer the decoder asks for at a time while a large frame arrives. Each step asks
/// for at most as much again as the buffer already holds (and at least this), so memory grows
/// with bytes actually received (at most twice them, or one step more) rather than with the length
/// a peer declares, and a large frame is copied a bounded number of times as its buffer grows
/// (doubling) instead of once per step (a 1 MiB frame in 64 KiB steps was copied 16 times over,
/// about 8 MiB of `memmove` on a shared buffer: `perf record` of `volley-bench --scenarios
/// oneway_1MiB_unix`).
const RESERVE_STEP: usize = 64 * 1024;

/// Takes one frame off the front of `src`, or returns `Ok(None)` when more bytes are needed.
///
/// The header is checked before anything is reserved: a declared length over `max_frame_size`
/// is an error, never an allocation. The frame's payload is split off `src` and frozen, so
/// messages reach prost as zero-copy `Bytes`.
pub fn decode_frame(src: &mut BytesMut, max_frame_size: u32) -> Result<Option<Frame>, WireError> {
    // Chunk and ChunkAck kinds are refused by `decode_payload` (`ChunkNotAnnounced`).
    match split_frame(src, max_frame_size)? {
        None => Ok(None),
        Some((header, payload)) => Frame::decode_payload(header, payload).map(Some),
    }
}

/// What [`decode_unit`] took off the stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decoded {
    /// A whole frame.
    Frame(Frame),
    /// A Chunk frame, for a receiver that announced `RECEIVE_CHUNKS` to put back together
    /// (docs/PROTOCOL.md section 5.12).
    Chunk(Chunk),
    /// A ChunkAck frame: chunk bytes the peer has taken (docs/PROTOCOL.md section 5.12).
    ChunkAck(u32),
}

/// [`decode_frame`] for a receiver that takes Chunk frames: a Chunk comes back as its piece,
/// with the same header checks (kind, reserved bytes, length against `max_frame_size`, a call id
/// other than 0) before anything is reserved.
pub fn decode_unit(src: &mut BytesMut, max_frame_size: u32) -> Result<Option<Decoded>, WireError> {
    let Some((header, payload)) = split_frame(src, max_frame_size)? else {
        return Ok(None);
    };
    if header.kind == FrameKind::ChunkAck {
        return ChunkAck::decode_payload(&payload).map(|taken| Some(Decoded::ChunkAck(taken)));
    }
    if header.kind == FrameKind::Chunk {
        return Ok(Some(Decoded::Chunk(Chunk {
            call_id: header.call_id,
            more: header.flags.contains(Flags::MORE),
            piece: payload,
        })));
    }
    Frame::decode_payload(header, payload).map(|frame| Some(Decoded::Frame(frame)))
}

/// Takes one whole frame off `src`, checked header and payload, or `None` (with room made for
/// the rest) while it is incomplete. Shared by [`decode_frame`] and [`decode_unit`], each of
/// which builds its own result from the parts: a frame is moved once, not through a wrapper.
/// The protocol's frame loop calls it too, to take a Message frame's parts without building a
/// [`Frame`] (the payload of a Message is its message, so [`Frame::decode_payload`] adds nothing).
#[inline(always)]
pub(crate) fn split_frame(src: &mut BytesMut, max_frame_size: u32) -> Result<Option<(FrameHeader, Bytes)>, WireError> {
    let Some(raw_header) = src.first_chunk::<HEADER_LEN>() else {
        return Ok(None);
    };
    let header = FrameHeader::decode(raw_header, max_frame_size)?;
    let frame_len = HEADER_LEN + header.len as usize;
    if src.len() < frame_len {
        make_room_for(src, frame_len);
        return Ok(None);
    }
    // One split per frame (one reference-count increment), header included: the header is
    // stepped over in the `Bytes`, which is a pointer bump, where stepping over it in `src` would
    // move `src`'s start a second time (`BytesMut::split_to` moves it once already).
    let mut frame = src.split_to(frame_len).freeze();
    frame.advance(HEADER_LEN);
    Ok(Some((header, frame)))
}

/// The length, header included, of the frame whose header starts `src`, once the whole header is
/// there and valid (checked as [`split_frame`] checks it). After [`split_frame`] left a frame
/// incomplete, this is how many bytes the reader waits for.
pub(crate) fn declared_frame_len(src: &[u8], max_frame_size: u32) -> Option<usize> {
    let raw_header = src.first_chunk::<HEADER_LEN>()?;
    let header = FrameHeader::decode(raw_header, max_frame_size).ok()?;
    Some(HEADER_LEN + header.len as usize)
}

/// Grows `src` towards a frame of `frame_len` bytes once less than half a [`RESERVE_STEP`] of
/// room is left: to twice what it holds (at least one step more), never past the frame. The new
/// buffer is allocated at exactly that size: `BytesMut::reserve` may double on top of the step
/// and overshoot the bound.
pub(crate) fn make_room_for(src: &mut BytesMut, frame_len: usize) {
    let held = src.len();
    if src.capacity() >= frame_len || src.capacity() - held >= RESERVE_STEP / 2 {
        return;
    }
    let target = frame_len.min(held.saturating_mul(2).max(held + RESERVE_STEP));
    if src.try_reclaim(target - held) {
        return;
    }
    let mut grown = BytesMut::with_capacity(target);
    grown.extend_from_slice(src);
    *src = grown;
}

/// A frame being written in place: [`FrameMark::begin`] writes a header with a zero length,
/// the caller appends the payload (say, a prost message encoded straight into the buffer), and
/// [`FrameMark::finish`] patches the length. Nothing is copied.
///
/// ```
/// use bytes::BytesMut;
/// use volley::wire::{decode_frame, CallId, Flags, Frame, FrameKind, FrameMark};
///
/// let mut buf = BytesMut::new();
/// let mark = FrameMark::begin(&mut buf, FrameKind::Message, Flags::NONE, CallId(1));
/// buf.extend_from_slice(b"hello");
/// mark.finish(&mut buf, 1024).unwrap();
/// let frame = decode_frame(&mut buf, 1024).unwrap().unwrap();
/// assert!(matches!(frame, Frame::Message { message, .. } if message == "hello"));
/// ```
#[derive(Debug)]
#[must_use = "a frame must be finished to patch its length"]
pub struct FrameMark {
    start: usize,
}

impl FrameMark {
    /// Writes a header with a placeholder length at the end of `dst`.
    pub fn begin(dst: &mut BytesMut, kind: FrameKind, flags: Flags, call_id: CallId) -> Self {
        let start = dst.len();
        FrameHeader {
            len: 0,
            kind,
            flags,
            call_id,
        }
        .encode(dst);
        Self { start }
    }

    /// Patches the header with the payload length written since [`FrameMark::begin`]. A payload
    /// over `max_frame_size` is removed from `dst` again and reported.
    pub fn finish(self, dst: &mut BytesMut, max_frame_size: u32) -> Result<usize, WireError> {
        let payload = dst.len() - self.start - HEADER_LEN;
        match u32::try_from(payload) {
            Ok(len) if len <= max_frame_size => {
                dst[self.start..self.start + 4].copy_from_slice(&len.to_le_bytes());
                Ok(HEADER_LEN + payload)
            }
            _ => {
                dst.truncate(self.start);
                Err(WireError::FrameTooLarge {
                    len: u32::try_from(payload).unwrap_or(u32::MAX),
                    max: max_frame_size,
                })
            }
        }
    }

    /// Offset of the frame's first byte in the buffer.
    pub fn start(&self) -> usize {
        self.start
    }
}

/// Errors of [`FrameCodec`]: a framing error by the peer or an IO error from the stream.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameCodecError {
    /// The peer sent bytes that are not a valid frame.
    #[error("protocol error: {0}")]
    Wire(#[from] WireError),
    /// The stream failed.
    #[error("io error: {0}")]
    Io(#[from] std::io::Error),
}

/// A `tokio_util` codec for Volley frames (after the preface), for use with `FramedRead` and
/// `FramedWrite`. Volley's own drivers call [`decode_frame`] directly.
#[derive(Clone, Copy, Debug)]
pub struct FrameCodec {
    max_frame_size: u32,
}

impl FrameCodec {
    /// A codec accepting frames up to `max_frame_size` payload bytes.
    pub fn new(max_frame_size: u32) -> Self {
        Self { max_frame_size }
    }
}

impl Default for FrameCodec {
    fn default() -> Self {
        Self::new(super::DEFAULT_MAX_FRAME_SIZE)
    }
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = FrameCodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameCodecError> {
        Ok(decode_frame(src, self.max_frame_size)?)
    }
}

impl Encoder<Frame> for FrameCodec {
    type Error = FrameCodecError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), FrameCodecError> {
        self.encode(&frame, dst)
    }
}

impl Encoder<&Frame> for FrameCodec {
    type Error = FrameCodecError;

    fn encode(&mut self, frame: &Frame, dst: &mut BytesMut) -> Result<(), FrameCodecError> {
        let payload = frame.payload_len();
        if payload > self.max_frame_size as usize {
            let len = u32::try_from(payload).unwrap_or(u32::MAX);
            return Err(WireError::FrameTooLarge {
                len,
                max: self.max_frame_size,
            }
            .into());
        }
        dst.reserve(frame.encoded_len());
        frame.encode(dst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    /// A 1 MiB Message frame, encoded.
    fn large_frame() -> Vec<u8> {
        let frame = Frame::Message {
            call_id: CallId(1),
            end_stream: false,
            message: Bytes::from(vec![7u8; 1 << 20]),
        };
        let mut encoded = BytesMut::new();
        frame.encode(&mut encoded);
        encoded.to_vec()
    }

    #[test]
    fn a_declared_length_reserves_no_more_than_one_step_ahead_of_the_bytes_received() {
        let encoded = large_frame();
        let mut src = BytesMut::from(&encoded[..HEADER_LEN + 100]);
        assert!(decode_frame(&mut src, 2 << 20).unwrap().is_none());
        assert!(src.capacity() <= HEADER_LEN + 100 + RESERVE_STEP, "capacity {}", src.capacity());
    }

    #[test]
    fn a_large_frame_arriving_in_pieces_is_moved_a_few_times_not_once_per_step() {
        let encoded = large_frame();
        let mut src = BytesMut::new();
        // A frozen frame still held elsewhere keeps the buffer shared, as in the reader, where
        // an earlier message may still be with its handler: growth then always reallocates.
        src.extend_from_slice(&[0u8; 64]);
        let _held = src.split().freeze();
        let (mut moves, mut last) = (0, src.as_ptr());
        let mut decoded = None;
        for piece in encoded.chunks(8 * 1024) {
            if src.capacity() - src.len() < piece.len() {
                src.reserve(piece.len());
            }
            src.extend_from_slice(piece);
            decoded = decode_frame(&mut src, 2 << 20).unwrap();
            if src.as_ptr() != last {
                moves += 1;
                last = src.as_ptr();
            }
            assert!(
                src.capacity() <= (2 * src.len()).max(src.len() + RESERVE_STEP) + 8 * 1024,
                "capacity {} with {} bytes received",
                src.capacity(),
                src.len()
            );
        }
        assert!(matches!(decoded, Some(Frame::Message { ref message, .. }) if message.len() == 1 << 20));
        assert!(moves <= 8, "the buffer moved {moves} times while 1 MiB arrived");
    }
}
