//! Errors found while decoding bytes from a peer.

use std::fmt;

use super::FrameKind;

/// Why bytes from a peer are not a valid frame. Every variant is a protocol error by the peer;
/// `protocol` maps it to a status code and decides whether the call or the connection ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WireError {
    /// The connection did not start with the Volley preface magic.
    BadPreface,
    /// A TLS record (a ClientHello, an alert) came where the Volley preface belongs: the peer
    /// speaks TLS to a plaintext port, or answers a plaintext client from a TLS port.
    TlsRecord,
    /// The peer speaks a protocol version this build does not.
    UnsupportedVersion(u16),
    /// The frame header names a kind this build does not know.
    UnknownKind(u8),
    /// The declared payload length is over the receiver's max frame size.
    FrameTooLarge {
        /// The length the header declared.
        len: u32,
        /// The receiver's limit.
        max: u32,
    },
    /// The header's reserved bytes are not zero.
    ReservedNotZero,
    /// A connection-level frame (settings, ping, pong, goaway) names a call id other than 0.
    ControlFrameOnCall(FrameKind),
    /// A call frame names call id 0, which is reserved for the connection.
    CallFrameOnConnection(FrameKind),
    /// The payload is shorter than the fixed part the kind needs.
    Truncated(FrameKind),
    /// The payload has bytes after everything the kind defines.
    TrailingBytes(FrameKind),
    /// A metadata block is malformed (bad key byte, empty key, length past the block).
    BadMetadata,
    /// A metadata block is over the receiver's limit.
    MetadataTooLarge {
        /// The block's length in bytes.
        len: usize,
        /// The receiver's limit.
        max: usize,
    },
    /// A status message or goaway reason is not UTF-8.
    BadUtf8,
    /// A credit frame grants zero bytes.
    ZeroCredit,
    /// A settings frame's length is not a multiple of 6, or a setting's value is out of range.
    BadSettings,
    /// A Chunk frame came to a receiver that did not announce `RECEIVE_CHUNKS`.
    ChunkNotAnnounced,
    /// A Chunk frame does not continue the chunked frame in progress (another call's chunk,
    /// a second chunked frame started, a chunk inside a chunk), or a whole frame of that call
    /// came between its chunks.
    ChunkOutOfOrder,
    /// A chunk other than a frame's last carries fewer bytes than `MIN_CHUNK_PAYLOAD`, or a
    /// first chunk has no room for the inner frame's header.
    ChunkTooSmall,
    /// A frame was cut into more chunks than `MAX_CHUNKS_PER_FRAME`.
    TooManyChunks {
        /// The receiver's limit.
        max: u32,
    },
    /// The chunks' bytes do not add up to the inner frame's declared length.
    ChunkLength,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadPreface => f.write_str("the peer did not send the Volley preface; is it a Volley peer?"),
            Self::TlsRecord => f.write_str(
                "the peer speaks TLS where plaintext Volley was expected; connect with TLS (feature `tls`: Client::builder().tls(..)) or to the plaintext port",
            ),
            Self::UnsupportedVersion(v) => write!(
                f,
                "the peer speaks protocol version {v}, this build speaks {}; upgrade the older side",
                super::PROTOCOL_VERSION
            ),
            Self::UnknownKind(k) => write!(f, "unknown frame kind {k:#04x}"),
            Self::FrameTooLarge { len, max } => {
                write!(
                    f,
                    "frame of {len} bytes is over the max frame size of {max}; raise max_frame_size on both sides or send smaller messages"
                )
            }
            Self::ReservedNotZero => f.write_str("reserved header bytes are not zero"),
            Self::ControlFrameOnCall(k) => write!(f, "{k:?} frame must use call id 0"),
            Self::CallFrameOnConnection(k) => {
                write!(f, "{k:?} frame must name a call (id 0 is the connection)")
            }
            Self::Truncated(k) => write!(f, "{k:?} frame payload is too short"),
            Self::TrailingBytes(k) => write!(f, "{k:?} frame payload has trailing bytes"),
            Self::BadMetadata => f.write_str("malformed metadata block"),
            Self::MetadataTooLarge { len, max } => {
                write!(
                    f,
                    "metadata block of {len} bytes is over the limit of {max}; send less metadata or raise max_metadata_size"
                )
            }
            Self::BadUtf8 => f.write_str("status message or goaway reason is not UTF-8"),
            Self::ZeroCredit => f.write_str("credit frame grants zero bytes"),
            Self::BadSettings => f.write_str("malformed settings frame"),
            Self::ChunkNotAnnounced => f.write_str("chunk frame sent to a receiver that did not announce receive_chunks"),
            Self::ChunkOutOfOrder => {
                f.write_str("chunk frame out of order: one chunked frame at a time, its chunks and its call's frames in order")
            }
            Self::ChunkTooSmall => f.write_str("chunk frame too small: every chunk but the last carries at least 1024 bytes"),
            Self::TooManyChunks { max } => write!(f, "a frame was cut into more than {max} chunks"),
            Self::ChunkLength => f.write_str("chunk lengths do not add up to the chunked frame's length"),
        }
    }
}

impl std::error::Error for WireError {}
