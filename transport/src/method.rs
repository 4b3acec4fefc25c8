//! `Method`: one method's name and id, typed by its messages, for both sides of the raw API.

use std::marker::PhantomData;

use crate::wire::MethodId;

/// A method: its full name (`/package.Service/Method`), its wire id, and the types of its request
/// and response messages. Declare one constant and use it on both sides: the server registers
/// the handler under it and the client calls it, and the compiler checks that both use the
/// method's messages. (Generated code does this for you.)
///
/// ```no_run
/// use volley::{CallOptions, Client, Method, Request, Server, Status};
///
/// const SAY: Method<String, String> = Method::new("/echo.Echo/Say");
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let server = Server::builder()
///     .unary(SAY, |request: Request<String>| async move { Ok::<_, Status>(request.into_inner()) })
///     .build()?
///     .serve("127.0.0.1:7000")
///     .await?;
/// let client = Client::connect("127.0.0.1:7000").await?;
/// let reply = client.unary(SAY, &"hi".to_owned(), CallOptions::default()).await?;
/// # let _: String = reply;
/// # server.shutdown().await;
/// # Ok(()) }
/// ```
///
/// Both sides also accept the untyped forms: a full name (`&str`), and on the client a
/// [`MethodId`].
///
/// A handler whose messages are not the method's does not compile:
///
/// ```compile_fail
/// use volley::{Method, Request, Server, Status};
///
/// const SAY: Method<String, String> = Method::new("/echo.Echo/Say");
/// // The handler takes a u64, not the method's String.
/// let _ = Server::builder().unary(SAY, |request: Request<u64>| async move { Ok::<_, Status>(request.into_inner().to_string()) });
/// ```
pub struct Method<Req, Resp> {
    name: &'static str,
    id: MethodId,
    _messages: PhantomData<fn(Req) -> Resp>,
}

impl<Req, Resp> Method<Req, Resp> {
    /// The method with full name `name` (`/package.Service/Method`); its id is computed here, at
    /// compile time in a `const`.
    pub const fn new(name: &'static str) -> Self {
        Self {
            name,
            id: MethodId::from_name(name),
            _messages: PhantomData,
        }
    }

    /// The full name.
    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// The wire id.
    pub const fn id(&self) -> MethodId {
        self.id
    }
}

impl<Req, Resp> Clone for Method<Req, Resp> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<Req, Resp> Copy for Method<Req, Resp> {}

impl<Req, Resp> std::fmt::Debug for Method<Req, Resp> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Method").field("name", &self.name).field("id", &self.id).finish()
    }
}

/// What a client may call: a [`Method`] (whose message types must match the call's), a
/// [`MethodId`] or a full name.
pub trait CallTarget<Req, Resp> {
    /// The method's wire id.
    fn method_id(&self) -> MethodId;
}

impl<Req, Resp> CallTarget<Req, Resp> for Method<Req, Resp> {
    fn method_id(&self) -> MethodId {
        self.id
    }
}

impl<Req, Resp> CallTarget<Req, Resp> for MethodId {
    fn method_id(&self) -> MethodId {
        *self
    }
}

impl<Req, Resp> CallTarget<Req, Resp> for &str {
    fn method_id(&self) -> MethodId {
        MethodId::from_name(self)
    }
}

/// What a server may register a handler under: a [`Method`] (whose message types must match the
/// handler's) or a full name. The server needs the name (for its method table, collision checks
/// and metrics), so a bare [`MethodId`] is not enough here.
pub trait MethodName<Req, Resp> {
    /// The method's full name.
    fn method_name(&self) -> &str;
}

impl<Req, Resp> MethodName<Req, Resp> for Method<Req, Resp> {
    fn method_name(&self) -> &str {
        self.name
    }
}

impl<Req, Resp> MethodName<Req, Resp> for &str {
    fn method_name(&self) -> &str {
        self
    }
}
