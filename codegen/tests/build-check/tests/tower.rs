//! tower stacks around generated code (feature `tower`, issue #17): a timeout and a concurrency
//! limit around a generated client's transport (`ServiceCaller`), and around one method of a
//! generated server (`ServerBuilder::method_layer`), over loopback TCP.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tower::ServiceBuilder;
use volley::tower::ServiceCaller;
use volley::{Channel, Code, Server, ServerHandle, Status};
use volley_codegen_tests::upstream::grpc::health::v1::health_check_response::ServingStatus;
use volley_codegen_tests::upstream::grpc::health::v1::health_client::HealthClient;
use volley_codegen_tests::upstream::grpc::health::v1::health_server::{Health, HealthServer};
use volley_codegen_tests::upstream::grpc::health::v1::{HealthCheckRequest, HealthCheckResponse};

const CHECK: &str = "/grpc.health.v1.Health/Check";

/// A health service whose Check sleeps as many milliseconds as its service name says, and
/// counts how many checks run at once.
#[derive(Clone, Default)]
struct Sleepy(Arc<Counts>);

/// Checks running now, and the most that ever ran at once.
#[derive(Default)]
struct Counts {
    now: AtomicUsize,
    peak: AtomicUsize,
}

impl Health for Sleepy {
    async fn check(&self, request: volley::Request<HealthCheckRequest>) -> Result<volley::Response<HealthCheckResponse>, Status> {
        let ms: u64 = request.get_ref().service.parse().unwrap_or(0);
        let now = self.0.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.0.peak.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        self.0.now.fetch_sub(1, Ordering::SeqCst);
        Ok(volley::Response::new(HealthCheckResponse {
            status: ServingStatus::Serving as i32,
        }))
    }

    async fn watch(
        &self,
        _request: volley::Request<HealthCheckRequest>,
        mut responses: volley::StreamSender<HealthCheckResponse>,
    ) -> Result<(), Status> {
        responses
            .send(&HealthCheckResponse {
                status: ServingStatus::Serving as i32,
            })
            .await
    }
}

fn sleep_for(ms: u64) -> HealthCheckRequest {
    HealthCheckRequest { service: ms.to_string() }
}

async fn serve(builder: volley::server::ServerBuilder) -> ServerHandle {
    builder.build().unwrap().serve("127.0.0.1:0").await.unwrap()
}

#[tokio::test]
async fn a_timeout_and_concurrency_limit_stack_around_a_generated_client() {
    let sleepy = Sleepy::default();
    let server = serve(Server::builder().add_service(HealthServer::new(sleepy.clone()))).await;
    let channel = Channel::builder().connect(server.local_addr()).await.unwrap();
    let stack = ServiceBuilder::new()
        .timeout(Duration::from_millis(300))
        .concurrency_limit(2)
        .service(channel.clone());
    let client = HealthClient::new(ServiceCaller::new(stack, channel));

    let checks: Vec<_> = (0..6)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.check(sleep_for(30)).await })
        })
        .collect();
    for check in checks {
        assert_eq!(check.await.unwrap().unwrap().status, ServingStatus::Serving as i32);
    }
    assert!(sleepy.0.peak.load(Ordering::SeqCst) <= 2, "at most 2 calls in flight");

    let err = client.check(sleep_for(3_000)).await.unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err}");
    // Streaming calls go to the channel, past the unary stack.
    let mut updates = client.watch(HealthCheckRequest::default()).await.unwrap();
    assert!(updates.message().await.unwrap().is_some());
    server.shutdown().await;
}

#[tokio::test]
async fn a_timeout_and_concurrency_limit_stack_around_a_generated_server_method() {
    let sleepy = Sleepy::default();
    let server = serve(
        Server::builder()
            .add_service(HealthServer::new(sleepy.clone()))
            .method_layer::<HealthCheckRequest, HealthCheckResponse, _>(
                CHECK,
                ServiceBuilder::new().timeout(Duration::from_millis(300)).concurrency_limit(1),
            ),
    )
    .await;
    let client = HealthClient::new(Channel::builder().connect(server.local_addr()).await.unwrap());
    let checks: Vec<_> = (0..4)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.check(sleep_for(20)).await })
        })
        .collect();
    for check in checks {
        check.await.unwrap().unwrap();
    }
    assert_eq!(sleepy.0.peak.load(Ordering::SeqCst), 1, "one Check at a time on the server");
    let err = client.check(sleep_for(3_000)).await.unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err}");
    // Watch has no layer.
    let mut updates = client.watch(HealthCheckRequest::default()).await.unwrap();
    assert!(updates.message().await.unwrap().is_some());
    server.shutdown().await;
}
