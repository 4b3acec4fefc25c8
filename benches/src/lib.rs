//! Shared fixtures for Volley's benchmarks: the echo message, servers on loopback TCP and Unix
//! sockets, and a raw-socket echo floor to compare against.

use std::time::Duration;

use bytes::Bytes;
use volley::net::Address;
use volley::{MethodId, Request, Server, ServerHandle, Status};

/// The benchmark message: opaque bytes.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Payload {
    /// The bytes echoed.
    #[prost(bytes = "bytes", tag = "1")]
    pub data: Bytes,
}

/// Full name of the echo method.
pub const ECHO: &str = "/bench.Echo/Echo";
/// Its method id.
pub const ECHO_ID: MethodId = MethodId::from_name(ECHO);

/// A payload of `size` bytes.
pub fn payload(size: usize) -> Payload {
    Payload { data: Bytes::from(vec![0x5a; size]) }
}

/// Which handler flavour the server runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandlerKind {
    /// `ServerBuilder::unary_inline`: runs on the reader task.
    Inline,
    /// `ServerBuilder::unary`: one task per call.
    Spawned,
}

/// Starts an echo server on `address` in the current runtime.
pub async fn echo_server(address: &Address, kind: HandlerKind) -> ServerHandle {
    let builder = Server::builder();
    let builder = match kind {
        HandlerKind::Inline => builder.unary_inline(ECHO, |request: Request<Payload>| Ok::<_, Status>(request.into_inner())),
        HandlerKind::Spawned => builder.unary(ECHO, |request: Request<Payload>| async move { Ok::<_, Status>(request.into_inner()) }),
    };
    builder.drain_timeout(Duration::from_millis(100)).build().expect("valid server").serve(address).await.expect("bind")
}

/// A fresh Unix socket path in the temp directory.
pub fn unix_address(name: &str) -> Address {
    let path = std::env::temp_dir().join(format!("volley-bench-{}-{name}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    Address::Unix(path)
}
