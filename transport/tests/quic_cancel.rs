//! Cancellation under the per-call QUIC mapping (ALPN `volley-quic/2`, docs/PROTOCOL.md section
//! 13): a cancelled call resets its stream (`RESET_STREAM`) and stops reading it
//! (`STOP_SENDING`), both with `STREAM_CANCELLED`; a server reads the reset as the call's Cancel
//! and resets its own half; the streams come back as QUIC stream credit and other calls go on.
//! Each side is checked against a raw quinn peer, and both together with a small stream limit.

mod common;
#[path = "support/pki.rs"]
#[allow(dead_code)]
mod pki;
#[path = "support/raw_quic.rs"]
mod raw_quic;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use pki::Ca;
use raw_quic::{accept_control, quinn_server, read_frame};
use volley::quic::{ALPN_VOLLEY_QUIC, STREAM_CANCELLED};
use volley::wire::{CallHead, CallId, Frame, PREFACE_LEN, Preface, Settings};
use volley::{CallOptions, Client, Code, MethodId, Request, Server, ServerHandle, Status, Streaming};

const ECHO: &str = "/test.Cancel/Echo";
const UPLOAD: &str = "/test.Cancel/Upload";

/// A Volley QUIC server with an echo and a client-streaming method that reads until the end;
/// `uploads` counts the uploads whose handler started.
async fn serve(builder: volley::server::ServerBuilder, ca: &Ca, uploads: Arc<AtomicU64>) -> (ServerHandle, SocketAddr) {
    let builder = builder
        .unary(ECHO, |request: Request<Bytes>| async move { Ok::<_, Status>(request.into_inner()) })
        .client_streaming(UPLOAD, move |mut request: Request<Streaming<Bytes>>| {
            uploads.fetch_add(1, Ordering::SeqCst);
            async move {
                let mut total = 0u64;
                while let Some(message) = request.message().await? {
                    total += message.len() as u64;
                }
                Ok::<_, Status>(total)
            }
        });
    common::quic::serve_quic(builder, ca.server_tls()).await
}

/// A raw quinn client connection offering the per-call mapping, with its control stream open
/// and the Volley handshake done.
async fn raw_client(addr: SocketAddr, ca: &Ca) -> (quinn::Endpoint, quinn::Connection, quinn::SendStream) {
    let (endpoint, connection) = common::quic::raw_quic_connection(addr, ca.raw_client_config(&[ALPN_VOLLEY_QUIC]))
        .await
        .unwrap();
    let (mut control, mut control_rx) = connection.open_bi().await.unwrap();
    let mut out = BytesMut::from(&Preface::CURRENT.encode()[..]);
    Frame::Settings(Settings::default()).encode(&mut out);
    control.write_all(&out).await.unwrap();
    let mut preface = [0u8; PREFACE_LEN];
    control_rx.read_exact(&mut preface).await.unwrap();
    assert!(matches!(read_frame(&mut control_rx).await, Frame::Settings(_)));
    (endpoint, connection, control)
}

fn request(id: u64, method: &str, message: Option<&[u8]>, end_stream: bool) -> BytesMut {
    let message = message.map(|payload| {
        let mut encoded = BytesMut::new();
        prost::Message::encode(&Bytes::copy_from_slice(payload), &mut encoded).unwrap();
        encoded.freeze()
    });
    let mut out = BytesMut::new();
    Frame::Request {
        call_id: CallId(id),
        head: CallHead {
            method_id: MethodId::from_name(method),
            ..CallHead::default()
        },
        message,
        end_stream,
    }
    .encode(&mut out);
    out
}

/// The error code `recv` ends with: `Some(code)` for a reset, `None` for a FIN.
/// A Volley client to `addr` on the per-call mapping.
async fn per_call_client(addr: SocketAddr, ca: &Ca) -> Client {
    common::quic::quic_client(addr, ca.client_tls(), volley::quic::QuicMapping::PerCall).await
}

async fn end_of(recv: &mut quinn::RecvStream) -> Option<quinn::VarInt> {
    let end = tokio::time::timeout(Duration::from_secs(5), recv.read_to_end(1 << 20))
        .await
        .expect("the stream ended within 5 s");
    match end {
        Ok(_) => None,
        Err(quinn::ReadToEndError::Read(quinn::ReadError::Reset(code))) => Some(code),
        Err(other) => panic!("expected a reset or a FIN, got {other:?}"),
    }
}

#[tokio::test]
async fn a_cancelled_call_resets_its_stream_and_stops_reading_it_with_stream_cancelled() {
    let ca = Ca::new("quic CA");
    let endpoint = quinn::Endpoint::server(quinn_server(ca.raw_server_config(ALPN_VOLLEY_QUIC)), "127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = endpoint.local_addr().unwrap();
    let (request_read, request_seen) = tokio::sync::oneshot::channel();
    let server = tokio::spawn(async move {
        let connection = endpoint.accept().await.unwrap().await.unwrap();
        let (control, _control_rx) = accept_control(&connection).await;
        let (tx, mut rx) = connection.accept_bi().await.unwrap();
        let Frame::Request { call_id, .. } = read_frame(&mut rx).await else {
            panic!("a call stream starts with its Request")
        };
        request_read.send(()).unwrap();
        // The client cancels now: its half is reset, ours is stopped.
        let reset = end_of(&mut rx).await;
        let stopped = tokio::time::timeout(Duration::from_secs(5), tx.stopped())
            .await
            .expect("STOP_SENDING within 5 s")
            .unwrap();
        (call_id, reset, stopped, connection, control, endpoint)
    });
    let client = per_call_client(addr, &ca).await;
    let call = client
        .client_streaming::<Bytes, u64>(MethodId::from_name(UPLOAD), CallOptions::default())
        .await
        .unwrap();
    request_seen.await.unwrap();
    drop(call);
    let (call_id, reset, stopped, _connection, _control, _endpoint) = server.await.unwrap();
    assert_eq!(call_id, CallId(1));
    assert_eq!(reset, Some(STREAM_CANCELLED), "the client resets its half of the call's stream");
    assert_eq!(stopped, Some(STREAM_CANCELLED), "the client stops reading the call's stream");
}

#[tokio::test]
async fn a_volley_server_reads_a_reset_call_stream_as_the_calls_cancel_and_resets_its_half() {
    let ca = Ca::new("quic CA");
    let uploads = Arc::new(AtomicU64::new(0));
    let (server, addr) = serve(Server::builder(), &ca, uploads.clone()).await;
    let (_endpoint, connection, _control) = raw_client(addr, &ca).await;
    let (mut send, mut recv) = connection.open_bi().await.unwrap();
    send.write_all(&request(1, UPLOAD, Some(b"first"), false)).await.unwrap();
    common::wait_for("the handler to start", || uploads.load(Ordering::SeqCst) == 1).await;
    send.reset(STREAM_CANCELLED).unwrap();
    common::wait_for("the call to end cancelled", || {
        server.stats().calls_by_code[Code::Cancelled as usize] == 1
    })
    .await;
    assert_eq!(end_of(&mut recv).await, Some(STREAM_CANCELLED), "the server resets its half");
    // The connection goes on: the next call on a new stream is answered.
    let (mut send, mut recv) = connection.open_bi().await.unwrap();
    send.write_all(&request(2, ECHO, Some(b"after"), true)).await.unwrap();
    let Frame::Response { call_id, message, .. } = read_frame(&mut recv).await else {
        panic!("expected the echo's Response")
    };
    assert_eq!(call_id, CallId(2));
    let echoed: Bytes = prost::Message::decode(message.unwrap()).unwrap();
    assert_eq!(echoed, "after");
}

#[tokio::test]
async fn cancelled_calls_give_their_streams_back_and_other_calls_go_on() {
    let ca = Ca::new("quic CA");
    // Two calls at a time: the client may open 2 x 2 + 1 = 5 streams (the control stream
    // included), so 40 cancelled calls in a row need their streams freed on both sides.
    let uploads = Arc::new(AtomicU64::new(0));
    let (server, addr) = serve(Server::builder().max_concurrent_calls(2), &ca, uploads.clone()).await;
    let client = per_call_client(addr, &ca).await;
    let background = {
        let client = client.clone();
        tokio::spawn(async move {
            let mut answered = 0u32;
            for i in 0..40u32 {
                let payload = Bytes::from(i.to_le_bytes().to_vec());
                let echoed: Bytes = client
                    .unary(MethodId::from_name(ECHO), &payload, CallOptions::default())
                    .await
                    .unwrap();
                assert_eq!(echoed, payload);
                answered += 1;
            }
            answered
        })
    };
    for i in 1..=40u64 {
        let step = async {
            let mut call = client
                .client_streaming::<Bytes, u64>(MethodId::from_name(UPLOAD), CallOptions::default())
                .await
                .unwrap();
            call.send(&Bytes::from_static(b"some bytes")).await.unwrap();
            common::wait_for("the upload to reach its handler", || uploads.load(Ordering::SeqCst) == i).await;
            drop(call);
            common::wait_for("the call to end cancelled", || {
                server.stats().calls_by_code[Code::Cancelled as usize] == i
            })
            .await;
        };
        tokio::time::timeout(Duration::from_secs(10), step)
            .await
            .unwrap_or_else(|_| panic!("cancelled call {i} was stuck: its stream was not given back"));
    }
    let answered = tokio::time::timeout(Duration::from_secs(10), background)
        .await
        .expect("the calls beside the cancelled ones completed")
        .unwrap();
    assert_eq!(answered, 40);
    assert_eq!(server.stats().calls_by_code[Code::Cancelled as usize], 40);
}
