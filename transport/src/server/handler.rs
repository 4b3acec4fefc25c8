//! Handlers: how a registered method turns a [`ServerCall`] into a running task.

use std::future::Future;
use std::marker::PhantomData;
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
}

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
        let task = spawn_in_span(span, async move {
            let Some(request) = call.decode::<Req>() else {
                return;
            };
            let result = super::streaming::within_deadline(call.context().deadline(), f(request)).await;
            call.respond_when_room(result).await;
        });
        Some(task)
    }
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
}
