//! The on-disk format: the file header and the record framing. Pure: no IO, no clock.
//!
//! The layout is described in the [module docs](super); this file is its single implementation,
//! used by the writer to frame records and by the replay to find where the intact records end.

/// The first seven bytes of every journal file: `VLYJRNL` in ASCII.
pub const MAGIC: [u8; 7] = *b"VLYJRNL";

/// The format version, the eighth byte of the file. A reader refuses any other version.
pub const VERSION: u8 = 0x01;

/// The length of the file header: [`MAGIC`] then [`VERSION`].
pub const HEADER_LEN: usize = 0x08;

/// The length of a record's framing: the payload length then its CRC-32, both `u32` little-endian.
pub const RECORD_HEADER_LEN: usize = 0x08;

/// The largest payload a record may carry, 1 MiB: a journaled command is a few hundred bytes, and
/// the bound lets the replay reject a garbage length before reading past it. It is part of the
/// format, not a knob: a reader with a smaller bound would cut off valid records as torn.
pub const MAX_RECORD_LEN: u32 = 0x0010_0000;

/// The file header a new journal starts with.
pub(crate) const FILE_HEADER: [u8; HEADER_LEN] = [MAGIC[0], MAGIC[1], MAGIC[2], MAGIC[3], MAGIC[4], MAGIC[5], MAGIC[6], VERSION];

/// What the first bytes of a file say about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Header {
    /// A complete header of this version: records follow.
    Valid,
    /// No header or a prefix of ours: the file is empty or a crash hit while it was being created.
    /// It holds no records, so it is safe to (re)write the header.
    Missing,
    /// A journal of another format version.
    Version(u8),
    /// Not a journal: someone else's file, never to be touched.
    Foreign,
}

/// Classifies a file by its first bytes (`data` may be the whole file).
pub(crate) fn check_header(data: &[u8]) -> Header {
    match data.get(..HEADER_LEN) {
        None if FILE_HEADER.starts_with(data) => Header::Missing,
        None => Header::Foreign,
        Some(header) if header[..MAGIC.len()] != MAGIC => Header::Foreign,
        Some(header) if header[MAGIC.len()] != VERSION => Header::Version(header[MAGIC.len()]),
        Some(_) => Header::Valid,
    }
}

/// The framing for `payload`, whose length the caller has checked is in `1..=MAX_RECORD_LEN`.
pub(crate) fn record_header(payload: &[u8]) -> [u8; RECORD_HEADER_LEN] {
    debug_assert!(!payload.is_empty() && payload.len() <= MAX_RECORD_LEN as usize);
    // The cast cannot truncate: the length is at most MAX_RECORD_LEN.
    let len = payload.len() as u32;
    let mut header = [0; RECORD_HEADER_LEN];
    header[..4].copy_from_slice(&len.to_le_bytes());
    header[4..].copy_from_slice(&crc32fast::hash(payload).to_le_bytes());
    header
}

/// Why the intact records end before the data does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Torn {
    /// The framing or the payload is cut off by the end of the file.
    Incomplete,
    /// The length is zero (the zeroed space ahead of the records, or a zero-filled tail some
    /// filesystems leave after a crash) or over [`MAX_RECORD_LEN`].
    BadLength(u32),
    /// The payload does not match its CRC-32.
    BadChecksum,
}

impl std::fmt::Display for Torn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Incomplete => f.write_str("the last record is incomplete"),
            Self::BadLength(len) => write!(f, "a record claims a length of {len} bytes (valid: 1 to {MAX_RECORD_LEN})"),
            Self::BadChecksum => f.write_str("a record's checksum does not match its payload"),
        }
    }
}

/// The intact prefix of a journal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Scan {
    /// How many intact records there are.
    pub(crate) records: u64,
    /// The offset just past the last intact record (at least [`HEADER_LEN`]).
    pub(crate) end: usize,
    /// Why the records stop before the end of the data, if they do.
    pub(crate) torn: Option<Torn>,
}

/// Walks the records of `file` (a whole journal, header included, whose header is valid) and
/// finds where the intact ones end: at the end of the data or at the first record that is
/// incomplete, has a bad length or has a bad checksum.
pub(crate) fn scan(file: &[u8]) -> Scan {
    let mut scan = Scan {
        records: 0,
        end: HEADER_LEN.min(file.len()),
        torn: None,
    };
    loop {
        match decode(&file[scan.end..]) {
            Decoded::End => return scan,
            Decoded::Torn(torn) => {
                scan.torn = Some(torn);
                return scan;
            }
            Decoded::Record(payload) => {
                scan.records += 1;
                scan.end += RECORD_HEADER_LEN + payload.len();
            }
        }
    }
}

/// The outcome of decoding one record at the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
enum Decoded<'a> {
    /// The buffer is empty.
    End,
    /// An intact record's payload.
    Record(&'a [u8]),
    /// A torn record.
    Torn(Torn),
}

/// Decodes the record at the start of `data`. The length is checked before anything else.
fn decode(data: &[u8]) -> Decoded<'_> {
    if data.is_empty() {
        return Decoded::End;
    }
    let Some((header, rest)) = data.split_first_chunk::<RECORD_HEADER_LEN>() else {
        return Decoded::Torn(Torn::Incomplete);
    };
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    if len == 0 || len > MAX_RECORD_LEN {
        return Decoded::Torn(Torn::BadLength(len));
    }
    // The cast cannot truncate: len is at most MAX_RECORD_LEN.
    let Some(payload) = rest.get(..len as usize) else {
        return Decoded::Torn(Torn::Incomplete);
    };
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if crc32fast::hash(payload) != crc {
        return Decoded::Torn(Torn::BadChecksum);
    }
    Decoded::Record(payload)
}

/// The payloads of records that [`scan`] found intact, in order.
#[derive(Clone, Debug)]
pub(crate) struct Records<'a> {
    rest: &'a [u8],
}

impl<'a> Records<'a> {
    /// Iterates over the records in `records`: the bytes from [`HEADER_LEN`] to [`Scan::end`].
    pub(crate) fn new(records: &'a [u8]) -> Self {
        Self { rest: records }
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        // The records were checked by `scan`, so this checks them again only to stay panic-free.
        match decode(self.rest) {
            Decoded::Record(payload) => {
                self.rest = &self.rest[RECORD_HEADER_LEN + payload.len()..];
                Some(payload)
            }
            Decoded::End | Decoded::Torn(_) => {
                self.rest = &[];
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn journal(payloads: &[&[u8]]) -> Vec<u8> {
        let mut file = FILE_HEADER.to_vec();
        for payload in payloads {
            file.extend_from_slice(&record_header(payload));
            file.extend_from_slice(payload);
        }
        file
    }

    const PAYLOADS: [&[u8]; 3] = [b"first", b"second record", b"the third and last record"];

    #[test]
    fn the_hex_dump_in_the_module_docs_decodes() {
        let file = [
            0x56, 0x4c, 0x59, 0x4a, 0x52, 0x4e, 0x4c, 0x01, // header: "VLYJRNL", version 1
            0x02, 0x00, 0x00, 0x00, // len: 2
            0xac, 0x2a, 0x93, 0xd8, // crc32("hi") = 0xd8932aac
            0x68, 0x69, // payload: "hi"
        ];
        assert_eq!(check_header(&file), Header::Valid);
        assert_eq!(
            scan(&file),
            Scan {
                records: 1,
                end: file.len(),
                torn: None
            }
        );
        assert_eq!(Records::new(&file[HEADER_LEN..]).collect::<Vec<_>>(), [b"hi"]);
        assert_eq!(file.to_vec(), journal(&[b"hi"]));
    }

    #[test]
    fn scan_accepts_every_intact_record() {
        let file = journal(&PAYLOADS);
        assert_eq!(
            scan(&file),
            Scan {
                records: 3,
                end: file.len(),
                torn: None
            }
        );
        assert_eq!(Records::new(&file[HEADER_LEN..]).collect::<Vec<_>>(), PAYLOADS);
    }

    #[test]
    fn scan_of_a_bare_header_finds_no_records() {
        assert_eq!(
            scan(&FILE_HEADER),
            Scan {
                records: 0,
                end: HEADER_LEN,
                torn: None
            }
        );
    }

    #[test]
    fn scan_stops_before_a_last_record_cut_at_any_offset() {
        let file = journal(&PAYLOADS);
        let good_end = journal(&PAYLOADS[..2]).len();
        for cut in good_end + 1..file.len() {
            let scanned = scan(&file[..cut]);
            assert_eq!(
                scanned,
                Scan {
                    records: 2,
                    end: good_end,
                    torn: Some(Torn::Incomplete)
                },
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn scan_treats_a_flipped_payload_byte_as_torn() {
        let good_end = journal(&PAYLOADS[..2]).len();
        let mut file = journal(&PAYLOADS);
        for at in good_end + RECORD_HEADER_LEN..file.len() {
            file[at] ^= 0x01;
            assert_eq!(
                scan(&file),
                Scan {
                    records: 2,
                    end: good_end,
                    torn: Some(Torn::BadChecksum)
                },
                "flip at {at}"
            );
            file[at] ^= 0x01;
        }
    }

    #[test]
    fn scan_treats_a_len_over_max_as_torn_without_reading_on() {
        let good_end = journal(&PAYLOADS[..1]).len();
        let mut file = journal(&PAYLOADS[..1]);
        file.extend_from_slice(&(MAX_RECORD_LEN + 1).to_le_bytes());
        file.extend_from_slice(&[0; 4]);
        assert_eq!(
            scan(&file),
            Scan {
                records: 1,
                end: good_end,
                torn: Some(Torn::BadLength(MAX_RECORD_LEN + 1))
            }
        );
    }

    #[test]
    fn scan_treats_a_zero_filled_tail_as_torn() {
        let mut file = journal(&PAYLOADS);
        let good_end = file.len();
        file.extend_from_slice(&[0; 4096]);
        assert_eq!(
            scan(&file),
            Scan {
                records: 3,
                end: good_end,
                torn: Some(Torn::BadLength(0))
            }
        );
    }

    #[test]
    fn a_record_of_max_len_is_intact() {
        let payload = vec![0xa5; MAX_RECORD_LEN as usize];
        let file = journal(&[&payload]);
        assert_eq!(
            scan(&file),
            Scan {
                records: 1,
                end: file.len(),
                torn: None
            }
        );
    }

    #[test]
    fn check_header_classifies_files() {
        assert_eq!(check_header(&FILE_HEADER), Header::Valid);
        assert_eq!(check_header(&journal(&PAYLOADS)), Header::Valid);
        assert_eq!(check_header(b""), Header::Missing);
        assert_eq!(check_header(b"VLYJ"), Header::Missing);
        assert_eq!(check_header(b"VLYJRNL"), Header::Missing);
        assert_eq!(check_header(b"VLYJRNL\x02 more"), Header::Version(0x02));
        assert_eq!(check_header(b"ELF"), Header::Foreign);
        assert_eq!(check_header(b"#!/bin/sh\necho hi\n"), Header::Foreign);
    }

    #[test]
    fn records_stops_at_garbage_instead_of_panicking() {
        let mut data = journal(&PAYLOADS)[HEADER_LEN..].to_vec();
        data.extend_from_slice(&[0xff; 3]);
        assert_eq!(Records::new(&data).count(), 3);
    }
}
