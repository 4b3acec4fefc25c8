//! Client interceptors: [`ClientInterceptor`], the call head it sees ([`OutboundCall`]), and the
//! chain a channel runs its calls through.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::CallOutcome;
use crate::client::{CallOptions, Channel};
use crate::error::Error;
use crate::net::Address;
use crate::response::Response;
use crate::status::{Code, Status};
use crate::streaming::Streaming;
use crate::streaming::{ClientStreamingCall, StreamSender};
use crate::wire::{Metadata, MethodId};

/// What a client connects to, as [`ClientInterceptor::on_connect`] sees it.
#[derive(Clone, Copy, Debug)]
pub struct Target<'a> {
    address: &'a Address,
    secure: bool,
}

impl<'a> Target<'a> {
    pub(crate) fn new(address: &'a Address, secure: bool) -> Self {
        Self { address, secure }
    }

    /// The server's address.
    pub fn address(&self) -> &'a Address {
        self.address
    }

    /// Whether the connection is encrypted and the server authenticated (TLS). Plain TCP and
    /// Unix sockets are not.
    pub fn is_secure(&self) -> bool {
        self.secure
    }

    /// Whether the bytes never leave this host: a loopback IP address (127.0.0.0/8, `::1`,
    /// also as an IPv4-mapped IPv6 address) or a Unix socket.
    pub fn is_local(&self) -> bool {
        match self.address {
            Address::Tcp(addr) => addr.ip().to_canonical().is_loopback(),
            Address::Unix(_) => true,
            #[cfg(feature = "quic")]
            Address::Quic(addr) => addr.ip().to_canonical().is_loopback(),
        }
    }
}

/// A call as a client interceptor sees it, before it is written: the method, the metadata to
/// send, the deadline and the priority, all changeable.
#[derive(Clone, Debug)]
pub struct OutboundCall {
    method: MethodId,
    options: CallOptions,
}

impl OutboundCall {
    /// The method's wire id (compare with a generated `*_methods::NAME::ID` or a
    /// [`Method`](crate::Method)'s `id()`).
    pub fn method_id(&self) -> MethodId {
        self.method
    }

    /// The metadata the call will send.
    pub fn metadata(&self) -> &Metadata {
        &self.options.metadata
    }

    /// The metadata, to add to it.
    pub fn metadata_mut(&mut self) -> &mut Metadata {
        &mut self.options.metadata
    }

    /// The call's deadline: its own, or the client's default timeout counted from now.
    pub fn deadline(&self) -> Option<Instant> {
        self.options.deadline
    }

    /// Moves the deadline; `None` leaves the client's default timeout.
    pub fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.options.deadline = deadline;
    }

    /// The priority.
    pub fn priority(&self) -> u8 {
        self.options.priority
    }

    /// Changes the priority.
    pub fn set_priority(&mut self, priority: u8) {
        self.options.priority = priority;
    }
}

/// Async hooks around every call a client makes; install with
/// [`ChannelBuilder::interceptor`](crate::client::ChannelBuilder::interceptor).
///
/// [`on_connect`](ClientInterceptor::on_connect) runs once, when the channel is built, and may
/// refuse the target (what [`BearerToken`](super::BearerToken) does with plaintext to a remote
/// host). Per call, [`on_call`](ClientInterceptor::on_call) runs before anything is written
/// and may change the head or fail the call; [`on_end`](ClientInterceptor::on_end) observes
/// the outcome: for unary calls when the answer arrives (`Cancelled` if the caller dropped the
/// call first), for streaming calls when the response stream is dropped (or the call failed to
/// open). Interceptors run in the order
/// installed, `on_end` in reverse.
///
/// A closure `Fn(&mut OutboundCall) -> Result<(), Status>` is an interceptor with only an
/// `on_call`.
///
/// ```
/// use volley::Channel;
/// use volley::interceptor::OutboundCall;
///
/// # fn demo() -> Result<(), volley::Error> {
/// let channel = Channel::builder()
///     .interceptor(|call: &mut OutboundCall| {
///         call.metadata_mut().insert("x-client", "billing-7").map_err(|e| volley::Status::internal(e.to_string()))
///     })
///     .connect_lazy("127.0.0.1:7000")?;
/// # let _ = channel;
/// # Ok(()) }
/// ```
pub trait ClientInterceptor: Send + Sync + 'static {
    /// When the channel is built: refuse a target this interceptor must not talk to. The
    /// default accepts every target.
    fn on_connect(&self, target: &Target<'_>) -> Result<(), Error> {
        let _ = target;
        Ok(())
    }

    /// Before the call is written: change `call`, or fail it with a status (nothing is sent).
    fn on_call(&self, call: &mut OutboundCall) -> impl Future<Output = Result<(), Status>> + Send {
        let _ = call;
        std::future::ready(Ok(()))
    }

    /// Once the call has ended, with its code and how long it took from `on_call`.
    fn on_end(&self, call: &OutboundCall, outcome: &CallOutcome) {
        let _ = (call, outcome);
    }
}

impl<F> ClientInterceptor for F
where
    F: Fn(&mut OutboundCall) -> Result<(), Status> + Send + Sync + 'static,
{
    fn on_call(&self, call: &mut OutboundCall) -> impl Future<Output = Result<(), Status>> + Send {
        std::future::ready(self(call))
    }
}

/// A boxed `on_call` future.
type OnCall<'a> = Pin<Box<dyn Future<Output = Result<(), Status>> + Send + 'a>>;

/// [`ClientInterceptor`] made dyn-compatible.
trait DynClientInterceptor: Send + Sync + 'static {
    fn on_connect(&self, target: &Target<'_>) -> Result<(), Error>;
    fn on_call<'a>(&'a self, call: &'a mut OutboundCall) -> OnCall<'a>;
    fn on_end(&self, call: &OutboundCall, outcome: &CallOutcome);
}

impl<T: ClientInterceptor> DynClientInterceptor for T {
    fn on_connect(&self, target: &Target<'_>) -> Result<(), Error> {
        ClientInterceptor::on_connect(self, target)
    }

    fn on_call<'a>(&'a self, call: &'a mut OutboundCall) -> OnCall<'a> {
        Box::pin(ClientInterceptor::on_call(self, call))
    }

    fn on_end(&self, call: &OutboundCall, outcome: &CallOutcome) {
        ClientInterceptor::on_end(self, call, outcome);
    }
}

/// The interceptors of a channel, in the order installed. Empty by default: then a call checks
/// `is_empty` and nothing else.
#[derive(Clone, Default)]
pub(crate) struct ClientInterceptors {
    list: Arc<Vec<Arc<dyn DynClientInterceptor>>>,
}

impl std::fmt::Debug for ClientInterceptors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClientInterceptors({})", self.list.len())
    }
}

/// The state of one intercepted call: its head and how far the chain got.
pub(crate) struct Intercepting {
    list: Arc<Vec<Arc<dyn DynClientInterceptor>>>,
    call: OutboundCall,
    ran: usize,
    started: Instant,
}

impl Intercepting {
    /// Runs `on_end` of every interceptor whose `on_call` ran, last first.
    fn finish(self, code: Code) {
        let outcome = CallOutcome {
            code,
            elapsed: self.started.elapsed(),
        };
        for interceptor in self.list[..self.ran].iter().rev() {
            interceptor.on_end(&self.call, &outcome);
        }
    }
}

impl ClientInterceptors {
    pub(crate) fn push(&mut self, interceptor: impl ClientInterceptor) {
        Arc::make_mut(&mut self.list).push(Arc::new(interceptor));
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Asks every interceptor whether it may talk to `target`.
    pub(crate) fn check(&self, target: &Target<'_>) -> Result<(), Error> {
        self.list.iter().try_for_each(|interceptor| interceptor.on_connect(target))
    }

    /// Runs the `on_call`s for a call to `method`; the options to send it with, or the refusal
    /// (after the `on_end`s of those that ran).
    pub(crate) async fn start(
        &self,
        method: MethodId,
        mut options: CallOptions,
        default_timeout: Option<Duration>,
    ) -> Result<Intercepting, Status> {
        let started = Instant::now();
        // Interceptors see one absolute deadline, whatever way it was set.
        options.deadline = options.deadline_from(started, default_timeout);
        options.timeout = None;
        let mut state = Intercepting {
            list: self.list.clone(),
            call: OutboundCall { method, options },
            ran: 0,
            started,
        };
        for interceptor in self.list.iter() {
            state.ran += 1;
            if let Err(status) = interceptor.on_call(&mut state.call).await {
                state.finish(status.code());
                return Err(status);
            }
        }
        Ok(state)
    }

    /// A unary call through the chain: `call` makes it with the head the interceptors left.
    pub(crate) async fn unary<T, F, Fut>(
        &self,
        method: MethodId,
        options: CallOptions,
        default_timeout: Option<Duration>,
        call: F,
    ) -> Result<T, Status>
    where
        F: FnOnce(MethodId, CallOptions) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        let state = self.start(method, options, default_timeout).await?;
        let (method, options) = (state.call.method, state.call.options.clone());
        let mut end = EndGuard(Some(state), Code::Cancelled);
        let result = call(method, options).await;
        end.1 = result.as_ref().map_or_else(Status::code, |_| Code::Ok);
        result
    }

    /// A streaming call through the chain: `open` opens it; `stream` picks the response stream
    /// out of what it returns, whose drop ends the call for the `on_end`s.
    pub(crate) async fn streaming<T, R, F, Fut>(
        &self,
        method: MethodId,
        options: CallOptions,
        default_timeout: Option<Duration>,
        open: F,
        stream: impl FnOnce(&mut T) -> &mut Streaming<R>,
    ) -> Result<T, Status>
    where
        R: prost::Message + Default,
        F: FnOnce(MethodId, CallOptions) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        let state = self.start(method, options, default_timeout).await?;
        let (method, options) = (state.call.method, state.call.options.clone());
        let mut end = EndGuard(Some(state), Code::Cancelled);
        match open(method, options).await {
            Ok(mut opened) => {
                if let Some(state) = end.0.take() {
                    stream(&mut opened).on_end(Box::new(move |code| state.finish(code)));
                }
                Ok(opened)
            }
            Err(status) => {
                end.1 = status.code();
                Err(status)
            }
        }
    }
}

/// Runs the `on_end`s with its code when dropped: when the call ends, or with `Cancelled` when
/// the caller drops the call's future first.
struct EndGuard(Option<Intercepting>, Code);

impl Drop for EndGuard {
    fn drop(&mut self) {
        if let Some(state) = self.0.take() {
            state.finish(self.1);
        }
    }
}

/// A unary call of `channel` through its interceptors.
pub(crate) async fn intercept_unary<Req: prost::Message>(
    channel: &Channel,
    method: MethodId,
    request: &Req,
    options: CallOptions,
) -> Result<Response<Bytes>, Status> {
    channel
        .interceptors()
        .unary(method, options, channel.default_timeout(), |method, options| {
            channel.call_plain(method, request, options)
        })
        .await
}

/// A server-streaming call of `channel` through its interceptors.
pub(crate) async fn intercept_server_streaming<Req, Resp>(
    channel: &Channel,
    method: MethodId,
    request: &Req,
    options: CallOptions,
) -> Result<Streaming<Resp>, Status>
where
    Req: prost::Message,
    Resp: prost::Message + Default,
{
    let open = |method: MethodId, options: CallOptions| async move {
        let client = channel
            .ready_client(options.deadline_from(Instant::now(), channel.default_timeout()))
            .await?;
        client.server_streaming(method, request, options).await
    };
    channel
        .interceptors()
        .streaming(method, options, channel.default_timeout(), open, |stream| stream)
        .await
}

/// A bidirectional-streaming call of `channel` through its interceptors.
pub(crate) async fn intercept_bidi_streaming<Req, Resp>(
    channel: &Channel,
    method: MethodId,
    options: CallOptions,
) -> Result<(StreamSender<Req>, Streaming<Resp>), Status>
where
    Req: prost::Message,
    Resp: prost::Message + Default,
{
    let open = |method: MethodId, options: CallOptions| async move {
        let client = channel
            .ready_client(options.deadline_from(Instant::now(), channel.default_timeout()))
            .await?;
        client.bidi_streaming(method, options).await
    };
    channel
        .interceptors()
        .streaming(method, options, channel.default_timeout(), open, |(_, stream)| stream)
        .await
}

/// A client-streaming call of `channel` through its interceptors.
pub(crate) async fn intercept_client_streaming<Req, Resp>(
    channel: &Channel,
    method: MethodId,
    options: CallOptions,
) -> Result<ClientStreamingCall<Req, Resp>, Status>
where
    Req: prost::Message,
    Resp: prost::Message + Default,
{
    let (sender, response) = intercept_bidi_streaming(channel, method, options).await?;
    Ok(ClientStreamingCall::new(sender, response))
}
