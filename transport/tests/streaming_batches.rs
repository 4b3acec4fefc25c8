//! A server-streaming handler's messages sent in one poll of its task leave together
//! (`streaming/scope.rs`): what the handler sent before it waits reaches the client, the order
//! holds when the sender moves to another task, and no window is kept once the stream ends.

mod common;

use std::time::Duration;

use common::{Echo, echo};
use volley::protocol::ConnectionConfig;
use volley::{CallOptions, Client, MethodId, Request, Server, ServerHandle, Status, StreamSender};

const PING_PONG: &str = "/test.Batches/PingPong";
const HANDOFF: &str = "/test.Batches/Handoff";
const BURST: &str = "/test.Batches/Burst";

fn id(name: &str) -> MethodId {
    MethodId::from_name(name)
}

fn number(i: u64) -> Echo {
    echo(i.to_le_bytes().to_vec())
}

fn number_of(message: &Echo) -> u64 {
    u64::from_le_bytes(message.payload[..8].try_into().expect("8 bytes"))
}

async fn server(config: ConnectionConfig, rounds: tokio::sync::mpsc::UnboundedReceiver<()>) -> ServerHandle {
    let rounds = std::sync::Arc::new(tokio::sync::Mutex::new(rounds));
    Server::builder()
        .connection_config(config)
        // Sends two messages, then waits for the client to say it has read them, `sleep_ms` times.
        .server_streaming(PING_PONG, move |request: Request<Echo>, mut sender: StreamSender<Echo>| {
            let rounds = rounds.clone();
            async move {
                let mut rounds = rounds.lock().await;
                for round in 0..request.get_ref().sleep_ms {
                    sender.send(&number(2 * round)).await?;
                    sender.send(&number(2 * round + 1)).await?;
                    rounds.recv().await.ok_or_else(|| Status::internal("no more rounds"))?;
                }
                Ok(())
            }
        })
        // Sends 100 messages, hands the sender to a task of its own for the next 100 while this
        // poll goes on (it blocks its thread a little), then waits for the task.
        .server_streaming(HANDOFF, |_request: Request<Echo>, mut sender: StreamSender<Echo>| async move {
            for i in 0..100 {
                sender.send(&number(i)).await?;
            }
            let task = tokio::spawn(async move {
                for i in 100..200 {
                    sender.send(&number(i)).await?;
                }
                Ok::<_, Status>(())
            });
            // A second spawn pushes the first out of the worker's LIFO slot, where the other
            // worker can steal it and run it during this poll.
            tokio::spawn(async {});
            std::thread::sleep(Duration::from_millis(20));
            task.await.map_err(|_| Status::internal("the task panicked"))?
        })
        // `sleep_ms` messages of 64 bytes, back to back.
        .server_streaming(BURST, |request: Request<Echo>, mut sender: StreamSender<Echo>| async move {
            for _ in 0..request.get_ref().sleep_ms {
                sender.send(&echo(vec![7u8; 64])).await?;
            }
            Ok(())
        })
        .build()
        .unwrap()
        .serve("127.0.0.1:0")
        .await
        .unwrap()
}

/// Messages sent in a poll that then waits are queued when the poll ends: the client reads both
/// of each round before it lets the handler go on (it would wait forever otherwise).
#[tokio::test]
async fn messages_sent_before_the_handler_waits_reach_the_client() {
    let (rounds, rounds_rx) = tokio::sync::mpsc::unbounded_channel();
    let server = server(ConnectionConfig::default(), rounds_rx).await;
    let client = Client::connect(server.local_addr()).await.unwrap();
    let request = Echo { sleep_ms: 20, ..echo("") };
    let mut stream = client
        .server_streaming::<_, Echo>(id(PING_PONG), &request, CallOptions::default().timeout(Duration::from_secs(10)))
        .await
        .unwrap();
    for round in 0..20 {
        for i in [2 * round, 2 * round + 1] {
            let message = stream.message().await.unwrap().expect("a message");
            assert_eq!(number_of(&message), i);
        }
        rounds.send(()).unwrap();
    }
    assert!(stream.message().await.unwrap().is_none());
}

/// A sender moved to another task while the handler's poll still holds messages it batched
/// waits for them: the client sees all 200 in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_moved_to_another_task_keeps_the_order() {
    let (_rounds, rounds_rx) = tokio::sync::mpsc::unbounded_channel();
    let server = server(ConnectionConfig::default(), rounds_rx).await;
    let client = Client::connect(server.local_addr()).await.unwrap();
    for _ in 0..5 {
        let mut stream = client
            .server_streaming::<_, Echo>(id(HANDOFF), &echo(""), CallOptions::default())
            .await
            .unwrap();
        let mut next = 0;
        while let Some(message) = stream.message().await.unwrap() {
            assert_eq!(number_of(&message), next);
            next += 1;
        }
        assert_eq!(next, 200);
    }
}

/// The window a poll reserves and does not use goes back: with a connection window of 4 KiB,
/// far less than one stream's 64 KiB, fifty streams in a row, and one cancelled mid-way, all
/// flow to the end (a window kept back by each would stop them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_window_is_kept_after_a_stream() {
    let mut config = ConnectionConfig::default();
    config.settings.initial_connection_window = 4096;
    config.settings.initial_call_window = 2048;
    let (_rounds, rounds_rx) = tokio::sync::mpsc::unbounded_channel();
    let server = server(config.clone(), rounds_rx).await;
    let client = Client::builder()
        .connection_config(config)
        .connect(server.local_addr())
        .await
        .unwrap();
    let request = Echo {
        sleep_ms: 1000,
        ..echo("")
    };
    let options = CallOptions::default().timeout(Duration::from_secs(10));
    {
        let mut cancelled = client
            .server_streaming::<_, Echo>(id(BURST), &request, options.clone())
            .await
            .unwrap();
        for _ in 0..10 {
            cancelled.message().await.unwrap().expect("a message");
        }
    }
    for _ in 0..50 {
        let mut stream = client
            .server_streaming::<_, Echo>(id(BURST), &request, options.clone())
            .await
            .unwrap();
        let mut n = 0;
        while stream.message().await.unwrap().is_some() {
            n += 1;
        }
        assert_eq!(n, 1000);
    }
}
