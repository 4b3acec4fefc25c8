//! The fixed 16-byte frame header (docs/PROTOCOL.md, "Frame header").

use bytes::BufMut;

use super::{Flags, FrameKind, WireError};

/// Length of every frame header in bytes.
pub const HEADER_LEN: usize = 16;

/// Identifies a call on one connection. The client numbers its calls 1, 2, 3, ... strictly
/// increasing; 0 means the connection itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(pub u64);

impl CallId {
    /// The connection, for connection-level frames.
    pub const CONNECTION: Self = Self(0);
}

/// A decoded frame header.
///
/// Layout, little-endian: `len: u32` (payload bytes after the header), `kind: u8`, `flags: u8`,
/// `reserved: u16` (zero), `call_id: u64`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// Payload length in bytes, not counting the header.
    pub len: u32,
    /// What the frame carries.
    pub kind: FrameKind,
    /// Kind-specific flags.
    pub flags: Flags,
    /// The call, or [`CallId::CONNECTION`].
    pub call_id: CallId,
}

impl FrameHeader {
    /// Writes the header's 16 bytes.
    pub fn encode(&self, dst: &mut impl BufMut) {
        dst.put_slice(&self.to_bytes());
    }

    /// The header's 16 bytes, assembled in registers: one bounds check and one copy into the
    /// destination instead of one per field.
    #[inline]
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut bytes = [0u8; HEADER_LEN];
        bytes[..4].copy_from_slice(&self.len.to_le_bytes());
        bytes[4] = self.kind as u8;
        bytes[5] = self.flags.0;
        // Bytes 6 and 7 are reserved, zero.
        bytes[8..].copy_from_slice(&self.call_id.0.to_le_bytes());
        bytes
    }

    /// Parses a header and checks everything that does not need the payload: the kind, the
    /// reserved bytes, the call id's scope and the length against `max_frame_size`.
    pub fn decode(src: &[u8; HEADER_LEN], max_frame_size: u32) -> Result<Self, WireError> {
        let len = u32::from_le_bytes([src[0], src[1], src[2], src[3]]);
        let kind = FrameKind::from_u8(src[4])?;
        let flags = Flags(src[5]);
        if src[6] != 0 || src[7] != 0 {
            return Err(WireError::ReservedNotZero);
        }
        let mut id = [0u8; 8];
        id.copy_from_slice(&src[8..16]);
        let call_id = CallId(u64::from_le_bytes(id));
        if len > max_frame_size {
            return Err(WireError::FrameTooLarge { len, max: max_frame_size });
        }
        match (kind.is_connection_level(), call_id == CallId::CONNECTION) {
            (true, false) => return Err(WireError::ControlFrameOnCall(kind)),
            // Credit on call 0 is the connection window; every other call frame needs a call.
            (false, true) if kind != FrameKind::Credit => {
                return Err(WireError::CallFrameOnConnection(kind));
            }
            _ => {}
        }
        Ok(Self { len, kind, flags, call_id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes_of(header: FrameHeader) -> [u8; HEADER_LEN] {
        let mut out = Vec::new();
        header.encode(&mut out);
        out.try_into().expect("header is 16 bytes")
    }

    #[test]
    fn header_round_trips_little_endian() {
        let header = FrameHeader {
            len: 0x0102_0304,
            kind: FrameKind::Message,
            flags: Flags::END_STREAM,
            call_id: CallId(0x1122),
        };
        let raw = bytes_of(header);
        assert_eq!(raw, [0x04, 0x03, 0x02, 0x01, 0x04, 0x01, 0, 0, 0x22, 0x11, 0, 0, 0, 0, 0, 0]);
        assert_eq!(FrameHeader::decode(&raw, u32::MAX), Ok(header));
    }

    #[test]
    fn decode_rejects_len_over_max() {
        let raw = bytes_of(FrameHeader {
            len: 101,
            kind: FrameKind::Message,
            flags: Flags::NONE,
            call_id: CallId(1),
        });
        assert_eq!(FrameHeader::decode(&raw, 100), Err(WireError::FrameTooLarge { len: 101, max: 100 }));
    }

    #[test]
    fn decode_rejects_reserved_bits_unknown_kind_and_wrong_scope() {
        let mut raw = bytes_of(FrameHeader {
            len: 0,
            kind: FrameKind::Cancel,
            flags: Flags::NONE,
            call_id: CallId(1),
        });
        raw[7] = 1;
        assert_eq!(FrameHeader::decode(&raw, 100), Err(WireError::ReservedNotZero));
        raw[7] = 0;
        raw[4] = 0x7f;
        assert_eq!(FrameHeader::decode(&raw, 100), Err(WireError::UnknownKind(0x7f)));
        let ping_on_call = bytes_of(FrameHeader {
            len: 8,
            kind: FrameKind::Ping,
            flags: Flags::NONE,
            call_id: CallId(3),
        });
        assert_eq!(
            FrameHeader::decode(&ping_on_call, 100),
            Err(WireError::ControlFrameOnCall(FrameKind::Ping))
        );
        let cancel_on_conn = bytes_of(FrameHeader {
            len: 0,
            kind: FrameKind::Cancel,
            flags: Flags::NONE,
            call_id: CallId(0),
        });
        assert_eq!(
            FrameHeader::decode(&cancel_on_conn, 100),
            Err(WireError::CallFrameOnConnection(FrameKind::Cancel))
        );
        let conn_credit = bytes_of(FrameHeader {
            len: 4,
            kind: FrameKind::Credit,
            flags: Flags::NONE,
            call_id: CallId(0),
        });
        assert!(FrameHeader::decode(&conn_credit, 100).is_ok());
    }
}
