//! Encoding call frames straight into the write queue: header and head in place, the message
//! encoded by prost into the same buffer, or (when large) into its own buffer queued by
//! reference.

use bytes::{BufMut, BytesMut};

use super::write_queue::{Batch, INLINE_PAYLOAD_MAX};
use crate::status::Status;
use crate::wire::{CallId, Flags, FrameHeader, FrameKind, HEADER_LEN};

/// A message to put in a frame: small ones are encoded in place under the queue lock, large ones
/// are encoded beforehand, outside any lock, and queued by reference.
#[derive(Debug)]
pub(crate) enum Body<'a, M> {
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

/// Writes the bytes of a Status frame's payload head: code, reserved, message.
pub(crate) fn status_payload(buf: &mut impl BufMut, status: &Status) -> usize {
    let message = truncated(status.message());
    buf.put_u8(status.code().as_u8());
    buf.put_u8(0);
    buf.put_u16_le(message.len() as u16);
    buf.put_slice(message.as_bytes());
    if !status.metadata().is_empty() {
        status.metadata().encode(buf);
    }
    status_payload_len(status)
}

/// Length of [`status_payload`]'s output.
pub(crate) fn status_payload_len(status: &Status) -> usize {
    let trailers = if status.metadata().is_empty() {
        0
    } else {
        2 + status.metadata().encoded_len()
    };
    4 + truncated(status.message()).len() + trailers
}

/// A status message cut to the wire's limit at a character boundary.
fn truncated(message: &str) -> &str {
    let max = crate::wire::MAX_STATUS_MESSAGE_LEN;
    if message.len() <= max {
        return message;
    }
    let mut end = max;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    &message[..end]
}

/// Appends a Status frame ending `call_id`.
pub(crate) fn encode_status_frame(batch: &mut Batch, call_id: CallId, status: &Status) {
    let flags = Flags::NONE.set_if(Flags::METADATA, !status.metadata().is_empty());
    let len = status_payload_len(status);
    FrameHeader {
        len: len as u32,
        kind: FrameKind::Status,
        flags,
        call_id,
    }
    .encode(&mut batch.buf);
    status_payload(&mut batch.buf, status);
    batch.frames += 1;
}
