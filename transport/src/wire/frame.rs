//! Frames: the unit both peers exchange (docs/PROTOCOL.md, "Frame kinds").
//!
//! Decoding shares the receive buffer: messages, metadata and status text are `Bytes` slices of
//! it, never copies.

use std::time::Duration;

use bytes::{Buf, BufMut, Bytes};

use super::{CallId, Flags, FrameHeader, FrameKind, HEADER_LEN, MAX_METADATA_SIZE, Metadata, MethodId, Settings, WireError};
use crate::wire::Code;

/// The head of a call, carried by its Request frame.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallHead {
    /// The method called.
    pub method_id: MethodId,
    /// Scheduling priority, 0 (default) to 255 (most urgent). Carried for schedulers; v1 servers
    /// do not reorder by it.
    pub priority: u8,
    /// Time left until the caller's deadline when the frame was encoded, at microsecond
    /// resolution; `None` for no deadline.
    pub timeout: Option<Duration>,
    /// The sender's wall clock when it encoded the call, nanoseconds since the Unix epoch; 0 if
    /// unknown. Used for queueing-time metrics only, never for deadlines.
    pub sent_at_ns: u64,
    /// Call metadata.
    pub metadata: Metadata,
}

/// Bytes of the fixed part of an encoded call head: method id, priority, reserved byte, timeout,
/// send time. The metadata block follows.
pub const CALL_HEAD_FIXED_LEN: usize = 4 + 1 + 1 + 8 + 8;

impl CallHead {
    /// Bytes the head takes on the wire, metadata block included.
    pub fn encoded_len(&self) -> usize {
        CALL_HEAD_FIXED_LEN + 2 + self.metadata.encoded_len()
    }

    /// Writes the head.
    pub fn encode(&self, dst: &mut impl BufMut) {
        // The fixed part assembled in registers, then copied once (one bounds check, not five).
        let mut fixed = [0u8; CALL_HEAD_FIXED_LEN];
        fixed[..4].copy_from_slice(&self.method_id.0.to_le_bytes());
        fixed[4] = self.priority;
        // Byte 5 is reserved, zero.
        fixed[6..14].copy_from_slice(&self.timeout.map_or(0, timeout_to_micros).to_le_bytes());
        fixed[14..22].copy_from_slice(&self.sent_at_ns.to_le_bytes());
        dst.put_slice(&fixed);
        self.metadata.encode(dst);
    }

    fn decode(src: &mut Bytes) -> Result<Self, WireError> {
        if src.len() < CALL_HEAD_FIXED_LEN {
            return Err(WireError::Truncated(FrameKind::Request));
        }
        // The fixed part read as one array (one bounds check), then stepped over.
        let fixed: [u8; CALL_HEAD_FIXED_LEN] = src[..CALL_HEAD_FIXED_LEN].try_into().expect("length checked above");
        src.advance(CALL_HEAD_FIXED_LEN);
        let method_id = MethodId(u32::from_le_bytes([fixed[0], fixed[1], fixed[2], fixed[3]]));
        let priority = fixed[4];
        let le_u64 = |at: usize| u64::from_le_bytes(fixed[at..at + 8].try_into().expect("8 bytes"));
        let micros = le_u64(6);
        let sent_at_ns = le_u64(14);
        let metadata = Metadata::decode(src, MAX_METADATA_SIZE)?;
        let timeout = (micros != 0).then(|| Duration::from_micros(micros));
        Ok(Self {
            method_id,
            priority,
            timeout,
            sent_at_ns,
            metadata,
        })
    }
}

/// A timeout in whole microseconds, rounded up so a short deadline never reads as "none".
fn timeout_to_micros(timeout: Duration) -> u64 {
    let micros = timeout.as_nanos().div_ceil(1_000);
    u64::try_from(micros).unwrap_or(u64::MAX).max(1)
}

/// The payload of a Status frame: how the server ended a call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusFrame {
    /// The status code.
    pub code: Code,
    /// The UTF-8 status message (validated on decode).
    pub message: Bytes,
    /// Trailing metadata.
    pub metadata: Metadata,
}

impl StatusFrame {
    /// The message as text.
    pub fn message_str(&self) -> &str {
        // Validated as UTF-8 on decode and built from `&str` on encode.
        std::str::from_utf8(&self.message).unwrap_or_default()
    }
}

/// The payload of a GoAway frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GoAway {
    /// The highest call id the sender accepted; calls above it were never seen and may be retried.
    pub last_call_id: CallId,
    /// Why the connection is closing: `Ok` for a graceful shutdown, otherwise the error class.
    pub code: Code,
    /// A UTF-8 reason for people reading logs.
    pub reason: Bytes,
}

impl GoAway {
    /// The reason as text.
    pub fn reason_str(&self) -> &str {
        // Validated as UTF-8 on decode.
        std::str::from_utf8(&self.reason).unwrap_or_default()
    }
}

/// One frame. See docs/PROTOCOL.md for each kind's layout and rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// Opens a call.
    Request {
        /// The new call's id, above every id the client used before.
        call_id: CallId,
        /// Method, deadline, metadata.
        head: CallHead,
        /// The first request message, if the frame carries one.
        message: Option<Bytes>,
        /// The client sends nothing more (a unary or server-streaming request).
        end_stream: bool,
    },
    /// The response head, and optionally the first response message.
    Response {
        /// The call.
        call_id: CallId,
        /// Response head metadata.
        metadata: Metadata,
        /// The first response message, if the frame carries one.
        message: Option<Bytes>,
        /// The call ends here with status OK and no trailers (the unary fast path).
        end_stream: bool,
    },
    /// One stream message.
    Message {
        /// The call.
        call_id: CallId,
        /// The message bytes.
        message: Bytes,
        /// The sender half-closes after this message.
        end_stream: bool,
    },
    /// The sender half-closes without a message.
    EndOfStream {
        /// The call.
        call_id: CallId,
    },
    /// The client abandons the call.
    Cancel {
        /// The call.
        call_id: CallId,
    },
    /// The server ends the call.
    Status {
        /// The call.
        call_id: CallId,
        /// Code, message, trailers.
        status: StatusFrame,
    },
    /// Flow-control credit.
    Credit {
        /// The call, or [`CallId::CONNECTION`] for the connection window.
        call_id: CallId,
        /// Bytes granted, at least 1.
        increment: u32,
    },
    /// Liveness probe.
    Ping {
        /// Echoed in the pong.
        payload: u64,
    },
    /// Answer to a ping.
    Pong {
        /// The ping's payload.
        payload: u64,
    },
    /// The sender's settings.
    Settings(Settings),
    /// The sender is closing the connection.
    GoAway(GoAway),
}

impl Frame {
    /// The frame's kind.
    pub fn kind(&self) -> FrameKind {
        match self {
            Self::Request { .. } => FrameKind::Request,
            Self::Response { .. } => FrameKind::Response,
            Self::Message { .. } => FrameKind::Message,
            Self::EndOfStream { .. } => FrameKind::EndOfStream,
            Self::Cancel { .. } => FrameKind::Cancel,
            Self::Status { .. } => FrameKind::Status,
            Self::Credit { .. } => FrameKind::Credit,
            Self::Ping { .. } => FrameKind::Ping,
            Self::Pong { .. } => FrameKind::Pong,
            Self::Settings(_) => FrameKind::Settings,
            Self::GoAway(_) => FrameKind::GoAway,
        }
    }

    /// The call the frame belongs to; [`CallId::CONNECTION`] for connection frames.
    pub fn call_id(&self) -> CallId {
        match self {
            Self::Request { call_id, .. }
            | Self::Response { call_id, .. }
            | Self::Message { call_id, .. }
            | Self::EndOfStream { call_id }
            | Self::Cancel { call_id }
            | Self::Status { call_id, .. }
            | Self::Credit { call_id, .. } => *call_id,
            Self::Ping { .. } | Self::Pong { .. } | Self::Settings(_) | Self::GoAway(_) => CallId::CONNECTION,
        }
    }

    fn flags(&self) -> Flags {
        match self {
            Self::Request { message, end_stream, .. } => Flags::NONE
                .set_if(Flags::MESSAGE, message.is_some())
                .set_if(Flags::END_STREAM, *end_stream),
            Self::Response {
                metadata,
                message,
                end_stream,
                ..
            } => Flags::NONE
                .set_if(Flags::METADATA, !metadata.is_empty())
                .set_if(Flags::MESSAGE, message.is_some())
                .set_if(Flags::END_STREAM, *end_stream),
            Self::Message { end_stream, .. } => Flags::NONE.set_if(Flags::END_STREAM, *end_stream),
            Self::Status { status, .. } => Flags::NONE.set_if(Flags::METADATA, !status.metadata.is_empty()),
            _ => Flags::NONE,
        }
    }

    /// The message bytes the frame ends with, which [`Frame::encode_head`] leaves out so a driver
    /// can write them from their own buffer without copying.
    pub fn message_tail(&self) -> Option<&Bytes> {
        match self {
            Self::Request { message, .. } | Self::Response { message, .. } => message.as_ref(),
            Self::Message { message, .. } => Some(message),
            _ => None,
        }
    }

    /// Payload bytes before the message tail.
    fn head_payload_len(&self) -> usize {
        match self {
            Self::Request { head, .. } => head.encoded_len(),
            Self::Response { metadata, .. } => {
                if metadata.is_empty() {
                    0
                } else {
                    2 + metadata.encoded_len()
                }
            }
            Self::Message { .. } | Self::EndOfStream { .. } | Self::Cancel { .. } => 0,
            Self::Status { status, .. } => {
                let trailers = if status.metadata.is_empty() {
                    0
                } else {
                    2 + status.metadata.encoded_len()
                };
                super::encode::STATUS_FIXED_LEN + status.message.len() + trailers
            }
            Self::Credit { .. } => 4,
            Self::Ping { .. } | Self::Pong { .. } => 8,
            Self::Settings(settings) => settings.encoded_len(),
            Self::GoAway(goaway) => 12 + goaway.reason.len(),
        }
    }

    /// Payload length: everything after the header.
    pub fn payload_len(&self) -> usize {
        self.head_payload_len() + self.message_tail().map_or(0, Bytes::len)
    }

    /// Bytes the whole frame takes on the wire.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + self.payload_len()
    }

    /// Writes the header and the payload up to, not including, [`Frame::message_tail`].
    pub fn encode_head(&self, dst: &mut impl BufMut) {
        let len = self.payload_len();
        debug_assert!(len <= u32::MAX as usize, "callers keep frames within max_frame_size");
        FrameHeader {
            len: len as u32,
            kind: self.kind(),
            flags: self.flags(),
            call_id: self.call_id(),
        }
        .encode(dst);
        match self {
            Self::Request { head, .. } => head.encode(dst),
            Self::Response { metadata, .. } if !metadata.is_empty() => metadata.encode(dst),
            Self::Status { status, .. } => {
                let trailers = (!status.metadata.is_empty()).then_some(&status.metadata);
                super::encode::put_status_payload(dst, status.code, &status.message, trailers);
            }
            Self::Credit { increment, .. } => dst.put_u32_le(*increment),
            Self::Ping { payload } | Self::Pong { payload } => dst.put_u64_le(*payload),
            Self::Settings(settings) => settings.encode(dst),
            Self::GoAway(goaway) => {
                debug_assert!(goaway.reason.len() <= super::MAX_STATUS_MESSAGE_LEN);
                dst.put_u64_le(goaway.last_call_id.0);
                dst.put_u8(goaway.code.as_u8());
                dst.put_u8(0);
                dst.put_u16_le(goaway.reason.len() as u16);
                dst.put_slice(&goaway.reason);
            }
            Self::Response { .. } | Self::Message { .. } | Self::EndOfStream { .. } | Self::Cancel { .. } => {}
        }
    }

    /// Writes the whole frame, message included.
    pub fn encode(&self, dst: &mut impl BufMut) {
        self.encode_head(dst);
        if let Some(message) = self.message_tail() {
            dst.put_slice(message);
        }
    }

    /// Decodes the payload of a frame whose header has been checked. `payload` is exactly
    /// `header.len` bytes.
    pub fn decode_payload(header: FrameHeader, mut payload: Bytes) -> Result<Self, WireError> {
        debug_assert_eq!(payload.len(), header.len as usize);
        let kind = header.kind;
        let call_id = header.call_id;
        let flags = header.flags;
        let end_stream = flags.contains(Flags::END_STREAM);
        let frame = match kind {
            FrameKind::Request => {
                let head = CallHead::decode(&mut payload)?;
                let message = take_message(flags, payload, kind)?;
                return Ok(Self::Request {
                    call_id,
                    head,
                    message,
                    end_stream,
                });
            }
            FrameKind::Response => {
                let metadata = if flags.contains(Flags::METADATA) {
                    Metadata::decode(&mut payload, MAX_METADATA_SIZE)?
                } else {
                    Metadata::new()
                };
                let message = take_message(flags, payload, kind)?;
                return Ok(Self::Response {
                    call_id,
                    metadata,
                    message,
                    end_stream,
                });
            }
            FrameKind::Message => {
                return Ok(Self::Message {
                    call_id,
                    message: payload,
                    end_stream,
                });
            }
            FrameKind::EndOfStream => Self::EndOfStream { call_id },
            FrameKind::Cancel => Self::Cancel { call_id },
            FrameKind::Status => {
                let code = Code::from_u8(take_u8(&mut payload, kind)?);
                let _reserved = take_u8(&mut payload, kind)?;
                let message = take_text(&mut payload, kind)?;
                let metadata = if flags.contains(Flags::METADATA) {
                    Metadata::decode(&mut payload, MAX_METADATA_SIZE)?
                } else {
                    Metadata::new()
                };
                Self::Status {
                    call_id,
                    status: StatusFrame { code, message, metadata },
                }
            }
            FrameKind::Credit => {
                let increment = take_u32(&mut payload, kind)?;
                if increment == 0 {
                    return Err(WireError::ZeroCredit);
                }
                Self::Credit { call_id, increment }
            }
            FrameKind::Ping => Self::Ping {
                payload: take_u64(&mut payload, kind)?,
            },
            FrameKind::Pong => Self::Pong {
                payload: take_u64(&mut payload, kind)?,
            },
            FrameKind::Settings => {
                let settings = Settings::decode(&payload)?;
                payload.clear();
                Self::Settings(settings)
            }
            // Chunk frames never become a `Frame`: a receiver that announced `RECEIVE_CHUNKS`
            // takes them off the stream first (`wire::decode_unit`, `protocol::Reassembly`).
            FrameKind::Chunk | FrameKind::ChunkAck => return Err(WireError::ChunkNotAnnounced),
            FrameKind::GoAway => {
                let last_call_id = CallId(take_u64(&mut payload, kind)?);
                let code = Code::from_u8(take_u8(&mut payload, kind)?);
                let _reserved = take_u8(&mut payload, kind)?;
                let reason = take_text(&mut payload, kind)?;
                Self::GoAway(GoAway {
                    last_call_id,
                    code,
                    reason,
                })
            }
        };
        if payload.is_empty() {
            Ok(frame)
        } else {
            Err(WireError::TrailingBytes(kind))
        }
    }
}

fn take_message(flags: Flags, rest: Bytes, kind: FrameKind) -> Result<Option<Bytes>, WireError> {
    match (flags.contains(Flags::MESSAGE), rest.is_empty()) {
        (true, _) => Ok(Some(rest)),
        (false, true) => Ok(None),
        (false, false) => Err(WireError::TrailingBytes(kind)),
    }
}

fn take_u8(src: &mut Bytes, kind: FrameKind) -> Result<u8, WireError> {
    if src.is_empty() {
        Err(WireError::Truncated(kind))
    } else {
        Ok(src.get_u8())
    }
}

fn take_u32(src: &mut Bytes, kind: FrameKind) -> Result<u32, WireError> {
    if src.len() < 4 {
        Err(WireError::Truncated(kind))
    } else {
        Ok(src.get_u32_le())
    }
}

fn take_u64(src: &mut Bytes, kind: FrameKind) -> Result<u64, WireError> {
    if src.len() < 8 {
        Err(WireError::Truncated(kind))
    } else {
        Ok(src.get_u64_le())
    }
}

/// A `u16`-length-prefixed UTF-8 string, shared with `src`.
fn take_text(src: &mut Bytes, kind: FrameKind) -> Result<Bytes, WireError> {
    if src.len() < 2 {
        return Err(WireError::Truncated(kind));
    }
    let len = src.get_u16_le() as usize;
    if src.len() < len {
        return Err(WireError::Truncated(kind));
    }
    let text = src.split_to(len);
    std::str::from_utf8(&text).map_err(|_| WireError::BadUtf8)?;
    Ok(text)
}
