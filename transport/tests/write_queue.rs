//! The write-queue cap holds for what handlers produce (issue #15, section 3): past the cap a
//! server stops taking handler output, its handlers wait, and nothing is dropped.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::proxy::{Direction, FaultProxy, Faults};
use common::{Echo, echo, wait_for};
use volley::net::SocketConfig;
use volley::{CallOptions, Client, MethodId, Request, Server, Status, StreamSender, Streaming};

const BIG: &str = "/test.Queue/Big";
const MANY: &str = "/test.Queue/Many";
/// The server's write-queue cap in these tests.
const CAP: usize = 256 * 1024;
/// Bytes of each answer's payload.
const ANSWER: usize = 64 * 1024;
/// One answer's frame: the payload, its protobuf tag and length, the frame header.
const ANSWER_FRAME: usize = ANSWER + 4 + 16;
const CALLS: usize = 64;
const STREAMED: usize = 64;

fn long() -> CallOptions {
    CallOptions::default().timeout(Duration::from_secs(30))
}

/// A peer that reads nothing while 64 unary handlers answer 64 KiB each and a stream offers 64
/// messages of 64 KiB (4 MiB each way against a 256 KiB cap): the queue never holds more than
/// the cap plus one answer, and once the peer reads, every answer arrives, in order and whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handlers_wait_at_the_write_queue_cap_and_every_answer_arrives_once_the_peer_reads() {
    let answered = Arc::new(AtomicUsize::new(0));
    let handlers = answered.clone();
    let server = Server::builder()
        .write_queue_cap(CAP)
        // A small socket buffer, so the queue, not the kernel, holds what the peer does not read.
        .socket_config(SocketConfig {
            send_buffer_size: Some(64 * 1024),
            ..SocketConfig::default()
        })
        .unary(BIG, move |request: Request<Echo>| {
            let handlers = handlers.clone();
            async move {
                handlers.fetch_add(1, Ordering::SeqCst);
                Ok::<_, Status>(echo(vec![request.get_ref().sleep_ms as u8; ANSWER]))
            }
        })
        .server_streaming(MANY, |_: Request<Echo>, mut sender: StreamSender<Echo>| async move {
            for i in 0..STREAMED {
                sender.send(&echo(vec![i as u8; ANSWER])).await?;
            }
            Ok(())
        })
        .build()
        .unwrap()
        .serve("127.0.0.1:0")
        .await
        .unwrap();
    let proxy = FaultProxy::start(&server).await;
    let client = Client::connect(proxy.address()).await.unwrap();
    proxy.set(
        Direction::Down,
        Faults {
            black_hole: true,
            ..Faults::default()
        },
    );
    let calls: Vec<_> = (0..CALLS)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                // `sleep_ms` only tags the request here; the handler answers with it.
                let request = Echo {
                    sleep_ms: i as u64,
                    ..echo("")
                };
                let reply: Echo = client.unary(MethodId::from_name(BIG), &request, long()).await.unwrap();
                assert_eq!(reply.payload.len(), ANSWER);
                assert!(reply.payload.iter().all(|&b| b == i as u8), "call {i} got another call's answer");
            })
        })
        .collect();
    let stream = {
        let client = client.clone();
        tokio::spawn(async move {
            let mut stream: Streaming<Echo> = client.server_streaming(MethodId::from_name(MANY), &echo(""), long()).await.unwrap();
            for i in 0..STREAMED {
                let message = stream.message().await.unwrap().expect("every message arrives");
                assert!(message.payload.len() == ANSWER && message.payload.iter().all(|&b| b == i as u8));
            }
            assert!(stream.message().await.unwrap().is_none());
        })
    };
    // The queue reaches its cap and stays there while the peer reads nothing.
    wait_for("the write queue to reach its cap", || {
        server.stats().write_queue_bytes >= CAP as u64
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(server.stats().write_queue_bytes >= CAP as u64);
    let peak = server.stats().write_queue_peak;
    assert!(
        peak < (CAP + ANSWER_FRAME + 1024) as u64,
        "the queue held {peak} bytes against a cap of {CAP} (answers waiting: {})",
        CALLS - answered.load(Ordering::SeqCst)
    );
    proxy.clear();
    for call in calls {
        call.await.unwrap();
    }
    stream.await.unwrap();
    assert_eq!(answered.load(Ordering::SeqCst), CALLS);
    let stats = server.stats();
    assert_eq!(stats.calls_by_code[0], (CALLS + 1) as u64, "every call ended OK");
    assert!(
        stats.write_queue_peak < (CAP + ANSWER_FRAME + 1024) as u64,
        "the queue held {} bytes against a cap of {CAP}",
        stats.write_queue_peak
    );
}

/// A peer that sends 1,000 requests of 16 KiB (16 MiB) for 64 KiB answers and reads nothing:
/// at the cap the server goes on reading (the frames that let its writer drain, ChunkAcks, may
/// be behind requests: `tests/lanes.rs`) but holds the calls back instead of running them, and
/// stops reading once the held requests reach the cap. It reads a bounded part of the 16 MiB.
#[tokio::test]
async fn at_the_write_queue_cap_a_server_holds_calls_back_up_to_the_cap_and_then_stops_reading() {
    use bytes::BytesMut;
    use common::raw::RawPeer;
    use volley::wire::{CallHead, CallId, Frame};

    const REQUEST: usize = 16 * 1024;
    const REQUESTS: u64 = 1_000;
    let server = Server::builder()
        .write_queue_cap(CAP)
        .socket_config(SocketConfig {
            send_buffer_size: Some(64 * 1024),
            ..SocketConfig::default()
        })
        .unary_inline(BIG, |_: Request<Echo>| Ok::<_, Status>(echo(vec![1u8; ANSWER])))
        .build()
        .unwrap()
        .serve("127.0.0.1:0")
        .await
        .unwrap();
    let mut message = BytesMut::new();
    prost::Message::encode(&echo(vec![2u8; REQUEST]), &mut message).unwrap();
    let message = message.freeze();
    let mut requests = BytesMut::new();
    for i in 0..REQUESTS {
        Frame::Request {
            call_id: CallId(2 * i + 1),
            head: CallHead {
                method_id: MethodId::from_name(BIG),
                ..CallHead::default()
            },
            message: Some(message.clone()),
            end_stream: true,
        }
        .encode(&mut requests);
    }
    let frame_len = requests.len() / REQUESTS as usize;
    let mut peer = RawPeer::handshake(&server).await;
    // The peer's writes block once the server stops reading: send from a task of its own.
    let sender = tokio::spawn(async move {
        peer.send(&requests).await;
        peer
    });
    // Read until the server's intake has stayed still for 300 ms.
    let mut last = (u64::MAX, 0);
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let stats = server.stats();
        let now = (stats.bytes_in, stats.calls_started);
        if now == last {
            break;
        }
        last = now;
    }
    let (bytes_in, dispatched) = last;
    let read = bytes_in / frame_len as u64;
    let held = (read - dispatched) as usize * frame_len;
    assert!(server.stats().write_queue_bytes >= CAP as u64, "the write queue is at its cap");
    assert!(!sender.is_finished(), "the server stopped reading: the peer cannot send all 16 MiB");
    assert!(
        held >= CAP,
        "at the cap the server read on: {held} bytes of requests held ({read} read, {dispatched} run)"
    );
    // Past the cap by at most one read's worth (a read buffer of 64 KiB) and a request either side.
    assert!(
        held <= CAP + 64 * 1024 + 2 * frame_len,
        "the held requests stop near the cap: {held} bytes ({read} read, {dispatched} run)"
    );
    assert!(bytes_in < 8 * 1024 * 1024, "the server read {bytes_in} of 16 MiB");
    eprintln!("held {held} bytes of requests ({read} read, {dispatched} run), {bytes_in} bytes read");
    sender.abort();
    server.abort();
}
