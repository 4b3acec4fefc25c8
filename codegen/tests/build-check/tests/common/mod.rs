//! The generated services that have streaming rpcs, implemented once for both test files:
//! `loopback.rs` registers them next to every other generated service, `streaming.rs` calls them.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use volley::server::ServerBuilder;
use volley::{Request, Response, Status, StreamSender, Streaming};
use volley_codegen_tests::documented::orders as doc;
use volley_codegen_tests::proto::{grpc, hazards::streaming as s};

use grpc::health::v1::{
    HealthCheckRequest, HealthCheckResponse, HealthListRequest, HealthListResponse, health_check_response::ServingStatus,
};
use s::Tick;

/// The seq every `Mixed` handler refuses with FAILED_PRECONDITION, after answering the ticks
/// before it.
pub(crate) const UNLUCKY: u64 = 13;

/// The status the `Mixed` handlers end a call with when they meet [`UNLUCKY`].
pub(crate) fn unlucky() -> Status {
    Status::failed_precondition(format!("tick {UNLUCKY} is unlucky"))
}

/// Serves `hazards.streaming` (`Mixed`, `OnlyStreams`, `Tricky`), grpc health and reflection,
/// and `documented.orders`.
#[derive(Debug, Default)]
pub(crate) struct Streams {
    /// `OnlyStreams.Chat` handlers running now, so a test can see a cancelled one stop.
    pub(crate) chatters: AtomicUsize,
}

/// Adds every service [`Streams`] implements, all served by `streams`.
pub(crate) fn add_services(builder: ServerBuilder, streams: &Arc<Streams>) -> ServerBuilder {
    use grpc::health::v1::health_server::HealthServer;
    use grpc::reflection::v1::server_reflection_server::ServerReflectionServer;
    use s::{mixed_server::MixedServer, only_streams_server::OnlyStreamsServer, tricky_server::TrickyServer};

    builder
        .add_service(MixedServer::from_arc(streams.clone()))
        .add_service(OnlyStreamsServer::from_arc(streams.clone()))
        .add_service(TrickyServer::from_arc(streams.clone()))
        .add_service(HealthServer::from_arc(streams.clone()))
        .add_service(ServerReflectionServer::from_arc(streams.clone()))
        .add_service(doc::orders_server::OrdersServer::from_arc(streams.clone()))
}

/// Counts a running handler until dropped.
struct Running<'a>(&'a AtomicUsize);

impl<'a> Running<'a> {
    fn enter(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Self(count)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl s::mixed_server::Mixed for Streams {
    async fn get(&self, request: Request<Tick>) -> Result<Response<Tick>, Status> {
        Ok(Response::new(request.into_inner()))
    }

    /// Sends ticks `0..seq`.
    async fn subscribe(&self, request: Request<Tick>, mut responses: StreamSender<Tick>) -> Result<(), Status> {
        for seq in 0..request.into_inner().seq {
            if seq == UNLUCKY {
                return Err(unlucky());
            }
            responses.send(&Tick { seq }).await?;
        }
        Ok(())
    }

    /// Answers with the sum of the seqs.
    async fn upload(&self, mut request: Request<Streaming<Tick>>) -> Result<Response<Tick>, Status> {
        let mut sum = 0;
        while let Some(tick) = request.message().await? {
            if tick.seq == UNLUCKY {
                return Err(unlucky());
            }
            sum += tick.seq;
        }
        Ok(Response::new(Tick { seq: sum }))
    }

    /// Answers each tick with twice its seq.
    async fn chat(&self, mut request: Request<Streaming<Tick>>, mut responses: StreamSender<Tick>) -> Result<(), Status> {
        while let Some(tick) = request.message().await? {
            if tick.seq == UNLUCKY {
                return Err(unlucky());
            }
            responses.send(&Tick { seq: tick.seq * 2 }).await?;
        }
        Ok(())
    }
}

impl s::only_streams_server::OnlyStreams for Streams {
    /// Echoes each tick.
    async fn chat(&self, mut request: Request<Streaming<Tick>>, mut responses: StreamSender<Tick>) -> Result<(), Status> {
        let _running = Running::enter(&self.chatters);
        while let Some(tick) = request.message().await? {
            responses.send(&tick).await?;
        }
        Ok(())
    }
}

impl s::tricky_server::Tricky for Streams {
    /// Sends each word of the request's text.
    async fn r#move(&self, request: Request<s::Streaming>, mut responses: StreamSender<s::StreamSender>) -> Result<(), Status> {
        for word in request.into_inner().text.split_whitespace() {
            responses.send(&s::StreamSender { text: word.to_owned() }).await?;
        }
        Ok(())
    }

    /// Joins the texts with spaces.
    async fn r#type(&self, mut request: Request<Streaming<s::StreamSender>>) -> Result<Response<s::Streaming>, Status> {
        let mut words = Vec::new();
        while let Some(word) = request.message().await? {
            words.push(word.text);
        }
        Ok(Response::new(s::Streaming { text: words.join(" ") }))
    }

    /// Echoes each empty message.
    async fn new_(&self, mut request: Request<Streaming<()>>, mut responses: StreamSender<()>) -> Result<(), Status> {
        while let Some(()) = request.message().await? {
            responses.send(&()).await?;
        }
        Ok(())
    }

    /// Echoes each tick.
    async fn ping(&self, request: Request<Streaming<Tick>>, responses: StreamSender<Tick>) -> Result<(), Status> {
        s::only_streams_server::OnlyStreams::chat(self, request, responses).await
    }
}

impl grpc::health::v1::health_server::Health for Streams {
    async fn check(&self, request: Request<HealthCheckRequest>) -> Result<Response<HealthCheckResponse>, Status> {
        match request.into_inner().service.as_str() {
            "" | "hazards.keywords.Keywords" => {
                // Metadata both ways through the generated API: a head entry and a trailer.
                let mut head = volley::Metadata::new();
                head.insert("x-checked-by", "streams")
                    .map_err(|err| Status::internal(err.to_string()))?;
                let mut trailers = volley::Metadata::new();
                trailers
                    .insert("x-check-cost", "1")
                    .map_err(|err| Status::internal(err.to_string()))?;
                let reply = HealthCheckResponse {
                    status: ServingStatus::Serving as i32,
                };
                Ok(Response::new(reply).with_metadata(head).with_trailers(trailers))
            }
            _ => Err(Status::not_found("unknown service")),
        }
    }

    async fn list(&self, _request: Request<HealthListRequest>) -> Result<Response<HealthListResponse>, Status> {
        Ok(Response::new(HealthListResponse::default()))
    }

    /// Sends the service's status once (SERVICE_UNKNOWN for an unknown one) and ends.
    async fn watch(&self, request: Request<HealthCheckRequest>, mut responses: StreamSender<HealthCheckResponse>) -> Result<(), Status> {
        let status = match grpc::health::v1::health_server::Health::check(self, request).await {
            Ok(response) => response.into_inner(),
            Err(_) => HealthCheckResponse {
                status: ServingStatus::ServiceUnknown as i32,
            },
        };
        responses.send(&status).await
    }
}

impl grpc::reflection::v1::server_reflection_server::ServerReflection for Streams {
    async fn server_reflection_info(
        &self,
        _request: Request<Streaming<grpc::reflection::v1::ServerReflectionRequest>>,
        _responses: StreamSender<grpc::reflection::v1::ServerReflectionResponse>,
    ) -> Result<(), Status> {
        Err(Status::unimplemented("server reflection is not served here"))
    }
}

impl doc::orders_server::Orders for Streams {
    async fn place_order(&self, request: Request<doc::Order>) -> Result<Response<doc::Ack>, Status> {
        let order = request.into_inner();
        Ok(Response::new(doc::Ack {
            accepted: order.quantity > 0,
            id: order.id,
        }))
    }

    async fn cancel_order(&self, request: Request<doc::Ack>) -> Result<Response<doc::Ack>, Status> {
        Ok(Response::new(doc::Ack {
            accepted: false,
            ..request.into_inner()
        }))
    }

    /// One fill per unit ordered, with ids `{id}/{n}`.
    async fn watch_fills(&self, request: Request<doc::Order>, mut responses: StreamSender<doc::Ack>) -> Result<(), Status> {
        let order = request.into_inner();
        for n in 0..order.quantity {
            let fill = doc::Ack {
                id: format!("{}/{n}", order.id),
                accepted: true,
            };
            responses.send(&fill).await?;
        }
        Ok(())
    }
}
