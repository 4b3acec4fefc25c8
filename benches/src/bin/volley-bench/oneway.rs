//! The raw floor of the one-way scenarios: the client writes messages of a 16-byte header (the
//! payload length in its first 4 bytes, little-endian, as in Volley's frame header) and the
//! payload, with at most `in_flight` unacknowledged; the server reads them and answers each whole
//! message with a 16-byte acknowledgement, all acknowledgements of one read in one write.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use hdrhistogram::Histogram;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Semaphore, oneshot};

use crate::scenarios::{Window, histogram, nanos};

/// Bytes of a message header and of an acknowledgement.
const HEADER_LEN: usize = 16;
/// The sink's read size: a bulk receiver reads in large steps.
const SINK_READ: usize = 256 * 1024;

/// Serves one sink connection until the peer closes it.
pub(crate) async fn sink_connection(mut stream: impl AsyncRead + AsyncWrite + Unpin) {
    let mut buf = vec![0u8; SINK_READ];
    let mut header = [0u8; HEADER_LEN];
    let mut header_got = 0;
    let mut body_left = 0usize;
    let mut acks = Vec::new();
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let mut at = 0;
        while at < n {
            if body_left > 0 {
                let take = body_left.min(n - at);
                body_left -= take;
                at += take;
                if body_left == 0 {
                    acks.extend_from_slice(&[0; HEADER_LEN]);
                }
                continue;
            }
            let take = (HEADER_LEN - header_got).min(n - at);
            header[header_got..header_got + take].copy_from_slice(&buf[at..at + take]);
            header_got += take;
            at += take;
            if header_got == HEADER_LEN {
                header_got = 0;
                body_left = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
                if body_left == 0 {
                    acks.extend_from_slice(&[0; HEADER_LEN]);
                }
            }
        }
        if !acks.is_empty() {
            if stream.write_all(&acks).await.is_err() {
                return;
            }
            acks.clear();
        }
    }
}

/// Starts a TCP sink server on a loopback port in the current runtime.
pub(crate) async fn tcp_sink_server() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            tokio::spawn(sink_connection(stream));
        }
    });
    addr
}

/// Starts a Unix-socket sink server at `path` in the current runtime.
pub(crate) fn unix_sink_server(path: &std::path::Path) {
    let listener = tokio::net::UnixListener::bind(path).expect("bind unix");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(sink_connection(stream));
        }
    });
}

/// Sends messages of `size` payload bytes until the window ends, at most `in_flight` of them
/// unacknowledged; records each message's time from the start of its write to its
/// acknowledgement. Returns the messages acknowledged that started in the measured window.
pub(crate) async fn client(
    stream: impl AsyncRead + AsyncWrite + Send + 'static,
    size: usize,
    in_flight: usize,
    window: Window,
) -> (u64, Histogram<u64>) {
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mut message = vec![0x5a_u8; HEADER_LEN + size];
    message[..4].copy_from_slice(&u32::try_from(size).expect("message under 4 GiB").to_le_bytes());
    message[4..HEADER_LEN].fill(0);
    let started: Arc<Mutex<VecDeque<Instant>>> = Arc::default();
    let permits = Arc::new(Semaphore::new(in_flight));
    let (sent_tx, mut sent_rx) = oneshot::channel::<u64>();
    let write = {
        let (started, permits) = (started.clone(), permits.clone());
        tokio::spawn(async move {
            let mut sent = 0u64;
            loop {
                permits.acquire().await.expect("semaphore").forget();
                let now = Instant::now();
                if now >= window.end {
                    break;
                }
                started.lock().expect("start times").push_back(now);
                writer.write_all(&message).await.expect("write");
                sent += 1;
            }
            let _ = sent_tx.send(sent);
            writer
        })
    };
    let mut hist = histogram();
    let mut calls = 0;
    let mut acked = 0u64;
    let mut total = None;
    let mut pending = 0;
    let mut buf = vec![0u8; 64 * HEADER_LEN];
    while total != Some(acked) {
        tokio::select! {
            read = reader.read(&mut buf) => {
                let n = read.expect("read");
                assert!(n > 0, "sink server closed");
                pending += n;
                while pending >= HEADER_LEN {
                    pending -= HEADER_LEN;
                    acked += 1;
                    let start = started.lock().expect("start times").pop_front().expect("an ack answers a message");
                    if start >= window.measure_from {
                        hist.record(nanos(start.elapsed())).expect("record");
                        calls += 1;
                    }
                    permits.add_permits(1);
                }
            }
            sent = &mut sent_rx, if total.is_none() => total = Some(sent.expect("writer reports its count")),
        }
    }
    drop(write.await.expect("writer"));
    (calls, hist)
}
