//! Stream framing: finding frames in a byte buffer, and writing frames in place.

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

use super::{CallId, Flags, Frame, FrameHeader, FrameKind, HEADER_LEN, WireError};

/// How much more buffer the decoder asks for at a time while a large frame arrives, so memory
/// grows with bytes actually received rather than with the length a peer declares.
const RESERVE_STEP: usize = 64 * 1024;

/// Takes one frame off the front of `src`, or returns `Ok(None)` when more bytes are needed.
///
/// The header is checked before anything is reserved: a declared length over `max_frame_size`
/// is an error, never an allocation. The frame's payload is split off `src` and frozen, so
/// messages reach prost as zero-copy `Bytes`.
pub fn decode_frame(src: &mut BytesMut, max_frame_size: u32) -> Result<Option<Frame>, WireError> {
    let Some(raw_header) = src.first_chunk::<HEADER_LEN>() else {
        return Ok(None);
    };
    let header = FrameHeader::decode(raw_header, max_frame_size)?;
    let frame_len = HEADER_LEN + header.len as usize;
    if src.len() < frame_len {
        src.reserve((frame_len - src.len()).min(RESERVE_STEP));
        return Ok(None);
    }
    let mut bytes = src.split_to(frame_len);
    let _header = bytes.split_to(HEADER_LEN);
    Frame::decode_payload(header, bytes.freeze()).map(Some)
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
