//! The framed floor: the least work any RPC over a byte stream must do per message, written
//! the way a competent minimal implementation would, to show what is left between the raw
//! socket and a full transport.
//!
//! Per message it does exactly this, and nothing else:
//! - **Framing**: Volley's 16-byte frame header (docs/PROTOCOL.md, section 4: `len` u32 LE,
//!   `kind` u8, `flags` u8, two reserved zero bytes, `call_id` u64 LE). Requests are kind
//!   `0x02`, responses `0x03`. The header is checked (reserved bytes, length bound) before any
//!   buffer is reserved for the payload. No preface, settings, metadata, deadlines, flow
//!   control or status.
//! - **Encoding**: the request and the response are the bench's `Payload` message, prost-encoded
//!   by the sender and prost-decoded by the receiver (the payload is a zero-copy slice of the
//!   read buffer).
//! - **Call table** (client): a `Vec` of slots indexed by the low 32 bits of the call id, with a
//!   generation in the high 32 bits so a stale id is never matched; freed slots are reused
//!   through a free list, so the table stays as large as the most calls ever in flight.
//! - **Batching**: many calls in flight on one connection. Each side reads as much as the socket
//!   holds in one `read`, handles every whole frame in it, and writes everything that is ready in
//!   one `write`.
//!
//! **Server**: one task per connection: read, decode every request in the buffer and encode its
//! response into one output buffer, write that buffer, repeat.
//!
//! **Client**: the same API shape as the other systems' clients: each caller is its own task and
//! awaits its own call (`Client::echo`), so the floor pays what any RPC API with a future per
//! call pays: a lock to submit, a wake-up to complete. A caller takes the connection's lock once
//! to take a slot and encode its request into the shared output buffer, waking the writer only
//! if the buffer was empty; the connection's writer task takes the whole buffer at once (swapping
//! in an empty one, so callers keep appending while it writes) and writes it in one call; the
//! reader task decodes every response of a read outside the lock, then takes the lock once per
//! read to complete them all, and wakes the callers after releasing it. Dropping the last
//! `Client` handle stops the writer, which closes the socket's write side; the server then
//! closes, and the reader ends.

use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use prost::Message;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use volley_benches::Payload;

/// Bytes of the frame header (Volley's `HEADER_LEN`).
const HEADER_LEN: usize = 16;
/// Volley's Request kind byte.
const KIND_REQUEST: u8 = 0x02;
/// Volley's Response kind byte.
const KIND_RESPONSE: u8 = 0x03;
/// Largest payload accepted: the bench's 1 MiB messages fit with room to spare; a larger
/// declared length closes the connection before anything is reserved for it.
const MAX_PAYLOAD: usize = 16 << 20;
/// Free space each read asks for at least (the other systems read 64 KiB at a time too).
const READ_CHUNK: usize = 64 * 1024;

/// Appends one frame (header, then the prost-encoded `message`) to `out`.
fn encode_frame(out: &mut BytesMut, kind: u8, call_id: u64, message: &Payload) {
    let len = message.encoded_len();
    out.reserve(HEADER_LEN + len);
    // `len` is at most the payload size the bench chose, far below u32::MAX.
    out.put_u32_le(len as u32);
    out.put_u8(kind);
    out.put_u8(0);
    out.put_u16_le(0);
    out.put_u64_le(call_id);
    // A `BytesMut` grows as needed (and was reserved above), so encoding cannot run out of room.
    message.encode(out).expect("BytesMut grows");
}

/// Splits the next whole frame off `input`: `Ok(None)` when the frame is not complete yet (after
/// reserving room for the rest of it), `Err` when the header is invalid.
fn decode_frame(input: &mut BytesMut) -> Result<Option<(u8, u64, Bytes)>, &'static str> {
    if input.len() < HEADER_LEN {
        return Ok(None);
    }
    let len = u32::from_le_bytes([input[0], input[1], input[2], input[3]]) as usize;
    if input[6] != 0 || input[7] != 0 {
        return Err("reserved header bytes are not zero");
    }
    if len > MAX_PAYLOAD {
        return Err("frame over the max payload size");
    }
    if input.len() < HEADER_LEN + len {
        input.reserve(HEADER_LEN + len - input.len());
        return Ok(None);
    }
    let kind = input[4];
    let mut id = [0; 8];
    id.copy_from_slice(&input[8..HEADER_LEN]);
    input.advance(HEADER_LEN);
    Ok(Some((kind, u64::from_le_bytes(id), input.split_to(len).freeze())))
}

/// Makes sure a read has at least [`READ_CHUNK`] bytes of room (reusing the buffer's space once
/// everything in it has been consumed and released).
fn reserve_read(input: &mut BytesMut) {
    if input.capacity() - input.len() < READ_CHUNK {
        input.reserve(READ_CHUNK);
    }
}

/// Starts the framed echo server on a loopback port in the current runtime.
pub(crate) async fn echo_server() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            tokio::spawn(serve_connection(stream));
        }
    });
    addr
}

/// Serves one connection until the peer closes it or sends something invalid.
async fn serve_connection(mut stream: impl AsyncRead + AsyncWrite + Unpin) {
    let mut input = BytesMut::with_capacity(READ_CHUNK);
    let mut output = BytesMut::with_capacity(READ_CHUNK);
    loop {
        reserve_read(&mut input);
        match stream.read_buf(&mut input).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        loop {
            match decode_frame(&mut input) {
                Ok(Some((KIND_REQUEST, call_id, payload))) => {
                    let Ok(request) = Payload::decode(payload) else { return };
                    // The echo handler: the response is the request.
                    encode_frame(&mut output, KIND_RESPONSE, call_id, &request);
                }
                Ok(None) => break,
                Ok(Some(_)) | Err(_) => return,
            }
        }
        if !output.is_empty() {
            if stream.write_all(&output).await.is_err() {
                return;
            }
            output.clear();
        }
    }
}

/// One call's slot in the client's table.
#[derive(Debug)]
enum Slot {
    Free,
    /// Sent; the caller's waker once it has polled.
    Waiting(Option<Waker>),
    Done(Payload),
}

#[derive(Debug)]
struct Entry {
    generation: u32,
    slot: Slot,
}

#[derive(Debug)]
struct State {
    /// Encoded requests waiting for the writer.
    output: BytesMut,
    /// The call table, indexed by the low 32 bits of the call id.
    calls: Vec<Entry>,
    /// Indices of free entries.
    free: Vec<u32>,
    /// The connection ended: calls fail, the writer stops.
    closed: bool,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// Wakes the writer when the output buffer goes from empty to non-empty, or on close.
    writer: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // No code panics while holding the lock, so it is never poisoned; recover anyway.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Marks the connection closed and wakes every waiting caller and the writer.
    fn close(&self) {
        let wakers: Vec<Waker> = {
            let mut state = self.lock();
            state.closed = true;
            state
                .calls
                .iter_mut()
                .filter_map(|entry| match &mut entry.slot {
                    Slot::Waiting(waker) => waker.take(),
                    _ => None,
                })
                .collect()
        };
        wakers.into_iter().for_each(Waker::wake);
        self.writer.notify_one();
    }
}

/// The handle the last clone of which closes the connection when dropped.
#[derive(Debug)]
struct Handle(Arc<Shared>);

impl Drop for Handle {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// A framed-floor client: one connection, cheap to clone, any number of calls in flight.
#[derive(Clone, Debug)]
pub(crate) struct Client {
    handle: Arc<Handle>,
}

impl Client {
    /// Connects to `addr` (TCP_NODELAY on) and starts the connection's reader and writer tasks.
    pub(crate) async fn connect(addr: std::net::SocketAddr) -> std::io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (reader, writer) = stream.into_split();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                output: BytesMut::with_capacity(READ_CHUNK),
                calls: Vec::new(),
                free: Vec::new(),
                closed: false,
            }),
            writer: Notify::new(),
        });
        tokio::spawn(read_loop(shared.clone(), reader));
        tokio::spawn(write_loop(shared.clone(), writer));
        Ok(Self {
            handle: Arc::new(Handle(shared)),
        })
    }

    /// One echo call; `None` when the connection ended first.
    pub(crate) async fn echo(&self, request: &Payload) -> Option<Payload> {
        let shared = &self.handle.0;
        let (index, wake_writer) = {
            let mut state = shared.lock();
            if state.closed {
                return None;
            }
            let index = match state.free.pop() {
                Some(index) => index,
                None => {
                    state.calls.push(Entry {
                        generation: 0,
                        slot: Slot::Free,
                    });
                    // The table never holds more entries than calls in flight at once.
                    (state.calls.len() - 1) as u32
                }
            };
            let entry = &mut state.calls[index as usize];
            entry.generation = entry.generation.wrapping_add(1);
            entry.slot = Slot::Waiting(None);
            let call_id = (u64::from(entry.generation) << 32) | u64::from(index);
            let wake_writer = state.output.is_empty();
            encode_frame(&mut state.output, KIND_REQUEST, call_id, request);
            (index as usize, wake_writer)
        };
        if wake_writer {
            shared.writer.notify_one();
        }
        // The bench never drops a call before it completes, so there is no cancellation path:
        // the slot is freed by the poll that takes the response.
        poll_fn(|cx| {
            let mut guard = shared.lock();
            let state = &mut *guard;
            let closed = state.closed;
            let entry = &mut state.calls[index];
            match &mut entry.slot {
                Slot::Done(_) => {
                    let Slot::Done(response) = std::mem::replace(&mut entry.slot, Slot::Free) else {
                        unreachable!("matched Done above")
                    };
                    state.free.push(index as u32);
                    Poll::Ready(Some(response))
                }
                Slot::Waiting(_) if closed => Poll::Ready(None),
                Slot::Waiting(waker) => {
                    match waker {
                        Some(waker) if waker.will_wake(cx.waker()) => {}
                        _ => *waker = Some(cx.waker().clone()),
                    }
                    Poll::Pending
                }
                Slot::Free => Poll::Ready(None),
            }
        })
        .await
    }
}

/// Writes the whole output buffer each time it is woken; stops on close.
async fn write_loop(shared: Arc<Shared>, mut writer: tokio::net::tcp::OwnedWriteHalf) {
    let mut spare = BytesMut::with_capacity(READ_CHUNK);
    loop {
        shared.writer.notified().await;
        // Let callers that are ready to run on this worker append theirs first, so one write
        // carries them all (on a multi-thread runtime the writer is otherwise woken by the first
        // caller and would write its request alone).
        tokio::task::yield_now().await;
        let mut batch = {
            let mut state = shared.lock();
            if state.closed {
                // Dropping the write half shuts the socket's write side down.
                return;
            }
            std::mem::replace(&mut state.output, spare)
        };
        if !batch.is_empty() && writer.write_all(&batch).await.is_err() {
            shared.close();
            return;
        }
        batch.clear();
        spare = batch;
    }
}

/// Reads responses, decodes each one outside the lock, completes a read's worth under one lock
/// and wakes their callers after releasing it.
async fn read_loop(shared: Arc<Shared>, mut reader: tokio::net::tcp::OwnedReadHalf) {
    let mut input = BytesMut::with_capacity(READ_CHUNK);
    let mut responses: Vec<(u64, Payload)> = Vec::new();
    let mut wakers: Vec<Waker> = Vec::new();
    'read: loop {
        reserve_read(&mut input);
        match reader.read_buf(&mut input).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        loop {
            match decode_frame(&mut input) {
                Ok(Some((KIND_RESPONSE, call_id, payload))) => match Payload::decode(payload) {
                    Ok(response) => responses.push((call_id, response)),
                    Err(_) => break 'read,
                },
                Ok(None) => break,
                Ok(Some(_)) | Err(_) => break 'read,
            }
        }
        {
            let mut state = shared.lock();
            for (call_id, response) in responses.drain(..) {
                let Some(entry) = state.calls.get_mut((call_id & u64::from(u32::MAX)) as usize) else {
                    continue;
                };
                if u64::from(entry.generation) != call_id >> 32 {
                    continue;
                }
                if let Slot::Waiting(waker) = &mut entry.slot {
                    wakers.extend(waker.take());
                    entry.slot = Slot::Done(response);
                }
            }
        }
        wakers.drain(..).for_each(Waker::wake);
    }
    shared.close();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_decodes_to_what_was_encoded() {
        let message = Payload {
            data: Bytes::from_static(b"hello"),
        };
        let mut buf = BytesMut::new();
        encode_frame(&mut buf, KIND_REQUEST, 0x0000_0007_0000_0003, &message);
        assert_eq!(buf.len(), HEADER_LEN + message.encoded_len());
        let mut partial = BytesMut::from(&buf[..HEADER_LEN + 1]);
        assert_eq!(decode_frame(&mut partial), Ok(None));
        let (kind, call_id, payload) = decode_frame(&mut buf).expect("valid").expect("whole");
        assert_eq!((kind, call_id), (KIND_REQUEST, 0x0000_0007_0000_0003));
        assert_eq!(Payload::decode(payload).expect("prost"), message);
        assert!(buf.is_empty());
    }

    #[test]
    fn decode_rejects_nonzero_reserved_bytes_and_oversize_lengths() {
        let mut header = BytesMut::from(&[0u8; HEADER_LEN][..]);
        header[6] = 1;
        assert!(decode_frame(&mut header).is_err());
        let mut header = BytesMut::from(&[0u8; HEADER_LEN][..]);
        header[..4].copy_from_slice(&(MAX_PAYLOAD as u32 + 1).to_le_bytes());
        assert!(decode_frame(&mut header).is_err());
    }

    #[tokio::test]
    async fn calls_pipelined_on_one_connection_get_their_own_answers() {
        let client = Client::connect(echo_server().await).await.expect("connect");
        let calls = (0..100u32).map(|i| {
            let client = client.clone();
            async move {
                let request = Payload {
                    data: Bytes::from(i.to_le_bytes().to_vec()),
                };
                assert_eq!(client.echo(&request).await, Some(request));
            }
        });
        volley_benches::join_all(calls).await;
    }
}
