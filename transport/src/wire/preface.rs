//! The connection preface (docs/PROTOCOL.md, "Connection preface").

use super::WireError;

/// The first six bytes each side sends: a non-ASCII byte (so text protocols fail fast), `VLY`,
/// and CR LF (so line-mangling middleboxes are caught).
pub const PREFACE_MAGIC: [u8; 6] = [0x89, b'V', b'L', b'Y', b'\r', b'\n'];

/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u16 = 1;

/// Length of the preface: the magic and a little-endian `u16` version.
pub const PREFACE_LEN: usize = 8;

/// Whether `bytes` (at least two of them) start like a TLS record where a Volley preface
/// belongs: content type alert (`0x15`) or handshake (`0x16`), then version major `0x03`.
/// The preface's first byte, `0x89`, is neither, so the two never mix up.
pub fn is_tls_record_start(bytes: &[u8]) -> bool {
    matches!(bytes, [0x15 | 0x16, 0x03, ..])
}

/// The preface each side sends before anything else.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Preface {
    /// The sender's protocol version.
    pub version: u16,
}

impl Preface {
    /// This build's preface.
    pub const CURRENT: Self = Self { version: PROTOCOL_VERSION };

    /// The preface's eight bytes.
    pub fn encode(&self) -> [u8; PREFACE_LEN] {
        let v = self.version.to_le_bytes();
        let m = PREFACE_MAGIC;
        [m[0], m[1], m[2], m[3], m[4], m[5], v[0], v[1]]
    }

    /// Parses a preface. A wrong magic is [`WireError::BadPreface`], or
    /// [`WireError::TlsRecord`] when the bytes start like a TLS record (a ClientHello or an
    /// alert: type `0x16` or `0x15`, version major `0x03`); any version parses, and the caller
    /// decides whether it speaks it ([`Preface::check_version`]).
    pub fn decode(src: &[u8; PREFACE_LEN]) -> Result<Self, WireError> {
        if is_tls_record_start(src) {
            return Err(WireError::TlsRecord);
        }
        if src[..6] != PREFACE_MAGIC {
            return Err(WireError::BadPreface);
        }
        Ok(Self {
            version: u16::from_le_bytes([src[6], src[7]]),
        })
    }

    /// `Ok` when this build speaks the preface's version.
    pub fn check_version(&self) -> Result<(), WireError> {
        if self.version == PROTOCOL_VERSION {
            Ok(())
        } else {
            Err(WireError::UnsupportedVersion(self.version))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preface_round_trips_and_checks_magic_and_version() {
        let raw = Preface::CURRENT.encode();
        assert_eq!(raw, [0x89, 0x56, 0x4c, 0x59, 0x0d, 0x0a, 0x01, 0x00]);
        assert_eq!(Preface::decode(&raw), Ok(Preface::CURRENT));
        assert_eq!(Preface::decode(b"GET / HT"), Err(WireError::BadPreface));
        // A TLS ClientHello record and a TLS alert record.
        assert_eq!(
            Preface::decode(&[0x16, 0x03, 0x01, 0x00, 0xf4, 0x01, 0x00, 0x00]),
            Err(WireError::TlsRecord)
        );
        assert_eq!(
            Preface::decode(&[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x32, 0x00]),
            Err(WireError::TlsRecord)
        );
        let v9 = Preface { version: 9 };
        assert_eq!(
            Preface::decode(&v9.encode()).unwrap().check_version(),
            Err(WireError::UnsupportedVersion(9))
        );
    }
}
