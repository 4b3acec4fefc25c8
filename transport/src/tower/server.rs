//! The server half: tower layers around a method's handler.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::task::AbortHandle;
use tower::{Layer, Service, ServiceExt};

use super::{BoxError, status_from_error};
use crate::method::MethodName;
use crate::server::{CallContext, Handler, ServerBuilder, ServerCall};
use crate::status::Status;
use crate::sync::{Mutex, lock};

/// A call as a server-side tower layer sees it: the method and the call's context (metadata,
/// deadline, connection). The call itself rides along to the [`MethodService`] at the bottom
/// of the stack, which runs the handler.
///
/// A layer that fails or drops the request (a timeout, load shedding) makes the call fail with
/// [`status_from_error`] of its error.
#[derive(Debug)]
pub struct ServerRequest {
    method: Arc<str>,
    context: CallContext,
    call: CallSlot,
}

impl ServerRequest {
    /// The method's full name.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The call's context, as the handler will see it.
    pub fn context(&self) -> &CallContext {
        &self.context
    }
}

/// Where the call waits while the request travels down the stack; the handler's service takes
/// it and gives it back when done or dropped, so the layer that owns the request can answer a
/// call the handler never finished.
type CallSlot = Arc<Mutex<Option<ServerCall>>>;

/// The bottom of a server method's tower stack: runs the method's handler. Never fails.
#[derive(Clone)]
pub struct MethodService {
    handler: Arc<dyn Handler>,
}

impl std::fmt::Debug for MethodService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MethodService").finish_non_exhaustive()
    }
}

/// Puts the call back in its slot when the handler's future ends or is dropped.
struct GiveBack {
    call: Option<ServerCall>,
    slot: CallSlot,
}

impl Drop for GiveBack {
    fn drop(&mut self) {
        if let Some(call) = self.call.take() {
            *lock(&self.slot) = Some(call);
        }
    }
}

impl Service<ServerRequest> for MethodService {
    type Response = ();
    type Error = Status;
    type Future = Pin<Box<dyn Future<Output = Result<(), Status>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: ServerRequest) -> Self::Future {
        let handler = self.handler.clone();
        Box::pin(async move {
            let call = lock(&request.call).take();
            let mut give_back = GiveBack { call, slot: request.call };
            if let Some(call) = give_back.call.as_mut() {
                handler.serve(call).await;
            }
            Ok(())
        })
    }
}

/// A handler behind a tower stack `S` built over a [`MethodService`].
struct Layered<S> {
    method: Arc<str>,
    /// One instance, readied and called in turn, so stateful layers see every call.
    service: Arc<tokio::sync::Mutex<S>>,
}

impl<S> Layered<S>
where
    S: Service<ServerRequest, Response = ()> + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
{
    async fn run(&self, call: &mut ServerCall) {
        let slot: CallSlot = Arc::new(Mutex::new(Some(call.take())));
        let request = ServerRequest {
            method: self.method.clone(),
            context: call.context().clone(),
            call: slot.clone(),
        };
        let result = async {
            let future = {
                let mut service = self.service.lock().await;
                service.ready().await.map_err(Into::into)?.call(request)
            };
            future.await.map_err(Into::into)
        }
        .await;
        let returned = lock(&slot).take();
        // Dropped by a layer that kept the request (a spawned one that outlived it): nothing
        // left to answer here.
        let Some(mut returned) = returned else { return };
        if !returned.is_answered() {
            let status = match result {
                Err(err) => status_from_error(err),
                Ok(()) => Status::internal("a tower layer of this method returned without running its handler"),
            };
            returned.respond_when_room::<()>(Err(status)).await;
        }
        // The answered call takes the shell's place, so outer middleware reads its outcome.
        *call = returned;
    }
}

impl<S> Handler for Layered<S>
where
    S: Service<ServerRequest, Response = ()> + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
{
    fn call(&self, mut call: ServerCall) -> Option<AbortHandle> {
        let this = Self {
            method: self.method.clone(),
            service: self.service.clone(),
        };
        let span = call.span().clone();
        Some(crate::server::spawn_in_span(span, async move { this.run(&mut call).await }))
    }

    fn serve<'a>(&'a self, call: &'a mut ServerCall) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        Box::pin(self.run(call))
    }
}

/// Puts `layer` around a method's handler.
fn layered<L>(layer: L) -> impl Fn(&Arc<str>, Arc<dyn Handler>) -> Arc<dyn Handler> + Send + Sync
where
    L: Layer<MethodService> + Send + Sync + 'static,
    L::Service: Service<ServerRequest, Response = ()> + Send + 'static,
    <L::Service as Service<ServerRequest>>::Error: Into<BoxError>,
    <L::Service as Service<ServerRequest>>::Future: Send,
{
    move |method, handler| {
        Arc::new(Layered {
            method: method.clone(),
            service: Arc::new(tokio::sync::Mutex::new(layer.layer(MethodService { handler }))),
        })
    }
}

impl ServerBuilder {
    /// Wraps the handler of every method in `layer` (feature `tower`): a `tower::Layer` over
    /// a [`MethodService`], such as a `tower::ServiceBuilder` stack. Each method gets its own
    /// stack, so a concurrency limit or a rate limit counts per method (tower's
    /// `GlobalConcurrencyLimitLayer` shares one limit). Layers and interceptors run in the
    /// order installed. A layer's error fails the call with [`status_from_error`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower::ServiceBuilder;
    /// use volley::{Request, Server, Status};
    ///
    /// let server = Server::builder()
    ///     .layer(ServiceBuilder::new().load_shed().concurrency_limit(256).timeout(Duration::from_secs(2)))
    ///     .unary("/echo.Echo/Say", |request: Request<String>| async move { Ok::<_, Status>(request.into_inner()) })
    ///     .build()?;
    /// # let _ = server;
    /// # Ok::<(), volley::Error>(())
    /// ```
    #[must_use]
    pub fn layer<L>(mut self, layer: L) -> Self
    where
        L: Layer<MethodService> + Send + Sync + 'static,
        L::Service: Service<ServerRequest, Response = ()> + Send + 'static,
        <L::Service as Service<ServerRequest>>::Error: Into<BoxError>,
        <L::Service as Service<ServerRequest>>::Future: Send,
    {
        self.wraps.push(None, layered(layer));
        self
    }

    /// Like [`ServerBuilder::layer`], for one method only (a typed [`crate::Method`] or its
    /// full name). [`ServerBuilder::build`] fails if no such method is registered.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower::ServiceBuilder;
    /// use volley::{Request, Server, Status};
    ///
    /// let server = Server::builder()
    ///     .unary("/report.Reports/Build", |request: Request<String>| async move { Ok::<_, Status>(request.into_inner()) })
    ///     .method_layer::<String, String, _>("/report.Reports/Build", ServiceBuilder::new().concurrency_limit(2).timeout(Duration::from_secs(30)))
    ///     .build()?;
    /// # let _ = server;
    /// # Ok::<(), volley::Error>(())
    /// ```
    #[must_use]
    pub fn method_layer<Req, Resp, L>(mut self, method: impl MethodName<Req, Resp>, layer: L) -> Self
    where
        L: Layer<MethodService> + Send + Sync + 'static,
        L::Service: Service<ServerRequest, Response = ()> + Send + 'static,
        <L::Service as Service<ServerRequest>>::Error: Into<BoxError>,
        <L::Service as Service<ServerRequest>>::Future: Send,
    {
        self.wraps.push(Some(method.method_name().to_owned()), layered(layer));
        self
    }
}
