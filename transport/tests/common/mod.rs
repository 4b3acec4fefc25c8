//! Shared fixtures for the integration tests: an echo service over loopback TCP or a Unix socket.
#![allow(dead_code, unreachable_pub)]

pub mod proxy;
#[cfg(feature = "quic")]
pub mod quic;
pub mod raw;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use volley::{Request, Server, ServerHandle, Status};

/// The test message: a payload and an optional delay the handler sleeps for.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Echo {
    #[prost(bytes = "bytes", tag = "1")]
    pub payload: Bytes,
    #[prost(uint64, tag = "2")]
    pub sleep_ms: u64,
    #[prost(uint32, tag = "3")]
    pub fail_with: u32,
}

pub const ECHO: &str = "/test.Echo/Say";
pub const ECHO_ID: volley::MethodId = volley::MethodId::from_name(ECHO);

pub fn echo(payload: impl Into<Bytes>) -> Echo {
    Echo {
        payload: payload.into(),
        sleep_ms: 0,
        fail_with: 0,
    }
}

pub fn echo_server() -> volley::server::ServerBuilder {
    Server::builder().unary(ECHO, |request: Request<Echo>| async move {
        let message = request.into_inner();
        if message.sleep_ms > 0 {
            tokio::time::sleep(Duration::from_millis(message.sleep_ms)).await;
        }
        if message.fail_with != 0 {
            return Err(Status::new(volley::Code::from_u8(message.fail_with as u8), "failed on request"));
        }
        Ok(message)
    })
}

pub async fn start_tcp() -> ServerHandle {
    echo_server().build().unwrap().serve("127.0.0.1:0").await.unwrap()
}

pub fn unix_path(name: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("volley-test-{}-{name}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

/// Polls `condition` every 10 ms for up to 5 s; panics naming `what` if it never holds.
pub async fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    for _ in 0..500 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what}: not within 5 s");
}

/// Counts live handlers: each handler holds a guard from [`Live::enter`], so a cancelled
/// handler shows as a drop.
#[derive(Clone, Default)]
pub struct Live(Arc<AtomicUsize>);

/// Held by a running handler; dropping it counts the handler gone.
pub struct LiveGuard(Arc<AtomicUsize>);

impl Live {
    pub fn enter(&self) -> LiveGuard {
        self.0.fetch_add(1, Ordering::SeqCst);
        LiveGuard(self.0.clone())
    }

    pub fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
