//! Conformance cases modelled on gRPC's interop test cases, over loopback TCP: every call kind
//! with the payload sizes, statuses, metadata and cancellations those cases use.

use std::time::Duration;

mod common;

use bytes::Bytes;
use common::wait_for;
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

async fn test_service() -> ServerHandle {
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
        .build()
        .unwrap()
        .serve("127.0.0.1:0")
        .await
        .unwrap()
}

async fn connect() -> (ServerHandle, Client) {
    let server = test_service().await;
    let client = Client::connect(server.local_addr()).await.unwrap();
    (server, client)
}

#[tokio::test]
async fn empty_unary() {
    let (_server, client) = connect().await;
    let () = client.unary(method(EMPTY), &(), CallOptions::default()).await.unwrap();
}

#[tokio::test]
async fn large_unary() {
    let (_server, client) = connect().await;
    let request = SimpleRequest {
        response_size: 314_159,
        payload: zeros(271_828),
        ..SimpleRequest::default()
    };
    let response: SimpleResponse = client.unary(method(UNARY), &request, CallOptions::default()).await.unwrap();
    assert_eq!(response.payload.len(), 314_159);
}

#[tokio::test]
async fn client_streaming() {
    let (_server, client) = connect().await;
    let mut call = client
        .client_streaming::<SimpleResponse, StreamingInputCallResponse>(method(CLIENT_STREAMING), CallOptions::default())
        .await
        .unwrap();
    for size in [27_182, 8, 1_828, 45_904] {
        call.send(&SimpleResponse { payload: zeros(size) }).await.unwrap();
    }
    assert_eq!(call.finish().await.unwrap().aggregated_payload_size, 74_922);
}

#[tokio::test]
async fn server_streaming() {
    let (_server, client) = connect().await;
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

#[tokio::test]
async fn ping_pong() {
    let (_server, client) = connect().await;
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

#[tokio::test]
async fn empty_stream() {
    let (_server, client) = connect().await;
    let (mut sender, mut replies) = client
        .bidi_streaming::<StreamingOutputCallRequest, SimpleResponse>(method(FULL_DUPLEX), CallOptions::default())
        .await
        .unwrap();
    sender.close();
    assert!(replies.message().await.unwrap().is_none());
}

#[tokio::test]
async fn cancel_after_begin() {
    let (server, client) = connect().await;
    let call = client
        .client_streaming::<SimpleResponse, StreamingInputCallResponse>(method(CLIENT_STREAMING), CallOptions::default())
        .await
        .unwrap();
    drop(call);
    wait_for("condition", || server.stats().calls_by_code[Code::Cancelled as usize] == 1).await;
}

#[tokio::test]
async fn cancel_after_first_response() {
    let (server, client) = connect().await;
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

#[tokio::test]
async fn timeout_on_sleeping_server() {
    let (_server, client) = connect().await;
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

#[tokio::test]
async fn status_code_and_message() {
    let (_server, client) = connect().await;
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

#[tokio::test]
async fn special_status_message() {
    let (_server, client) = connect().await;
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

#[tokio::test]
async fn unimplemented_method() {
    let (_server, client) = connect().await;
    let err = client
        .unary::<_, ()>(method("/grpc.testing.TestService/UnimplementedCall"), &(), CallOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented);
    let () = client.unary(method(EMPTY), &(), CallOptions::default()).await.unwrap();
}

#[tokio::test]
async fn custom_metadata_reaches_the_server_and_is_echoed_in_the_trailer() {
    let (_server, client) = connect().await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_large_unary_calls_on_one_connection() {
    let (_server, client) = connect().await;
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

use std::future::Future;
