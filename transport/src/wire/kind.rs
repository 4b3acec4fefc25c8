//! Frame kinds and flags (docs/PROTOCOL.md, "Frame kinds").

use super::WireError;

/// What a frame carries. The discriminant is the kind byte on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FrameKind {
    /// Connection settings, sent once by each side right after its preface.
    Settings = 0x01,
    /// Opens a call: the call head, then optionally the first request message.
    Request = 0x02,
    /// The response head (metadata), then optionally the first response message.
    Response = 0x03,
    /// One stream message on an open call.
    Message = 0x04,
    /// The sender half-closes the call without a message.
    EndOfStream = 0x05,
    /// The client abandons the call.
    Cancel = 0x06,
    /// The server ends the call with a status and optional trailing metadata.
    Status = 0x07,
    /// Flow-control credit for a call, or for the connection on call id 0.
    Credit = 0x08,
    /// A liveness probe; the peer answers with a pong carrying the same payload.
    Ping = 0x09,
    /// The answer to a ping.
    Pong = 0x0A,
    /// The sender will take no calls above `last_call_id` and is closing.
    GoAway = 0x0B,
    /// A piece of a larger call frame (docs/PROTOCOL.md section 5.12); only to a peer that
    /// announced `RECEIVE_CHUNKS`.
    Chunk = 0x0C,
    /// Chunk bytes the sender of this frame has taken off the stream (docs/PROTOCOL.md section
    /// 5.12): the chunk window the peer's writer keeps opens by that much. Only from a receiver
    /// that announced `RECEIVE_CHUNKS` = 2.
    ChunkAck = 0x0D,
}

impl FrameKind {
    /// The kind for a wire byte.
    pub fn from_u8(byte: u8) -> Result<Self, WireError> {
        Ok(match byte {
            0x01 => Self::Settings,
            0x02 => Self::Request,
            0x03 => Self::Response,
            0x04 => Self::Message,
            0x05 => Self::EndOfStream,
            0x06 => Self::Cancel,
            0x07 => Self::Status,
            0x08 => Self::Credit,
            0x09 => Self::Ping,
            0x0A => Self::Pong,
            0x0B => Self::GoAway,
            0x0C => Self::Chunk,
            0x0D => Self::ChunkAck,
            other => return Err(WireError::UnknownKind(other)),
        })
    }

    /// Whether frames of this kind belong to the connection (call id 0) rather than to a call.
    pub fn is_connection_level(self) -> bool {
        matches!(self, Self::Settings | Self::Ping | Self::Pong | Self::GoAway | Self::ChunkAck)
    }
}

/// The flags byte of a frame header. Bits a kind does not define are ignored on receipt and
/// never set by this implementation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Flags(pub u8);

impl Flags {
    /// No flags.
    pub const NONE: Self = Self(0);
    /// The sender sends nothing more on this call after this frame (Request, Response, Message).
    /// On a Response it also ends the call with status OK and no trailers.
    pub const END_STREAM: Self = Self(0x01);
    /// The payload starts with a metadata block (Response, Status).
    pub const METADATA: Self = Self(0x02);
    /// A message follows the head (Request, Response).
    pub const MESSAGE: Self = Self(0x04);
    /// On a Chunk frame: more chunks of the same frame follow.
    pub const MORE: Self = Self(0x08);

    /// Whether every bit of `other` is set.
    pub fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// `self` with `other`'s bits set when `on` is true.
    #[must_use]
    pub fn set_if(self, other: Self, on: bool) -> Self {
        if on { Self(self.0 | other.0) } else { self }
    }
}

impl std::ops::BitOr for Flags {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}
