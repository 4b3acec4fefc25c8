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

/// A fake server that speaks raw frames: it accepts one connection, completes the handshake and
/// then sends and receives whatever the test decides.
pub struct RawServer {
    pub stream: TcpStream,
    pub inbox: BytesMut,
    preface_seen: bool,
}

impl RawServer {
    /// Accepts one connection on `listener` and sends our preface and settings.
    pub async fn accept(listener: &tokio::net::TcpListener) -> Self {
        let (stream, _) = listener.accept().await.unwrap();
        let mut server = Self {
            stream,
            inbox: BytesMut::new(),
            preface_seen: false,
        };
        let mut hello = BytesMut::new();
        hello.extend_from_slice(&Preface::CURRENT.encode());
        Frame::Settings(Settings::default()).encode(&mut hello);
        server.stream.write_all(&hello).await.unwrap();
        server
    }

    pub async fn send_frame(&mut self, frame: Frame) {
        let mut buf = BytesMut::new();
        frame.encode(&mut buf);
        let _ = self.stream.write_all(&buf).await;
    }

    /// Reads frames from the client (after its preface) until `done` holds for the frames so far,
    /// or panics after 5 s.
    pub async fn frames_until(&mut self, mut done: impl FnMut(&[Frame]) -> bool) -> Vec<Frame> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let mut frames = Vec::new();
        loop {
            if !self.preface_seen && self.inbox.len() >= PREFACE_LEN {
                let _ = self.inbox.split_to(PREFACE_LEN);
                self.preface_seen = true;
            }
            if self.preface_seen {
                while let Some(frame) = decode_frame(&mut self.inbox, u32::MAX).unwrap() {
                    frames.push(frame);
                }
            }
            if done(&frames) {
                return frames;
            }
            match tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.inbox)).await {
                Ok(Ok(0)) | Ok(Err(_)) => panic!("the client closed the connection early; frames so far: {frames:?}"),
                Ok(Ok(_)) => {}
                Err(_) => panic!("the client did not send what was expected within 5 s; frames so far: {frames:?}"),
            }
        }
    }
}
