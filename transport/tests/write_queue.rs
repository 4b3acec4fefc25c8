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
