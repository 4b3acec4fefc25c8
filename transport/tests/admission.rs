//! Admission over loopback TCP (issue #15): one address cannot take every connection slot. Two
//! peers are two loopback addresses, 127.0.0.1 and 127.0.0.2.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use common::{ECHO_ID, Echo, echo, echo_server, wait_for};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use volley::server::{AdmissionConfig, AdmissionStats, PeerLimits};
use volley::wire::{Frame, PREFACE_LEN, Preface, Settings, decode_frame};
use volley::{CallOptions, Client, ServerHandle};

fn address(server: &ServerHandle) -> SocketAddr {
    match server.local_addr() {
        volley::net::Address::Tcp(address) => *address,
        other => panic!("not TCP: {other}"),
    }
}

/// A connection from `source` (another loopback address) that completes the handshake and is
/// served: its Ping is answered with a Pong.
async fn served_from(source: [u8; 4], server: SocketAddr) -> bool {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((source, 0))).unwrap();
    let mut stream: TcpStream = socket.connect(server).await.unwrap();
    let mut hello = BytesMut::new();
    hello.extend_from_slice(&Preface::CURRENT.encode());
    Frame::Settings(Settings::default()).encode(&mut hello);
    Frame::Ping { payload: 7 }.encode(&mut hello);
    if stream.write_all(&hello).await.is_err() {
        return false;
    }
    let mut inbox = BytesMut::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match tokio::time::timeout_at(deadline, stream.read_buf(&mut inbox)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return false,
            Ok(Ok(_)) => {}
        }
        if inbox.len() < PREFACE_LEN {
            continue;
        }
        let mut frames = inbox.clone().split_off(PREFACE_LEN);
        while let Ok(Some(frame)) = decode_frame(&mut frames, u32::MAX) {
            if frame == (Frame::Pong { payload: 7 }) {
                return true;
            }
        }
    }
}

async fn idle_clients(server: &ServerHandle, count: usize) -> Vec<Client> {
    let mut clients = Vec::new();
    for _ in 0..count {
        let client = Client::connect(server.local_addr()).await.unwrap();
        let _: Echo = client.unary(ECHO_ID, &echo("hi"), CallOptions::new()).await.unwrap();
        clients.push(client);
    }
    clients
}

#[tokio::test]
async fn at_the_connection_cap_a_new_peer_is_served_and_the_heaviest_peer_loses_its_oldest_idle_connection() {
    let server = echo_server()
        .max_connections(4)
        .build()
        .unwrap()
        .serve("127.0.0.1:0")
        .await
        .unwrap();
    let hog = idle_clients(&server, 4).await;
    assert!(served_from([127, 0, 0, 2], address(&server)).await, "a second peer is served");
    let stats = server.admission();
    assert_eq!(
        stats,
        AdmissionStats {
            evicted: 1,
            ..AdmissionStats::default()
        }
    );
    // The oldest idle connection got a graceful GoAway and closed; the others still work.
    wait_for("the evicted connection to close", || hog[0].is_closed()).await;
    for client in &hog[1..] {
        let _: Echo = client.unary(ECHO_ID, &echo("still"), CallOptions::new()).await.unwrap();
    }
    server.shutdown().await;
}

#[tokio::test]
async fn an_address_at_its_limit_is_refused_while_another_address_is_served() {
    let admission = AdmissionConfig {
        loopback: PeerLimits {
            connections: Some(2),
            handshakes: None,
        },
        ..AdmissionConfig::default()
    };
    let server = echo_server()
        .admission(admission)
        .build()
        .unwrap()
        .serve("127.0.0.1:0")
        .await
        .unwrap();
    let _held = idle_clients(&server, 2).await;
    assert!(
        Client::connect(server.local_addr()).await.is_err(),
        "a third from 127.0.0.1 is refused"
    );
    assert!(served_from([127, 0, 0, 2], address(&server)).await, "127.0.0.2 is served");
    assert_eq!(server.admission().refused_peer_connections, 1);
    server.shutdown().await;
}

#[tokio::test]
async fn connections_stuck_in_their_handshake_are_limited_per_address() {
    let admission = AdmissionConfig {
        loopback: PeerLimits {
            connections: None,
            handshakes: Some(3),
        },
        ..AdmissionConfig::default()
    };
    let server = echo_server()
        .admission(admission)
        .build()
        .unwrap()
        .serve("127.0.0.1:0")
        .await
        .unwrap();
    // Three connections that never send their preface.
    let mut silent = Vec::new();
    for _ in 0..3 {
        silent.push(TcpStream::connect(address(&server)).await.unwrap());
    }
    wait_for("the silent connections to be registered", || server.connections() == 3).await;
    assert!(Client::connect(server.local_addr()).await.is_err(), "a fourth handshake is refused");
    assert_eq!(server.admission().refused_peer_handshakes, 1);
    assert!(served_from([127, 0, 0, 2], address(&server)).await, "another address is served");
    server.abort();
}
