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
    Payload {
        data: Bytes::from(vec![0x5a; size]),
    }
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
        HandlerKind::Spawned => builder.unary(
            ECHO,
            |request: Request<Payload>| async move { Ok::<_, Status>(request.into_inner()) },
        ),
    };
    builder
        .drain_timeout(Duration::from_millis(100))
        .build()
        .expect("valid server")
        .serve(address)
        .await
        .expect("bind")
}

/// Resident set size of process `pid` in KiB (VmRSS from `/proc/<pid>/status`), 0 if unreadable.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .unwrap_or(0)
}

/// Raises the soft limit on open files towards `wanted` (up to the hard limit); returns the soft
/// limit now in force.
pub fn raise_fd_limit(wanted: u64) -> u64 {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let soft = limit.current.unwrap_or(u64::MAX);
    if soft >= wanted {
        return soft;
    }
    let target = limit.maximum.map_or(wanted, |hard| hard.min(wanted));
    let raised = target > soft
        && setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(target),
                maximum: limit.maximum,
            },
        )
        .is_ok();
    if raised { target } else { soft }
}

/// A fresh Unix socket path in the temp directory.
pub fn unix_address(name: &str) -> Address {
    let path = std::env::temp_dir().join(format!("volley-bench-{}-{name}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    Address::Unix(path)
}

/// The raw floor: a minimal tokio echo over a plain socket, the least any transport can cost.
pub mod raw {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    /// Starts a raw echo server on a loopback port: it writes back whatever it reads.
    pub async fn echo_server() -> std::net::SocketAddr {
        echo_server_tuned(|stream| {
            let _ = stream.set_nodelay(true);
        })
        .await
    }

    /// [`echo_server`] with `tune` applied to each accepted socket instead of `TCP_NODELAY`.
    pub async fn echo_server_tuned(tune: impl Fn(&TcpStream) + Send + 'static) -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tune(&stream);
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => {
                                if stream.write_all(&buf[..n]).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                });
            }
        });
        addr
    }

    /// A connected raw client.
    pub async fn connect(addr: std::net::SocketAddr) -> TcpStream {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        stream
    }

    /// Sends `count` messages of `size` bytes back to back and reads all of them back: `count`
    /// = 1 is ping-pong, larger counts are a pipelined burst.
    pub async fn exchange(stream: &mut TcpStream, message: &[u8], count: usize, scratch: &mut Vec<u8>) {
        scratch.clear();
        for _ in 0..count {
            scratch.extend_from_slice(message);
        }
        stream.write_all(scratch).await.expect("write");
        let mut got = 0;
        let total = scratch.len();
        while got < total {
            let n = stream.read(&mut scratch[got..]).await.expect("read");
            assert!(n > 0, "echo server closed");
            got += n;
        }
    }
}

/// A server running on its own thread and current-thread runtime, for measurements where
/// client and server do not share a thread. Dropping it stops the thread.
#[derive(Debug)]
pub struct ServerThread {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ServerThread {
    /// Runs `start` on a new thread's runtime and returns the address it reports; the runtime
    /// keeps serving until the `ServerThread` is dropped.
    pub fn spawn<F, Fut>(start: F) -> (Address, Self)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Address>,
    {
        Self::spawn_on(
            || tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime"),
            start,
        )
    }

    /// Runs `start` on a new thread, in the runtime `runtime` builds there (a current-thread or
    /// a multi-thread one), and returns what `start` reports (an address, a server handle, ...);
    /// the runtime keeps serving until the `ServerThread` is dropped.
    pub fn spawn_on<R, T, F, Fut>(runtime: R, start: F) -> (T, Self)
    where
        R: FnOnce() -> tokio::runtime::Runtime + Send + 'static,
        T: Send + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = T>,
    {
        let (report_tx, report_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = runtime();
            runtime.block_on(async move {
                // The receiver waits for this report; it only fails if the spawner panicked.
                let _ = report_tx.send(start().await);
                let _ = stopped.await;
            });
        });
        let report = report_rx.recv().expect("server thread started");
        (
            report,
            Self {
                stop: Some(stop),
                thread: Some(thread),
            },
        )
    }
}

impl Drop for ServerThread {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Full name of the server-streaming method: it answers a [`stream_request`] with that many
/// copies of the request's payload.
pub const FEED: &str = "/bench.Echo/Feed";
/// Its method id.
pub const FEED_ID: MethodId = MethodId::from_name(FEED);

/// Full name of the sink method: it takes the request and answers with an empty [`Payload`].
pub const SINK: &str = "/bench.Echo/Sink";
/// Its method id.
pub const SINK_ID: MethodId = MethodId::from_name(SINK);

/// A request for `count` messages of `size` bytes from [`FEED`].
pub fn stream_request(count: u32, size: usize) -> Payload {
    let mut data = count.to_le_bytes().to_vec();
    data.resize(4.max(size), 0);
    Payload { data: Bytes::from(data) }
}

/// Starts a server with the [`FEED`] server-streaming method.
pub async fn feed_server(address: &Address) -> ServerHandle {
    Server::builder()
        .server_streaming(
            FEED,
            |request: Request<Payload>, mut sender: volley::StreamSender<Payload>| async move {
                let data = request.into_inner().data;
                let count = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
                let message = Payload { data: data.slice(..) };
                for _ in 0..count {
                    sender.send(&message).await?;
                }
                Ok(())
            },
        )
        .build()
        .expect("valid server")
        .serve(address)
        .await
        .expect("bind")
}

/// Polls every future to completion concurrently on the current task.
pub async fn join_all<F: std::future::Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut futures: Vec<_> = futures.map(|f| Some(Box::pin(f))).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (slot, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if let Some(future) = slot {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => {
                        *output = Some(value);
                        *slot = None;
                    }
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().map(|o| o.expect("every future finished")).collect()
}
