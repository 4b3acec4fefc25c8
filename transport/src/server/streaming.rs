//! Handlers for streaming methods: server-streaming, client-streaming and bidirectional.

use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Instant;

use tokio::task::AbortHandle;

use super::handler::{ServeFuture, spawn_in_span};
use super::{Handler, Request, ServerCall};
use crate::response::IntoResponse;
use crate::status::Status;
use crate::streaming::{StreamSender, Streaming};

/// Runs `handler` until it finishes or the call's deadline passes.
pub(crate) async fn within_deadline<T>(deadline: Option<Instant>, handler: impl Future<Output = Result<T, Status>>) -> Result<T, Status> {
    match deadline {
        None => handler.await,
        Some(at) => tokio::time::timeout_at(at.into(), handler)
            .await
            .unwrap_or_else(|_| Err(Status::deadline_exceeded("the call's deadline passed while its handler ran"))),
    }
}

macro_rules! handler_struct {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        pub struct $name<F, Req, Resp> {
            f: Arc<F>,
            _types: PhantomData<fn(Req) -> Resp>,
        }

        impl<F, Req, Resp> $name<F, Req, Resp> {
            /// Wraps `f`.
            pub fn new(f: F) -> Self {
                Self { f: Arc::new(f), _types: PhantomData }
            }
        }

        impl<F, Req, Resp> std::fmt::Debug for $name<F, Req, Resp> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($name)).field("request", &std::any::type_name::<Req>()).finish()
            }
        }
    };
}

handler_struct! {
    /// A server-streaming method: `Fn(Request<Req>, StreamSender<Resp>) -> Future<Output =
    /// Result<(), Status>>`. The call ends with the returned status once the function returns.
    ServerStreamingHandler
}

handler_struct! {
    /// A client-streaming method: `Fn(Request<Streaming<Req>>) -> Future<Output = Result<Resp,
    /// Status>>`.
    ClientStreamingHandler
}

handler_struct! {
    /// A bidirectional-streaming method: `Fn(Request<Streaming<Req>>, StreamSender<Resp>) ->
    /// Future<Output = Result<(), Status>>`.
    BidiStreamingHandler
}

impl<F, Fut, Req, Resp> Handler for ServerStreamingHandler<F, Req, Resp>
where
    F: Fn(Request<Req>, StreamSender<Resp>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), Status>> + Send + 'static,
    Req: prost::Message + Default + 'static,
    Resp: prost::Message + 'static,
{
    fn call(&self, mut call: ServerCall) -> Option<AbortHandle> {
        let f = self.f.clone();
        let span = call.span().clone();
        let task = spawn_in_span(span, async move { run_server_streaming(&*f, &mut call).await });
        Some(task)
    }

    fn serve<'a>(&'a self, call: &'a mut ServerCall) -> ServeFuture<'a> {
        Box::pin(run_server_streaming(&*self.f, call))
    }
}

async fn run_server_streaming<F, Fut, Req, Resp>(f: &F, call: &mut ServerCall)
where
    F: Fn(Request<Req>, StreamSender<Resp>) -> Fut,
    Fut: Future<Output = Result<(), Status>>,
    Req: prost::Message + Default + 'static,
    Resp: prost::Message + 'static,
{
    let Some(request) = call.decode::<Req>() else { return };
    let sender = call.response_sender::<Resp>();
    let handler = call.head_at_first_wait(f(request, sender));
    let result = within_deadline(call.context().deadline(), handler).await;
    call.finish_when_room(result).await;
}

impl<F, Fut, Req, Resp> Handler for ClientStreamingHandler<F, Req, Resp>
where
    F: Fn(Request<Streaming<Req>>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Resp, Status>> + Send + 'static,
    Req: prost::Message + Default + 'static,
    Resp: IntoResponse,
{
    fn call(&self, mut call: ServerCall) -> Option<AbortHandle> {
        let f = self.f.clone();
        let span = call.span().clone();
        let task = spawn_in_span(span, async move { run_client_streaming(&*f, &mut call).await });
        Some(task)
    }

    fn serve<'a>(&'a self, call: &'a mut ServerCall) -> ServeFuture<'a> {
        Box::pin(run_client_streaming(&*self.f, call))
    }
}

async fn run_client_streaming<F, Fut, Req, Resp>(f: &F, call: &mut ServerCall)
where
    F: Fn(Request<Streaming<Req>>) -> Fut,
    Fut: Future<Output = Result<Resp, Status>>,
    Req: prost::Message + Default + 'static,
    Resp: IntoResponse,
{
    let request = Request::from_parts(call.request_stream::<Req>(), call.context().clone());
    let result = within_deadline(call.context().deadline(), f(request)).await;
    call.respond_when_room(result).await;
}

impl<F, Fut, Req, Resp> Handler for BidiStreamingHandler<F, Req, Resp>
where
    F: Fn(Request<Streaming<Req>>, StreamSender<Resp>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), Status>> + Send + 'static,
    Req: prost::Message + Default + 'static,
    Resp: prost::Message + 'static,
{
    fn call(&self, mut call: ServerCall) -> Option<AbortHandle> {
        let f = self.f.clone();
        let span = call.span().clone();
        let task = spawn_in_span(span, async move { run_bidi_streaming(&*f, &mut call).await });
        Some(task)
    }

    fn serve<'a>(&'a self, call: &'a mut ServerCall) -> ServeFuture<'a> {
        Box::pin(run_bidi_streaming(&*self.f, call))
    }
}

async fn run_bidi_streaming<F, Fut, Req, Resp>(f: &F, call: &mut ServerCall)
where
    F: Fn(Request<Streaming<Req>>, StreamSender<Resp>) -> Fut,
    Fut: Future<Output = Result<(), Status>>,
    Req: prost::Message + Default + 'static,
    Resp: prost::Message + 'static,
{
    let request = Request::from_parts(call.request_stream::<Req>(), call.context().clone());
    let sender = call.response_sender::<Resp>();
    let handler = call.head_at_first_wait(f(request, sender));
    let result = within_deadline(call.context().deadline(), handler).await;
    call.finish_when_room(result).await;
}
