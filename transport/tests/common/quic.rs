//! Shared QUIC fixtures (feature `quic`): a Volley server on an ephemeral loopback UDP port, a
//! Volley client on a chosen stream mapping, and a raw quinn client connection offering the ALPN
//! ids of its rustls configuration.

use std::net::SocketAddr;
use std::sync::Arc;

use volley::net::Address;
use volley::quic::{QuicMapping, QuicOptions};
use volley::server::ServerBuilder;
use volley::tls::{ClientTls, ServerTls};
use volley::{Client, ServerHandle};

/// Serves `builder` with `tls` on `quic://127.0.0.1:0`: the handle and the UDP address.
pub async fn serve_quic(builder: ServerBuilder, tls: ServerTls) -> (ServerHandle, SocketAddr) {
    let server = builder.tls(tls).build().unwrap().serve("quic://127.0.0.1:0").await.unwrap();
    let Address::Quic(addr) = server.local_addr().clone() else {
        panic!("a quic:// server reports a QUIC address, got {}", server.local_addr())
    };
    (server, addr)
}

/// A Volley client to the QUIC server at `addr`, trusting what `tls` trusts, offering `mapping`.
pub async fn quic_client(addr: SocketAddr, tls: ClientTls, mapping: QuicMapping) -> Client {
    Client::builder()
        .tls(tls)
        .quic(QuicOptions::new().mapping(mapping))
        .connect(Address::Quic(addr))
        .await
        .unwrap()
}

/// A raw quinn connection to `addr` from a client endpoint of its own, with the rustls client
/// configuration `tls` (the ALPN ids it offers); the endpoint must outlive the connection.
pub async fn raw_quic_connection(
    addr: SocketAddr,
    tls: rustls::ClientConfig,
) -> Result<(quinn::Endpoint, quinn::Connection), quinn::ConnectionError> {
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let connection = endpoint
        .connect_with(quinn::ClientConfig::new(Arc::new(crypto)), addr, "localhost")
        .unwrap()
        .await?;
    Ok((endpoint, connection))
}
