//! tower integration (feature `tower`, issue #17) over loopback TCP: tower stacks around a
//! `Channel` and through `ServiceCaller`, and around server methods (timeout, concurrency
//! limit, load shed, retry), with their errors turned into statuses.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{ECHO, ECHO_ID, Echo, echo};
use tower::{ServiceBuilder, ServiceExt};
use volley::interceptor::InboundCall;
use volley::tower::{ServiceCaller, UnaryRequest};
use volley::{CallOptions, Caller, Channel, Code, Request, Response, Server, ServerHandle, Status};

fn options() -> CallOptions {
    CallOptions::new().timeout(Duration::from_secs(5))
}

/// How many handlers run at once, and the most that ever did.
#[derive(Clone, Default)]
struct Concurrency {
    now: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
}

impl Concurrency {
    async fn during<T>(&self, work: impl Future<Output = T>) -> T {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        let result = work.await;
        self.now.fetch_sub(1, Ordering::SeqCst);
        result
    }

    fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }
}

/// The echo method, sleeping `sleep_ms` and counting concurrency.
fn echo_server(concurrency: &Concurrency) -> volley::server::ServerBuilder {
    let concurrency = concurrency.clone();
    Server::builder().unary(ECHO, move |request: Request<Echo>| {
        let concurrency = concurrency.clone();
        async move {
            let message = request.into_inner();
            concurrency
                .during(tokio::time::sleep(Duration::from_millis(message.sleep_ms)))
                .await;
            Ok::<_, Status>(message)
        }
    })
}

async fn serve(builder: volley::server::ServerBuilder) -> ServerHandle {
    builder.build().unwrap().serve("127.0.0.1:0").await.unwrap()
}

fn sleeping(ms: u64) -> Echo {
    Echo {
        sleep_ms: ms,
        ..echo(&b"z"[..])
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_is_a_tower_service_and_a_timeout_layer_fails_a_slow_call_with_deadline_exceeded() {
    let server = serve(echo_server(&Concurrency::default())).await;
    let channel = Channel::builder().connect(server.local_addr()).await.unwrap();
    let service = ServiceBuilder::new().timeout(Duration::from_millis(100)).service(channel.clone());
    let reply = service
        .clone()
        .oneshot(UnaryRequest::new(ECHO_ID, &echo(&b"hi"[..]), options()))
        .await
        .unwrap();
    let reply: Echo = prost::Message::decode(reply.into_inner()).unwrap();
    assert_eq!(reply.payload, Bytes::from_static(b"hi"));

    let err = service
        .oneshot(UnaryRequest::new(ECHO_ID, &sleeping(2_000), options()))
        .await
        .unwrap_err();
    let status = volley::tower::status_from_error(err);
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_caller_with_timeout_and_concurrency_limit_bounds_calls_in_flight() {
    let concurrency = Concurrency::default();
    let server = serve(echo_server(&concurrency)).await;
    let channel = Channel::builder().connect(server.local_addr()).await.unwrap();
    let stack = ServiceBuilder::new()
        .timeout(Duration::from_millis(500))
        .concurrency_limit(2)
        .service(channel.clone());
    let caller = ServiceCaller::new(stack, channel);
    let calls = (0..8).map(|_| {
        let caller = caller.clone();
        tokio::spawn(async move { caller.unary::<Echo, Echo>(ECHO_ID, &sleeping(30), options()).await })
    });
    for call in calls.collect::<Vec<_>>() {
        call.await.unwrap().unwrap();
    }
    assert!(
        concurrency.peak() <= 2,
        "the limit of 2 held across the caller's clones: {}",
        concurrency.peak()
    );
    let err = caller.unary::<Echo, Echo>(ECHO_ID, &sleeping(2_000), options()).await.unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_and_concurrency_limit_around_a_server_method_bound_its_handlers() {
    let concurrency = Concurrency::default();
    let server = serve(
        echo_server(&concurrency)
            .method_layer::<Echo, Echo, _>(ECHO, ServiceBuilder::new().timeout(Duration::from_millis(300)).concurrency_limit(1)),
    )
    .await;
    let channel = Channel::builder().connect(server.local_addr()).await.unwrap();
    let calls: Vec<_> = (0..4)
        .map(|_| {
            let channel = channel.clone();
            tokio::spawn(async move { channel.unary::<Echo, Echo>(ECHO, &sleeping(20), options()).await })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    assert_eq!(concurrency.peak(), 1, "one handler at a time");
    let started = Instant::now();
    let err = channel.unary::<Echo, Echo>(ECHO, &sleeping(3_000), options()).await.unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err}");
    assert!(err.message().contains("tower timeout"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2));
    // The server still serves after the timed-out call.
    let _: Echo = channel.unary(ECHO, &sleeping(0), options()).await.unwrap();
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_shed_over_a_concurrency_limit_refuses_the_excess_with_resource_exhausted() {
    let concurrency = Concurrency::default();
    let server = serve(echo_server(&concurrency).layer(ServiceBuilder::new().load_shed().concurrency_limit(1))).await;
    let channel = Channel::builder().connect(server.local_addr()).await.unwrap();
    let busy = {
        let channel = channel.clone();
        tokio::spawn(async move { channel.unary::<Echo, Echo>(ECHO, &sleeping(300), options()).await })
    };
    common::wait_for("the first call runs", || concurrency.now.load(Ordering::SeqCst) == 1).await;
    let err = channel.unary::<Echo, Echo>(ECHO, &sleeping(0), options()).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err}");
    busy.await.unwrap().unwrap();
    let _: Echo = channel.unary(ECHO, &sleeping(0), options()).await.unwrap();
    server.shutdown().await;
}

/// Retries calls that failed with UNAVAILABLE, up to `left` times.
#[derive(Clone)]
struct RetryUnavailable {
    left: usize,
}

impl tower::retry::Policy<UnaryRequest, Response<Bytes>, Status> for RetryUnavailable {
    type Future = Pin<Box<dyn Future<Output = ()> + Send>>;

    fn retry(&mut self, _request: &mut UnaryRequest, result: &mut Result<Response<Bytes>, Status>) -> Option<Self::Future> {
        match result {
            Err(status) if status.code() == Code::Unavailable && self.left > 0 => {
                self.left -= 1;
                Some(Box::pin(async {}))
            }
            _ => None,
        }
    }

    fn clone_request(&mut self, request: &UnaryRequest) -> Option<UnaryRequest> {
        Some(request.clone())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_layer_sends_a_call_again_until_the_server_answers() {
    let refusals = Arc::new(AtomicUsize::new(2));
    let left = refusals.clone();
    let server = serve(common::echo_server().interceptor(move |_: &mut InboundCall| {
        match left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)) {
            Ok(_) => Err(Status::unavailable("warming up")),
            Err(_) => Ok(()),
        }
    }))
    .await;
    let channel = Channel::builder().connect(server.local_addr()).await.unwrap();
    let stack = ServiceBuilder::new().retry(RetryUnavailable { left: 3 }).service(channel.clone());
    let caller = ServiceCaller::new(stack, channel);
    let reply: Echo = caller.unary(ECHO_ID, &echo(&b"again"[..]), options()).await.unwrap();
    assert_eq!(reply.payload, Bytes::from_static(b"again"));
    assert_eq!(refusals.load(Ordering::SeqCst), 0, "two refusals, then the answer");
    server.shutdown().await;
}

#[tokio::test]
async fn a_method_layer_for_a_method_that_is_not_registered_fails_the_build() {
    let err = Server::builder()
        .unary(ECHO, |request: Request<Echo>| async move { Ok::<_, Status>(request.into_inner()) })
        .method_layer::<Echo, Echo, _>("/test.Echo/Typo", ServiceBuilder::new().concurrency_limit(1))
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("/test.Echo/Typo"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interceptors_and_layers_run_in_the_order_installed() {
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (first, last) = (order.clone(), order.clone());
    let server = serve(
        common::echo_server()
            .interceptor(move |_: &mut InboundCall| {
                first.lock().unwrap().push("interceptor");
                Ok(())
            })
            .layer(tower::layer::layer_fn(move |inner: volley::tower::MethodService| {
                let last = last.clone();
                tower::service_fn(move |request: volley::tower::ServerRequest| {
                    last.lock().unwrap().push("layer");
                    assert_eq!(request.method(), ECHO);
                    inner.clone().oneshot(request)
                })
            })),
    )
    .await;
    let channel = Channel::builder().connect(server.local_addr()).await.unwrap();
    let _: Echo = channel.unary(ECHO, &echo(&b""[..]), options()).await.unwrap();
    assert_eq!(*order.lock().unwrap(), ["interceptor", "layer"]);
    server.shutdown().await;
}
