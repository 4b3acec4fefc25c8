//! Conformance cases modelled on gRPC's interop test cases: every call kind with the payload
//! sizes, statuses, metadata and cancellations those cases use, deadlines and graceful shutdown.
//! Each case runs over loopback TCP (`tcp::*`), in the busy-poll receive mode over loopback TCP
//! and a Unix socket (`busy_poll_tcp::*`, `busy_poll_unix::*`: client and server both poll) and,
//! with feature `quic`, over loopback QUIC with a stream per call (`quic::*`) and with every
//! frame on one stream (`quic_one_stream::*`, the default mapping): the same case bodies,
//! parametrised by [`Transport`].

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

mod common;
#[cfg(feature = "quic")]
#[path = "support/pki.rs"]
#[allow(dead_code)]
mod pki;

use bytes::Bytes;
use common::wait_for;
use volley::busy_poll::{BusyPoll, IdleStrategy};
use volley::net::Address;
use volley::{CallOptions, Client, Code, Metadata, MethodId, Request, Server, ServerHandle, Status, StreamSender, Streaming};

#[derive(Clone, PartialEq, prost::Message)]
struct EchoStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct SimpleRequest {
    #[prost(int32, tag = "1")]
    response_size: i32,
    #[prost(bytes = "bytes", tag = "2")]
    payload: Bytes,
    #[prost(message, optional, tag = "3")]
    response_status: Option<EchoStatus>,
    #[prost(uint64, tag = "4")]
    sleep_ms: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
struct SimpleResponse {
    #[prost(bytes = "bytes", tag = "1")]
    payload: Bytes,
}

#[derive(Clone, PartialEq, prost::Message)]
struct StreamingInputCallResponse {
    #[prost(int32, tag = "1")]
    aggregated_payload_size: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
struct StreamingOutputCallRequest {
    #[prost(int32, repeated, tag = "1")]
    response_sizes: Vec<i32>,
    #[prost(bytes = "bytes", tag = "2")]
    payload: Bytes,
    #[prost(message, optional, tag = "3")]
    response_status: Option<EchoStatus>,
}

const UNARY: &str = "/grpc.testing.TestService/UnaryCall";
const EMPTY: &str = "/grpc.testing.TestService/EmptyCall";
const CLIENT_STREAMING: &str = "/grpc.testing.TestService/StreamingInputCall";
const SERVER_STREAMING: &str = "/grpc.testing.TestService/StreamingOutputCall";
const FULL_DUPLEX: &str = "/grpc.testing.TestService/FullDuplexCall";

fn method(name: &str) -> MethodId {
    MethodId::from_name(name)
}

fn zeros(n: i32) -> Bytes {
    Bytes::from(vec![0u8; usize::try_from(n).unwrap_or(0)])
}

/// The requested status, echoing the caller's `x-echo-trailer` metadata as trailing metadata.
fn requested_status(status: &Option<EchoStatus>, metadata: &Metadata) -> Option<Status> {
    let requested = status.as_ref().filter(|s| s.code != 0)?;
    let mut trailers = Metadata::new();
    if let Some(value) = metadata.get("x-echo-trailer") {
        trailers.insert("x-echo-trailer", value).unwrap();
    }
    Some(Status::with_metadata(
        Code::from_u8(requested.code as u8),
        requested.message.clone(),
        trailers,
    ))
}

/// The transport a case runs over.
#[derive(Clone, Copy, Debug)]
enum Transport {
    Tcp,
    /// TCP, client and server connections read by busy-polling threads.
    BusyPollTcp,
    /// A Unix socket, client and server connections read by busy-polling threads.
    BusyPollUnix,
    /// QUIC with a stream per call (`volley-quic/2`): the client asks for that mapping.
    #[cfg(feature = "quic")]
    Quic,
    /// QUIC with every frame on one stream (`volley/1`, the default): the client offers only
    /// that mapping.
    #[cfg(feature = "quic")]
    QuicOneStream,
}

/// What a QUIC client needs to trust the test server; nothing without feature `quic`.
#[cfg(feature = "quic")]
type ClientTls = volley::tls::ClientTls;
#[cfg(not(feature = "quic"))]
type ClientTls = std::convert::Infallible;

/// The busy-poll mode the `busy_poll_*` cases run in: parking soon, so that the many
/// connections of a parallel test run do not each spin a core.
fn test_busy_poll() -> BusyPoll {
    BusyPoll::new(IdleStrategy::SpinThenPark {
        spins: 200,
        yields: 20,
        min_park: Duration::from_micros(20),
        max_park: Duration::from_micros(500),
    })
}

async fn test_service(transport: Transport) -> (ServerHandle, Option<ClientTls>) {
    static UNIX_SOCKETS: AtomicUsize = AtomicUsize::new(0);
    #[allow(unused_mut)]
    let mut builder = test_methods();
    let tcp = || Address::Tcp(([127, 0, 0, 1], 0).into());
    let (address, client_tls) = match transport {
        Transport::Tcp => (tcp(), None),
        Transport::BusyPollTcp => {
            builder = builder.busy_poll(test_busy_poll());
            (tcp(), None)
        }
        Transport::BusyPollUnix => {
            builder = builder.busy_poll(test_busy_poll());
            let name = format!("conformance-{}", UNIX_SOCKETS.fetch_add(1, Ordering::Relaxed));
            (Address::Unix(common::unix_path(&name)), None)
        }
        #[cfg(feature = "quic")]
        Transport::Quic | Transport::QuicOneStream => {
            let ca = pki::Ca::new("conformance CA");
            builder = builder.tls(ca.server_tls());
            (Address::Quic(([127, 0, 0, 1], 0).into()), Some(ca.client_tls()))
        }
    };
    (builder.build().unwrap().serve(address).await.unwrap(), client_tls)
}

fn test_methods() -> volley::server::ServerBuilder {
    Server::builder()
        .unary(EMPTY, |_request: Request<()>| async { Ok::<_, Status>(()) })
        .unary(UNARY, |request: Request<SimpleRequest>| async move {
            let metadata = request.metadata().clone();
            let request = request.into_inner();
            if request.sleep_ms > 0 {
                tokio::time::sleep(Duration::from_millis(request.sleep_ms)).await;
            }
            if let Some(status) = requested_status(&request.response_status, &metadata) {
                return Err(status);
            }
            Ok(SimpleResponse {
                payload: zeros(request.response_size),
            })
        })
        .client_streaming(CLIENT_STREAMING, |mut request: Request<Streaming<SimpleResponse>>| async move {
            let mut total = 0usize;
            while let Some(message) = request.message().await? {
                total += message.payload.len();
            }
            Ok(StreamingInputCallResponse {
                aggregated_payload_size: total as i32,
            })
        })
        .server_streaming(
            SERVER_STREAMING,
            |request: Request<StreamingOutputCallRequest>, mut sender: StreamSender<SimpleResponse>| async move {
                for size in &request.get_ref().response_sizes {
                    sender.send(&SimpleResponse { payload: zeros(*size) }).await?;
                }
                Ok(())
            },
        )
        .bidi_streaming(
            FULL_DUPLEX,
            |mut request: Request<Streaming<StreamingOutputCallRequest>>, mut sender: StreamSender<SimpleResponse>| async move {
                let metadata = request.metadata().clone();
                while let Some(message) = request.message().await? {
                    if let Some(status) = requested_status(&message.response_status, &metadata) {
                        return Err(status);
                    }
                    for size in &message.response_sizes {
                        sender.send(&SimpleResponse { payload: zeros(*size) }).await?;
                    }
                }
                Ok(())
            },
        )
}

async fn connect(transport: Transport) -> (ServerHandle, Client) {
    let (server, client_tls) = test_service(transport).await;
    let mut builder = Client::builder();
    if matches!(transport, Transport::BusyPollTcp | Transport::BusyPollUnix) {
        builder = builder.busy_poll(test_busy_poll());
    }
    #[cfg(feature = "quic")]
    if let Some(tls) = client_tls {
        builder = builder.tls(tls);
    }
    #[cfg(feature = "quic")]
    {
        use volley::quic::{QuicMapping, QuicOptions};
        match transport {
            Transport::Quic => builder = builder.quic(QuicOptions::new().mapping(QuicMapping::PerCall)),
            Transport::QuicOneStream => builder = builder.quic(QuicOptions::new().mapping(QuicMapping::OneStream)),
            _ => {}
        }
    }
    #[cfg(not(feature = "quic"))]
    let _ = client_tls;
    let client = builder.connect(server.local_addr()).await.unwrap();
    (server, client)
}

/// Runs each named case (an `async fn(Transport)` below) as a test per transport.
macro_rules! over_every_transport {
    ($($case:ident),* $(,)?) => {
        mod tcp {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(super::Transport::Tcp).await;
                }
            )*
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_thousand_concurrent_large_unary_calls_on_one_connection() {
                super::a_thousand_concurrent_large_unary_calls_on_one_connection(super::Transport::Tcp).await;
            }
        }
        mod busy_poll_tcp {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(super::Transport::BusyPollTcp).await;
                }
            )*
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_thousand_concurrent_large_unary_calls_on_one_connection() {
                super::a_thousand_concurrent_large_unary_calls_on_one_connection(super::Transport::BusyPollTcp).await;
            }
        }
        mod busy_poll_unix {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(super::Transport::BusyPollUnix).await;
                }
            )*
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_thousand_concurrent_large_unary_calls_on_one_connection() {
                super::a_thousand_concurrent_large_unary_calls_on_one_connection(super::Transport::BusyPollUnix).await;
            }
        }
        #[cfg(feature = "quic")]
        mod quic {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(super::Transport::Quic).await;
                }
            )*
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_thousand_concurrent_large_unary_calls_on_one_connection() {
                super::a_thousand_concurrent_large_unary_calls_on_one_connection(super::Transport::Quic).await;
            }
        }
        #[cfg(feature = "quic")]
        mod quic_one_stream {
            $(
                #[tokio::test]
                async fn $case() {
                    super::$case(super::Transport::QuicOneStream).await;
                }
            )*
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_thousand_concurrent_large_unary_calls_on_one_connection() {
                super::a_thousand_concurrent_large_unary_calls_on_one_connection(super::Transport::QuicOneStream).await;
            }
        }
    };
}

over_every_transport!(
    empty_unary,
    large_unary,
    client_streaming,
    server_streaming,
    ping_pong,
    empty_stream,
    cancel_after_begin,
    cancel_after_first_response,
    timeout_on_sleeping_server,
    status_code_and_message,
    special_status_message,
    unimplemented_method,
    custom_metadata_reaches_the_server_and_is_echoed_in_the_trailer,
    graceful_shutdown_finishes_the_call_in_flight_and_refuses_new_ones,
);

async fn empty_unary(transport: Transport) {
    let (_server, client) = connect(transport).await;
    let () = client.unary(method(EMPTY), &(), CallOptions::default()).await.unwrap();
}

async fn large_unary(transport: Transport) {
    let (_server, client) = connect(transport).await;
    let request = SimpleRequest {
        response_size: 314_159,
        payload: zeros(271_828),
        ..SimpleRequest::default()
    };
    let response: SimpleResponse = client.unary(method(UNARY), &request, CallOptions::default()).await.unwrap();
    assert_eq!(response.payload.len(), 314_159);
}

async fn client_streaming(transport: Transport) {
    let (_server, client) = connect(transport).await;
    let mut call = client
        .client_streaming::<SimpleResponse, StreamingInputCallResponse>(method(CLIENT_STREAMING), CallOptions::default())
        .await
        .unwrap();
    for size in [27_182, 8, 1_828, 45_904] {
        call.send(&SimpleResponse { payload: zeros(size) }).await.unwrap();
    }
    assert_eq!(call.finish().await.unwrap().aggregated_payload_size, 74_922);
}

async fn server_streaming(transport: Transport) {
    let (_server, client) = connect(transport).await;
    let request = StreamingOutputCallRequest {
        response_sizes: vec![31_415, 9, 2_653, 58_979],
        ..StreamingOutputCallRequest::default()
    };
    let mut stream: Streaming<SimpleResponse> = client
        .server_streaming(method(SERVER_STREAMING), &request, CallOptions::default())
        .await
        .unwrap();
    let mut sizes = Vec::new();
    while let Some(message) = stream.message().await.unwrap() {
        sizes.push(message.payload.len());
    }
    assert_eq!(sizes, [31_415, 9, 2_653, 58_979]);
}

async fn ping_pong(transport: Transport) {
    let (_server, client) = connect(transport).await;
    let (mut sender, mut replies) = client
        .bidi_streaming::<StreamingOutputCallRequest, SimpleResponse>(method(FULL_DUPLEX), CallOptions::default())
        .await
        .unwrap();
    for (request_size, response_size) in [(27_182, 31_415), (8, 9), (1_828, 2_653), (45_904, 58_979)] {
        let request = StreamingOutputCallRequest {
            response_sizes: vec![response_size],
            payload: zeros(request_size),
            ..StreamingOutputCallRequest::default()
        };
        sender.send(&request).await.unwrap();
        assert_eq!(replies.message().await.unwrap().unwrap().payload.len(), response_size as usize);
    }
    sender.close();
    assert!(replies.message().await.unwrap().is_none());
}

async fn empty_stream(transport: Transport) {
    let (_server, client) = connect(transport).await;
    let (mut sender, mut replies) = client
        .bidi_streaming::<StreamingOutputCallRequest, SimpleResponse>(method(FULL_DUPLEX), CallOptions::default())
        .await
        .unwrap();
    sender.close();
    assert!(replies.message().await.unwrap().is_none());
}

async fn cancel_after_begin(transport: Transport) {
    let (server, client) = connect(transport).await;
    let call = client
        .client_streaming::<SimpleResponse, StreamingInputCallResponse>(method(CLIENT_STREAMING), CallOptions::default())
        .await
        .unwrap();
    // Begun on the server too: over QUIC with a stream per call, a cancel resets the call's
    // stream, which may drop a Request that had not left yet (the server then never sees the
    // call).
    wait_for("the call to reach the server", || server.stats().calls_started == 1).await;
    drop(call);
    wait_for("condition", || server.stats().calls_by_code[Code::Cancelled as usize] == 1).await;
}

async fn cancel_after_first_response(transport: Transport) {
    let (server, client) = connect(transport).await;
    let (mut sender, mut replies) = client
        .bidi_streaming::<StreamingOutputCallRequest, SimpleResponse>(method(FULL_DUPLEX), CallOptions::default())
        .await
        .unwrap();
    sender
        .send(&StreamingOutputCallRequest {
            response_sizes: vec![31_415],
            payload: zeros(27_182),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(replies.message().await.unwrap().unwrap().payload.len(), 31_415);
    drop(replies);
    wait_for("condition", || server.stats().calls_by_code[Code::Cancelled as usize] == 1).await;
    // The sender learns of it.
    wait_for("condition", || sender_failed(&mut sender)).await;
}

fn sender_failed(sender: &mut StreamSender<StreamingOutputCallRequest>) -> bool {
    let request = StreamingOutputCallRequest::default();
    let mut send = std::pin::pin!(sender.send(&request));
    let waker = std::task::Waker::noop();
    matches!(
        send.as_mut().poll(&mut std::task::Context::from_waker(waker)),
        std::task::Poll::Ready(Err(_))
    )
}

async fn timeout_on_sleeping_server(transport: Transport) {
    let (_server, client) = connect(transport).await;
    let request = SimpleRequest {
        sleep_ms: 2_000,
        ..SimpleRequest::default()
    };
    let err = client
        .unary::<_, SimpleResponse>(method(UNARY), &request, CallOptions::default().timeout(Duration::from_millis(10)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded);
    let (_sender, mut replies) = client
        .bidi_streaming::<StreamingOutputCallRequest, SimpleResponse>(
            method(FULL_DUPLEX),
            CallOptions::default().timeout(Duration::from_millis(10)),
        )
        .await
        .unwrap();
    assert_eq!(replies.message().await.unwrap_err().code(), Code::DeadlineExceeded);
}

async fn status_code_and_message(transport: Transport) {
    let (_server, client) = connect(transport).await;
    let status = Some(EchoStatus {
        code: 2,
        message: "test status message".into(),
    });
    let request = SimpleRequest {
        response_status: status.clone(),
        ..SimpleRequest::default()
    };
    let err = client
        .unary::<_, SimpleResponse>(method(UNARY), &request, CallOptions::default())
        .await
        .unwrap_err();
    assert_eq!((err.code(), err.message()), (Code::Unknown, "test status message"));
    let (mut sender, mut replies) = client
        .bidi_streaming::<StreamingOutputCallRequest, SimpleResponse>(method(FULL_DUPLEX), CallOptions::default())
        .await
        .unwrap();
    sender
        .send(&StreamingOutputCallRequest {
            response_status: status,
            ..Default::default()
        })
        .await
        .unwrap();
    let err = replies.message().await.unwrap_err();
    assert_eq!((err.code(), err.message()), (Code::Unknown, "test status message"));
}

async fn special_status_message(transport: Transport) {
    let (_server, client) = connect(transport).await;
    let text = "\t\ntest with whitespace\r\nand Unicode BMP ☺ and non-BMP 😈\t\n";
    let request = SimpleRequest {
        response_status: Some(EchoStatus {
            code: 2,
            message: text.into(),
        }),
        ..SimpleRequest::default()
    };
    let err = client
        .unary::<_, SimpleResponse>(method(UNARY), &request, CallOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.message(), text, "byte-exact");
}

async fn unimplemented_method(transport: Transport) {
    let (_server, client) = connect(transport).await;
    let err = client
        .unary::<_, ()>(method("/grpc.testing.TestService/UnimplementedCall"), &(), CallOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented);
    let () = client.unary(method(EMPTY), &(), CallOptions::default()).await.unwrap();
}

async fn custom_metadata_reaches_the_server_and_is_echoed_in_the_trailer(transport: Transport) {
    let (_server, client) = connect(transport).await;
    let mut metadata = Metadata::new();
    metadata.insert("x-echo-trailer", [0xab, 0xab, 0xab]).unwrap();
    let request = SimpleRequest {
        response_status: Some(EchoStatus {
            code: 9,
            message: "with trailer".into(),
        }),
        ..SimpleRequest::default()
    };
    let err = client
        .unary::<_, SimpleResponse>(method(UNARY), &request, CallOptions::default().metadata(metadata))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(err.metadata().get("x-echo-trailer"), Some(&[0xab, 0xab, 0xab][..]));
}

async fn a_thousand_concurrent_large_unary_calls_on_one_connection(transport: Transport) {
    let (_server, client) = connect(transport).await;
    let request = SimpleRequest {
        response_size: 314_159,
        payload: zeros(271_828),
        ..SimpleRequest::default()
    };
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..1000 {
        let client = client.clone();
        let request = request.clone();
        calls.spawn(async move {
            client
                .unary::<_, SimpleResponse>(method(UNARY), &request, CallOptions::default())
                .await
        });
    }
    while let Some(result) = calls.join_next().await {
        assert_eq!(result.unwrap().unwrap().payload.len(), 314_159);
    }
}

async fn graceful_shutdown_finishes_the_call_in_flight_and_refuses_new_ones(transport: Transport) {
    let (server, client) = connect(transport).await;
    let request = SimpleRequest {
        sleep_ms: 300,
        response_size: 1_000,
        ..SimpleRequest::default()
    };
    let in_flight = {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .unary::<_, SimpleResponse>(method(UNARY), &request, CallOptions::default())
                .await
        })
    };
    wait_for("the call to reach the server", || server.stats().calls_started == 1).await;
    let shutdown = tokio::spawn(server.shutdown());
    let response = in_flight.await.unwrap().expect("the call in flight finishes during the drain");
    assert_eq!(response.payload.len(), 1_000);
    tokio::time::timeout(Duration::from_secs(10), shutdown)
        .await
        .expect("shutdown returns once the connection drained")
        .unwrap();
    let err = client.unary::<_, ()>(method(EMPTY), &(), CallOptions::default()).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "after the GoAway: {err:?}");
}

use std::future::Future;
