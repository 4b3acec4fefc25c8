//! The encoders production uses for call frames: header and head written in place, the message
//! encoded by prost straight into the batch buffer, or (when large) encoded beforehand into its
//! own buffer and spliced in by reference. Each layout has one owner: these functions and
//! [`super::Frame::encode`] share the payload writers below.

use bytes::{BufMut, Bytes, BytesMut};

use super::splice::SplicingWriter;
use super::{CallId, Code, FrameBatch, FrameHeader, FrameKind, HEADER_LEN, MAX_STATUS_MESSAGE_LEN, Metadata, truncate_text};
use crate::wire::Flags;

/// Payloads above this size (16 KiB) are queued by reference rather than copied into the batch
/// buffer: copying small ones is cheaper than an extra iovec, copying large ones is not.
pub(crate) const INLINE_PAYLOAD_MAX: usize = 16 * 1024;

/// A message to put in a frame: small ones are encoded in place, large ones are encoded
/// beforehand, outside any lock, and queued by reference.
#[derive(Debug)]
pub(crate) enum Body<'a, M> {
    /// A frame with no message bytes (a head, or an empty stream message).
    Empty,
    /// Encode `M` (of the given encoded length) into the batch buffer.
    Inline(&'a M, usize),
    /// Already encoded.
    Encoded(Bytes),
    /// Already encoded, with its large `Bytes` fields spliced in by reference
    /// ([`super::splice`]).
    Spliced(FrameBatch),
}

impl<'a, M: prost::Message> Body<'a, M> {
    /// Prepares `message` for a frame, encoding it now if it is too large to copy later.
    /// Inlined into every call and send path (the small case is a length and a branch); the
    /// large case stays out of line.
    #[inline]
    pub(crate) fn prepare(message: &'a M) -> Self {
        let len = message.encoded_len();
        if len <= INLINE_PAYLOAD_MAX {
            Self::Inline(message, len)
        } else {
            Self::splice(message)
        }
    }

    /// Encodes a large `message` now, its large `Bytes` fields by reference.
    #[inline(never)]
    fn splice(message: &M) -> Self {
        let mut writer = SplicingWriter::with_capacity(super::splice::inline_len(message));
        message.encode_raw(&mut writer);
        Self::Spliced(writer.into_payload())
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            Self::Empty => 0,
            Self::Inline(_, len) => *len,
            Self::Encoded(bytes) => bytes.len(),
            Self::Spliced(payload) => payload.len(),
        }
    }
}

/// Appends one frame of `kind` whose payload is `head` (exactly `head_len` bytes) followed by
/// `body`. The caller has checked the total against the peer's max frame size.
pub(crate) fn encode_message_frame<M: prost::Message>(
    batch: &mut FrameBatch,
    kind: FrameKind,
    flags: Flags,
    call_id: CallId,
    head_len: usize,
    head: impl FnOnce(&mut BytesMut),
    body: Body<'_, M>,
) {
    let payload_len = head_len + body.len();
    debug_assert!(payload_len <= u32::MAX as usize, "callers check the peer's max frame size first");
    let buf = &mut batch.buf;
    let inline_len = if let Body::Inline(_, len) = body { len } else { 0 };
    buf.reserve(HEADER_LEN + head_len + inline_len);
    FrameHeader {
        len: payload_len as u32,
        kind,
        flags,
        call_id,
    }
    .encode(buf);
    let before = buf.len();
    head(buf);
    debug_assert_eq!(buf.len() - before, head_len, "head_len matches the bytes written");
    match body {
        Body::Empty => {}
        Body::Inline(message, _) => message.encode_raw(buf),
        Body::Encoded(bytes) => batch.push_chunk(bytes),
        Body::Spliced(payload) => batch.append_payload(payload),
    }
    batch.frames += 1;
}

/// Appends a Status frame ending `call_id`, fitted to the peer's `max_frame_size`: trailers that
/// cannot fit are dropped and the message is cut at a character boundary, so a long status never
/// breaks the peer's connection.
pub(crate) fn encode_status_frame(
    batch: &mut FrameBatch,
    call_id: CallId,
    code: Code,
    message: &str,
    metadata: &Metadata,
    max_frame_size: u32,
) {
    let max = max_frame_size as usize;
    let trailers = !metadata.is_empty() && STATUS_FIXED_LEN + 2 + metadata.encoded_len() <= max;
    let trailers_len = if trailers { 2 + metadata.encoded_len() } else { 0 };
    let message = truncate_text(
        message,
        MAX_STATUS_MESSAGE_LEN.min(max.saturating_sub(STATUS_FIXED_LEN + trailers_len)),
    );
    let len = STATUS_FIXED_LEN + message.len() + trailers_len;
    let flags = Flags::NONE.set_if(Flags::METADATA, trailers);
    let buf = &mut batch.buf;
    FrameHeader {
        len: len as u32,
        kind: FrameKind::Status,
        flags,
        call_id,
    }
    .encode(buf);
    put_status_payload(buf, code, message.as_bytes(), trailers.then_some(metadata));
    batch.frames += 1;
}

/// Bytes of a Status payload before its message: code, reserved byte, message length.
pub(super) const STATUS_FIXED_LEN: usize = 4;

/// The Status payload layout, its one writer: code, a reserved zero byte, the message length
/// (u16 LE), the message, then the trailers when there are any (the METADATA flag says so).
pub(super) fn put_status_payload(dst: &mut impl BufMut, code: Code, message: &[u8], trailers: Option<&Metadata>) {
    debug_assert!(message.len() <= MAX_STATUS_MESSAGE_LEN);
    dst.put_u8(code.as_u8());
    dst.put_u8(0);
    dst.put_u16_le(message.len() as u16);
    dst.put_slice(message);
    if let Some(metadata) = trailers {
        metadata.encode(dst);
    }
}
