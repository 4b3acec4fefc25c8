//! The mux's own records, which no integration test can see: a cancelled call's stream leaves
//! both halves' maps at once, over a real quinn connection on loopback.

use std::io::IoSlice;
use std::sync::Arc;
use std::task::{Context, Waker};

use bytes::BytesMut;

use super::MuxStream;
use crate::quic::{ALPN_VOLLEY_QUIC, STREAM_CANCELLED};
use crate::wire::{CallHead, CallId, Frame, MethodId, Preface, Settings};

/// Both ends of a quinn connection (client endpoint, client connection, server connection),
/// with a self-signed `localhost` certificate the client trusts.
async fn pair() -> (quinn::Endpoint, quinn::Connection, quinn::Connection) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let key = rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der()).unwrap();
    let mut server_tls = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
    server_tls.alpn_protocols = vec![ALPN_VOLLEY_QUIC.to_vec()];
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let mut client_tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    client_tls.alpn_protocols = vec![ALPN_VOLLEY_QUIC.to_vec()];
    let server_crypto = quinn::crypto::rustls::QuicServerConfig::try_from(server_tls).unwrap();
    let server = quinn::Endpoint::server(
        quinn::ServerConfig::with_crypto(Arc::new(server_crypto)),
        "127.0.0.1:0".parse().unwrap(),
    )
    .unwrap();
    let addr = server.local_addr().unwrap();
    let accepted = tokio::spawn(async move { server.accept().await.unwrap().await.unwrap() });
    let client_crypto = quinn::crypto::rustls::QuicClientConfig::try_from(client_tls).unwrap();
    let client = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let connection = client
        .connect_with(quinn::ClientConfig::new(Arc::new(client_crypto)), addr, "localhost")
        .unwrap()
        .await
        .unwrap();
    (client, connection, accepted.await.unwrap())
}

fn write_all(mux: &MuxStream, bytes: &[u8]) {
    let written = mux.try_write_vectored(&[IoSlice::new(bytes)]).unwrap();
    assert_eq!(written, bytes.len(), "quinn takes a few small frames at once");
}

/// Lets the reader take what the writer handed it (streams opened and cancelled).
fn read_pass(mux: &MuxStream) {
    let _ = mux.poll_read_ready(&mut Context::from_waker(Waker::noop()));
}

#[tokio::test]
async fn a_cancelled_calls_stream_leaves_the_writers_and_the_readers_maps() {
    let (_client, connection, peer) = pair().await;
    let (send, recv) = connection.open_bi().await.unwrap();
    let mux = MuxStream::new(connection, true, send, recv, 1 << 20, 1 << 20, None);
    let mut out = BytesMut::from(&Preface::CURRENT.encode()[..]);
    Frame::Settings(Settings::default()).encode(&mut out);
    Frame::Request {
        call_id: CallId(1),
        head: CallHead {
            method_id: MethodId::from_name("/test.Mux/Upload"),
            ..CallHead::default()
        },
        message: None,
        end_stream: false,
    }
    .encode(&mut out);
    write_all(&mux, &out);
    read_pass(&mux);
    assert_eq!(
        mux.open_streams(),
        (1, 2),
        "one call stream written; the control and the call's stream read"
    );

    let (_control, _control_rx) = peer.accept_bi().await.unwrap();
    let (call_tx, mut call_rx) = peer.accept_bi().await.unwrap();

    let mut cancel = BytesMut::new();
    Frame::Cancel { call_id: CallId(1) }.encode(&mut cancel);
    write_all(&mux, &cancel);
    read_pass(&mux);
    assert_eq!(mux.open_streams(), (0, 1), "only the control stream is left");

    let end = call_rx.read_to_end(1 << 20).await;
    assert!(
        matches!(end, Err(quinn::ReadToEndError::Read(quinn::ReadError::Reset(code))) if code == STREAM_CANCELLED),
        "{end:?}"
    );
    assert_eq!(call_tx.stopped().await.unwrap(), Some(STREAM_CANCELLED));
}
