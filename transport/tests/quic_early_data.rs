//! 0-RTT over QUIC (feature `quic`, docs/PROTOCOL.md section 13): a Volley client that marked a
//! method replay-safe resumes a session and sends that method's calls in early data; other calls
//! wait for the handshake; a server refusing the early data gets the same bytes again after the
//! handshake. The server here is a raw quinn endpoint, so the test sees what quinn says of each
//! stream (`RecvStream::is_0rtt`).

#[path = "support/pki.rs"]
#[allow(dead_code)]
mod pki;
#[path = "support/raw_quic.rs"]
mod raw_quic;

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use pki::Ca;
use raw_quic::{accept_control, quinn_server, read_frame};
use volley::net::Address;
use volley::quic::{ALPN_VOLLEY_QUIC, QuicMapping, QuicOptions};
use volley::wire::Frame;
use volley::{CallOptions, Client, MethodId, Request, Server, Status};

const SAFE: &str = "/test.Early/Get";
const UNSAFE: &str = "/test.Early/Put";

/// A raw per-call QUIC server's rustls configuration: a `localhost` certificate from `ca`,
/// TLS 1.3 session resumption (rustls' in-memory cache), and 0-RTT accepted when `early`.
fn server_tls(ca: &Ca, early: bool) -> rustls::ServerConfig {
    let mut tls = ca.raw_server_config(ALPN_VOLLEY_QUIC);
    tls.max_early_data_size = if early { u32::MAX } else { 0 };
    tls
}

/// What the raw server saw of one connection: whether the control stream and each call's stream
/// (by call id, with its method) were opened in 0-RTT data.
#[derive(Debug)]
struct Seen {
    control_early: bool,
    calls: Vec<(u64, MethodId, bool)>,
    /// Kept open until the test is done with it.
    _connection: quinn::Connection,
}

/// Accepts one connection (serving 0.5-RTT, so streams that came early are seen as such),
/// answers the Volley handshake and echoes `calls` unary calls.
async fn serve_connection(endpoint: &quinn::Endpoint, calls: usize) -> Seen {
    let incoming = endpoint.accept().await.unwrap();
    let (connection, _) = incoming.accept().unwrap().into_0rtt().unwrap();
    let (control, control_rx) = accept_control(&connection).await;
    let control_early = control_rx.is_0rtt();
    let mut seen = Vec::new();
    for _ in 0..calls {
        let (mut tx, mut rx) = connection.accept_bi().await.unwrap();
        let early = rx.is_0rtt();
        let Frame::Request {
            call_id, head, message, ..
        } = read_frame(&mut rx).await
        else {
            panic!("a call stream starts with its Request")
        };
        seen.push((call_id.0, head.method_id, early));
        let mut answer = BytesMut::new();
        Frame::Response {
            call_id,
            metadata: Default::default(),
            message,
            end_stream: true,
        }
        .encode(&mut answer);
        tx.write_all(&answer).await.unwrap();
    }
    std::mem::forget(control);
    Seen {
        control_early,
        calls: seen,
        _connection: connection,
    }
}

/// A Volley client to `address` with `tls` (its session cache), on the per-call mapping, with
/// the replay-safe method marked for 0-RTT.
async fn early_client(tls: &volley::tls::ClientTls, address: Address) -> Client {
    let options = QuicOptions::new()
        .mapping(QuicMapping::PerCall)
        .early_data_for(MethodId::from_name(SAFE));
    Client::builder().tls(tls.clone()).quic(options).connect(address).await.unwrap()
}

async fn call(client: &Client, method: &str, payload: &'static [u8]) -> Result<Bytes, Status> {
    client
        .unary(MethodId::from_name(method), &Bytes::from_static(payload), CallOptions::default())
        .await
}

/// A first connection with `tls`, served and answered, so the client holds a session ticket.
async fn warm_up(endpoint: &quinn::Endpoint, tls: &volley::tls::ClientTls) {
    let addr = endpoint.local_addr().unwrap();
    let server = serve_connection(endpoint, 1);
    let client = async {
        let client = early_client(tls, Address::Quic(addr)).await;
        assert_eq!(call(&client, SAFE, b"warm").await.unwrap(), "warm");
        // The ticket follows the handshake; give it a moment to land.
        tokio::time::sleep(Duration::from_millis(100)).await;
        client
    };
    let (seen, client) = tokio::join!(server, client);
    assert!(!seen.control_early, "a first connection has no session to resume");
    drop(client);
}

#[tokio::test]
async fn a_resumed_connection_sends_a_replay_safe_call_in_0_rtt_and_holds_another_until_the_handshake() {
    let ca = Ca::new("quic CA");
    let endpoint = quinn::Endpoint::server(quinn_server(server_tls(&ca, true)), "127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = endpoint.local_addr().unwrap();
    let tls = ca.client_tls();
    warm_up(&endpoint, &tls).await;

    let server = serve_connection(&endpoint, 2);
    let client = async {
        let client = early_client(&tls, Address::Quic(addr)).await;
        let (safe, unsafe_) = tokio::join!(call(&client, SAFE, b"get"), async {
            // Issued just after the safe call, still before the handshake is done.
            tokio::task::yield_now().await;
            call(&client, UNSAFE, b"put").await
        });
        assert_eq!(safe.unwrap(), "get");
        assert_eq!(unsafe_.unwrap(), "put");
        client
    };
    let (seen, _client) = tokio::join!(server, client);
    assert!(seen.control_early, "the preface and Settings went in 0-RTT data: {seen:?}");
    let early_of = |method: &str| {
        seen.calls
            .iter()
            .find(|(_, id, _)| *id == MethodId::from_name(method))
            .unwrap_or_else(|| panic!("{method} reached the server: {seen:?}"))
            .2
    };
    assert!(early_of(SAFE), "the replay-safe call went in 0-RTT data: {seen:?}");
    assert!(!early_of(UNSAFE), "the other call waited for the handshake: {seen:?}");
}

#[tokio::test]
async fn a_server_refusing_0_rtt_gets_the_calls_again_after_the_handshake() {
    let ca = Ca::new("quic CA");
    let accepting = server_tls(&ca, true);
    // Same session cache (resumption works), no early data.
    let mut refusing = accepting.clone();
    refusing.max_early_data_size = 0;
    let endpoint = quinn::Endpoint::server(quinn_server(accepting), "127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = endpoint.local_addr().unwrap();
    let tls = ca.client_tls();
    warm_up(&endpoint, &tls).await;
    endpoint.set_server_config(Some(quinn_server(refusing)));

    let server = serve_connection(&endpoint, 2);
    let client = async {
        let client = early_client(&tls, Address::Quic(addr)).await;
        let first = call(&client, SAFE, b"first").await;
        let second = call(&client, SAFE, b"second").await;
        (client, first, second)
    };
    let (seen, (_client, first, second)) = tokio::time::timeout(Duration::from_secs(10), async { tokio::join!(server, client) })
        .await
        .expect("the refused early data was sent again and answered");
    assert_eq!(first.unwrap(), "first");
    assert_eq!(second.unwrap(), "second");
    assert!(!seen.control_early, "nothing was taken from 0-RTT data: {seen:?}");
    assert_eq!(
        seen.calls.iter().map(|(id, _, early)| (*id, *early)).collect::<Vec<_>>(),
        [(1, false), (2, false)]
    );
}

#[tokio::test]
async fn a_volley_server_accepting_0_rtt_serves_a_resumed_clients_early_call() {
    let ca = Ca::new("quic CA");
    let server = Server::builder()
        .unary(SAFE, |request: Request<Bytes>| async move { Ok::<_, Status>(request.into_inner()) })
        .tls(ca.server_tls())
        .quic(QuicOptions::new().accept_early_data(true))
        .build()
        .unwrap()
        .serve("quic://127.0.0.1:0")
        .await
        .unwrap();
    let tls = ca.client_tls();
    for round in 0..3 {
        let client = early_client(&tls, server.local_addr().clone()).await;
        assert_eq!(call(&client, SAFE, b"echo").await.unwrap(), "echo", "round {round}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.shutdown().await;
}
