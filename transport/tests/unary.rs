//! Unary calls over real loopback TCP and Unix sockets.

mod common;

use std::time::Duration;

use common::{ECHO_ID, Echo, echo, echo_server, start_tcp, unix_path, wait_for};
use volley::net::Address;
use volley::{CallOptions, Client, Code, Metadata};

#[tokio::test]
async fn unary_round_trip_over_tcp() {
    let server = start_tcp().await;
    let client = Client::connect(server.local_addr()).await.unwrap();
    let reply: Echo = client.unary(ECHO_ID, &echo("hello"), CallOptions::default()).await.unwrap();
    assert_eq!(reply.payload, "hello");
    let stats = client.stats();
    assert_eq!(stats.calls_started, 1);
    assert_eq!(stats.calls_by_code[0], 1);
    server.shutdown().await;
}

#[tokio::test]
async fn unary_round_trip_over_ipv6_tcp() {
    let Ok(server) = echo_server().build().unwrap().serve("[::1]:0").await else {
        eprintln!("no IPv6 loopback on this machine; skipping");
        return;
    };
    let client = Client::connect(server.local_addr()).await.unwrap();
    let reply: Echo = client.unary(ECHO_ID, &echo("six"), CallOptions::default()).await.unwrap();
    assert_eq!(reply.payload, "six");
}

#[tokio::test]
async fn unary_round_trip_over_a_unix_socket() {
    let path = unix_path("unary");
    let server = echo_server().build().unwrap().serve(Address::Unix(path.clone())).await.unwrap();
    let client = Client::connect(Address::Unix(path.clone())).await.unwrap();
    let reply: Echo = client.unary(ECHO_ID, &echo("local"), CallOptions::default()).await.unwrap();
    assert_eq!(reply.payload, "local");
    server.shutdown().await;
    assert!(!path.exists(), "the socket file is removed on shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_concurrent_calls_on_one_connection() {
    let server = start_tcp().await;
    let client = Client::connect(server.local_addr()).await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..10_000u32 {
        let client = client.clone();
        tasks.spawn(async move {
            let reply: Echo = client
                .unary(ECHO_ID, &echo(i.to_le_bytes().to_vec()), CallOptions::default())
                .await
                .unwrap();
            assert_eq!(reply.payload[..], i.to_le_bytes());
        });
    }
    while let Some(result) = tasks.join_next().await {
        result.unwrap();
    }
    let stats = client.stats();
    assert_eq!(stats.calls_by_code[0], 10_000);
    assert!(
        stats.write_syscalls < 10_000,
        "requests were batched: {} writes for 10,000 calls",
        stats.write_syscalls
    );
}

#[tokio::test]
async fn sixteen_mib_payload_round_trips() {
    let server = start_tcp().await;
    let client = Client::connect(server.local_addr()).await.unwrap();
    let payload: Vec<u8> = (0..16 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let reply: Echo = client.unary(ECHO_ID, &echo(payload.clone()), CallOptions::default()).await.unwrap();
    assert_eq!(reply.payload.len(), payload.len());
    assert!(reply.payload == payload);
}

#[tokio::test]
async fn oversized_request_fails_with_resource_exhausted_before_sending() {
    let server = echo_server()
        .max_frame_size(64 * 1024)
        .build()
        .unwrap()
        .serve("127.0.0.1:0")
        .await
        .unwrap();
    let client = Client::connect(server.local_addr()).await.unwrap();
    let err = client
        .unary::<_, Echo>(ECHO_ID, &echo(vec![0u8; 128 * 1024]), CallOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(err.message().contains("max frame size"), "{err}");
    let reply: Echo = client.unary(ECHO_ID, &echo("still fine"), CallOptions::default()).await.unwrap();
    assert_eq!(reply.payload, "still fine");
}

#[tokio::test]
async fn handler_error_status_reaches_the_caller_with_its_code() {
    let server = start_tcp().await;
    let client = Client::connect(server.local_addr()).await.unwrap();
    let request = Echo {
        fail_with: Code::NotFound as u32,
        ..echo("x")
    };
    let err = client
        .unary::<_, Echo>(ECHO_ID, &request, CallOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(err.message(), "failed on request");
}

#[tokio::test]
async fn unknown_method_is_unimplemented_and_the_connection_stays_up() {
    let server = start_tcp().await;
    let client = Client::connect(server.local_addr()).await.unwrap();
    let missing = volley::MethodId::from_name("/test.Echo/Missing");
    let err = client
        .unary::<_, Echo>(missing, &echo("x"), CallOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented);
    let reply: Echo = client.unary(ECHO_ID, &echo("after"), CallOptions::default()).await.unwrap();
    assert_eq!(reply.payload, "after");
}

#[tokio::test]
async fn deadline_exceeded_on_the_client_cancels_the_handler() {
    let server = start_tcp().await;
    let client = Client::connect(server.local_addr()).await.unwrap();
    let slow = Echo {
        sleep_ms: 5_000,
        ..echo("slow")
    };
    let options = CallOptions::default().timeout(Duration::from_millis(50));
    let err = client.unary::<_, Echo>(ECHO_ID, &slow, options).await.unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err}");
    // The server hears of it: its handler is dropped (by the deadline it received or the cancel).
    wait_for("condition", || server.stats().calls_in_flight == 0).await;
    assert_eq!(client.stats().calls_in_flight, 0);
}

#[tokio::test]
async fn server_side_deadline_drops_the_handler_and_answers_deadline_exceeded() {
    let server = start_tcp().await;
    let client = Client::connect(server.local_addr()).await.unwrap();
    let slow = Echo {
        sleep_ms: 5_000,
        ..echo("slow")
    };
    // The client waits longer than the deadline it sends, so the server's answer is what arrives.
    let started = std::time::Instant::now();
    let call = client.unary_bytes(ECHO_ID, &slow, CallOptions::default().timeout(Duration::from_millis(80)));
    let err = call.await.unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded);
    assert!(started.elapsed() < Duration::from_secs(2));
    wait_for("condition", || {
        server.stats().calls_by_code[Code::DeadlineExceeded as usize] + server.stats().calls_by_code[Code::Cancelled as usize] == 1
    })
    .await;
}

#[tokio::test]
async fn dropping_the_call_future_cancels_it_on_the_server() {
    let server = start_tcp().await;
    let client = Client::connect(server.local_addr()).await.unwrap();
    let slow = Echo {
        sleep_ms: 10_000,
        ..echo("slow")
    };
    let call = client.unary::<_, Echo>(ECHO_ID, &slow, CallOptions::default());
    let _ = tokio::time::timeout(Duration::from_millis(50), call).await;
    wait_for("condition", || server.stats().calls_by_code[Code::Cancelled as usize] == 1).await;
    assert_eq!(server.stats().calls_in_flight, 0);
}

#[tokio::test]
async fn metadata_travels_with_the_call() {
    let server = volley::Server::builder()
        .unary(common::ECHO, |request: volley::Request<Echo>| async move {
            let trace = request.metadata().get("x-trace").unwrap_or_default().to_vec();
            Ok::<_, volley::Status>(echo(trace))
        })
        .build()
        .unwrap()
        .serve("127.0.0.1:0")
        .await
        .unwrap();
    let client = Client::connect(server.local_addr()).await.unwrap();
    let mut metadata = Metadata::new();
    metadata.insert("x-trace", "abc").unwrap();
    let reply: Echo = client
        .unary(ECHO_ID, &echo(""), CallOptions::default().metadata(metadata))
        .await
        .unwrap();
    assert_eq!(reply.payload, "abc");
}

#[tokio::test]
async fn status_messages_round_trip_byte_exact_and_long_ones_are_cut_to_fit_the_peer() {
    let special = "line one\r\nline two\ttabbed 🦀 \u{10FFFF}";
    let long = "é".repeat(40_000);
    let server = volley::Server::builder()
        .unary(common::ECHO, move |request: volley::Request<Echo>| {
            let message = if request.get_ref().payload == "long" {
                long.clone()
            } else {
                special.to_owned()
            };
            async move { Err::<Echo, _>(volley::Status::aborted(message)) }
        })
        .build()
        .unwrap()
        .serve("127.0.0.1:0")
        .await
        .unwrap();
    let client = Client::builder()
        .max_frame_size(16 * 1024)
        .connect(server.local_addr())
        .await
        .unwrap();
    let err = client
        .unary::<_, Echo>(ECHO_ID, &echo("special"), CallOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Aborted);
    assert_eq!(err.message(), special);
    let err = client
        .unary::<_, Echo>(ECHO_ID, &echo("long"), CallOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Aborted);
    assert!(
        err.message().len() < 16 * 1024 && err.message().chars().all(|c| c == 'é'),
        "cut at a character boundary"
    );
    assert!(!client.is_closed(), "a long status does not break the connection");
}

#[tokio::test(flavor = "current_thread")]
async fn a_burst_of_128_calls_takes_at_most_one_write_per_16_calls() {
    let server = volley::Server::builder()
        .unary_inline(common::ECHO, |request: volley::Request<Echo>| {
            Ok::<_, volley::Status>(request.into_inner())
        })
        .build()
        .unwrap()
        .serve("127.0.0.1:0")
        .await
        .unwrap();
    let client = Client::connect(server.local_addr()).await.unwrap();
    let request = echo(vec![0u8; 64]);
    for _ in 0..10 {
        let before = client.stats();
        let mut calls = tokio::task::JoinSet::new();
        for _ in 0..128 {
            let client = client.clone();
            let request = request.clone();
            calls.spawn(async move { client.unary::<_, Echo>(ECHO_ID, &request, CallOptions::default()).await });
        }
        while let Some(result) = calls.join_next().await {
            result.unwrap().unwrap();
        }
        let after = client.stats();
        let writes = after.write_syscalls - before.write_syscalls;
        assert_eq!(after.frames_out - before.frames_out, 128);
        eprintln!("128 calls: {writes} client write syscalls");
        assert!(writes <= 128 / 16, "{writes} write syscalls for 128 calls");
    }
}

/// A server whose `Echo` handler answers with the id and peer of the connection it was called on,
/// and hands that connection to the test.
fn connection_reporting_server(seen: tokio::sync::mpsc::UnboundedSender<volley::server::ConnectionInfo>) -> volley::server::ServerBuilder {
    volley::Server::builder().unary(common::ECHO, move |request: volley::Request<Echo>| {
        let seen = seen.clone();
        async move {
            let connection = request.context().connection().expect("a served call has a connection").clone();
            let reply = echo(format!("{} {:?}", connection.id(), connection.peer_addr()));
            let _ = seen.send(connection);
            Ok::<_, volley::Status>(reply)
        }
    })
}

#[tokio::test]
async fn handlers_see_the_connection_a_call_came_in_on_and_learn_when_it_ends() {
    let (seen, mut connections) = tokio::sync::mpsc::unbounded_channel();
    let server = connection_reporting_server(seen)
        .build()
        .unwrap()
        .serve("127.0.0.1:0")
        .await
        .unwrap();
    let first = Client::connect(server.local_addr()).await.unwrap();
    let second = Client::connect(server.local_addr()).await.unwrap();

    let a: Echo = first.unary(ECHO_ID, &echo(""), CallOptions::default()).await.unwrap();
    let a_again: Echo = first.unary(ECHO_ID, &echo(""), CallOptions::default()).await.unwrap();
    let b: Echo = second.unary(ECHO_ID, &echo(""), CallOptions::default()).await.unwrap();
    assert_eq!(a.payload, a_again.payload, "two calls on one connection see one connection");
    assert_ne!(a.payload, b.payload, "two connections have two ids");
    let a_text = String::from_utf8_lossy(&a.payload);
    assert!(
        a_text.contains("Some(Tcp(127.0.0.1:"),
        "the peer is the client's loopback address: {a_text}"
    );

    let on_first = connections.recv().await.unwrap();
    let _ = connections.recv().await.unwrap();
    let on_second = connections.recv().await.unwrap();
    assert!(!on_first.is_closed() && !on_second.is_closed());
    drop(first);
    tokio::time::timeout(Duration::from_secs(5), on_first.closed())
        .await
        .expect("closed() resolves once the client has gone");
    assert!(on_first.is_closed());
    assert!(!on_second.is_closed(), "the other connection is still up");
    let _: Echo = second.unary(ECHO_ID, &echo(""), CallOptions::default()).await.unwrap();
    server.shutdown().await;
    assert!(on_second.is_closed(), "a server shutdown ends it");
}

#[tokio::test]
async fn a_request_made_in_a_test_has_no_connection() {
    let request = volley::Request::new(echo("direct"));
    assert!(request.context().connection().is_none());
}

#[tokio::test]
async fn dropping_every_client_handle_closes_the_connection() {
    let server = start_tcp().await;
    let client = Client::connect(server.local_addr()).await.unwrap();
    let clone = client.clone();
    let _: Echo = client.unary(ECHO_ID, &echo("x"), CallOptions::default()).await.unwrap();
    drop(client);
    let _: Echo = clone
        .unary(ECHO_ID, &echo("a clone still works"), CallOptions::default())
        .await
        .unwrap();
    assert_eq!(server.connections(), 1);
    drop(clone);
    wait_for("the server sees the connection close", || server.connections() == 0).await;
    server.shutdown().await;
}

/// Sends `count` calls from as many tasks at once, the last one flushing, the others with
/// `flush`; returns the client's write syscalls for the burst. On a current-thread runtime the
/// tasks run in order: every call is queued before the writer task runs.
async fn burst_writes(client: &Client, count: usize, flush: bool) -> u64 {
    let before = client.stats().write_syscalls;
    let calls: Vec<_> = (0..count)
        .map(|i| {
            let client = client.clone();
            let options = CallOptions::new().flush(flush || i + 1 == count);
            tokio::spawn(async move { client.unary::<_, Echo>(ECHO_ID, &echo("burst"), options).await })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    client.stats().write_syscalls - before
}

#[tokio::test]
async fn a_burst_corked_with_the_flush_hint_leaves_in_one_write_syscall() {
    let server = start_tcp().await;
    let client = Client::connect(server.local_addr()).await.unwrap();
    // Default (flush at once): the first call finds the writer idle and writes itself; the
    // other 15 join one batch the writer task writes.
    assert_eq!(burst_writes(&client, 16, true).await, 2);
    // Corked: the first 15 wait in the queue, the 16th flushes all of them in one writev.
    assert_eq!(burst_writes(&client, 16, false).await, 1);
    server.shutdown().await;
}

/// A caller waiting for a call slot (the server allows one call at a time) gets it when the call
/// holding it is dropped by its caller, and when it is answered: both ends of a call signal
/// the waiters, which are counted so that a call's end signals nobody when nobody waits.
#[tokio::test]
async fn a_caller_waiting_for_a_call_slot_gets_it_when_the_holder_is_dropped_or_answered() {
    const HANG: &str = "/test.Echo/Hang";
    let server = echo_server()
        .max_concurrent_calls(1)
        .unary(HANG, |_: volley::Request<Echo>| {
            std::future::pending::<Result<Echo, volley::Status>>()
        })
        .build()
        .unwrap()
        .serve("127.0.0.1:0")
        .await
        .unwrap();
    let client = Client::connect(server.local_addr()).await.unwrap();
    let hang = volley::MethodId::from_name(HANG);
    // The holder: a call the server never answers.
    let holder = {
        let client = client.clone();
        tokio::spawn(async move { client.unary::<Echo, Echo>(hang, &echo("hold"), CallOptions::default()).await })
    };
    wait_for("the holder's call to start", || client.stats().calls_started == 1).await;
    let waiter = {
        let client = client.clone();
        tokio::spawn(async move { client.unary::<Echo, Echo>(ECHO_ID, &echo("next"), CallOptions::default()).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiter.is_finished(), "the second call waits for the one slot");
    holder.abort();
    let reply = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("the dropped call's slot went to the waiter")
        .unwrap()
        .unwrap();
    assert_eq!(reply.payload, "next");
    // Slots freed by answers: more callers than slots, all served.
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..16u32 {
        let client = client.clone();
        calls.spawn(async move {
            client
                .unary::<Echo, Echo>(ECHO_ID, &echo(i.to_string()), CallOptions::default())
                .await
        });
    }
    while let Some(result) = calls.join_next().await {
        result.unwrap().unwrap();
    }
    assert_eq!(client.stats().calls_in_flight, 0);
    server.shutdown().await;
}
