//! The client half: [`UnaryRequest`], `tower::Service` for [`Channel`], and [`ServiceCaller`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, BufMut, Bytes};
use tower::{Service, ServiceExt};

use super::{BoxError, status_from_error};
use crate::client::{CallOptions, Caller, Channel, Client};
use crate::response::Response;
use crate::status::Status;
use crate::streaming::{ClientStreamingCall, StreamSender, Streaming};
use crate::wire::MethodId;

/// A unary call as a tower request: the method, the encoded request message and the call
/// options. Cheap to clone (the message is shared), so tower's retry can send it again.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use tower::{ServiceBuilder, ServiceExt};
/// use volley::tower::UnaryRequest;
/// use volley::{CallOptions, Channel, MethodId};
///
/// let channel = Channel::builder().connect("127.0.0.1:7000").await?;
/// let service = ServiceBuilder::new().timeout(Duration::from_secs(1)).concurrency_limit(64).service(channel);
/// let request = UnaryRequest::new(MethodId::from_name("/echo.Echo/Say"), &"hi".to_owned(), CallOptions::new());
/// let response = service.oneshot(request).await.map_err(volley::tower::status_from_error)?;
/// let reply: String = prost::Message::decode(response.into_inner())?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct UnaryRequest {
    method: MethodId,
    message: Bytes,
    options: CallOptions,
}

impl UnaryRequest {
    /// A call to `method` with `message`, encoded now.
    pub fn new<M: prost::Message>(method: MethodId, message: &M, options: CallOptions) -> Self {
        Self::from_encoded(method, Bytes::from(message.encode_to_vec()), options)
    }

    /// A call to `method` with a message already encoded.
    pub fn from_encoded(method: MethodId, message: Bytes, options: CallOptions) -> Self {
        Self { method, message, options }
    }

    /// The method.
    pub fn method(&self) -> MethodId {
        self.method
    }

    /// The encoded request message.
    pub fn message(&self) -> &Bytes {
        &self.message
    }

    /// The call options (deadline, metadata, priority).
    pub fn options(&self) -> &CallOptions {
        &self.options
    }

    /// The call options, to change them in a layer.
    pub fn options_mut(&mut self) -> &mut CallOptions {
        &mut self.options
    }
}

/// An encoded message, written as it is.
#[derive(Debug)]
struct Encoded(Bytes);

impl prost::Message for Encoded {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        buf.put_slice(&self.0);
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: prost::encoding::WireType,
        buf: &mut impl Buf,
        ctx: prost::encoding::DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        // Never decoded: responses come back as bytes.
        prost::encoding::skip_field(wire_type, tag, buf, ctx)
    }

    fn encoded_len(&self) -> usize {
        self.0.len()
    }

    fn clear(&mut self) {
        self.0.clear();
    }
}

/// A boxed call future.
type CallFuture = Pin<Box<dyn Future<Output = Result<Response<Bytes>, Status>> + Send>>;

/// A channel is always ready: a call waits for a connection and a call slot inside its
/// future, within its deadline. Put a concurrency limit in front to bound calls in flight.
impl Service<UnaryRequest> for Channel {
    type Response = Response<Bytes>;
    type Error = Status;
    type Future = CallFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: UnaryRequest) -> CallFuture {
        let channel = self.clone();
        Box::pin(async move {
            let UnaryRequest { method, message, options } = request;
            channel.call(method, &Encoded(message), options).await
        })
    }
}

/// One connection as a tower service; see the `Channel` implementation.
impl Service<UnaryRequest> for Client {
    type Response = Response<Bytes>;
    type Error = Status;
    type Future = CallFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: UnaryRequest) -> CallFuture {
        let client = self.clone();
        Box::pin(async move {
            let UnaryRequest { method, message, options } = request;
            client
                .unary_attempt(method, &Encoded(message), &options, std::time::Instant::now())
                .await
                .map(|answered| answered.response)
                .map_err(|failure| client.explain(failure))
        })
    }
}

/// A tower service stack as the transport of generated clients (a [`Caller`]): unary calls go
/// through `service`; streaming calls, which a request/response service cannot carry, go to
/// `channel` (and its interceptors).
///
/// The service is shared by the clones of the caller and its readiness and calls are taken in
/// turn, so a stateful layer (concurrency limit, rate limit) limits all of them together, with
/// no `Buffer` needed.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use tower::ServiceBuilder;
/// use volley::tower::ServiceCaller;
/// use volley::{CallOptions, Caller, Channel, MethodId};
///
/// let channel = Channel::builder().connect("127.0.0.1:7000").await?;
/// let stack = ServiceBuilder::new()
///     .timeout(Duration::from_millis(200))
///     .concurrency_limit(32)
///     .service(channel.clone());
/// let caller = ServiceCaller::new(stack, channel);
/// // A generated client takes it as its transport: `GreeterClient::new(caller)`.
/// let reply: String = caller.unary(MethodId::from_name("/echo.Echo/Say"), &"hi".to_owned(), CallOptions::new()).await?;
/// # Ok(()) }
/// ```
pub struct ServiceCaller<S> {
    service: Arc<tokio::sync::Mutex<S>>,
    channel: Channel,
}

impl<S> Clone for ServiceCaller<S> {
    fn clone(&self) -> Self {
        Self {
            service: self.service.clone(),
            channel: self.channel.clone(),
        }
    }
}

impl<S> std::fmt::Debug for ServiceCaller<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceCaller")
            .field("service", &std::any::type_name::<S>())
            .field("channel", &self.channel)
            .finish()
    }
}

impl<S> ServiceCaller<S> {
    /// Unary calls through `service`, streaming calls through `channel`.
    pub fn new(service: S, channel: Channel) -> Self {
        Self {
            service: Arc::new(tokio::sync::Mutex::new(service)),
            channel,
        }
    }
}

impl<S> ServiceCaller<S>
where
    S: Service<UnaryRequest, Response = Response<Bytes>> + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
{
    /// Sends `request` through the service once it is ready.
    async fn send(&self, request: UnaryRequest) -> Result<Response<Bytes>, Status> {
        let future = {
            let mut service = self.service.lock().await;
            let ready = service.ready().await.map_err(|err| status_from_error(err.into()))?;
            ready.call(request)
        };
        future.await.map_err(|err| status_from_error(err.into()))
    }
}

impl<S> Caller for ServiceCaller<S>
where
    S: Service<UnaryRequest, Response = Response<Bytes>> + Send + 'static,
    S::Error: Into<BoxError>,
    S::Future: Send,
{
    fn unary<Req, Resp>(&self, method: MethodId, request: &Req, options: CallOptions) -> impl Future<Output = Result<Resp, Status>> + Send
    where
        Req: prost::Message + Sync,
        Resp: prost::Message + Default,
    {
        let request = UnaryRequest::new(method, request, options);
        async move { crate::client::decode_response(self.send(request).await?.into_inner()) }
    }

    fn unary_response<Req, Resp>(
        &self,
        method: MethodId,
        request: &Req,
        options: CallOptions,
    ) -> impl Future<Output = Result<Response<Resp>, Status>> + Send
    where
        Req: prost::Message + Sync,
        Resp: prost::Message + Default,
    {
        let request = UnaryRequest::new(method, request, options);
        async move { crate::client::decode_response_parts(self.send(request).await?) }
    }

    fn ready(&self, options: &CallOptions) -> impl Future<Output = Result<Client, Status>> + Send {
        Caller::ready(&self.channel, options)
    }

    fn server_streaming<Req, Resp>(
        &self,
        method: MethodId,
        request: &Req,
        options: CallOptions,
    ) -> impl Future<Output = Result<Streaming<Resp>, Status>> + Send
    where
        Req: prost::Message + Sync,
        Resp: prost::Message + Default,
    {
        Caller::server_streaming(&self.channel, method, request, options)
    }

    fn client_streaming<Req, Resp>(
        &self,
        method: MethodId,
        options: CallOptions,
    ) -> impl Future<Output = Result<ClientStreamingCall<Req, Resp>, Status>> + Send
    where
        Req: prost::Message,
        Resp: prost::Message + Default,
    {
        Caller::client_streaming(&self.channel, method, options)
    }

    fn bidi_streaming<Req, Resp>(
        &self,
        method: MethodId,
        options: CallOptions,
    ) -> impl Future<Output = Result<(StreamSender<Req>, Streaming<Resp>), Status>> + Send
    where
        Req: prost::Message,
        Resp: prost::Message + Default,
    {
        Caller::bidi_streaming(&self.channel, method, options)
    }
}
