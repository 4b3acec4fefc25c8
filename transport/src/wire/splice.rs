//! Encoding a large message without copying its large `bytes` fields: a `BufMut` that takes a
//! `Bytes` field prost hands it by reference, as a chunk of a [`FrameBatch`], and copies
//! everything else.
//!
//! prost writes a `bytes::Bytes` field with `BufMut::put(field.clone())`, and `Buf::copy_to_bytes`
//! of a `Bytes` is a reference-count increment, so a 1 MiB `Bytes` field reaches the socket's
//! `writev` without being copied in user space (it was copied once into the message's encoding
//! before: 12 % of the CPU time of `volley-bench --scenarios oneway_1MiB_unix`, `perf record`).
//! Fields of other types (`Vec<u8>`, strings, nested messages) are copied as before.

use bytes::buf::UninitSlice;
use bytes::{Buf, BufMut, BytesMut};

use super::FrameBatch;
use super::encode::INLINE_PAYLOAD_MAX;

/// A message's encoding: inline bytes with large `Bytes` fields spliced in by reference.
#[derive(Debug)]
pub(crate) struct SplicingWriter {
    payload: FrameBatch,
}

impl SplicingWriter {
    /// A writer whose inline buffer holds `inline_len` bytes ([`inline_len`] of the message).
    pub(crate) fn with_capacity(inline_len: usize) -> Self {
        Self {
            payload: FrameBatch::with_buf(BytesMut::with_capacity(inline_len)),
        }
    }

    /// The encoded message: inline runs and spliced chunks, in order.
    pub(crate) fn into_payload(self) -> FrameBatch {
        self.payload
    }
}

// SAFETY: every method delegates to `BytesMut`'s own `BufMut` implementation on the same buffer
// (`put` only through safe calls), so the writer upholds exactly the guarantees `BytesMut` does.
#[allow(unsafe_code)]
unsafe impl BufMut for SplicingWriter {
    fn remaining_mut(&self) -> usize {
        self.payload.buf.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: the caller's contract for `advance_mut` is the one `BytesMut` needs: `cnt`
        // bytes of the chunk `chunk_mut` returned (the buffer's own) are initialised.
        unsafe { self.payload.buf.advance_mut(cnt) }
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.payload.buf.chunk_mut()
    }

    fn put<T: Buf>(&mut self, mut src: T)
    where
        Self: Sized,
    {
        if src.remaining() > INLINE_PAYLOAD_MAX {
            let chunk = src.copy_to_bytes(src.remaining());
            self.payload.push_chunk(chunk);
        } else {
            self.payload.buf.put(src);
        }
    }
}

/// The bytes of `message`'s encoding a [`SplicingWriter`] copies inline (everything but its
/// spliced `Bytes` fields), counted by encoding it into a writer that keeps nothing. Sizing the
/// inline buffer by the whole encoded length instead allocated (and freed) 1 MiB per call of a
/// 1 MiB `Bytes` field that was never written to (`perf probe` on `malloc` in
/// `volley-bench --scenarios oneway_1MiB_unix`); a pass over the fields costs far less.
pub(crate) fn inline_len<M: prost::Message>(message: &M) -> usize {
    let mut counter = InlineCounter {
        inline: 0,
        scratch: [0; 64],
    };
    message.encode_raw(&mut counter);
    counter.inline
}

/// A `BufMut` that counts what a [`SplicingWriter`] would copy, and stores nothing: bytes
/// written through `chunk_mut` land in a small scratch array and are counted by `advance_mut`.
#[derive(Debug)]
struct InlineCounter {
    inline: usize,
    scratch: [u8; 64],
}

// SAFETY: `chunk_mut` hands out the writer's own scratch array, whose every byte is initialised
// memory, and `advance_mut` moves no pointer (the same scratch is handed out again); the bytes
// are discarded, which `BufMut` allows since a writer need not keep what it is given.
#[allow(unsafe_code)]
unsafe impl BufMut for InlineCounter {
    fn remaining_mut(&self) -> usize {
        isize::MAX as usize - self.inline
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        self.inline += cnt;
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        UninitSlice::new(&mut self.scratch)
    }

    fn put_slice(&mut self, src: &[u8]) {
        self.inline += src.len();
    }

    fn put<T: Buf>(&mut self, mut src: T)
    where
        Self: Sized,
    {
        let len = src.remaining();
        if len <= INLINE_PAYLOAD_MAX {
            self.inline += len;
        }
        src.advance(len);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use bytes::Bytes;
    use prost::Message;

    use super::*;

    #[derive(Clone, PartialEq, prost::Message)]
    struct Blob {
        #[prost(bytes = "bytes", tag = "1")]
        data: Bytes,
        #[prost(string, tag = "2")]
        name: String,
    }

    fn flatten(payload: &FrameBatch) -> Vec<u8> {
        payload.pieces().flat_map(|piece| piece.iter().copied()).collect()
    }

    #[test]
    fn a_large_bytes_field_is_spliced_by_reference_and_the_encoding_is_unchanged() {
        let data = Bytes::from(vec![9u8; 1 << 20]);
        let blob = Blob {
            data: data.clone(),
            name: "order".into(),
        };
        let mut writer = SplicingWriter::with_capacity(inline_len(&blob));
        blob.encode_raw(&mut writer);
        let payload = writer.into_payload();
        assert_eq!(flatten(&payload), blob.encode_to_vec());
        assert_eq!(payload.len(), blob.encoded_len());
        assert_eq!(inline_len(&blob), payload.buf.len(), "the count is what was copied");
        assert!(payload.buf.capacity() < 1024, "no buffer sized for the spliced field");
        assert!(payload.buf.len() < 64, "only tags, lengths and the name are copied");
        let spliced = payload.pieces().find(|piece| piece.len() == data.len()).unwrap();
        assert_eq!(spliced.as_ptr(), data.as_ptr(), "the field's own bytes, not a copy");
    }

    #[test]
    fn small_bytes_fields_are_copied_inline() {
        let blob = Blob {
            data: Bytes::from_static(b"tiny"),
            name: "x".repeat(40_000),
        };
        let mut writer = SplicingWriter::with_capacity(inline_len(&blob));
        blob.encode_raw(&mut writer);
        let payload = writer.into_payload();
        assert_eq!(payload.buf.len(), blob.encoded_len());
        assert_eq!(inline_len(&blob), blob.encoded_len(), "everything is copied, and counted");
        assert_eq!(flatten(&payload), blob.encode_to_vec());
    }
}
