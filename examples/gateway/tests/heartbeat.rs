//! Cancel-on-disconnect when a session stops answering the gateway's keepalive pings without
//! closing its connection (a hung client, a link that died without TCP noticing).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{client, config, limit, scratch, start};
use gateway::proto::{NewOrderRequest, OrderQuery, OrderStatus, Side};
use volley::Client;

/// A loopback TCP proxy to `upstream` for one connection: it forwards bytes both ways until
/// `frozen` is set, then forwards nothing more and keeps the sockets open, like a client that
/// hung or a link that died without TCP noticing.
async fn freezing_proxy(upstream: std::net::SocketAddr, frozen: Arc<AtomicBool>) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (inbound, _) = listener.accept().await.unwrap();
        let outbound = tokio::net::TcpStream::connect(upstream).await.unwrap();
        let (from_client, to_client) = inbound.into_split();
        let (from_gateway, to_gateway) = outbound.into_split();
        tokio::join!(pump(from_client, to_gateway, frozen.clone()), pump(from_gateway, to_client, frozen));
    });
    address
}

async fn pump(mut from: tokio::net::tcp::OwnedReadHalf, mut to: tokio::net::tcp::OwnedWriteHalf, frozen: Arc<AtomicBool>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0; 16 * 1024];
    loop {
        let read = from.read(&mut buf).await;
        if frozen.load(Ordering::Acquire) {
            // Hold both halves open and silent until the test ends, whatever the client does:
            // the gateway must notice the silence by itself.
            std::future::pending::<()>().await;
        }
        let n = match read {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

#[tokio::test]
async fn a_session_that_misses_its_heartbeats_has_its_cancel_on_disconnect_orders_cancelled() {
    let (_dir, journal) = scratch();
    let running = start(&gateway::config::Config {
        keepalive_interval: Some(Duration::from_millis(100)),
        keepalive_timeout: Duration::from_millis(200),
        ..config(&journal)
    })
    .await;
    let upstream: std::net::SocketAddr = running.local_addr().to_string().parse().unwrap();
    let frozen = Arc::new(AtomicBool::new(false));
    let proxy = freezing_proxy(upstream, frozen.clone()).await;
    let through_proxy =
        gateway::proto::order_entry_client::OrderEntryClient::new(Client::connect(volley::net::Address::Tcp(proxy)).await.unwrap());
    let ack = through_proxy
        .new_order(NewOrderRequest {
            cancel_on_disconnect: true,
            ..limit("A", "cod-1", Side::Buy, 18_700, 1)
        })
        .await
        .unwrap();
    assert_eq!(ack.status, OrderStatus::New as i32, "{ack:?}");

    // The client goes silent without closing its connection.
    frozen.store(true, Ordering::Release);
    let direct = client(&running).await;
    let query = OrderQuery {
        account: "A".into(),
        cl_ord_id: "cod-1".into(),
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let status = loop {
        let found = direct.query_order(query.clone()).await.unwrap();
        if found.status != OrderStatus::New as i32 || tokio::time::Instant::now() > deadline {
            break found.status;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        status,
        OrderStatus::Cancelled as i32,
        "the heartbeat miss ended the session and cancelled its order"
    );
    running.shutdown().await.unwrap();
}
