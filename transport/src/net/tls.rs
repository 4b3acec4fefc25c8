//! TLS over TCP in the shared-socket model of [`super::Stream`] (feature `tls`).
//!
//! A plaintext connection's reader, writer and callers share the socket through `&self`
//! readiness and non-blocking `try_read`/`try_write_vectored`. A TLS connection keeps that model:
//! the rustls state sits behind a small mutex that each side holds only to encrypt or decrypt in
//! memory, never across a syscall.
//!
//! - **Writes.** The caller that writes (only one at a time: the write queue hands a batch to one
//!   writer, see `driver/write_queue.rs`) encrypts its whole `writev` batch under the rustls lock
//!   (up to [`MAX_PLAINTEXT_PER_WRITE`]: many frames per 16 KiB record, many records per batch),
//!   copies the records into a buffer of its own, releases the lock and writes the records with
//!   one `write`. A write the socket takes only in part keeps the rest of the records and reports
//!   `WouldBlock`; the caller offers the same bytes again (the write queue's hand-off keeps the
//!   offset), and the call that sends the last record reports the plaintext bytes as written.
//! - **Reads.** The reader reads ciphertext with one `recv` of up to [`READ_CHUNK`] into a buffer
//!   of its own, then feeds it to rustls and takes the plaintext into the caller's buffer under the
//!   lock. Plaintext or ciphertext left over (the caller's buffer was full) makes the stream
//!   report itself readable at once, so nothing waits for the socket while bytes are here.
//!
//! Why not tokio-rustls' `TlsStream` after the handshake: it needs `&mut self` for IO, so the
//! reader and the writer would need a split (a lock held across every poll) and callers could no
//! longer write their frames themselves, which is what makes a lone call cost no task wake-up.
//! Why not a lock held across the syscalls (rustls writing straight to the socket): the reader
//! would wait for the writer's `writev` and the reverse; copying the records out costs one
//! `memcpy` of the ciphertext, small next to encrypting it.

use std::io::{self, BufRead, IoSlice, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use bytes::BytesMut;
use tokio::io::Interest;
use tokio::net::TcpStream;

use crate::stats::Stats;
use crate::sync::{Mutex, lock};
use crate::tls::PeerIdentity;

/// Plaintext encrypted per write at most (128 KiB, eight 16 KiB records): large enough that a
/// batch of small frames goes out in one write and a large message in few, small enough that the
/// writer's record buffer stays bounded.
pub(crate) const MAX_PLAINTEXT_PER_WRITE: usize = 128 * 1024;

/// Ciphertext read per `recv` at most (64 KiB), the size of a pooled read buffer: rustls on its
/// own reads 4 KiB at a time, which would cost sixteen syscalls where one does.
pub(crate) const READ_CHUNK: usize = 64 * 1024;

/// Largest plaintext of one TLS record (RFC 8446 section 5.1).
const MAX_RECORD_PLAINTEXT: usize = 16 * 1024;

/// The last TLS error a connection saw, shared with whoever opened it (a client's `connect`
/// turns it into a typed [`crate::tls::TlsError`]).
pub(crate) type TlsFailure = Arc<Mutex<Option<rustls::Error>>>;

/// A TCP connection after its TLS handshake, as [`super::Stream::Tls`] holds it. Volley makes one
/// when a handshake succeeds (`ServerBuilder::tls`, `ClientBuilder::tls`); it has no public
/// constructor.
pub struct TlsStream {
    tcp: TcpStream,
    /// rustls' record state. Held only to encrypt or decrypt in memory.
    conn: Mutex<rustls::Connection>,
    /// Ciphertext read but not yet given to rustls. Only the reader (then the lingering close)
    /// locks it.
    rx: Mutex<Received>,
    /// Records encrypted and not yet written. Only the one writer at a time locks it.
    tx: Mutex<Sending>,
    /// Bytes wait in `rx` or in rustls: a read can make progress without the socket.
    buffered: AtomicBool,
    peer: Option<Arc<PeerIdentity>>,
    /// The connection's counters, for the records written.
    stats: OnceLock<Arc<Stats>>,
    failure: TlsFailure,
}

impl std::fmt::Debug for TlsStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsStream")
            .field("tcp", &self.tcp)
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Default)]
struct Received {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

#[derive(Debug, Default)]
struct Sending {
    records: Vec<u8>,
    sent: usize,
    /// Plaintext bytes the records carry: reported once the last of them is written.
    plaintext: usize,
}

impl TlsStream {
    /// Wraps a connection whose handshake is complete. Bytes rustls read past the handshake (the
    /// peer's preface and settings often come with its last handshake flight) are delivered by
    /// the first read.
    pub(crate) fn new(tcp: TcpStream, mut conn: rustls::Connection, peer: Option<Arc<PeerIdentity>>) -> Self {
        conn.set_buffer_limit(Some(MAX_PLAINTEXT_PER_WRITE));
        Self {
            tcp,
            conn: Mutex::new(conn),
            rx: Mutex::new(Received::default()),
            tx: Mutex::new(Sending::default()),
            buffered: AtomicBool::new(true),
            peer,
            stats: OnceLock::new(),
            failure: TlsFailure::default(),
        }
    }

    /// The peer's verified certificate identity, if it presented a certificate.
    pub(crate) fn peer_identity(&self) -> Option<&Arc<PeerIdentity>> {
        self.peer.as_ref()
    }

    pub(crate) fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    /// Where this connection's TLS errors are recorded.
    pub(crate) fn failure(&self) -> TlsFailure {
        self.failure.clone()
    }

    /// Counts the records written into `stats` from now on.
    pub(crate) fn attach_stats(&self, stats: &Arc<Stats>) {
        let _ = self.stats.set(stats.clone());
    }

    pub(crate) fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.buffered.load(Ordering::Acquire) {
            return Poll::Ready(Ok(()));
        }
        self.tcp.poll_read_ready(cx)
    }

    /// Reads plaintext into `buf`, or `WouldBlock`. Bytes already here come first; otherwise one
    /// `recv` of ciphertext, decrypted at once. A short `recv` clears the socket's readiness
    /// (as plaintext reads do, see `Stream::try_read_buf`).
    pub(crate) fn try_read_buf(&self, buf: &mut BytesMut) -> io::Result<usize> {
        let mut rx = lock(&self.rx);
        if self.buffered.load(Ordering::Acquire) {
            match self.decrypt(&mut rx, buf)? {
                Decrypted::Plaintext(0) => {}
                Decrypted::Plaintext(n) => return Ok(n),
                Decrypted::Closed => return Ok(0),
            }
        }
        let rx = &mut *rx;
        if rx.start > 0 {
            // Ciphertext left over (rare: the caller's buffer filled up) moves to the front.
            rx.buf.copy_within(rx.start..rx.end, 0);
            rx.end -= rx.start;
            rx.start = 0;
        }
        if rx.buf.len() < READ_CHUNK {
            // Once per connection, at its first read after the handshake.
            rx.buf.resize(READ_CHUNK, 0);
        }
        let space = rx.buf.len() - rx.end;
        if space == 0 {
            // rustls takes every byte of a well-formed stream (it errors on anything else), so a
            // full buffer it left untouched is a peer to drop, not a reason to wait.
            return Err(io::Error::new(io::ErrorKind::InvalidData, "TLS: ciphertext rustls does not take"));
        }
        let mut short_read = None;
        let target = &mut rx.buf[rx.end..];
        let result = self.tcp.try_io(Interest::READABLE, || {
            let n = self.tcp.try_read(target)?;
            if n > 0 && n < space {
                short_read = Some(n);
                return Err(io::ErrorKind::WouldBlock.into());
            }
            Ok(n)
        });
        let n = match (result, short_read) {
            (Err(err), Some(n)) if err.kind() == io::ErrorKind::WouldBlock => n,
            (result, _) => result?,
        };
        if n == 0 {
            return Ok(0);
        }
        rx.end += n;
        match self.decrypt(rx, buf)? {
            Decrypted::Plaintext(0) => Err(io::ErrorKind::WouldBlock.into()),
            Decrypted::Plaintext(n) => Ok(n),
            Decrypted::Closed => Ok(0),
        }
    }

    /// Feeds the ciphertext in `rx` to rustls and moves plaintext into `buf` until one runs out.
    fn decrypt(&self, rx: &mut Received, buf: &mut BytesMut) -> io::Result<Decrypted> {
        let mut conn = lock(&self.conn);
        let mut produced = 0;
        let mut full = false;
        let outcome = loop {
            let room = buf.capacity() - buf.len();
            let mut reader = conn.reader();
            match reader.fill_buf() {
                Ok([]) => break Decrypted::Closed,
                Ok(plaintext) => {
                    let n = plaintext.len().min(room);
                    buf.extend_from_slice(&plaintext[..n]);
                    reader.consume(n);
                    produced += n;
                    if n == 0 {
                        full = true;
                        break Decrypted::Plaintext(produced);
                    }
                    continue;
                }
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                Err(err) => return Err(err),
            }
            if rx.start == rx.end {
                break Decrypted::Plaintext(produced);
            }
            let n = conn.read_tls(&mut &rx.buf[rx.start..rx.end])?;
            if n == 0 {
                // Never with bytes to give (rustls reads or errors); no loop may spin on it.
                return Err(io::Error::new(io::ErrorKind::InvalidData, "TLS: rustls took no ciphertext"));
            }
            rx.start += n;
            if let Err(err) = conn.process_new_packets() {
                *lock(&self.failure) = Some(err.clone());
                // rustls queued an alert naming the error: send it if no write is half done.
                let mut alert = Vec::new();
                while conn.wants_write() && conn.write_tls(&mut alert).is_ok_and(|n| n > 0) {}
                drop(conn);
                if let Ok(tx) = self.tx.try_lock()
                    && tx.sent == tx.records.len()
                {
                    let _ = self.tcp.try_write(&alert);
                }
                return Err(io::Error::new(io::ErrorKind::InvalidData, crate::tls::TlsError::from_rustls(err)));
            }
        };
        self.buffered.store(full || rx.start < rx.end, Ordering::Release);
        Ok(outcome)
    }

    /// Encrypts `bufs` (up to [`MAX_PLAINTEXT_PER_WRITE`]) and writes the records with one
    /// `write`; returns the plaintext bytes written once all their records are out, `WouldBlock`
    /// while some wait for the socket (offer the same bytes again).
    pub(crate) fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let mut tx = lock(&self.tx);
        if tx.sent == tx.records.len() {
            tx.records.clear();
            tx.sent = 0;
            let mut conn = lock(&self.conn);
            let plaintext = match bufs {
                [] => 0,
                [one] => conn.writer().write(one)?,
                _ => conn.writer().write_vectored(bufs)?,
            };
            while conn.wants_write() {
                if conn.write_tls(&mut tx.records)? == 0 {
                    break;
                }
            }
            drop(conn);
            tx.plaintext = plaintext;
            if let Some(stats) = self.stats.get() {
                Stats::add(&stats.tls_records_out, plaintext.div_ceil(MAX_RECORD_PLAINTEXT) as u64);
            }
        }
        if tx.records.is_empty() {
            return Ok(std::mem::take(&mut tx.plaintext));
        }
        let tx = &mut *tx;
        let n = self.tcp.try_write(&tx.records[tx.sent..])?;
        if n == 0 {
            return Ok(0);
        }
        tx.sent += n;
        if tx.sent < tx.records.len() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        tx.records.clear();
        tx.sent = 0;
        Ok(std::mem::take(&mut tx.plaintext))
    }

    /// Sends close_notify (if no write is half done), best effort and without waiting.
    pub(crate) fn close_notify(&self) {
        let Ok(mut tx) = self.tx.try_lock() else { return };
        if tx.sent != tx.records.len() {
            return;
        }
        tx.records.clear();
        tx.sent = 0;
        {
            let mut conn = lock(&self.conn);
            conn.send_close_notify();
            while conn.wants_write() && conn.write_tls(&mut tx.records).is_ok_and(|n| n > 0) {}
        }
        let _ = self.tcp.try_write(&tx.records);
        tx.records.clear();
    }
}

/// What one pass of [`TlsStream::decrypt`] delivered.
enum Decrypted {
    Plaintext(usize),
    /// The peer sent close_notify: end of stream.
    Closed,
}
