//! Raw quinn helpers for the QUIC tests that play a peer themselves.

use std::sync::Arc;

use bytes::BytesMut;
use volley::wire::{Frame, HEADER_LEN, PREFACE_LEN, Preface, Settings, decode_frame};

/// A quinn server configuration from a rustls one.
pub(crate) fn quinn_server(tls: rustls::ServerConfig) -> quinn::ServerConfig {
    quinn::ServerConfig::with_crypto(Arc::new(quinn::crypto::rustls::QuicServerConfig::try_from(tls).unwrap()))
}

/// Server side of a per-call connection's Volley handshake: accepts the client's control stream,
/// reads its preface and Settings, and answers with ours; returns the control stream.
pub(crate) async fn accept_control(connection: &quinn::Connection) -> (quinn::SendStream, quinn::RecvStream) {
    let (mut control, mut control_rx) = connection.accept_bi().await.unwrap();
    let mut preface = [0u8; PREFACE_LEN];
    control_rx.read_exact(&mut preface).await.unwrap();
    assert_eq!(Preface::decode(&preface), Ok(Preface::CURRENT), "the client's preface");
    assert!(matches!(read_frame(&mut control_rx).await, Frame::Settings(_)));
    let mut out = BytesMut::from(&Preface::CURRENT.encode()[..]);
    Frame::Settings(Settings::default()).encode(&mut out);
    control.write_all(&out).await.unwrap();
    (control, control_rx)
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
