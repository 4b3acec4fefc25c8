//! QUIC (feature `quic`) over loopback: every call kind through a lossy, reordering UDP proxy
//! with nothing delivered twice; quinn's limits as Volley sets them (one stream per connection
//! under `volley/1`; `tests/quic_mapping.rs` has the per-call mapping's);
//! the abuse budgets over QUIC (idle and stuck handshakes, the per-address handshake budget, ping
//! and rapid-reset floods on the stream); configuration and certificate errors. The conformance
//! suite (`tests/conformance.rs`, `quic::*`) covers call kinds, deadlines, cancellation and
//! graceful shutdown on a clean path.

mod common;
#[path = "support/pki.rs"]
#[allow(dead_code)]
mod pki;
#[path = "support/udp_proxy.rs"]
mod udp_proxy;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use pki::Ca;
use udp_proxy::{UdpFaultProxy, UdpFaults, Way};
use volley::net::Address;
use volley::quic::QuicMapping;
use volley::server::{AdmissionConfig, PeerLimits};
use volley::tls::{ClientTls, ServerTls, TlsError};
use volley::wire::{CallHead, CallId, Frame, GoAway, PREFACE_LEN, Preface, Settings, decode_frame};
use volley::{CallOptions, Client, Error, MethodId, Request, Server, ServerHandle, Status, StreamSender, Streaming};

#[derive(Clone, PartialEq, prost::Message)]
struct Numbered {
    #[prost(uint64, tag = "1")]
    id: u64,
    #[prost(bytes = "bytes", tag = "2")]
    payload: Bytes,
}

#[derive(Clone, PartialEq, prost::Message)]
struct Ids {
    #[prost(uint64, repeated, tag = "1")]
    ids: Vec<u64>,
}

const UNARY: &str = "/test.Quic/Unary";
const UPLOAD: &str = "/test.Quic/Upload";
const DOWNLOAD: &str = "/test.Quic/Download";
const CHAT: &str = "/test.Quic/Chat";

fn numbered(id: u64, size: usize) -> Numbered {
    Numbered {
        id,
        payload: Bytes::from(vec![(id % 251) as u8; size]),
    }
}

/// How often the server's unary handler ran for each id.
type Seen = Arc<Mutex<HashMap<u64, u32>>>;

/// A server whose methods number what they receive: unary echoes its id (and counts it),
/// upload answers the ids it read in order, download sends the ids asked for, chat echoes each.
fn numbering_server(seen: Seen) -> volley::server::ServerBuilder {
    Server::builder()
        .unary(UNARY, move |request: Request<Numbered>| {
            let seen = seen.clone();
            async move {
                let message = request.into_inner();
                *seen.lock().unwrap().entry(message.id).or_default() += 1;
                Ok::<_, Status>(message)
            }
        })
        .client_streaming(UPLOAD, |mut request: Request<Streaming<Numbered>>| async move {
            let mut ids = Vec::new();
            while let Some(message) = request.message().await? {
                ids.push(message.id);
            }
            Ok(Ids { ids })
        })
        .server_streaming(DOWNLOAD, |request: Request<Ids>, mut sender: StreamSender<Numbered>| async move {
            for id in &request.get_ref().ids {
                sender.send(&numbered(*id, 700)).await?;
            }
            Ok(())
        })
        .bidi_streaming(
            CHAT,
            |mut request: Request<Streaming<Numbered>>, mut sender: StreamSender<Numbered>| async move {
                while let Some(message) = request.message().await? {
                    sender.send(&message).await?;
                }
                Ok(())
            },
        )
}

async fn serve_quic(builder: volley::server::ServerBuilder, ca: &Ca) -> (ServerHandle, SocketAddr) {
    common::quic::serve_quic(builder, ca.server_tls()).await
}

async fn quic_client(addr: SocketAddr, ca: &Ca, mapping: QuicMapping) -> Client {
    common::quic::quic_client(addr, ca.client_tls(), mapping).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_kind_completes_through_loss_reordering_and_delay_and_nothing_is_delivered_twice() {
    every_call_kind_through_faults(QuicMapping::OneStream).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_stream_per_call_every_call_kind_completes_through_loss_reordering_and_delay_once() {
    every_call_kind_through_faults(QuicMapping::PerCall).await;
}

/// Every call kind through 5 % loss, 5 % reordering and 1 ms of delay each way, on `mapping`:
/// each call answered whole, each message delivered once and in order.
async fn every_call_kind_through_faults(mapping: QuicMapping) {
    let ca = Ca::new("quic CA");
    let seen = Seen::default();
    let (_server, addr) = serve_quic(numbering_server(seen.clone()), &ca).await;
    let proxy = UdpFaultProxy::start(addr, 0x5eed).await;
    proxy.set_both(UdpFaults {
        drop: 0.05,
        reorder: 0.05,
        reorder_delay: Duration::from_millis(3),
        delay: Duration::from_millis(1),
    });
    let client = quic_client(proxy.local_addr(), &ca, mapping).await;

    // Unary: 200 calls at once, each answered with its own id, each run once by the server.
    let mut calls = tokio::task::JoinSet::new();
    for id in 0..200u64 {
        let client = client.clone();
        calls.spawn(async move {
            let reply: Numbered = client
                .unary(MethodId::from_name(UNARY), &numbered(id, 300), CallOptions::default())
                .await
                .unwrap();
            assert_eq!(reply, numbered(id, 300), "call {id} got its own answer, whole");
        });
    }
    while let Some(done) = calls.join_next().await {
        done.unwrap();
    }
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 200);
    assert!(seen.values().all(|&n| n == 1), "a unary call ran twice: {seen:?}");

    // Client streaming: the server reads 300 messages, each once, in order.
    let mut upload = client
        .client_streaming::<Numbered, Ids>(MethodId::from_name(UPLOAD), CallOptions::default())
        .await
        .unwrap();
    for id in 0..300 {
        upload.send(&numbered(id, 500)).await.unwrap();
    }
    assert_eq!(upload.finish().await.unwrap().ids, (0..300).collect::<Vec<_>>());

    // Server streaming: the client reads 300 messages, each once, in order, whole.
    let ask = Ids { ids: (0..300).collect() };
    let mut download: Streaming<Numbered> = client
        .server_streaming(MethodId::from_name(DOWNLOAD), &ask, CallOptions::default())
        .await
        .unwrap();
    let mut got = Vec::new();
    while let Some(message) = download.message().await.unwrap() {
        assert_eq!(message, numbered(message.id, 700));
        got.push(message.id);
    }
    assert_eq!(got, ask.ids);

    // Bidi: 100 round trips, each echo the message sent.
    let (mut sender, mut replies) = client
        .bidi_streaming::<Numbered, Numbered>(MethodId::from_name(CHAT), CallOptions::default())
        .await
        .unwrap();
    for id in 0..100 {
        sender.send(&numbered(id, 200)).await.unwrap();
        assert_eq!(replies.message().await.unwrap().unwrap(), numbered(id, 200));
    }
    sender.close();
    assert!(replies.message().await.unwrap().is_none());

    for way in [Way::Up, Way::Down] {
        assert!(proxy.dropped(way) > 0, "the proxy dropped nothing {way:?}");
        assert!(proxy.reordered(way) > 0, "the proxy reordered nothing {way:?}");
    }
}

#[tokio::test]
async fn a_call_completes_when_a_third_of_the_datagrams_are_lost() {
    calls_through_heavy_loss(QuicMapping::OneStream).await;
}

#[tokio::test]
async fn with_a_stream_per_call_a_call_completes_when_a_third_of_the_datagrams_are_lost() {
    calls_through_heavy_loss(QuicMapping::PerCall).await;
}

/// Twenty 5,000-byte calls in a row through 33 % loss each way, on `mapping`.
async fn calls_through_heavy_loss(mapping: QuicMapping) {
    let ca = Ca::new("quic CA");
    let (_server, addr) = serve_quic(numbering_server(Seen::default()), &ca).await;
    let proxy = UdpFaultProxy::start(addr, 7).await;
    proxy.set_both(UdpFaults {
        drop: 0.33,
        ..UdpFaults::default()
    });
    let client = quic_client(proxy.local_addr(), &ca, mapping).await;
    for id in 0..20 {
        let reply: Numbered = client
            .unary(MethodId::from_name(UNARY), &numbered(id, 5_000), CallOptions::default())
            .await
            .unwrap();
        assert_eq!(reply, numbered(id, 5_000));
    }
    assert!(proxy.dropped(Way::Up) + proxy.dropped(Way::Down) > 0);
}

/// A QUIC connection of a raw quinn client trusting `ca`, and its endpoint.
async fn raw_connection(addr: SocketAddr, ca: &Ca) -> Result<(quinn::Endpoint, quinn::Connection), quinn::ConnectionError> {
    common::quic::raw_quic_connection(addr, ca.raw_client_config(&[volley::tls::ALPN_VOLLEY])).await
}

#[tokio::test]
async fn under_the_one_stream_mapping_a_client_may_open_one_stream_and_a_second_waits_for_ever() {
    let ca = Ca::new("quic CA");
    let one_stream = volley::quic::QuicOptions::new().mapping(volley::quic::QuicMapping::OneStream);
    let (_server, addr) = serve_quic(numbering_server(Seen::default()).quic(one_stream), &ca).await;
    let (_endpoint, connection) = raw_connection(addr, &ca).await.unwrap();
    let (mut first, _first_rx) = connection.open_bi().await.unwrap();
    first.write_all(&Preface::CURRENT.encode()).await.unwrap();
    let second = tokio::time::timeout(Duration::from_millis(500), connection.open_bi()).await;
    assert!(second.is_err(), "quinn grants one bidirectional stream (MAX_CLIENT_BIDI_STREAMS)");
    assert_eq!(volley::quic::MAX_CLIENT_BIDI_STREAMS, 1);
    let uni = tokio::time::timeout(Duration::from_millis(200), connection.open_uni()).await;
    assert!(uni.is_err(), "and no unidirectional stream");
}

#[tokio::test]
async fn a_quic_connection_that_opens_no_stream_is_closed_at_the_handshake_timeout() {
    let ca = Ca::new("quic CA");
    let builder = numbering_server(Seen::default()).handshake_timeout(Duration::from_millis(300));
    let (server, addr) = serve_quic(builder, &ca).await;
    let (_endpoint, idle) = raw_connection(addr, &ca).await.unwrap();
    common::wait_for("the handshake is registered", || server.connections() == 1).await;
    // A real client is served meanwhile.
    let client = quic_client(addr, &ca, QuicMapping::default()).await;
    let _: Numbered = client
        .unary(MethodId::from_name(UNARY), &numbered(1, 10), CallOptions::default())
        .await
        .unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(3), idle.closed())
        .await
        .expect("closed within about the handshake timeout");
    assert!(
        matches!(&closed, quinn::ConnectionError::ApplicationClosed(close) if close.error_code == volley::quic::CLOSE_REFUSED),
        "closed with CLOSE_REFUSED: {closed:?}"
    );
    common::wait_for("the failure is counted", || server.tls_handshake_failures() == 1).await;
    common::wait_for("only the real client is left", || server.connections() == 1).await;
}

#[tokio::test]
async fn quic_handshakes_count_against_the_per_address_handshake_budget() {
    let ca = Ca::new("quic CA");
    let limits = PeerLimits {
        connections: None,
        handshakes: Some(2),
    };
    let builder = numbering_server(Seen::default())
        .handshake_timeout(Duration::from_secs(2))
        .admission(AdmissionConfig {
            remote: limits,
            loopback: limits,
        });
    let (server, addr) = serve_quic(builder, &ca).await;
    // Two connections that never open their stream stay in their handshake.
    let _stuck = [raw_connection(addr, &ca).await.unwrap(), raw_connection(addr, &ca).await.unwrap()];
    common::wait_for("two handshakes registered", || server.connections() == 2).await;
    let third = raw_connection(addr, &ca).await;
    assert!(third.is_err(), "the third is refused at admission: {third:?}");
    assert_eq!(server.admission().refused_peer_handshakes, 1);
    common::wait_for("the stuck handshakes end", || server.connections() == 0).await;
    // Then a client is served again.
    let client = quic_client(addr, &ca, QuicMapping::default()).await;
    let _: Numbered = client
        .unary(MethodId::from_name(UNARY), &numbered(1, 10), CallOptions::default())
        .await
        .unwrap();
}

/// A raw Volley peer on a raw QUIC stream: sends its preface and settings, then `frames`, and
/// returns every frame the server sent after its preface, up to the end of the stream.
async fn raw_frames(addr: SocketAddr, ca: &Ca, frames: impl IntoIterator<Item = Frame>) -> Vec<Frame> {
    let (_endpoint, connection) = raw_connection(addr, ca).await.unwrap();
    let (mut send, mut recv) = connection.open_bi().await.unwrap();
    let mut out = BytesMut::new();
    out.extend_from_slice(&Preface::CURRENT.encode());
    Frame::Settings(Settings::default()).encode(&mut out);
    for frame in frames {
        frame.encode(&mut out);
    }
    // The server may close before it read everything; that is the point.
    let _ = send.write_all(&out).await;
    let mut inbox = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        let mut chunk = vec![0u8; 64 * 1024];
        while let Ok(Some(n)) = recv.read(&mut chunk).await {
            inbox.extend_from_slice(&chunk[..n]);
        }
    })
    .await;
    assert!(read.is_ok(), "the server did not end the stream within 5 s");
    let mut inbox = BytesMut::from(&inbox[..]);
    assert_eq!(Preface::decode(inbox[..PREFACE_LEN].try_into().unwrap()), Ok(Preface::CURRENT));
    let _ = inbox.split_to(PREFACE_LEN);
    std::iter::from_fn(|| decode_frame(&mut inbox, u32::MAX).unwrap()).collect()
}

fn goaway(frames: &[Frame]) -> &GoAway {
    match frames.iter().rev().find(|frame| matches!(frame, Frame::GoAway(_))) {
        Some(Frame::GoAway(goaway)) => goaway,
        _ => panic!("expected a GoAway, got {frames:?}"),
    }
}

#[tokio::test]
async fn a_ping_flood_on_the_quic_stream_is_closed_with_a_clear_reason() {
    let ca = Ca::new("quic CA");
    let (server, addr) = serve_quic(numbering_server(Seen::default()), &ca).await;
    let frames = raw_frames(addr, &ca, (0..10).map(|payload| Frame::Ping { payload })).await;
    assert!(goaway(&frames).reason_str().contains("too many pings"), "{:?}", goaway(&frames));
    common::wait_for("the connection is gone", || server.connections() == 0).await;
}

#[tokio::test]
async fn a_rapid_reset_flood_on_the_quic_stream_is_closed_with_a_clear_reason() {
    let ca = Ca::new("quic CA");
    let (server, addr) = serve_quic(numbering_server(Seen::default()), &ca).await;
    let mut message = BytesMut::new();
    prost::Message::encode(&numbered(0, 1), &mut message).unwrap();
    let message = message.freeze();
    let flood = (1..=3_000u64).flat_map(|id| {
        [
            Frame::Request {
                call_id: CallId(id),
                head: CallHead {
                    method_id: MethodId::from_name(UPLOAD),
                    ..CallHead::default()
                },
                message: Some(message.clone()),
                end_stream: false,
            },
            Frame::Cancel { call_id: CallId(id) },
        ]
    });
    let frames = raw_frames(addr, &ca, flood).await;
    assert!(goaway(&frames).reason_str().contains("cancel"), "{:?}", goaway(&frames));
    common::wait_for("the connection is gone", || server.connections() == 0).await;
}

/// Under mutual TLS over QUIC a handler sees the client's verified certificate, as over TCP.
#[tokio::test]
async fn under_mutual_tls_a_handler_sees_the_client_identity() {
    const WHO: &str = "/test.Quic/Who";
    let ca = Ca::new("test CA");
    let leaf = ca.leaf("server", &["localhost"]);
    let tls = volley::tls::ServerTls::builder(leaf.chain(), leaf.key())
        .client_ca_certificates(vec![ca.cert.clone()])
        .build()
        .unwrap();
    let builder = Server::builder().tls(tls).unary(WHO, |request: Request<Numbered>| async move {
        let connection = request.context().connection().expect("a connection");
        let who = connection
            .peer_identity()
            .map_or_else(|| "anonymous".to_owned(), |peer| peer.dns_names().join(","));
        Ok::<_, Status>(Numbered {
            id: 0,
            payload: Bytes::from(who),
        })
    });
    let server = builder.build().unwrap().serve("quic://127.0.0.1:0").await.unwrap();
    let me = ca.leaf("teller", &["teller.bank.internal"]);
    let client_tls = volley::tls::ClientTls::builder()
        .ca_certificates(vec![ca.cert.clone()])
        .server_name("localhost")
        .client_certificate(me.chain(), me.key())
        .build()
        .unwrap();
    let client = Client::builder()
        .tls(client_tls)
        .connect(server.local_addr().clone())
        .await
        .unwrap();
    let who: Numbered = client
        .unary(MethodId::from_name(WHO), &numbered(0, 0), CallOptions::default())
        .await
        .unwrap();
    assert_eq!(who.payload, "teller.bank.internal");
    server.shutdown().await;
}

#[tokio::test]
async fn quic_needs_tls_on_both_sides_and_says_so() {
    let server = numbering_server(Seen::default()).build().unwrap().serve("quic://127.0.0.1:0").await;
    assert!(
        matches!(&server, Err(Error::Config(reason)) if reason.contains("ServerBuilder::tls")),
        "{server:?}"
    );
    let client = Client::connect("quic://127.0.0.1:9").await;
    assert!(
        matches!(&client, Err(Error::Config(reason)) if reason.contains("ClientBuilder::tls")),
        "{client:?}"
    );
}

/// The `TlsError` inside a connect error; panics on any other error.
fn tls_error(result: Result<Client, Error>) -> TlsError {
    match result {
        Err(Error::Tls { source, .. }) => source,
        Err(other) => panic!("expected a TLS error, got {other}"),
        Ok(_) => panic!("expected a TLS error, the client connected"),
    }
}

async fn connect_quic(server: &ServerHandle, tls: ClientTls) -> Result<Client, Error> {
    Client::builder().tls(tls).connect(server.local_addr().clone()).await
}

/// The server still serves a client with `tls` after a failed handshake.
async fn still_serves(server: &ServerHandle, tls: ClientTls) {
    let client = connect_quic(server, tls).await.unwrap();
    let _: Numbered = client
        .unary(MethodId::from_name(UNARY), &numbered(1, 10), CallOptions::default())
        .await
        .unwrap();
}

async fn serve_quic_with(tls: ServerTls) -> ServerHandle {
    numbering_server(Seen::default())
        .tls(tls)
        .build()
        .unwrap()
        .serve("quic://127.0.0.1:0")
        .await
        .unwrap()
}

fn mutual_server_tls(ca: &Ca) -> ServerTls {
    let leaf = ca.leaf("server", &["localhost"]);
    ServerTls::builder(leaf.chain(), leaf.key())
        .client_ca_certificates(vec![ca.cert.clone()])
        .build()
        .unwrap()
}

fn client_with_cert(trusts: &Ca, issued_by: &Ca) -> ClientTls {
    let me = issued_by.leaf("client", &["client.test"]);
    ClientTls::builder()
        .ca_certificates(vec![trusts.cert.clone()])
        .server_name("localhost")
        .client_certificate(me.chain(), me.key())
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_quic_client_that_does_not_trust_the_servers_ca_fails_with_untrusted_and_the_server_keeps_serving() {
    let ca = Ca::new("quic CA");
    let server = serve_quic_with(ca.server_tls()).await;
    let stranger = Ca::new("another CA");
    let err = tls_error(connect_quic(&server, stranger.client_tls()).await);
    assert!(matches!(err, TlsError::Untrusted(_)), "{err}");
    assert!(err.to_string().contains("give this side the CA"), "{err}");
    common::wait_for("the failure is counted", || server.tls_handshake_failures() == 1).await;
    still_serves(&server, ca.client_tls()).await;
}

#[tokio::test]
async fn an_expired_quic_server_certificate_fails_with_expired() {
    let ca = Ca::new("quic CA");
    let leaf = ca.leaf_with("server", &["localhost"], true);
    let server = serve_quic_with(ServerTls::builder(leaf.chain(), leaf.key()).build().unwrap()).await;
    let err = tls_error(connect_quic(&server, ca.client_tls()).await);
    assert!(matches!(err, TlsError::Expired(_)), "{err}");
}

#[tokio::test]
async fn a_quic_server_certificate_for_another_name_fails_with_wrong_name() {
    let ca = Ca::new("quic CA");
    let server = serve_quic_with(ca.server_tls()).await;
    let tls = ClientTls::builder()
        .ca_certificates(vec![ca.cert.clone()])
        .server_name("payments.internal")
        .build()
        .unwrap();
    let err = tls_error(connect_quic(&server, tls).await);
    assert!(matches!(err, TlsError::WrongName(_)), "{err}");
    still_serves(&server, ca.client_tls()).await;
}

#[tokio::test]
async fn under_mutual_tls_a_quic_client_without_a_certificate_fails_with_client_certificate_required() {
    let ca = Ca::new("quic CA");
    let server = serve_quic_with(mutual_server_tls(&ca)).await;
    let err = tls_error(connect_quic(&server, ca.client_tls()).await);
    assert!(matches!(err, TlsError::ClientCertificateRequired), "{err}");
    common::wait_for("the failure is counted", || server.tls_handshake_failures() == 1).await;
    still_serves(&server, client_with_cert(&ca, &ca)).await;
}

#[tokio::test]
async fn under_mutual_tls_a_quic_client_certificate_from_another_ca_is_rejected() {
    let ca = Ca::new("quic CA");
    let server = serve_quic_with(mutual_server_tls(&ca)).await;
    let stranger = Ca::new("stranger CA");
    let err = tls_error(connect_quic(&server, client_with_cert(&ca, &stranger)).await);
    assert!(matches!(err, TlsError::Rejected(_)), "{err}");
    still_serves(&server, client_with_cert(&ca, &ca)).await;
}

#[tokio::test]
async fn a_quic_client_offering_another_alpn_fails_with_an_alpn_error() {
    let ca = Ca::new("quic CA");
    let server = serve_quic_with(ca.server_tls()).await;
    let config = ca.raw_client_config(&[b"h3"]);
    let tls = ClientTls::from_rustls(Arc::new(config), Some("localhost".try_into().unwrap()));
    let err = tls_error(connect_quic(&server, tls).await);
    assert!(matches!(err, TlsError::Alpn(_)), "{err}");
    still_serves(&server, ca.client_tls()).await;
}

#[tokio::test]
async fn a_quic_handshake_nobody_answers_fails_with_a_tls_timeout() {
    let ca = Ca::new("quic CA");
    // A bound UDP port that reads nothing: the client's Initials go unanswered.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let started = std::time::Instant::now();
    let err = tls_error(
        Client::builder()
            .tls(ca.client_tls())
            .connect(Address::Quic(silent.local_addr().unwrap()))
            .await,
    );
    assert!(matches!(err, TlsError::Timeout(_)), "{err}");
    assert!(started.elapsed() >= Duration::from_secs(4), "at the handshake timeout, not before");
}

#[tokio::test]
async fn a_quic_connection_refused_at_admission_is_a_connect_error_not_a_tls_one() {
    let ca = Ca::new("quic CA");
    let limits = PeerLimits {
        connections: Some(0),
        handshakes: None,
    };
    let builder = numbering_server(Seen::default()).admission(AdmissionConfig {
        remote: limits,
        loopback: limits,
    });
    let (server, addr) = serve_quic(builder, &ca).await;
    let result = Client::builder().tls(ca.client_tls()).connect(Address::Quic(addr)).await;
    assert!(
        matches!(&result, Err(Error::Connect { source, .. }) if source.kind() == std::io::ErrorKind::ConnectionRefused),
        "{:?}",
        result.err()
    );
    assert_eq!(server.tls_handshake_failures(), 0);
}

#[test]
fn quic_addresses_parse_and_print_with_their_scheme() {
    let address: Address = "quic://127.0.0.1:7443".parse().unwrap();
    assert_eq!(address, Address::Quic("127.0.0.1:7443".parse().unwrap()));
    assert_eq!(address.to_string(), "quic://127.0.0.1:7443");
    let v6: Address = "quic://[::1]:7443".parse().unwrap();
    assert_eq!(v6.to_string(), "quic://[::1]:7443");
    assert!("quic://localhost".parse::<Address>().is_err());
}
