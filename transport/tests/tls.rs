//! TLS and mutual TLS over loopback TCP (feature `tls`): calls of every kind, every way a
//! handshake can fail (each a clear, typed error, the server unaffected and still serving),
//! garbage and slow handshakes, certificate reload, and batching (records and writes per call).
//! Certificates are made at run time (`support/pki.rs`).

mod common;
#[path = "support/pki.rs"]
mod pki;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{ECHO, ECHO_ID, Echo, echo};
use pki::Ca;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use volley::server::{AdmissionConfig, PeerLimits};
use volley::tls::{ClientTls, ServerTls, TlsError};
use volley::{CallOptions, Client, Error, MethodId, Request, Server, ServerHandle, Status, StreamSender, Streaming};

const COUNT: &str = "/test.Stream/Count";
const SUM: &str = "/test.Stream/Sum";
const CHAT: &str = "/test.Stream/Chat";
const WHO: &str = "/test.Tls/Who";

fn id(name: &str) -> MethodId {
    MethodId::from_name(name)
}

fn server(tls: ServerTls) -> volley::server::ServerBuilder {
    Server::builder()
        .tls(tls)
        .unary(ECHO, |request: Request<Echo>| async move { Ok::<_, Status>(request.into_inner()) })
        .unary(WHO, |request: Request<Echo>| async move {
            let connection = request.context().connection().expect("a connection");
            let who = match connection.peer_identity() {
                Some(peer) => format!("{} | {}", peer.subject(), peer.dns_names().join(",")),
                None => "anonymous".to_owned(),
            };
            Ok::<_, Status>(echo(who))
        })
        .server_streaming(COUNT, |request: Request<Echo>, mut sender: StreamSender<Echo>| async move {
            for i in 0..request.get_ref().sleep_ms {
                sender.send(&echo(i.to_le_bytes().to_vec())).await?;
            }
            Ok(())
        })
        .client_streaming(SUM, |mut request: Request<Streaming<Echo>>| async move {
            let mut total = 0u64;
            while let Some(message) = request.message().await? {
                total += message.payload.len() as u64;
            }
            Ok(Echo {
                sleep_ms: total,
                ..echo("")
            })
        })
        .bidi_streaming(
            CHAT,
            |mut request: Request<Streaming<Echo>>, mut sender: StreamSender<Echo>| async move {
                while let Some(message) = request.message().await? {
                    sender.send(&message).await?;
                }
                Ok(())
            },
        )
}

async fn serve(builder: volley::server::ServerBuilder) -> ServerHandle {
    builder.build().unwrap().serve("127.0.0.1:0").await.unwrap()
}

fn addr(server: &ServerHandle) -> SocketAddr {
    let volley::net::Address::Tcp(addr) = server.local_addr().clone() else {
        unreachable!("TCP server")
    };
    addr
}

async fn connect(server: &ServerHandle, tls: ClientTls) -> Result<Client, Error> {
    Client::builder().tls(tls).connect(addr(server)).await
}

/// The `TlsError` of a failed connect; panics with the error otherwise.
fn tls_error(result: Result<Client, Error>) -> TlsError {
    match result {
        Err(Error::Tls { source, .. }) => source,
        Err(other) => panic!("expected a TLS error, got: {other}"),
        Ok(_) => panic!("expected a TLS error, the connection succeeded"),
    }
}

async fn exercise_every_kind(client: &Client) {
    let reply: Echo = client.unary(ECHO_ID, &echo("hello"), CallOptions::default()).await.unwrap();
    assert_eq!(reply.payload, "hello");

    let big = echo(vec![7u8; 1 << 20]);
    let reply: Echo = client.unary(ECHO_ID, &big, CallOptions::default()).await.unwrap();
    assert_eq!(reply.payload, big.payload, "1 MiB across many records, both ways");

    let count = Echo { sleep_ms: 100, ..echo("") };
    let mut stream: Streaming<Echo> = client.server_streaming(id(COUNT), &count, CallOptions::default()).await.unwrap();
    let mut seen = 0u64;
    while let Some(message) = stream.message().await.unwrap() {
        assert_eq!(message.payload[..], seen.to_le_bytes());
        seen += 1;
    }
    assert_eq!(seen, 100);

    let mut call = client
        .client_streaming::<Echo, Echo>(id(SUM), CallOptions::default())
        .await
        .unwrap();
    for _ in 0..100 {
        call.send(&echo(vec![1u8; 10])).await.unwrap();
    }
    assert_eq!(call.finish().await.unwrap().sleep_ms, 1000);

    let (mut sender, mut replies) = client.bidi_streaming::<Echo, Echo>(id(CHAT), CallOptions::default()).await.unwrap();
    for i in 0..50u32 {
        sender.send(&echo(i.to_le_bytes().to_vec())).await.unwrap();
        let reply = replies.message().await.unwrap().unwrap();
        assert_eq!(reply.payload[..], i.to_le_bytes());
    }
    sender.close();
    assert!(replies.message().await.unwrap().is_none());
}

/// The server still serves a well-configured client.
async fn still_serves(server: &ServerHandle, tls: ClientTls) {
    let client = connect(server, tls).await.expect("a good client still connects");
    let reply: Echo = client.unary(ECHO_ID, &echo("still here"), CallOptions::default()).await.unwrap();
    assert_eq!(reply.payload, "still here");
}

#[tokio::test]
async fn tls_calls_of_all_four_kinds_succeed() {
    let ca = Ca::new("test CA");
    let server = serve(server(ca.server_tls())).await;
    let client = connect(&server, ca.client_tls()).await.unwrap();
    exercise_every_kind(&client).await;
    let who: Echo = client.unary(id(WHO), &echo(""), CallOptions::default()).await.unwrap();
    assert_eq!(who.payload, "anonymous", "no client certificate, no identity");
    assert!(client.stats().tls_records_out > 0);
    server.shutdown().await;
}

#[tokio::test]
async fn mutual_tls_calls_of_all_four_kinds_succeed_and_handlers_see_the_client_identity() {
    let ca = Ca::new("test CA");
    let leaf = ca.leaf("server", &["localhost"]);
    let tls = ServerTls::builder(leaf.chain(), leaf.key())
        .client_ca_certificates(vec![ca.cert.clone()])
        .build()
        .unwrap();
    assert!(tls.is_mutual());
    let server = serve(server(tls)).await;
    let me = ca.leaf("teller", &["teller.bank.internal"]);
    let client_tls = ClientTls::builder()
        .ca_certificates(vec![ca.cert.clone()])
        .server_name("localhost")
        .client_certificate(me.chain(), me.key())
        .build()
        .unwrap();
    let client = connect(&server, client_tls).await.unwrap();
    exercise_every_kind(&client).await;
    let who: Echo = client.unary(id(WHO), &echo(""), CallOptions::default()).await.unwrap();
    assert_eq!(who.payload, "CN=teller | teller.bank.internal");
    server.shutdown().await;
}

#[tokio::test]
async fn pem_credentials_load_and_serve() {
    let ca = Ca::new("test CA");
    let leaf = ca.leaf("server", &["localhost"]);
    let pem = |label: &str, der: &[u8]| {
        use std::fmt::Write;
        let b64 = base64_encode(der);
        let mut out = format!("-----BEGIN {label}-----\n");
        for line in b64.as_bytes().chunks(64) {
            writeln!(out, "{}", std::str::from_utf8(line).unwrap()).unwrap();
        }
        writeln!(out, "-----END {label}-----").unwrap();
        out
    };
    let tls = ServerTls::builder_from_pem(
        pem("CERTIFICATE", &leaf.cert).as_bytes(),
        pem("PRIVATE KEY", &leaf.key_der).as_bytes(),
    )
    .unwrap()
    .build()
    .unwrap();
    let server = serve(server(tls)).await;
    let client_tls = ClientTls::builder()
        .ca_pem(pem("CERTIFICATE", &ca.cert).as_bytes())
        .unwrap()
        .server_name("localhost")
        .build()
        .unwrap();
    still_serves(&server, client_tls).await;
    let bad = ServerTls::builder_from_pem(b"not a pem", b"nor this").unwrap_err();
    assert!(matches!(bad, TlsError::Credentials(_)), "{bad}");
    assert!(bad.to_string().contains("BEGIN CERTIFICATE"), "{bad}");
    server.shutdown().await;
}

fn base64_encode(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_servers_ca_fails_with_untrusted() {
    let ca = Ca::new("test CA");
    let server = serve(server(ca.server_tls())).await;
    let other = Ca::new("another CA");
    let err = tls_error(connect(&server, other.client_tls()).await);
    assert!(matches!(err, TlsError::Untrusted(_)), "{err}");
    assert!(err.to_string().contains("give this side the CA"), "{err}");
    still_serves(&server, ca.client_tls()).await;
    server.shutdown().await;
}

#[tokio::test]
async fn an_expired_server_certificate_fails_with_expired() {
    let ca = Ca::new("test CA");
    let leaf = ca.leaf_with("server", &["localhost"], true);
    let server = serve(server(ServerTls::builder(leaf.chain(), leaf.key()).build().unwrap())).await;
    let err = tls_error(connect(&server, ca.client_tls()).await);
    assert!(matches!(err, TlsError::Expired(_)), "{err}");
    server.shutdown().await;
}

#[tokio::test]
async fn a_server_certificate_for_another_name_fails_with_wrong_name() {
    let ca = Ca::new("test CA");
    let server = serve(server(ca.server_tls())).await;
    let tls = ClientTls::builder()
        .ca_certificates(vec![ca.cert.clone()])
        .server_name("payments.internal")
        .build()
        .unwrap();
    let err = tls_error(connect(&server, tls).await);
    assert!(matches!(err, TlsError::WrongName(_)), "{err}");
    assert!(err.to_string().contains("server_name"), "{err}");
    still_serves(&server, ca.client_tls()).await;
    server.shutdown().await;
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
async fn under_mutual_tls_a_client_without_a_certificate_fails_with_client_certificate_required() {
    let ca = Ca::new("test CA");
    let server = serve(server(mutual_server_tls(&ca))).await;
    let err = tls_error(connect(&server, ca.client_tls()).await);
    assert!(matches!(err, TlsError::ClientCertificateRequired), "{err}");
    assert!(err.to_string().contains("client_certificate"), "{err}");
    still_serves(&server, client_with_cert(&ca, &ca)).await;
    assert_eq!(server.tls_handshake_failures(), 1);
    server.shutdown().await;
}

#[tokio::test]
async fn under_mutual_tls_a_client_certificate_from_another_ca_is_rejected() {
    let ca = Ca::new("test CA");
    let server = serve(server(mutual_server_tls(&ca))).await;
    let stranger = Ca::new("stranger CA");
    let err = tls_error(connect(&server, client_with_cert(&ca, &stranger)).await);
    assert!(matches!(err, TlsError::Rejected(_)), "{err}");
    still_serves(&server, client_with_cert(&ca, &ca)).await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_tls_client_at_a_plaintext_port_fails_with_plaintext_server() {
    let ca = Ca::new("test CA");
    let plain = Server::builder()
        .unary(ECHO, |request: Request<Echo>| async move { Ok::<_, Status>(request.into_inner()) })
        .build()
        .unwrap()
        .serve("127.0.0.1:0")
        .await
        .unwrap();
    let started = Instant::now();
    let err = tls_error(connect(&plain, ca.client_tls()).await);
    assert!(matches!(err, TlsError::PlaintextServer), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2), "fails fast, not at a timeout");
    let client = Client::connect(addr(&plain)).await.unwrap();
    let _: Echo = client.unary(ECHO_ID, &echo("plain"), CallOptions::default()).await.unwrap();
    plain.shutdown().await;
}

#[tokio::test]
async fn a_plaintext_client_at_a_tls_port_is_told_the_port_speaks_tls() {
    let ca = Ca::new("test CA");
    let server = serve(server(ca.server_tls())).await;
    let started = Instant::now();
    let err = Client::connect(addr(&server)).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2), "fails fast, not at a timeout");
    let Error::Handshake { reason, .. } = &err else {
        panic!("expected a handshake error, got {err}")
    };
    assert!(reason.contains("speaks TLS"), "{reason}");
    common::wait_for("the server counts the failure", || server.tls_handshake_failures() == 1).await;
    still_serves(&server, ca.client_tls()).await;
    server.shutdown().await;
}

#[tokio::test]
#[allow(deprecated)] // ring's provider, as volley uses it (see tls/config.rs)
async fn a_client_offering_another_alpn_is_refused_with_an_alpn_error() {
    let ca = Ca::new("test CA");
    let server = serve(server(ca.server_tls())).await;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.cert.clone()).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tls = ClientTls::from_rustls(Arc::new(config), Some("localhost".try_into().unwrap()));
    let err = tls_error(connect(&server, tls).await);
    assert!(matches!(err, TlsError::Alpn(_)), "{err}");
    still_serves(&server, ca.client_tls()).await;
    server.shutdown().await;
}

/// Reads from a raw socket until the server closes it; returns how long that took. Panics if
/// the server keeps it open past `limit`.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Duration {
    let started = Instant::now();
    let mut scratch = [0u8; 1024];
    loop {
        match tokio::time::timeout_at((started + limit).into(), stream.read(&mut scratch)).await {
            Ok(Ok(0) | Err(_)) => return started.elapsed(),
            Ok(Ok(_)) => {}
            Err(_) => panic!("the server kept the connection open for {limit:?}"),
        }
    }
}

#[tokio::test]
async fn garbage_instead_of_a_client_hello_is_refused_fast_and_the_server_keeps_serving() {
    let ca = Ca::new("test CA");
    let server = serve(server(ca.server_tls())).await;
    let garbage: [&[u8]; 3] = [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        // A handshake record header, then a ClientHello that is nonsense.
        &[
            0x16, 0x03, 0x01, 0x00, 0x10, 0x01, 0x00, 0x00, 0x0c, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        ],
        &[0xff; 64],
    ];
    for (i, bytes) in garbage.iter().enumerate() {
        let mut raw = TcpStream::connect(addr(&server)).await.unwrap();
        raw.write_all(bytes).await.unwrap();
        let took = closed_within(&mut raw, Duration::from_secs(3)).await;
        assert!(took < Duration::from_secs(2), "garbage {i} took {took:?} to be refused");
    }
    // Each failure is counted once the server stops lingering on it (it read our EOF).
    common::wait_for("the server counts the failures", || server.tls_handshake_failures() == 3).await;
    still_serves(&server, ca.client_tls()).await;
    common::wait_for("nothing of the garbage connections is left", || server.connections() == 0).await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_slow_tls_handshake_is_cut_at_the_handshake_timeout_while_others_are_served() {
    let ca = Ca::new("test CA");
    let timeout = Duration::from_millis(400);
    let server = serve(server(ca.server_tls()).handshake_timeout(timeout)).await;
    // Slowloris: the first bytes of a ClientHello, then nothing.
    let mut slow = TcpStream::connect(addr(&server)).await.unwrap();
    slow.write_all(&[0x16, 0x03, 0x01]).await.unwrap();
    // Meanwhile a real client is served: the handshake runs off the accept loop.
    still_serves(&server, ca.client_tls()).await;
    let took = closed_within(&mut slow, Duration::from_secs(5)).await;
    assert!(took < Duration::from_secs(3), "cut at about the handshake timeout, took {took:?}");
    common::wait_for("the server counts the timeout", || server.tls_handshake_failures() == 1).await;
    server.shutdown().await;
}

#[tokio::test]
async fn tls_handshakes_count_against_the_per_address_handshake_budget() {
    let ca = Ca::new("test CA");
    let limits = PeerLimits {
        connections: None,
        handshakes: Some(2),
    };
    let admission = AdmissionConfig {
        loopback: limits,
        remote: limits,
    };
    let server = serve(server(ca.server_tls()).admission(admission)).await;
    let mut stuck = Vec::new();
    for _ in 0..2 {
        let mut raw = TcpStream::connect(addr(&server)).await.unwrap();
        raw.write_all(&[0x16, 0x03]).await.unwrap();
        stuck.push(raw);
    }
    common::wait_for("two handshakes registered", || server.connections() == 2).await;
    let mut third = TcpStream::connect(addr(&server)).await.unwrap();
    let took = closed_within(&mut third, Duration::from_secs(2)).await;
    assert!(took < Duration::from_secs(1));
    assert_eq!(server.admission().refused_peer_handshakes, 1);
    drop(stuck);
    common::wait_for("the stuck handshakes end", || server.connections() == 0).await;
    still_serves(&server, ca.client_tls()).await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_reloaded_certificate_serves_new_connections_while_old_ones_keep_theirs() {
    let ca = Ca::new("test CA");
    let old = ca.leaf("old", &["old.test"]);
    let tls = ServerTls::builder(old.chain(), old.key()).build().unwrap();
    let server = serve(server(tls.clone())).await;
    let expecting = |name: &str| {
        ClientTls::builder()
            .ca_certificates(vec![ca.cert.clone()])
            .server_name(name)
            .build()
            .unwrap()
    };
    let before = connect(&server, expecting("old.test")).await.unwrap();
    assert!(matches!(
        tls_error(connect(&server, expecting("new.test")).await),
        TlsError::WrongName(_)
    ));

    let new = ca.leaf("new", &["new.test"]);
    tls.reload(new.chain(), new.key()).unwrap();
    // A bad reload keeps the current certificate.
    let mismatched = ca.leaf("other", &["other.test"]);
    assert!(matches!(tls.reload(new.chain(), mismatched.key()), Err(TlsError::Credentials(_))));

    let after = connect(&server, expecting("new.test"))
        .await
        .expect("new connections get the new certificate");
    assert!(matches!(
        tls_error(connect(&server, expecting("old.test")).await),
        TlsError::WrongName(_)
    ));
    for client in [&before, &after] {
        let reply: Echo = client.unary(ECHO_ID, &echo("x"), CallOptions::default()).await.unwrap();
        assert_eq!(reply.payload, "x", "the connection opened before the reload keeps working");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn tls_over_a_unix_socket_is_a_config_error() {
    let ca = Ca::new("test CA");
    let err = Client::builder()
        .tls(ca.client_tls())
        .connect("unix:/tmp/volley-tls-none.sock")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err}");
}

/// One writer batches: a burst of 128 unary calls on one connection leaves the client in a few
/// writes of a few records (the requests, ~60 bytes each, share 16 KiB records), and the server
/// answers the requests of one read together. Bounds are deterministic on a current-thread
/// runtime: every call is queued before the writer runs.
#[tokio::test(flavor = "current_thread")]
async fn a_burst_of_128_calls_takes_few_records_and_writes_on_each_side() {
    const BURST: usize = 128;
    let ca = Ca::new("test CA");
    let server = serve(server(ca.server_tls())).await;
    let client = connect(&server, ca.client_tls()).await.unwrap();
    let _: Echo = client.unary(ECHO_ID, &echo("warm"), CallOptions::default()).await.unwrap();
    let client_before = client.stats();
    let server_before = server.stats();
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..BURST {
        let client = client.clone();
        calls.spawn(async move {
            let reply: Echo = client
                .unary(ECHO_ID, &echo(Bytes::from(vec![i as u8; 32])), CallOptions::default())
                .await
                .unwrap();
            assert_eq!(reply.payload.len(), 32);
        });
    }
    while let Some(result) = calls.join_next().await {
        result.unwrap();
    }
    let client_after = client.stats();
    let server_after = server.stats();
    let client_writes = client_after.write_syscalls - client_before.write_syscalls;
    let client_records = client_after.tls_records_out - client_before.tls_records_out;
    let server_writes = server_after.write_syscalls - server_before.write_syscalls;
    let server_records = server_after.tls_records_out - server_before.tls_records_out;
    eprintln!(
        "burst of {BURST}: client {client_writes} writes / {client_records} records, server {server_writes} writes / {server_records} records"
    );
    // Measured: client 2 writes of 1 record each (the first call writes itself, the other 127
    // join the writer's batch), server 1 write of 1 record.
    assert!(client_writes <= 2, "client writes: {client_writes}");
    assert!(client_records <= 2, "client records: {client_records}");
    assert!(server_writes <= 2, "server writes: {server_writes}");
    assert!(server_records <= 2, "server records: {server_records}");
    server.shutdown().await;
}

#[tokio::test]
async fn a_channel_connects_and_reconnects_with_tls() {
    let ca = Ca::new("test CA");
    let first = serve(server(ca.server_tls())).await;
    let channel = volley::Channel::builder().tls(ca.client_tls()).connect(addr(&first)).await.unwrap();
    let reply: Echo = channel.unary(ECHO_ID, &echo("one"), CallOptions::default()).await.unwrap();
    assert_eq!(reply.payload, "one");
    // A second server on the same port: the channel reconnects, with TLS again.
    let port = addr(&first);
    first.shutdown().await;
    let again = server(ca.server_tls()).build().unwrap().serve(port).await.unwrap();
    let reply: Echo = channel.unary(ECHO_ID, &echo("two"), CallOptions::default()).await.unwrap();
    assert_eq!(reply.payload, "two");
    again.shutdown().await;
}

/// Large messages from several tasks at once on a multi-thread runtime: the socket fills, writes
/// end part-way through a batch's records and the writer task finishes them, while the reader
/// decrypts on another thread. Every byte arrives intact and in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_large_messages_survive_partial_writes_on_a_multi_thread_runtime() {
    let ca = Ca::new("test CA");
    let server = serve(server(ca.server_tls())).await;
    let client = connect(&server, ca.client_tls()).await.unwrap();
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..8u8 {
        let client = client.clone();
        calls.spawn(async move {
            let payload: Bytes = (0..(4 << 20))
                .map(|j: usize| (j as u8).wrapping_mul(i + 1))
                .collect::<Vec<u8>>()
                .into();
            let reply: Echo = client.unary(ECHO_ID, &echo(payload.clone()), CallOptions::default()).await.unwrap();
            assert!(reply.payload == payload, "call {i}: the echo differs");
        });
    }
    while let Some(result) = calls.join_next().await {
        result.unwrap();
    }
    server.shutdown().await;
}

/// A bearer token goes to another host only over TLS (or with `allow_plaintext`): a TLS channel
/// to a non-loopback address builds, the same channel without TLS is refused.
#[test]
fn a_bearer_token_may_go_to_another_host_over_tls() {
    use volley::Channel;
    use volley::interceptor::BearerToken;
    let ca = Ca::new("test CA");
    let far = "192.0.2.7:7000";
    let with_tls = Channel::builder()
        .tls(ca.client_tls())
        .interceptor(BearerToken::new("s3cret").unwrap())
        .connect_lazy(far);
    assert!(with_tls.is_ok(), "{:?}", with_tls.err());
    let plaintext = Channel::builder()
        .interceptor(BearerToken::new("s3cret").unwrap())
        .connect_lazy(far);
    assert!(matches!(plaintext, Err(Error::PlaintextCredentials(_))), "{plaintext:?}");
}
