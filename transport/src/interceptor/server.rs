//! Server interceptors: [`ServerInterceptor`], the call head it sees ([`InboundCall`]) and the
//! handler wrapper that runs it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use tokio::task::AbortHandle;

use super::CallOutcome;
use crate::server::{CallContext, ConnectionInfo, Handler, ServerCall};
use crate::status::{Code, Status};
use crate::wire::{Metadata, MethodId};

/// A call as a server interceptor sees it, before the handler: the method, the caller's
/// metadata and deadline, the connection. Changes to the metadata and the deadline reach the
/// handler.
#[derive(Clone, Debug)]
pub struct InboundCall {
    method: Arc<str>,
    context: CallContext,
}

impl InboundCall {
    /// The method's full name, `/package.Service/Method`.
    pub fn method(&self) -> &str {
        &self.method
    }

    /// The method's wire id.
    pub fn method_id(&self) -> MethodId {
        self.context.method()
    }

    /// The caller's metadata.
    pub fn metadata(&self) -> &Metadata {
        self.context.metadata()
    }

    /// The caller's metadata, to change what the handler will see.
    pub fn metadata_mut(&mut self) -> &mut Metadata {
        self.context.metadata_mut()
    }

    /// When the caller stops waiting, if it set a deadline.
    pub fn deadline(&self) -> Option<Instant> {
        self.context.deadline()
    }

    /// Moves the deadline the handler runs under (an interceptor may shorten a caller's
    /// generous deadline, say). The caller's own deadline still applies on its side.
    pub fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.context.set_deadline(deadline);
    }

    /// The caller's priority.
    pub fn priority(&self) -> u8 {
        self.context.priority()
    }

    /// The connection the call came in on (its peer address, its id).
    pub fn connection(&self) -> Option<&ConnectionInfo> {
        self.context.connection()
    }

    /// The whole context, as the handler will see it.
    pub fn context(&self) -> &CallContext {
        &self.context
    }
}

/// Async hooks around every call a server takes; install with
/// [`ServerBuilder::interceptor`](crate::server::ServerBuilder::interceptor).
///
/// Interceptors run in the order they were installed, each on the call's handler task, before
/// the request is decoded. [`on_call`](ServerInterceptor::on_call) may change the head or
/// refuse the call (the caller receives the returned `Status`; later interceptors and the
/// handler do not run). [`on_end`](ServerInterceptor::on_end) then runs, in reverse order, for
/// every interceptor whose `on_call` ran, once the call has been answered.
///
/// A closure `Fn(&mut InboundCall) -> Result<(), Status>` is an interceptor with only an
/// `on_call`.
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use volley::interceptor::{CallOutcome, InboundCall, ServerInterceptor};
/// use volley::{Code, Status};
///
/// /// Counts failed calls.
/// #[derive(Default)]
/// struct Failures(AtomicU64);
///
/// impl ServerInterceptor for Failures {
///     fn on_end(&self, _call: &InboundCall, outcome: &CallOutcome) {
///         if outcome.code != Code::Ok {
///             self.0.fetch_add(1, Ordering::Relaxed);
///         }
///     }
/// }
///
/// let builder = volley::Server::builder().interceptor(Failures::default());
/// # let _ = builder;
/// ```
pub trait ServerInterceptor: Send + Sync + 'static {
    /// Before the handler: change `call`, or refuse it with a status. The default accepts.
    fn on_call(&self, call: &mut InboundCall) -> impl Future<Output = Result<(), Status>> + Send {
        let _ = call;
        std::future::ready(Ok(()))
    }

    /// After the call has been answered, with its code and how long it took; with `Cancelled`
    /// when the call's task is dropped first (the client cancelled, the connection was lost),
    /// then from the task's drop: keep it short and non-blocking.
    fn on_end(&self, call: &InboundCall, outcome: &CallOutcome) {
        let _ = (call, outcome);
    }
}

impl<F> ServerInterceptor for F
where
    F: Fn(&mut InboundCall) -> Result<(), Status> + Send + Sync + 'static,
{
    fn on_call(&self, call: &mut InboundCall) -> impl Future<Output = Result<(), Status>> + Send {
        std::future::ready(self(call))
    }
}

/// A boxed `on_call` future.
type OnCall<'a> = Pin<Box<dyn Future<Output = Result<(), Status>> + Send + 'a>>;

/// [`ServerInterceptor`] made dyn-compatible, to sit in front of any handler.
trait DynServerInterceptor: Send + Sync + 'static {
    fn on_call<'a>(&'a self, call: &'a mut InboundCall) -> OnCall<'a>;
    fn on_end(&self, call: &InboundCall, outcome: &CallOutcome);
}

impl<T: ServerInterceptor> DynServerInterceptor for T {
    fn on_call<'a>(&'a self, call: &'a mut InboundCall) -> OnCall<'a> {
        Box::pin(ServerInterceptor::on_call(self, call))
    }

    fn on_end(&self, call: &InboundCall, outcome: &CallOutcome) {
        ServerInterceptor::on_end(self, call, outcome);
    }
}

/// Wraps handlers of method `name` in `interceptor`: the function a server's
/// [`HandlerWraps`](crate::server) entry holds.
pub(crate) fn intercepted(interceptor: impl ServerInterceptor) -> impl Fn(&Arc<str>, Arc<dyn Handler>) -> Arc<dyn Handler> + Send + Sync {
    let interceptor: Arc<dyn DynServerInterceptor> = Arc::new(interceptor);
    move |name, inner| {
        Arc::new(Intercepted {
            method: name.clone(),
            interceptor: interceptor.clone(),
            inner,
        })
    }
}

/// A handler behind one interceptor.
struct Intercepted {
    method: Arc<str>,
    interceptor: Arc<dyn DynServerInterceptor>,
    inner: Arc<dyn Handler>,
}

impl Intercepted {
    async fn run(&self, call: &mut ServerCall) {
        let started = Instant::now();
        let mut inbound = InboundCall {
            method: self.method.clone(),
            context: call.context().clone(),
        };
        let refusal = self.interceptor.on_call(&mut inbound).await.err();
        // From here `on_end` runs exactly once: below, or when the call's task is dropped
        // (cancelled by the client, or its connection lost) with `Cancelled`.
        let mut end = EndGuard {
            interceptor: &*self.interceptor,
            inbound: &inbound,
            started,
            code: Code::Cancelled,
        };
        match refusal {
            None => {
                *call.context_mut() = inbound.context.clone();
                self.inner.serve(call).await;
            }
            Some(status) => call.respond_when_room::<()>(Err(status)).await,
        }
        // A hand-written inner handler that answers later leaves no code yet.
        end.code = call.outcome().unwrap_or(Code::Unknown);
    }
}

/// Runs an interceptor's `on_end` when dropped: at the end of the call, or when its task is.
struct EndGuard<'a> {
    interceptor: &'a dyn DynServerInterceptor,
    inbound: &'a InboundCall,
    started: Instant,
    code: Code,
}

impl Drop for EndGuard<'_> {
    fn drop(&mut self) {
        let outcome = CallOutcome {
            code: self.code,
            elapsed: self.started.elapsed(),
        };
        self.interceptor.on_end(self.inbound, &outcome);
    }
}

impl Handler for Intercepted {
    fn call(&self, mut call: ServerCall) -> Option<AbortHandle> {
        let this = Self {
            method: self.method.clone(),
            interceptor: self.interceptor.clone(),
            inner: self.inner.clone(),
        };
        let span = call.span().clone();
        Some(crate::server::spawn_in_span(span, async move { this.run(&mut call).await }))
    }

    fn serve<'a>(&'a self, call: &'a mut ServerCall) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        Box::pin(self.run(call))
    }
}
