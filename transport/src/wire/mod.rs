//! The wire format: bytes to frames and back.
//!
//! Pure: this module does no IO, reads no clock and spawns nothing. Everything here follows
//! `docs/PROTOCOL.md`; the constants are the protocol's bounds and defaults.
//!
//! ```
//! use bytes::BytesMut;
//! use volley::wire::{decode_frame, CallId, Frame};
//!
//! let frame = Frame::Ping { payload: 7 };
//! let mut buf = BytesMut::new();
//! frame.encode(&mut buf);
//! assert_eq!(decode_frame(&mut buf, 1024).unwrap(), Some(frame));
//! # let _ = CallId(1);
//! ```

mod batch;
mod chunk;
mod code;
mod codec;
mod encode;
mod error;
mod frame;
mod header;
mod kind;
mod metadata;
mod method_id;
mod preface;
mod settings;
mod splice;

pub(crate) use batch::FrameBatch;
pub use chunk::{
    Chunk, ChunkAck, DEFAULT_CHUNK_SIZE, DEFAULT_CHUNK_WINDOW, MAX_CHUNKS_PER_FRAME, MIN_CHUNK_PAYLOAD, RECEIVE_CHUNKS_ACKED,
    chunk_size_for, is_chunked,
};
pub use code::Code;
pub use codec::{Decoded, FrameCodec, FrameCodecError, FrameMark, decode_frame, decode_unit};
pub(crate) use codec::{declared_frame_len, make_room_for, split_frame};
pub(crate) use encode::{Body, encode_message_frame, encode_status_frame};
pub use error::WireError;
pub use frame::{CALL_HEAD_FIXED_LEN, CallHead, Frame, GoAway, StatusFrame};
pub use header::{CallId, FrameHeader, HEADER_LEN};
pub use kind::{Flags, FrameKind};
pub use metadata::{InvalidMetadata, Metadata, MetadataIter};
pub use method_id::MethodId;
pub use preface::{PREFACE_LEN, PREFACE_MAGIC, PROTOCOL_VERSION, Preface, is_tls_record_start};
pub use settings::{MAX_WINDOW, SettingId, Settings};

/// The largest frame payload any peer may announce in its settings (256 MiB): a bound on how much
/// one frame can make a receiver buffer, whatever the settings say.
pub const MAX_FRAME_SIZE: u32 = 256 * 1024 * 1024;

/// The smallest max-frame-size setting a peer may announce (16 KiB), so every control frame and a
/// useful call head always fit.
pub const MIN_FRAME_SIZE: u32 = 16 * 1024;

/// The default largest frame payload (16 MiB + 64 KiB): a 16 MiB message plus its call head.
pub const DEFAULT_MAX_FRAME_SIZE: u32 = 16 * 1024 * 1024 + 64 * 1024;

/// The largest encoded metadata block (64 KiB): its length travels as a `u16`.
pub const MAX_METADATA_SIZE: usize = u16::MAX as usize;

/// The default largest metadata block a receiver accepts (8 KiB, gRPC's default header list size).
pub const DEFAULT_MAX_METADATA_SIZE: usize = 8 * 1024;

/// The largest status message or goaway reason (64 KiB): its length travels as a `u16`.
pub const MAX_STATUS_MESSAGE_LEN: usize = u16::MAX as usize;

/// `text` cut to at most `max` bytes at a character boundary, for status messages and goaway
/// reasons that must fit a length field or a frame.
pub fn truncate_text(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
