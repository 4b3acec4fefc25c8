//! Streaming calls over a balanced channel: server, client and bidirectional streams each pick
//! an endpoint per call, as unary calls do, and open streams count in the endpoints' load, so
//! long-lived streams spread evenly.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use volley::balance::BalancedChannel;
use volley::{CallOptions, Caller, MethodId, Request, Server, ServerHandle, Status};

use crate::common::{Echo, echo};
use crate::replica::{DEADLINE, beside_others};

const WATCH: &str = "/test.Streams/Watch";
const UPLOAD: &str = "/test.Streams/Upload";
const CHAT: &str = "/test.Streams/Chat";

/// Streams each kind opens: with 3 replicas, 10 each when spread evenly.
const STREAMS: usize = 30;

/// Streams a replica has seen open, by kind.
#[derive(Default)]
struct Opened {
    watch: AtomicU64,
    upload: AtomicU64,
    chat: AtomicU64,
}

/// A replica whose three streaming methods each count the stream, then hold it open until
/// `gate` lets it end.
async fn replica(ip: &str, opened: Arc<Opened>, gate: Arc<Semaphore>) -> ServerHandle {
    let (o1, o2, o3) = (opened.clone(), opened.clone(), opened);
    let (g1, g2, g3) = (gate.clone(), gate.clone(), gate);
    Server::builder()
        .server_streaming(WATCH, move |request: Request<Echo>, mut sender: volley::StreamSender<Echo>| {
            let (opened, gate) = (o1.clone(), g1.clone());
            async move {
                opened.watch.fetch_add(1, Ordering::SeqCst);
                sender.send(&request.into_inner()).await?;
                gate.acquire().await.expect("never closed").forget();
                Ok::<(), Status>(())
            }
        })
        .client_streaming(UPLOAD, move |mut request: Request<volley::Streaming<Echo>>| {
            let (opened, gate) = (o2.clone(), g2.clone());
            async move {
                let first = request.message().await?.unwrap_or_default();
                opened.upload.fetch_add(1, Ordering::SeqCst);
                gate.acquire().await.expect("never closed").forget();
                while request.message().await?.is_some() {}
                Ok::<Echo, Status>(first)
            }
        })
        .bidi_streaming(
            CHAT,
            move |mut request: Request<volley::Streaming<Echo>>, mut sender: volley::StreamSender<Echo>| {
                let (opened, gate) = (o3.clone(), g3.clone());
                async move {
                    opened.chat.fetch_add(1, Ordering::SeqCst);
                    while let Some(message) = request.message().await? {
                        sender.send(&message).await?;
                    }
                    gate.acquire().await.expect("never closed").forget();
                    Ok::<(), Status>(())
                }
            },
        )
        .build()
        .unwrap()
        .serve(format!("{ip}:0"))
        .await
        .unwrap()
}

fn options() -> CallOptions {
    CallOptions::new().timeout(DEADLINE)
}

/// Waits until the replicas together count `n` streams of the kind `read` reads.
async fn until_opened(opened: &[Arc<Opened>], n: u64, read: fn(&Opened) -> u64) -> Vec<u64> {
    let until = Instant::now() + DEADLINE;
    loop {
        let counts: Vec<u64> = opened.iter().map(|o| read(o)).collect();
        if counts.iter().sum::<u64>() == n {
            return counts;
        }
        assert!(Instant::now() < until, "only {counts:?} of {n} streams arrived");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Within 3 of an even share each. p2c weighs the open streams by each endpoint's latency
/// estimate, and loopback latencies that differ by half (run-to-run noise) tilt a 30-stream
/// spread: [12, 7, 11] was seen in a CI run, against a bound of 2 then.
fn assert_even(kind: &str, counts: &[u64]) {
    let per = (STREAMS / counts.len()) as u64;
    assert!(
        counts.iter().all(|&c| c.abs_diff(per) <= 3),
        "{kind}: {counts:?}, expected {per} ± 3 each"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_client_and_bidi_streams_each_pick_an_endpoint_and_spread_evenly() {
    let _shared = beside_others().await;
    let gate = Arc::new(Semaphore::new(0));
    let opened: Vec<Arc<Opened>> = (0..3).map(|_| Arc::default()).collect();
    let mut servers = Vec::new();
    for (i, opened) in opened.iter().enumerate() {
        servers.push(replica(&format!("127.0.0.{}", i + 1), opened.clone(), gate.clone()).await);
    }
    let channel = BalancedChannel::builder()
        .timeout(DEADLINE)
        .build(servers.iter().map(|s| s.local_addr().clone()))
        .unwrap();

    // Server streams, opened one after another and held open: each counts on its endpoint.
    let mut watches = Vec::new();
    for _ in 0..STREAMS {
        let mut stream = Caller::server_streaming::<Echo, Echo>(&channel, MethodId::from_name(WATCH), &echo("w"), options())
            .await
            .unwrap();
        assert_eq!(stream.message().await.unwrap().map(|m| m.payload), Some("w".into()));
        watches.push(stream);
    }
    assert_even(
        "server streams",
        &until_opened(&opened, STREAMS as u64, |o| o.watch.load(Ordering::SeqCst)).await,
    );
    let in_flight: u32 = channel.endpoints().iter().map(|e| e.in_flight).sum();
    assert_eq!(in_flight, STREAMS as u32, "open streams count as calls in flight");

    // Client streams, each having sent one message, held open.
    let mut uploads = Vec::new();
    for _ in 0..STREAMS {
        let mut upload = Caller::client_streaming::<Echo, Echo>(&channel, MethodId::from_name(UPLOAD), options())
            .await
            .unwrap();
        upload.send(&echo("u")).await.unwrap();
        uploads.push(upload);
        until_opened(&opened, uploads.len() as u64, |o| o.upload.load(Ordering::SeqCst)).await;
    }
    assert_even(
        "client streams",
        &until_opened(&opened, STREAMS as u64, |o| o.upload.load(Ordering::SeqCst)).await,
    );

    // Bidirectional streams, each echoing one message, held open.
    let mut chats = Vec::new();
    for _ in 0..STREAMS {
        let (mut sender, mut receiver) = Caller::bidi_streaming::<Echo, Echo>(&channel, MethodId::from_name(CHAT), options())
            .await
            .unwrap();
        sender.send(&echo("c")).await.unwrap();
        assert_eq!(receiver.message().await.unwrap().map(|m| m.payload), Some("c".into()));
        chats.push((sender, receiver));
    }
    assert_even(
        "bidi streams",
        &until_opened(&opened, STREAMS as u64, |o| o.chat.load(Ordering::SeqCst)).await,
    );
    let attempts: u64 = channel.endpoints().iter().map(|e| e.calls).sum();
    assert_eq!(attempts, 3 * STREAMS as u64, "every stream counts as one attempt on its endpoint");

    // Every stream ends cleanly once let go.
    gate.add_permits(3 * STREAMS);
    for mut watch in watches {
        assert_eq!(watch.message().await.unwrap(), None);
    }
    for upload in uploads {
        assert_eq!(upload.finish().await.unwrap().payload, "u");
    }
    for (mut sender, mut receiver) in chats {
        sender.close();
        assert_eq!(receiver.message().await.unwrap(), None);
    }
    let until = Instant::now() + DEADLINE;
    while channel.endpoints().iter().any(|e| e.in_flight > 0) {
        assert!(Instant::now() < until, "streams still counted after they ended");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
