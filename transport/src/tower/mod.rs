//! tower integration (feature `tower`): tower's middleware around Volley calls, on both sides.
//!
//! - Client: [`Channel`](crate::Channel) is a `tower::Service<`[`UnaryRequest`]`>`, so
//!   `tower::ServiceBuilder` stacks (timeout, concurrency limit, rate limit, load shed, retry)
//!   wrap it. [`ServiceCaller`] turns such a stack back into a [`Caller`](crate::Caller), the
//!   transport of generated clients: `GreeterClient::new(ServiceCaller::new(stack, channel))`.
//! - Server: [`ServerBuilder::layer`](crate::server::ServerBuilder::layer) wraps every method's
//!   handler in a `tower::Layer`, [`ServerBuilder::method_layer`](crate::server::ServerBuilder::method_layer)
//!   one method's. The layers see a [`ServerRequest`] (the call head) and wrap a
//!   [`MethodService`] that runs the handler.
//!
//! Errors from layers become statuses through [`status_from_error`]: tower's timeout gives
//! DEADLINE_EXCEEDED, load shedding RESOURCE_EXHAUSTED, a [`Status`](crate::Status) stays itself.
//! See `docs/middleware.md`.

mod client;
mod server;

pub use client::{ServiceCaller, UnaryRequest};
pub use server::{MethodService, ServerRequest};

use crate::status::Status;

/// The error type tower's middleware produces.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The status a call fails with when a tower service or layer returns `error`: a [`Status`]
/// as it is, tower's `Elapsed` (timeout) as DEADLINE_EXCEEDED, tower's `Overloaded` (load
/// shed) as RESOURCE_EXHAUSTED, anything else as UNKNOWN with its message.
///
/// ```
/// use volley::Code;
/// use volley::tower::status_from_error;
///
/// let status = status_from_error(Box::new(tower::timeout::error::Elapsed::new()));
/// assert_eq!(status.code(), Code::DeadlineExceeded);
/// ```
pub fn status_from_error(error: BoxError) -> Status {
    let error = match error.downcast::<Status>() {
        Ok(status) => return *status,
        Err(error) => error,
    };
    if error.is::<::tower::timeout::error::Elapsed>() {
        return Status::deadline_exceeded(
            "a tower timeout layer expired before the call finished; raise its timeout or make the call faster",
        );
    }
    if error.is::<::tower::load_shed::error::Overloaded>() {
        return Status::resource_exhausted("the service was at its limit and shed this call (tower load shed); retry later with backoff");
    }
    Status::unknown(format!("a tower layer failed the call: {error}"))
}
