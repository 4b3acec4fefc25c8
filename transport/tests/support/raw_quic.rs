//! Raw quinn helpers for the QUIC tests that play a peer themselves.

use std::sync::Arc;

use bytes::BytesMut;
use volley::wire::{Frame, HEADER_LEN, decode_frame};

/// A quinn server configuration from a rustls one.
pub(crate) fn quinn_server(tls: rustls::ServerConfig) -> quinn::ServerConfig {
    quinn::ServerConfig::with_crypto(Arc::new(quinn::crypto::rustls::QuicServerConfig::try_from(tls).unwrap()))
}

/// Reads one whole frame from `recv`.
pub(crate) async fn read_frame(recv: &mut quinn::RecvStream) -> Frame {
    let mut header = [0u8; HEADER_LEN];
    recv.read_exact(&mut header).await.unwrap();
    let len = u32::from_le_bytes(header[..4].try_into().unwrap()) as usize;
    let mut bytes = BytesMut::from(&header[..]);
    bytes.resize(HEADER_LEN + len, 0);
    recv.read_exact(&mut bytes[HEADER_LEN..]).await.unwrap();
    decode_frame(&mut bytes, u32::MAX).unwrap().unwrap()
}
