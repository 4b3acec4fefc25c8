//! Encoding call frames straight into the write queue: header and head in place, the message
//! encoded by prost into the same buffer, or (when large) into its own buffer queued by
//! reference.

use bytes::{BufMut, BytesMut};

use super::write_queue::{Batch, INLINE_PAYLOAD_MAX};
use crate::status::Status;
use crate::wire::{CallId, Flags, FrameHeader, FrameKind, HEADER_LEN, MAX_STATUS_MESSAGE_LEN, truncate_text};

/// A message to put in a frame: small ones are encoded in place under the queue lock, large ones
/// are encoded beforehand, outside any lock, and queued by reference.
#[derive(Debug)]
pub(crate) enum Body<'a, M> {
    /// A frame with no message bytes (a head, or an empty stream message).
    Empty,
    /// Encode `M` (of the given encoded length) into the batch buffer.
    Inline(&'a M, usize),
    /// Already encoded.
    Encoded(bytes::Bytes),
}

impl<'a, M: prost::Message> Body<'a, M> {
    /// Prepares `message` for a frame, encoding it now if it is too large to copy later.
    pub(crate) fn prepare(message: &'a M) -> Self {
        let len = message.encoded_len();
        if len <= INLINE_PAYLOAD_MAX {
            Self::Inline(message, len)
        } else {
            let mut own = BytesMut::with_capacity(len);
            message.encode_raw(&mut own);
            Self::Encoded(own.freeze())
        }
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            Self::Empty => 0,
            Self::Inline(_, len) => *len,
            Self::Encoded(bytes) => bytes.len(),
        }
    }
}

/// Appends one frame of `kind` whose payload is `head` (exactly `head_len` bytes) followed by
/// `body`. The caller has checked the total against the peer's max frame size.
pub(crate) fn encode_message_frame<M: prost::Message>(
    batch: &mut Batch,
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
    }
    batch.frames += 1;
}

/// The status for a message too large for the peer's max frame size.
pub(crate) fn frame_too_large(len: usize, max: u32) -> Status {
    Status::resource_exhausted(format!(
        "message of {len} bytes is over the peer's max frame size of {max} bytes; send smaller messages or raise max_frame_size on the peer"
    ))
}

/// Appends a Status frame ending `call_id`, fitted to the peer's `max_frame_size`: trailers that
/// cannot fit are dropped and the message is cut at a character boundary, so a long status never
/// breaks the peer's connection.
pub(crate) fn encode_status_frame(batch: &mut Batch, call_id: CallId, status: &Status, max_frame_size: u32) {
    let max = max_frame_size as usize;
    let metadata = status.metadata();
    let trailers = !metadata.is_empty() && 4 + 2 + metadata.encoded_len() <= max;
    let trailers_len = if trailers { 2 + metadata.encoded_len() } else { 0 };
    let message = truncate_text(status.message(), MAX_STATUS_MESSAGE_LEN.min(max.saturating_sub(4 + trailers_len)));
    let len = 4 + message.len() + trailers_len;
    let flags = Flags::NONE.set_if(Flags::METADATA, trailers);
    let buf = &mut batch.buf;
    FrameHeader {
        len: len as u32,
        kind: FrameKind::Status,
        flags,
        call_id,
    }
    .encode(buf);
    buf.put_u8(status.code().as_u8());
    buf.put_u8(0);
    buf.put_u16_le(message.len() as u16);
    buf.put_slice(message.as_bytes());
    if trailers {
        metadata.encode(buf);
    }
    batch.frames += 1;
}
