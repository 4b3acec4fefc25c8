//! Handlers: how a registered method turns a [`ServerCall`] into a running task.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;

use tokio::task::AbortHandle;
use tracing::Instrument;

use super::{Request, ServerCall};
use crate::response::IntoResponse;
use crate::status::Status;

/// Runs calls of one method: either to completion right away (returning `None`), or by spawning
/// a task and returning its abort handle, so a cancel or a lost connection drops the handler.
///
/// Generated servers, [`super::ServerBuilder::unary`] and [`super::ServerBuilder::unary_inline`]
/// provide implementations; write one by hand only for custom dispatch.
pub trait Handler: Send + Sync + 'static {
    /// Runs or starts `call` on the current tokio runtime. Called on the connection's reader
    /// task, so it must not block.
    fn call(&self, call: ServerCall) -> Option<AbortHandle>;

    /// Runs `call` to its end on the task that polls the returned future: how middleware
    /// (interceptors, tower layers; see `docs/middleware.md`) runs a handler after work of its
    /// own, on one task, so cancelling the call drops both.
    ///
    /// The handlers Volley provides implement it. The default, for a hand-written handler,
    /// starts the call with [`Handler::call`] and returns at once: middleware then sees the
    /// call's outcome only once that handler answers, and a cancel does not reach its task.
    fn serve<'a>(&'a self, call: &'a mut ServerCall) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        let _detached = self.call(call.take());
        Box::pin(std::future::ready(()))
    }
}

/// A handler's future, boxed for [`Handler::serve`].
pub(crate) type ServeFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Spawns a handler's task, inside the call's span only when a subscriber wants it: a disabled
/// span entered on every poll costs a few percent of a streamed message for nothing.
pub(crate) fn spawn_in_span<F>(span: tracing::Span, task: F) -> AbortHandle
where
    F: Future<Output = ()> + Send + 'static,
{
    if span.is_disabled() {
        tokio::spawn(task).abort_handle()
    } else {
        tokio::spawn(task.instrument(span)).abort_handle()
    }
}

/// A unary method served by an async function `Fn(Request<Req>) -> Future<Output = Result<Resp, Status>>`;
/// `Resp` is a message or a [`crate::Response`] with metadata.
pub struct UnaryHandler<F, Req, Resp> {
    f: Arc<F>,
    _types: PhantomData<fn(Req) -> Resp>,
}

impl<F, Req, Resp> std::fmt::Debug for UnaryHandler<F, Req, Resp> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnaryHandler")
            .field("request", &std::any::type_name::<Req>())
            .finish()
    }
}

impl<F, Req, Resp> UnaryHandler<F, Req, Resp> {
    /// Wraps `f`.
    pub fn new(f: F) -> Self {
        Self {
            f: Arc::new(f),
            _types: PhantomData,
        }
    }
}

impl<F, Fut, Req, Resp> Handler for UnaryHandler<F, Req, Resp>
where
    F: Fn(Request<Req>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Resp, Status>> + Send + 'static,
    Req: prost::Message + Default + 'static,
    Resp: IntoResponse,
{
    fn call(&self, mut call: ServerCall) -> Option<AbortHandle> {
        let f = self.f.clone();
        let span = call.span().clone();
        let task = spawn_in_span(span, async move { run_unary(&*f, &mut call).await });
        Some(task)
    }

    fn serve<'a>(&'a self, call: &'a mut ServerCall) -> ServeFuture<'a> {
        Box::pin(run_unary(&*self.f, call))
    }
}

async fn run_unary<F, Fut, Req, Resp>(f: &F, call: &mut ServerCall)
where
    F: Fn(Request<Req>) -> Fut,
    Fut: Future<Output = Result<Resp, Status>>,
    Req: prost::Message + Default + 'static,
    Resp: IntoResponse,
{
    let Some(request) = call.decode::<Req>() else {
        return;
    };
    let result = super::streaming::within_deadline(call.context().deadline(), f(request)).await;
    call.respond_when_room(result).await;
}

/// A unary method served by a synchronous function `Fn(Request<Req>) -> Result<Resp, Status>`,
/// run on the connection's reader task: no task spawn, no allocation, no hop between threads.
/// For handlers that finish in microseconds without blocking (an in-memory order book, a cache
/// lookup); a slow one delays every other call on its connection.
pub struct InlineUnaryHandler<F, Req, Resp> {
    f: F,
    _types: PhantomData<fn(Req) -> Resp>,
}

impl<F, Req, Resp> std::fmt::Debug for InlineUnaryHandler<F, Req, Resp> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InlineUnaryHandler")
            .field("request", &std::any::type_name::<Req>())
            .finish()
    }
}

impl<F, Req, Resp> InlineUnaryHandler<F, Req, Resp> {
    /// Wraps `f`.
    pub fn new(f: F) -> Self {
        Self { f, _types: PhantomData }
    }
}

impl<F, Req, Resp> Handler for InlineUnaryHandler<F, Req, Resp>
where
    F: Fn(Request<Req>) -> Result<Resp, Status> + Send + Sync + 'static,
    Req: prost::Message + Default + 'static,
    Resp: IntoResponse,
{
    fn call(&self, mut call: ServerCall) -> Option<AbortHandle> {
        let span = call.span().clone();
        let _entered = span.enter();
        if let Some(request) = call.decode::<Req>() {
            let result = (self.f)(request);
            call.respond(result);
        }
        None
    }

    fn serve<'a>(&'a self, call: &'a mut ServerCall) -> ServeFuture<'a> {
        // Behind middleware, on a task of its own: waits for write-queue room like a spawned
        // handler.
        Box::pin(async move {
            if let Some(request) = call.decode::<Req>() {
                let result = (self.f)(request);
                call.respond_when_room(result).await;
            }
        })
    }
}
