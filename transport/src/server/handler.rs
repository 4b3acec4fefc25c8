//! Handlers: how a registered method turns a [`ServerCall`] into a running task.

use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;

use tokio::task::AbortHandle;

use super::{Request, ServerCall};
use crate::status::Status;

/// Runs calls of one method. Implementations spawn a task for the call and return its abort
/// handle, so a cancel or a lost connection drops the handler.
///
/// Generated servers and [`super::ServerBuilder::unary`] provide implementations; write one by
/// hand only for custom dispatch.
pub trait Handler: Send + Sync + 'static {
    /// Starts `call` on the current tokio runtime.
    fn call(&self, call: ServerCall) -> AbortHandle;
}

/// A unary method served by an async function `Fn(Request<Req>) -> Future<Output = Result<Resp, Status>>`.
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
    Resp: prost::Message + 'static,
{
    fn call(&self, mut call: ServerCall) -> AbortHandle {
        let f = self.f.clone();
        tokio::spawn(async move {
            let Some(request) = call.decode::<Req>() else {
                return;
            };
            let deadline = call.context().deadline();
            let handler = f(request);
            let result = match deadline {
                None => handler.await,
                Some(at) => tokio::time::timeout_at(at.into(), handler)
                    .await
                    .unwrap_or_else(|_| {
                        Err(Status::deadline_exceeded(
                            "the call's deadline passed while its handler ran",
                        ))
                    }),
            };
            call.respond(result);
        })
        .abort_handle()
    }
}
