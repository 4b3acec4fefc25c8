//! The per-call stream mapping over QUIC (ALPN `volley-quic/2`, docs/PROTOCOL.md section 13),
//! spoken by a raw quinn peer over loopback: ALPN preference and fallback to `volley/1`, each
//! call on its own stream in stream order, and the mapping's limits (stream credit, the
//! partial-frame budget, frames over the max frame size, frames on the wrong stream), each a
//! typed close with `CLOSE_MAPPING`.

mod common;
#[path = "support/pki.rs"]
#[allow(dead_code)]
mod pki;
#[path = "support/raw_quic.rs"]
mod raw_quic;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use pki::Ca;
use raw_quic::{accept_control, quinn_server, read_frame};
use volley::net::Address;
use volley::quic::{ALPN_VOLLEY_QUIC, CLOSE_MAPPING, QuicMapping, QuicOptions, per_call_bidi_streams};
use volley::tls::ALPN_VOLLEY;
use volley::wire::{CallHead, CallId, Frame, PREFACE_LEN, Preface, Settings, decode_frame};
use volley::{CallOptions, Client, MethodId, Request, Server, ServerHandle, Status};

const ECHO: &str = "/test.Mapping/Echo";

async fn serve(builder: volley::server::ServerBuilder, ca: &Ca) -> (ServerHandle, SocketAddr) {
    let builder = builder.unary(ECHO, |request: Request<Bytes>| async move { Ok::<_, Status>(request.into_inner()) });
    common::quic::serve_quic(builder, ca.server_tls()).await
}

/// A raw quinn connection offering `alpn`, and its endpoint.
async fn raw_connection(addr: SocketAddr, ca: &Ca, alpn: &[&[u8]]) -> (quinn::Endpoint, quinn::Connection) {
    common::quic::raw_quic_connection(addr, ca.raw_client_config(alpn)).await.unwrap()
}

fn agreed_alpn(connection: &quinn::Connection) -> Vec<u8> {
    let data = connection.handshake_data().unwrap();
    data.downcast::<quinn::crypto::rustls::HandshakeData>().unwrap().protocol.unwrap()
}

fn encode(frames: impl IntoIterator<Item = Frame>) -> BytesMut {
    let mut out = BytesMut::new();
    for frame in frames {
        frame.encode(&mut out);
    }
    out
}

fn echo_request(id: u64, payload: &[u8]) -> Frame {
    let mut message = BytesMut::new();
    prost::Message::encode(&Bytes::copy_from_slice(payload), &mut message).unwrap();
    Frame::Request {
        call_id: CallId(id),
        head: CallHead {
            method_id: MethodId::from_name(ECHO),
            ..CallHead::default()
        },
        message: Some(message.freeze()),
        end_stream: true,
    }
}

/// Opens the control stream and sends the preface and Settings on it.
async fn open_control(connection: &quinn::Connection) -> (quinn::SendStream, quinn::RecvStream) {
    let (mut send, recv) = connection.open_bi().await.unwrap();
    let mut out = BytesMut::from(&Preface::CURRENT.encode()[..]);
    out.extend_from_slice(&encode([Frame::Settings(Settings::default())]));
    send.write_all(&out).await.unwrap();
    (send, recv)
}

/// Every frame on `recv` up to its end.
async fn frames_until_fin(recv: &mut quinn::RecvStream) -> Vec<Frame> {
    let bytes = tokio::time::timeout(Duration::from_secs(5), recv.read_to_end(1 << 20))
        .await
        .expect("the server finished the stream within 5 s")
        .unwrap();
    let mut bytes = BytesMut::from(&bytes[..]);
    std::iter::from_fn(|| decode_frame(&mut bytes, u32::MAX).unwrap()).collect()
}

/// Waits for the server to close `connection` and returns the close's application code and reason.
async fn closed(connection: &quinn::Connection) -> (quinn::VarInt, String) {
    let err = tokio::time::timeout(Duration::from_secs(5), connection.closed())
        .await
        .expect("the server closed the connection within 5 s");
    match err {
        quinn::ConnectionError::ApplicationClosed(close) => (close.error_code, String::from_utf8_lossy(&close.reason).into_owned()),
        other => panic!("expected an application close, got {other:?}"),
    }
}

#[tokio::test]
async fn the_server_prefers_the_per_call_mapping_and_answers_each_call_on_its_own_stream() {
    let ca = Ca::new("quic CA");
    let (_server, addr) = serve(Server::builder(), &ca).await;
    let (_endpoint, connection) = raw_connection(addr, &ca, &[ALPN_VOLLEY_QUIC, ALPN_VOLLEY]).await;
    assert_eq!(agreed_alpn(&connection), ALPN_VOLLEY_QUIC);
    let (_control, mut control_rx) = open_control(&connection).await;
    let (mut first, mut first_rx) = connection.open_bi().await.unwrap();
    let (mut second, mut second_rx) = connection.open_bi().await.unwrap();
    // The second call's Request is written first; the server still hands the calls over in
    // stream order (call ids must increase), and answers each on its own stream.
    second.write_all(&encode([echo_request(2, b"two")])).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    first.write_all(&encode([echo_request(1, b"one")])).await.unwrap();
    for (id, payload, rx) in [(1, &b"one"[..], &mut first_rx), (2, b"two", &mut second_rx)] {
        let frames = frames_until_fin(rx).await;
        let [
            Frame::Response {
                call_id,
                message: Some(message),
                end_stream: true,
                ..
            },
        ] = &frames[..]
        else {
            panic!("call {id}: expected one final Response, got {frames:?}")
        };
        assert_eq!(*call_id, CallId(id));
        let echoed: Bytes = prost::Message::decode(message.clone()).unwrap();
        assert_eq!(echoed, payload);
    }
    // The control stream carries the server's preface and Settings.
    let mut head = [0u8; PREFACE_LEN];
    control_rx.read_exact(&mut head).await.unwrap();
    assert_eq!(Preface::decode(&head), Ok(Preface::CURRENT));
}

#[tokio::test]
async fn a_client_offering_only_volley_1_gets_the_one_stream_mapping() {
    let ca = Ca::new("quic CA");
    let (_server, addr) = serve(Server::builder(), &ca).await;
    let (_endpoint, connection) = raw_connection(addr, &ca, &[ALPN_VOLLEY]).await;
    assert_eq!(agreed_alpn(&connection), ALPN_VOLLEY);
    // One stream carries the preface, Settings and the call's frames both ways.
    let (mut send, mut recv) = connection.open_bi().await.unwrap();
    let mut out = BytesMut::from(&Preface::CURRENT.encode()[..]);
    out.extend_from_slice(&encode([Frame::Settings(Settings::default()), echo_request(1, b"one")]));
    send.write_all(&out).await.unwrap();
    let mut inbox = BytesMut::new();
    let answered = tokio::time::timeout(Duration::from_secs(5), async {
        let mut chunk = vec![0u8; 4096];
        loop {
            let n = recv.read(&mut chunk).await.unwrap().unwrap();
            inbox.extend_from_slice(&chunk[..n]);
            let mut frames = BytesMut::from(&inbox[PREFACE_LEN.min(inbox.len())..]);
            let all: Vec<Frame> = std::iter::from_fn(|| decode_frame(&mut frames, u32::MAX).unwrap()).collect();
            if all.iter().any(|frame| matches!(frame, Frame::Response { call_id: CallId(1), .. })) {
                return;
            }
        }
    })
    .await;
    assert!(answered.is_ok(), "the call was answered on the one stream");
}

#[tokio::test]
async fn volley_1_only_clients_and_servers_interoperate_with_per_call_peers() {
    let ca = Ca::new("quic CA");
    let one_stream = QuicOptions::new().mapping(QuicMapping::OneStream);
    let per_call = QuicOptions::new().mapping(QuicMapping::PerCall);
    let (per_call_server, per_call_addr) = serve(Server::builder(), &ca).await;
    let (one_stream_server, one_stream_addr) = serve(Server::builder().quic(one_stream.clone()), &ca).await;
    let clients = [
        (per_call_addr, QuicOptions::new()),
        (per_call_addr, per_call.clone()),
        (per_call_addr, one_stream.clone()),
        (one_stream_addr, QuicOptions::new()),
        (one_stream_addr, per_call),
        (one_stream_addr, one_stream),
    ];
    for (addr, options) in clients {
        let client = Client::builder()
            .tls(ca.client_tls())
            .quic(options.clone())
            .connect(Address::Quic(addr))
            .await
            .unwrap();
        let reply: Bytes = client
            .unary(MethodId::from_name(ECHO), &Bytes::from_static(b"hello"), CallOptions::default())
            .await
            .unwrap();
        assert_eq!(reply, "hello", "{options:?} to {addr}");
    }
    drop((per_call_server, one_stream_server));
}

#[tokio::test]
async fn a_client_may_open_streams_up_to_twice_max_concurrent_calls_plus_the_control_stream() {
    let ca = Ca::new("quic CA");
    let (_server, addr) = serve(Server::builder().max_concurrent_calls(2), &ca).await;
    let (_endpoint, connection) = raw_connection(addr, &ca, &[ALPN_VOLLEY_QUIC]).await;
    assert_eq!(per_call_bidi_streams(2), 5);
    let mut streams = Vec::new();
    for _ in 0..5 {
        streams.push(connection.open_bi().await.unwrap());
    }
    let sixth = tokio::time::timeout(Duration::from_millis(300), connection.open_bi()).await;
    assert!(sixth.is_err(), "quinn grants 2 x max_concurrent_calls + 1 bidirectional streams");
    let uni = tokio::time::timeout(Duration::from_millis(200), connection.open_uni()).await;
    assert!(uni.is_err(), "and no unidirectional stream");
}

#[tokio::test]
async fn partial_frames_on_many_streams_over_the_budget_close_the_connection_with_a_mapping_error() {
    let ca = Ca::new("quic CA");
    let budget = 256 * 1024;
    let (server, addr) = serve(Server::builder().quic(QuicOptions::new().partial_frame_budget(budget)), &ca).await;
    let (_endpoint, connection) = raw_connection(addr, &ca, &[ALPN_VOLLEY_QUIC]).await;
    let _control = open_control(&connection).await;
    let mut streams = Vec::new();
    // Ten Requests that announce 60,000 bytes and send 40,000: 400 KB held, over 256 KiB.
    for id in 1..=10u64 {
        let (mut send, recv) = connection.open_bi().await.unwrap();
        let mut header = [0u8; 16];
        header[..4].copy_from_slice(&60_000u32.to_le_bytes());
        header[4] = 0x02;
        header[8..].copy_from_slice(&id.to_le_bytes());
        let _ = send.write_all(&header).await;
        let _ = send.write_all(&[0u8; 40_000]).await;
        streams.push((send, recv));
    }
    let (code, reason) = closed(&connection).await;
    assert_eq!(code, CLOSE_MAPPING);
    assert!(reason.contains("over the budget of 262144"), "{reason}");
    common::wait_for("the connection is gone", || server.connections() == 0).await;
}

#[tokio::test]
async fn a_frame_over_the_max_frame_size_on_a_call_stream_is_refused_before_it_is_buffered() {
    let ca = Ca::new("quic CA");
    let (server, addr) = serve(Server::builder(), &ca).await;
    let (_endpoint, connection) = raw_connection(addr, &ca, &[ALPN_VOLLEY_QUIC]).await;
    let _control = open_control(&connection).await;
    let (mut send, _recv) = connection.open_bi().await.unwrap();
    let mut header = [0u8; 16];
    header[..4].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
    header[4] = 0x02;
    header[8..].copy_from_slice(&1u64.to_le_bytes());
    send.write_all(&header).await.unwrap();
    let (code, reason) = closed(&connection).await;
    assert_eq!(code, CLOSE_MAPPING);
    assert!(reason.contains("is over the max frame size"), "{reason}");
    common::wait_for("the connection is gone", || server.connections() == 0).await;
}

#[tokio::test]
async fn a_call_frame_on_the_control_stream_closes_the_connection_with_a_mapping_error() {
    let ca = Ca::new("quic CA");
    let (_server, addr) = serve(Server::builder(), &ca).await;
    let (_endpoint, connection) = raw_connection(addr, &ca, &[ALPN_VOLLEY_QUIC]).await;
    let (mut control, _control_rx) = open_control(&connection).await;
    control.write_all(&encode([echo_request(1, b"one")])).await.unwrap();
    let (code, reason) = closed(&connection).await;
    assert_eq!(code, CLOSE_MAPPING);
    assert!(reason.contains("came on the control stream"), "{reason}");
}

#[tokio::test]
async fn a_frame_of_another_call_on_a_calls_stream_closes_the_connection_with_a_mapping_error() {
    let ca = Ca::new("quic CA");
    let (_server, addr) = serve(Server::builder(), &ca).await;
    let (_endpoint, connection) = raw_connection(addr, &ca, &[ALPN_VOLLEY_QUIC]).await;
    let _control = open_control(&connection).await;
    let (mut send, _recv) = connection.open_bi().await.unwrap();
    let cancel_other = Frame::Cancel { call_id: CallId(7) };
    send.write_all(&encode([echo_request(1, b"one"), cancel_other])).await.unwrap();
    let (code, reason) = closed(&connection).await;
    assert_eq!(code, CLOSE_MAPPING);
    assert!(reason.contains("for call 7 came on the stream of call 1"), "{reason}");
}

#[tokio::test]
async fn a_stream_that_does_not_start_with_a_request_closes_the_connection_with_a_mapping_error() {
    let ca = Ca::new("quic CA");
    let (_server, addr) = serve(Server::builder(), &ca).await;
    let (_endpoint, connection) = raw_connection(addr, &ca, &[ALPN_VOLLEY_QUIC]).await;
    let _control = open_control(&connection).await;
    let (mut send, _recv) = connection.open_bi().await.unwrap();
    send.write_all(&encode([Frame::Cancel { call_id: CallId(1) }])).await.unwrap();
    let (code, reason) = closed(&connection).await;
    assert_eq!(code, CLOSE_MAPPING);
    assert!(reason.contains("not a Request"), "{reason}");
}

/// The ALPN id a Volley client built with `options` offers first and gets from a raw quinn server
/// that accepts both mappings, preferring the per-call one as Volley's servers do.
async fn alpn_agreed_by_a_volley_client(ca: &Ca, options: QuicOptions) -> Vec<u8> {
    let mut tls = ca.raw_server_config(ALPN_VOLLEY_QUIC);
    tls.alpn_protocols = vec![ALPN_VOLLEY_QUIC.to_vec(), ALPN_VOLLEY.to_vec()];
    let endpoint = quinn::Endpoint::server(quinn_server(tls), "127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = endpoint.local_addr().unwrap();
    let client = tokio::spawn({
        let tls = ca.client_tls();
        async move { Client::builder().tls(tls).quic(options).connect(Address::Quic(addr)).await }
    });
    let connection = endpoint.accept().await.unwrap().await.unwrap();
    let agreed = agreed_alpn(&connection);
    client.abort();
    agreed
}

#[tokio::test]
async fn a_default_client_offers_one_stream_and_a_per_call_client_gets_a_stream_per_call() {
    let ca = Ca::new("quic CA");
    assert_eq!(alpn_agreed_by_a_volley_client(&ca, QuicOptions::new()).await, ALPN_VOLLEY);
    let per_call = QuicOptions::new().mapping(QuicMapping::PerCall);
    assert_eq!(alpn_agreed_by_a_volley_client(&ca, per_call).await, ALPN_VOLLEY_QUIC);
    let one_stream = QuicOptions::new().mapping(QuicMapping::OneStream);
    assert_eq!(alpn_agreed_by_a_volley_client(&ca, one_stream).await, ALPN_VOLLEY);
}

#[tokio::test]
async fn a_default_server_accepts_both_mappings_and_one_restricted_to_one_stream_only_volley_1() {
    let ca = Ca::new("quic CA");
    let (_server, addr) = serve(Server::builder(), &ca).await;
    let (_endpoint, connection) = raw_connection(addr, &ca, &[ALPN_VOLLEY_QUIC, ALPN_VOLLEY]).await;
    assert_eq!(agreed_alpn(&connection), ALPN_VOLLEY_QUIC);
    let (_endpoint, connection) = raw_connection(addr, &ca, &[ALPN_VOLLEY]).await;
    assert_eq!(agreed_alpn(&connection), ALPN_VOLLEY);
    let one_stream = QuicOptions::new().mapping(QuicMapping::OneStream);
    let (_server, addr) = serve(Server::builder().quic(one_stream), &ca).await;
    let (_endpoint, connection) = raw_connection(addr, &ca, &[ALPN_VOLLEY_QUIC, ALPN_VOLLEY]).await;
    assert_eq!(agreed_alpn(&connection), ALPN_VOLLEY);
}

/// A raw per-call QUIC server endpoint on loopback with a `localhost` certificate from `ca`.
fn raw_server(ca: &Ca) -> quinn::Endpoint {
    let tls = ca.raw_server_config(ALPN_VOLLEY_QUIC);
    quinn::Endpoint::server(quinn_server(tls), "127.0.0.1:0".parse().unwrap()).unwrap()
}

#[tokio::test]
async fn a_call_whose_answer_is_stuck_on_its_stream_does_not_delay_another_calls_answer() {
    let ca = Ca::new("quic CA");
    let endpoint = raw_server(&ca);
    let addr = endpoint.local_addr().unwrap();
    let client = tokio::spawn({
        let tls = ca.client_tls();
        let per_call = QuicOptions::new().mapping(QuicMapping::PerCall);
        async move {
            Client::builder()
                .tls(tls)
                .quic(per_call)
                .connect(Address::Quic(addr))
                .await
                .unwrap()
        }
    });
    let connection = endpoint.accept().await.unwrap().await.unwrap();
    // The control stream: the client's preface and Settings, then ours.
    let (_control, _control_rx) = accept_control(&connection).await;
    let client = client.await.unwrap();
    let call = |payload: &'static [u8]| {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .unary::<Bytes, Bytes>(MethodId::from_name(ECHO), &Bytes::from_static(payload), CallOptions::default())
                .await
        })
    };
    let first = call(b"first");
    let (mut first_tx, mut first_rx) = connection.accept_bi().await.unwrap();
    assert!(matches!(read_frame(&mut first_rx).await, Frame::Request { call_id: CallId(1), .. }));
    let second = call(b"second");
    let (mut second_tx, mut second_rx) = connection.accept_bi().await.unwrap();
    assert!(matches!(
        read_frame(&mut second_rx).await,
        Frame::Request { call_id: CallId(2), .. }
    ));
    let response = |id: u64, payload: &[u8]| {
        let mut message = BytesMut::new();
        prost::Message::encode(&Bytes::copy_from_slice(payload), &mut message).unwrap();
        encode([Frame::Response {
            call_id: CallId(id),
            metadata: Default::default(),
            message: Some(message.freeze()),
            end_stream: true,
        }])
    };
    // The first call's answer stops half-way, as behind a lost packet; the second's is whole.
    let first_answer = response(1, b"first");
    first_tx.write_all(&first_answer[..20]).await.unwrap();
    second_tx.write_all(&response(2, b"second")).await.unwrap();
    let second = tokio::time::timeout(Duration::from_secs(2), second).await;
    assert_eq!(second.expect("the second call is answered").unwrap().unwrap(), "second");
    assert!(!first.is_finished(), "the first call still waits for the rest of its answer");
    first_tx.write_all(&first_answer[20..]).await.unwrap();
    let first = tokio::time::timeout(Duration::from_secs(2), first).await;
    assert_eq!(first.expect("the first call is answered").unwrap().unwrap(), "first");
}

#[tokio::test]
async fn a_rapid_reset_flood_over_per_call_streams_is_closed_with_a_clear_reason() {
    let ca = Ca::new("quic CA");
    let (server, addr) = serve(Server::builder(), &ca).await;
    let (_endpoint, connection) = raw_connection(addr, &ca, &[ALPN_VOLLEY_QUIC]).await;
    let (_control, mut control_rx) = open_control(&connection).await;
    let flood = async {
        for id in 1..=3_000u64 {
            let Ok((mut send, _recv)) = connection.open_bi().await else {
                return;
            };
            if send
                .write_all(&encode([echo_request(id, b"x"), Frame::Cancel { call_id: CallId(id) }]))
                .await
                .is_err()
            {
                return;
            }
        }
    };
    // The server may close before the flood is over; that is the point.
    let _ = tokio::time::timeout(Duration::from_secs(10), flood).await;
    let mut preface = [0u8; PREFACE_LEN];
    control_rx.read_exact(&mut preface).await.unwrap();
    let frames = frames_until_fin(&mut control_rx).await;
    let goaway = frames.iter().find_map(|frame| match frame {
        Frame::GoAway(goaway) => Some(goaway),
        _ => None,
    });
    let goaway = goaway.unwrap_or_else(|| panic!("expected a GoAway on the control stream, got {frames:?}"));
    assert!(goaway.reason_str().contains("cancel"), "{goaway:?}");
    common::wait_for("the connection is gone", || server.connections() == 0).await;
}

/// Connection settings whose windows (Volley's, and so quinn's stream and connection windows)
/// are 64 KiB: a 1 MiB message then goes to quinn in many partial writes.
fn small_windows() -> volley::protocol::ConnectionConfig {
    let mut config = volley::protocol::ConnectionConfig::default();
    config.settings.initial_connection_window = 64 * 1024;
    config.settings.initial_call_window = 64 * 1024;
    config
}

#[tokio::test]
async fn large_messages_cross_small_quic_windows_in_partial_writes_beside_small_calls() {
    let ca = Ca::new("quic CA");
    let (_server, addr) = serve(Server::builder().connection_config(small_windows()), &ca).await;
    let client = Client::builder()
        .tls(ca.client_tls())
        .quic(QuicOptions::new().mapping(QuicMapping::PerCall))
        .connection_config(small_windows())
        .connect(Address::Quic(addr))
        .await
        .unwrap();
    let large = Bytes::from((0..1024 * 1024).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    let calls = (0..12u32).map(|i| {
        let client = client.clone();
        let payload = if i % 3 == 0 {
            large.clone()
        } else {
            Bytes::from(vec![i as u8; 100])
        };
        tokio::spawn(async move {
            let reply: Bytes = client
                .unary(MethodId::from_name(ECHO), &payload, CallOptions::default())
                .await
                .unwrap();
            assert_eq!(reply, payload, "call {i} echoed whole");
        })
    });
    for call in calls.collect::<Vec<_>>() {
        tokio::time::timeout(Duration::from_secs(20), call)
            .await
            .expect("answered")
            .unwrap();
    }
}
