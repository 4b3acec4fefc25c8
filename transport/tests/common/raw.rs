//! A peer that writes raw bytes, for tests of what a broken or hostile peer can send.

use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use volley::ServerHandle;
use volley::wire::{Frame, PREFACE_LEN, Preface, Settings, decode_frame};

/// A peer that speaks raw bytes.
pub struct RawPeer {
    pub stream: TcpStream,
    pub inbox: BytesMut,
}

impl RawPeer {
    pub async fn connect(server: &ServerHandle) -> Self {
        let volley::net::Address::Tcp(addr) = server.local_addr().clone() else {
            unreachable!()
        };
        Self {
            stream: TcpStream::connect(addr).await.unwrap(),
            inbox: BytesMut::new(),
        }
    }

    /// Connects and completes the handshake.
    pub async fn handshake(server: &ServerHandle) -> Self {
        let mut peer = Self::connect(server).await;
        let mut hello = BytesMut::new();
        hello.extend_from_slice(&Preface::CURRENT.encode());
        Frame::Settings(Settings::default()).encode(&mut hello);
        peer.send(&hello).await;
        peer
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        // The server may already have closed; a failed write is then expected.
        let _ = self.stream.write_all(bytes).await;
    }

    pub async fn send_frame(&mut self, frame: Frame) {
        let mut buf = BytesMut::new();
        frame.encode(&mut buf);
        self.send(&buf).await;
    }

    /// Reads until EOF (or 5 s), returning every frame the server sent after its preface.
    pub async fn frames_until_close(&mut self) -> Vec<Frame> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            match tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.inbox)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(_)) => {}
                Err(_) => panic!("the server did not close the connection within 5 s"),
            }
        }
        let mut inbox = std::mem::take(&mut self.inbox);
        assert_eq!(Preface::decode(inbox[..PREFACE_LEN].try_into().unwrap()), Ok(Preface::CURRENT));
        let _ = inbox.split_to(PREFACE_LEN);
        std::iter::from_fn(|| decode_frame(&mut inbox, u32::MAX).unwrap()).collect()
    }
}
