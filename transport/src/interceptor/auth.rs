//! Bearer-token authentication: [`BearerAuth`] checks tokens on a server, [`BearerToken`] sends
//! one from a client and refuses to send it in plaintext to another host.

use std::fmt;
use std::sync::Arc;

use super::{ClientInterceptor, InboundCall, OutboundCall, ServerInterceptor, Target};
use crate::error::Error;
use crate::net::Address;
use crate::status::Status;
use crate::wire::{InvalidMetadata, Metadata};

/// The metadata key carrying credentials, `authorization`, with a value `Bearer <token>`
/// (as in HTTP and gRPC).
pub const AUTHORIZATION: &str = "authorization";

/// The scheme prefix of a bearer token's metadata value.
const BEARER: &str = "Bearer ";

/// A server interceptor that admits calls carrying an accepted bearer token (metadata
/// `authorization: Bearer <token>`) and refuses the others with UNAUTHENTICATED, before their
/// request is decoded. Methods can be left open (a health check, say).
///
/// The check is a synchronous function; for one that must wait (asking an identity service),
/// write a [`ServerInterceptor`] whose `on_call` awaits it, as `docs/middleware.md` shows.
///
/// ```no_run
/// use volley::interceptor::{BearerAuth, BearerToken};
/// use volley::{CallOptions, Channel, Request, Server, Status};
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let server = Server::builder()
///     .interceptor(BearerAuth::tokens(["s3cret"]).allow_unauthenticated("/grpc.health.v1.Health/Check"))
///     .unary("/echo.Echo/Say", |request: Request<String>| async move { Ok::<_, Status>(request.into_inner()) })
///     .build()?
///     .serve("127.0.0.1:7000")
///     .await?;
/// // 127.0.0.1 is loopback, so plaintext is allowed; another host would need TLS or
/// // `BearerToken::allow_plaintext`.
/// let channel = Channel::builder().interceptor(BearerToken::new("s3cret")?).connect("127.0.0.1:7000").await?;
/// let reply: String = channel.unary("/echo.Echo/Say", &"hi".to_owned(), CallOptions::default()).await?;
/// # server.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct BearerAuth {
    accept: Arc<dyn Fn(&str) -> bool + Send + Sync>,
    open_methods: Vec<String>,
}

impl fmt::Debug for BearerAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BearerAuth")
            .field("open_methods", &self.open_methods)
            .finish_non_exhaustive()
    }
}

impl BearerAuth {
    /// Admits calls whose token `accept` returns `true` for.
    pub fn new(accept: impl Fn(&str) -> bool + Send + Sync + 'static) -> Self {
        Self {
            accept: Arc::new(accept),
            open_methods: Vec::new(),
        }
    }

    /// Admits calls carrying one of `tokens`, compared in time independent of where they
    /// differ.
    pub fn tokens<T: Into<String>>(tokens: impl IntoIterator<Item = T>) -> Self {
        let tokens: Vec<String> = tokens.into_iter().map(Into::into).collect();
        Self::new(move |token| {
            tokens
                .iter()
                .fold(false, |found, known| found | constant_time_eq(known.as_bytes(), token.as_bytes()))
        })
    }

    /// Lets calls to `method` (a full name) through without a token.
    #[must_use]
    pub fn allow_unauthenticated(mut self, method: impl Into<String>) -> Self {
        self.open_methods.push(method.into());
        self
    }

    fn check(&self, call: &InboundCall) -> Result<(), Status> {
        if self.open_methods.iter().any(|m| m == call.method()) {
            return Ok(());
        }
        let Some(value) = call.metadata().get(AUTHORIZATION) else {
            return Err(Status::unauthenticated(format!(
                "{} needs a bearer token: send metadata `{AUTHORIZATION}: Bearer <token>` (volley::interceptor::BearerToken does)",
                call.method()
            )));
        };
        let token = std::str::from_utf8(value).ok().and_then(|v| {
            v.get(..BEARER.len())
                .filter(|s| s.eq_ignore_ascii_case(BEARER))
                .map(|_| &v[BEARER.len()..])
        });
        match token {
            Some(token) if (self.accept)(token) => Ok(()),
            Some(_) => Err(Status::unauthenticated(
                "the bearer token was not accepted; check that it is current",
            )),
            None => Err(Status::unauthenticated(format!(
                "the `{AUTHORIZATION}` metadata is not `Bearer <token>`"
            ))),
        }
    }
}

impl ServerInterceptor for BearerAuth {
    fn on_call(&self, call: &mut InboundCall) -> impl Future<Output = Result<(), Status>> + Send {
        std::future::ready(self.check(call))
    }
}

/// Compares two byte strings in time that depends on their lengths only.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// A client interceptor that sends a bearer token with every call (metadata
/// `authorization: Bearer <token>`).
///
/// A token sent in plaintext can be read and replayed by anyone on the path, so a channel with
/// a `BearerToken` to an address off this host that is not secured with TLS fails to build
/// with [`PlaintextCredentialsError`], unless [`BearerToken::allow_plaintext`] opts in.
/// Loopback addresses and Unix sockets are allowed.
///
/// ```
/// use volley::Channel;
/// use volley::interceptor::BearerToken;
///
/// let refused = Channel::builder().interceptor(BearerToken::new("s3cret")?).connect_lazy("192.0.2.7:7000");
/// assert!(matches!(refused, Err(volley::Error::PlaintextCredentials(_))));
/// let allowed = Channel::builder().interceptor(BearerToken::new("s3cret")?.allow_plaintext()).connect_lazy("192.0.2.7:7000");
/// assert!(allowed.is_ok());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct BearerToken {
    /// The metadata to add, built once: `authorization: Bearer <token>`.
    metadata: Metadata,
    allow_plaintext: bool,
}

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BearerToken")
            .field("token", &"<redacted>")
            .field("allow_plaintext", &self.allow_plaintext)
            .finish()
    }
}

impl BearerToken {
    /// Sends `token`; fails if it is too long for metadata (64 KiB).
    pub fn new(token: impl AsRef<str>) -> Result<Self, InvalidMetadata> {
        let mut metadata = Metadata::new();
        metadata.insert(AUTHORIZATION, format!("{BEARER}{}", token.as_ref()))?;
        Ok(Self {
            metadata,
            allow_plaintext: false,
        })
    }

    /// Sends the token over plaintext connections to other hosts too. Only for networks where
    /// nobody can read the traffic (a private link you control); prefer TLS.
    #[must_use]
    pub fn allow_plaintext(mut self) -> Self {
        self.allow_plaintext = true;
        self
    }
}

impl ClientInterceptor for BearerToken {
    fn on_connect(&self, target: &Target<'_>) -> Result<(), Error> {
        if target.is_secure() || target.is_local() || self.allow_plaintext {
            return Ok(());
        }
        Err(PlaintextCredentialsError {
            address: target.address().clone(),
        }
        .into())
    }

    fn on_call(&self, call: &mut OutboundCall) -> impl Future<Output = Result<(), Status>> + Send {
        let metadata = call.metadata_mut();
        let result = if metadata.is_empty() {
            // The common case: no other metadata, so the prepared block is shared, not copied.
            *metadata = self.metadata.clone();
            Ok(())
        } else {
            let value = self.metadata.get(AUTHORIZATION).unwrap_or_default();
            metadata
                .insert(AUTHORIZATION, value)
                .map_err(|err| Status::invalid_argument(format!("cannot add the bearer token to the call's metadata: {err}")))
        };
        std::future::ready(result)
    }
}

/// A channel would send a bearer token unencrypted to another host.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "refusing to send a bearer token in plaintext to {address}, which is not this host: connect over TLS, or call BearerToken::allow_plaintext() if nobody else can read this network"
)]
pub struct PlaintextCredentialsError {
    /// The address the channel was built for.
    pub address: Address,
}
