//! Call metadata: ordered key/value pairs kept in their wire encoding (docs/PROTOCOL.md,
//! "Metadata block").
//!
//! A block received from a peer is validated once and then read in place: no copy and no
//! allocation. An empty block costs nothing.

use std::fmt;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::WireError;

/// Ordered key/value pairs sent with a call head, a response head or a status.
///
/// Keys are 1 to 255 bytes of `a-z`, `0-9`, `-`, `_` and `.`; values are up to 65,535 arbitrary
/// bytes. Keys may repeat; [`Metadata::get`] returns the first.
///
/// ```
/// use volley::Metadata;
///
/// let mut md = Metadata::new();
/// md.insert("x-request-id", "abc-123").unwrap();
/// assert_eq!(md.get("x-request-id"), Some(&b"abc-123"[..]));
/// assert!(md.insert("Bad Key", "v").is_err());
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    /// The encoded entries, without the block's length prefix. Always valid.
    raw: Bytes,
}

/// Why a key or value cannot go into [`Metadata`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidMetadata {
    /// The key is empty, longer than 255 bytes, or has a byte outside `a-z0-9-_.`.
    #[error("metadata keys are 1 to 255 bytes of a-z, 0-9, '-', '_' or '.'")]
    BadKey,
    /// The value is longer than 65,535 bytes.
    #[error("metadata values are at most 65535 bytes")]
    ValueTooLong,
    /// The whole block would exceed 65,535 bytes.
    #[error("a metadata block is at most 65535 bytes; send less metadata")]
    BlockTooLarge,
}

fn valid_key(key: &[u8]) -> bool {
    !key.is_empty() && key.len() <= u8::MAX as usize && key.iter().all(|&b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.'))
}

impl Metadata {
    /// Empty metadata; does not allocate.
    pub const fn new() -> Self {
        Self { raw: Bytes::new() }
    }

    /// Appends `key` = `value`, keeping earlier entries with the same key.
    pub fn insert(&mut self, key: &str, value: impl AsRef<[u8]>) -> Result<(), InvalidMetadata> {
        let value = value.as_ref();
        if !valid_key(key.as_bytes()) {
            return Err(InvalidMetadata::BadKey);
        }
        if value.len() > u16::MAX as usize {
            return Err(InvalidMetadata::ValueTooLong);
        }
        let added = 1 + key.len() + 2 + value.len();
        if self.raw.len() + added > super::MAX_METADATA_SIZE {
            return Err(InvalidMetadata::BlockTooLarge);
        }
        let mut raw = BytesMut::with_capacity(self.raw.len() + added);
        raw.extend_from_slice(&self.raw);
        raw.put_u8(key.len() as u8);
        raw.extend_from_slice(key.as_bytes());
        raw.put_u16_le(value.len() as u16);
        raw.extend_from_slice(value);
        self.raw = raw.freeze();
        Ok(())
    }

    /// Metadata over a static block of entries that [`Metadata`] encoded itself (without the
    /// length prefix; see [`Metadata::as_raw`]): no allocation, no copy.
    pub(crate) const fn from_static(raw: &'static [u8]) -> Self {
        Self {
            raw: Bytes::from_static(raw),
        }
    }

    /// The encoded entries, without the block's length prefix.
    pub(crate) fn as_raw(&self) -> &[u8] {
        &self.raw
    }

    /// The first value for `key`.
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        self.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// The first value for `key`, if it is UTF-8.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The entries in order.
    pub fn iter(&self) -> MetadataIter<'_> {
        MetadataIter { rest: &self.raw }
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// Bytes of the encoded entries (the block without its 2-byte length prefix).
    pub fn encoded_len(&self) -> usize {
        self.raw.len()
    }

    /// Writes the block: a `u16` length, then the entries.
    pub fn encode(&self, dst: &mut impl BufMut) {
        debug_assert!(self.raw.len() <= super::MAX_METADATA_SIZE, "insert keeps blocks within u16");
        dst.put_u16_le(self.raw.len() as u16);
        dst.put_slice(&self.raw);
    }

    /// Reads a block from the front of `src`, checking its length against `max` before looking
    /// at the entries, then validating every entry. Shares `src`'s memory.
    pub fn decode(src: &mut Bytes, max: usize) -> Result<Self, WireError> {
        if src.len() < 2 {
            return Err(WireError::BadMetadata);
        }
        let len = src.get_u16_le() as usize;
        if len > max {
            return Err(WireError::MetadataTooLarge { len, max });
        }
        if len > src.len() {
            return Err(WireError::BadMetadata);
        }
        if len == 0 {
            // The common empty block shares nothing: no reference to `src`'s buffer to count.
            return Ok(Self::new());
        }
        let raw = src.split_to(len);
        let mut rest = &raw[..];
        while !rest.is_empty() {
            let key_len = rest[0] as usize;
            if rest.len() < 1 + key_len + 2 || !valid_key(&rest[1..1 + key_len]) {
                return Err(WireError::BadMetadata);
            }
            let value_len = u16::from_le_bytes([rest[1 + key_len], rest[2 + key_len]]) as usize;
            let entry_len = 1 + key_len + 2 + value_len;
            if rest.len() < entry_len {
                return Err(WireError::BadMetadata);
            }
            rest = &rest[entry_len..];
        }
        Ok(Self { raw })
    }
}

/// Iterator over [`Metadata`] entries as `(key, value)`.
#[derive(Debug, Clone)]
pub struct MetadataIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for MetadataIter<'a> {
    type Item = (&'a str, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        // Entries were validated when the block was built or decoded, so the slicing holds.
        let rest = self.rest;
        let key_len = *rest.first()? as usize;
        let key = rest.get(1..1 + key_len)?;
        let len_bytes = rest.get(1 + key_len..3 + key_len)?;
        let value_len = u16::from_le_bytes([len_bytes[0], len_bytes[1]]) as usize;
        let value = rest.get(3 + key_len..3 + key_len + value_len)?;
        self.rest = &rest[3 + key_len + value_len..];
        // Keys are ASCII by validation.
        Some((std::str::from_utf8(key).unwrap_or_default(), value))
    }
}

impl fmt::Debug for Metadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|(k, v)| (k, String::from_utf8_lossy(v))))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_round_trips_with_repeated_keys_in_order() {
        let mut md = Metadata::new();
        md.insert("a", "1").unwrap();
        md.insert("b", [0u8, 255]).unwrap();
        md.insert("a", "2").unwrap();
        let mut buf = BytesMut::new();
        md.encode(&mut buf);
        let mut bytes = buf.freeze();
        let back = Metadata::decode(&mut bytes, 1024).unwrap();
        assert!(bytes.is_empty());
        assert_eq!(back, md);
        let entries: Vec<_> = back.iter().collect();
        assert_eq!(entries, vec![("a", &b"1"[..]), ("b", &[0u8, 255][..]), ("a", &b"2"[..])]);
        assert_eq!(back.get("a"), Some(&b"1"[..]));
    }

    #[test]
    fn decode_rejects_block_over_limit_before_reading_entries() {
        let mut bytes = Bytes::from_static(&[0xff, 0xff]);
        assert_eq!(
            Metadata::decode(&mut bytes, 100),
            Err(WireError::MetadataTooLarge { len: 0xffff, max: 100 })
        );
    }

    #[test]
    fn decode_rejects_bad_keys_and_overruns() {
        for raw in [
            &[3u8, 0, 1, b'A', 0, 0][..],
            &[2, 0, 0, 0][..],
            &[4, 0, 1, b'a', 5, 0][..],
            &[1, 0][..],
        ] {
            let mut bytes = Bytes::copy_from_slice(raw);
            assert_eq!(Metadata::decode(&mut bytes, 100), Err(WireError::BadMetadata), "{raw:?}");
        }
    }
}
