//! Generates [Volley](https://docs.rs/volley) client and server stubs from `.proto` files in
//! `build.rs`, with no `protoc`: [protox] parses the files, [prost-build] writes the messages,
//! and this crate adds one client, one server trait and one module of method constants per
//! service.
//!
//! # Use
//!
//! `Cargo.toml` of the crate that uses the generated code:
//!
//! ```toml
//! [dependencies]
//! volley = "0.1"
//! prost = "0.14"
//! # prost-types = "0.14"   # only if the .proto files use well-known types such as Any
//!
//! [build-dependencies]
//! volley-codegen = "0.1"
//! ```
//!
//! `build.rs`:
//!
//! ```no_run
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     volley_codegen::compile_protos("proto/orders.proto")?;
//!     Ok(())
//! }
//! ```
//!
//! For several files, include directories or prost-build options, use [`configure`]:
//!
//! ```no_run
//! fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     volley_codegen::configure()
//!         .include_file("_includes.rs")
//!         .bytes(["."])
//!         .compile_protos(&["proto/orders.proto", "proto/quotes.proto"], &["proto"])?;
//!     Ok(())
//! }
//! ```
//!
//! Then include the output, one package at a time or all at once:
//!
//! ```ignore
//! pub mod orders {
//!     volley::include_proto!("trading.orders");
//! }
//! // or, with include_file("_includes.rs"):
//! include!(concat!(env!("OUT_DIR"), "/_includes.rs"));
//! ```
//!
//! # What is generated
//!
//! For `service Orders { rpc PlaceOrder(Order) returns (Ack); }` in package `trading`, module
//! `trading` gets, next to the messages:
//!
//! - `orders_client::OrdersClient<C = volley::Channel>`: `connect(address)` (over a reconnecting
//!   `volley::Channel`: the client survives the server's idle timeout and restarts), `new(inner)`
//!   (any `volley::Channel` or `volley::Client`), `timeout(d)` (the default deadline of calls that
//!   set none), `into_inner()`, and per rpc `place_order(&self, Order)` returning
//!   `Result<Ack, volley::Status>` and `place_order_with(&self, Order, CallOptions)` returning
//!   `Result<volley::Response<Ack>, volley::Status>` (with the head metadata and trailers the
//!   server sent).
//! - `orders_server::Orders`, a trait with
//!   `fn place_order(&self, Request<Order>) -> impl Future<Output = Result<Response<Ack>, Status>> + Send`,
//!   so implementations are plain `async fn`s answering `Ok(ack.into())`, or
//!   `Ok(Response::new(ack).with_metadata(..))` to send metadata; and
//!   `orders_server::OrdersServer<T>` (`new(T)`, `from_arc(Arc<T>)`) to pass to
//!   `volley::Server::builder().add_service(..)`.
//! - `orders_methods::place_order::{NAME, ID}`: the full name `/trading.Orders/PlaceOrder` and
//!   its wire id, and `orders_methods::SERVICE`.
//!
//! ```ignore
//! use trading::orders_client::OrdersClient;
//! use trading::orders_server::{Orders, OrdersServer};
//! use volley::{Request, Response, Status};
//!
//! struct Desk;
//!
//! impl Orders for Desk {
//!     async fn place_order(&self, request: Request<trading::Order>) -> Result<Response<trading::Ack>, Status> {
//!         Ok(trading::Ack { id: request.into_inner().id }.into())
//!     }
//! }
//!
//! let handle = volley::Server::builder()
//!     .add_service(OrdersServer::new(Desk))
//!     .build()?
//!     .serve("127.0.0.1:0")
//!     .await?;
//! let client = OrdersClient::connect(handle.local_addr()).await?;
//! let ack = client.place_order(trading::Order { id: 7 }).await?;
//! ```
//!
//! Generated code names only `volley::codegen::..`, `::core::..` and the message types, so a
//! message called `Result`, `Status`, `Request` or `Streaming` cannot break it. Comments in the
//! `.proto` become doc comments; rpcs and services with `option deprecated = true` get
//! `#[deprecated]`. Rust keywords become raw identifiers (`rpc Move` → `r#move`), and an rpc
//! named `New`, `IntoInner`, `Connect` or `Timeout` becomes `new_`, `into_inner_`, `connect_` or
//! `timeout_` on the client. Names that still
//! clash (such as rpcs `Get` and `get`) are reported as [`Error::NameClash`].
//!
//! # Streaming rpcs
//!
//! All three streaming kinds are generated, with `volley::Streaming` to receive a stream and
//! `volley::StreamSender` to send one; users need no other dependency. Each client method also
//! has a `_with` variant taking `CallOptions` last; a deadline covers the whole call.
//!
//! | rpc | client method returns | server trait method |
//! |---|---|---|
//! | `Watch(Order) returns (stream Fill)` | `watch(Order)`: `Streaming<Fill>` | `watch(&self, Request<Order>, StreamSender<Fill>)` → `Result<(), Status>` |
//! | `Upload(stream Order) returns (Ack)` | `upload()`: `ClientStreamingCall<Order, Ack>` | `upload(&self, Request<Streaming<Order>>)` → `Result<Response<Ack>, Status>` |
//! | `Chat(stream Order) returns (stream Fill)` | `chat()`: `(StreamSender<Order>, Streaming<Fill>)` | `chat(&self, Request<Streaming<Order>>, StreamSender<Fill>)` → `Result<(), Status>` |
//!
//! On the client, read a `Streaming` with `message().await` until it gives `Ok(None)`; an `Err`
//! is the call's status, and dropping the `Streaming` cancels the call. A server-streaming call
//! returns once the server's handler has taken it: when the handler first waits or sends, so
//! what it subscribed to before its first `.await` is in place. For a client-streaming rpc,
//! `send` the requests on the returned call, then `finish()` it: that closes the request stream
//! and returns the one response (it cannot wait for a response the server cannot send yet).
//! A server-streaming or bidirectional handler ends the call with the status it returns, after
//! the messages it sent; `request.context().shutdown()` resolves when the server starts shutting
//! down, so a long stream can end cleanly with OK instead of holding the shutdown up.
//!
//! ```ignore
//! use trading::orders_server::Orders;
//! use volley::{Request, Response, Status, StreamSender, Streaming};
//!
//! impl Orders for Desk {
//!     async fn watch(&self, request: Request<Order>, mut fills: StreamSender<Fill>) -> Result<(), Status> {
//!         for fill in self.fills_of(&request.into_inner().id) {
//!             fills.send(&fill).await?; // Err: the client cancelled or went away
//!         }
//!         Ok(())
//!     }
//!
//!     async fn upload(&self, mut request: Request<Streaming<Order>>) -> Result<Response<Ack>, Status> {
//!         let mut count = 0;
//!         while let Some(_order) = request.message().await? {
//!             count += 1;
//!         }
//!         Ok(Ack { count }.into())
//!     }
//!     // .. chat combines the two
//! }
//!
//! // The client.
//! let mut fills = client.watch(order).await?;
//! while let Some(fill) = fills.message().await? {
//!     println!("{fill:?}");
//! }
//!
//! let mut upload = client.upload().await?;
//! upload.send(&order).await?;
//! let ack = upload.finish().await?;
//!
//! let (mut orders, mut fills) = client.chat().await?;
//! orders.send(&order).await?;
//! let first_fill = fills.message().await?;
//! ```
//!
//! # Method ids
//!
//! Each method's wire id is FNV-1a (32-bit) of its full name, `/package.Service/Method`
//! (`/Service/Method` in a file without package), the same as `volley::MethodId::from_name`.
//! Two methods compiled together with the same id are an [`Error::MethodIdCollision`].
//!
//! [protox]: https://docs.rs/protox
//! [prost-build]: https://docs.rs/prost-build

mod builder;
mod client;
mod error;
mod generator;
mod model;
mod naming;
mod server;
mod source;

pub use builder::{Builder, compile_protos, configure};
pub use error::{Error, ProtoError};
/// The descriptor types [`Builder::compile_fds`] takes.
pub use prost_types;
