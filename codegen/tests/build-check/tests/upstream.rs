//! The upstream gRPC health protocol (the unmodified health.proto shipped in tonic-health),
//! served and called through volley-codegen's stubs over loopback TCP.

use volley::{CallOptions, Client, Server, Status};
use volley_codegen_tests::upstream::grpc::health::v1::health_check_response::ServingStatus;
use volley_codegen_tests::upstream::grpc::health::v1::health_client::HealthClient;
use volley_codegen_tests::upstream::grpc::health::v1::health_server::{Health, HealthServer};
use volley_codegen_tests::upstream::grpc::health::v1::{HealthCheckRequest, HealthCheckResponse};

struct Healthy;

impl Health for Healthy {
    async fn check(&self, request: volley::Request<HealthCheckRequest>) -> Result<volley::Response<HealthCheckResponse>, Status> {
        match request.get_ref().service.as_str() {
            "" | "orders" => Ok(volley::Response::new(HealthCheckResponse {
                status: ServingStatus::Serving as i32,
            })),
            other => Err(Status::not_found(format!("unknown service {other}"))),
        }
    }

    async fn watch(
        &self,
        _request: volley::Request<HealthCheckRequest>,
        mut responses: volley::StreamSender<HealthCheckResponse>,
    ) -> Result<(), Status> {
        for status in [ServingStatus::NotServing, ServingStatus::Serving] {
            responses.send(&HealthCheckResponse { status: status as i32 }).await?;
        }
        Ok(())
    }
}

#[tokio::test]
async fn the_upstream_health_protocol_works_through_generated_stubs() {
    let server = Server::builder()
        .add_service(HealthServer::new(Healthy))
        .build()
        .unwrap()
        .serve("127.0.0.1:0")
        .await
        .unwrap();
    let client = HealthClient::new(Client::connect(server.local_addr()).await.unwrap());
    let reply = client.check(HealthCheckRequest { service: "orders".into() }).await.unwrap();
    assert_eq!(reply.status, ServingStatus::Serving as i32);
    let err = client.check(HealthCheckRequest { service: "billing".into() }).await.unwrap_err();
    assert_eq!(err.code(), volley::Code::NotFound);
    let mut updates = client
        .watch_with(HealthCheckRequest::default(), CallOptions::default())
        .await
        .unwrap();
    let mut seen = Vec::new();
    while let Some(update) = updates.message().await.unwrap() {
        seen.push(update.status);
    }
    assert_eq!(seen, [ServingStatus::NotServing as i32, ServingStatus::Serving as i32]);
    server.shutdown().await;
}
