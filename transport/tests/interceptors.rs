//! Interceptors (issue #17) over loopback TCP: on the server and on the client, for all four
//! call kinds, they refuse calls before the handler or the wire, add metadata the other side
//! sees, and observe outcomes; the bearer-token pair authenticates and refuses plaintext to
//! other hosts; the rate limiter refuses calls over a peer's or a method's bucket.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{ECHO, Echo, echo};
use volley::interceptor::{
    BearerAuth, BearerToken, CallOutcome, ClientInterceptor, InboundCall, OutboundCall, Quota, RateLimit, ServerInterceptor,
};
use volley::server::ServerBuilder;
use volley::{CallOptions, Channel, Code, Metadata, MethodId, Request, Server, ServerHandle, Status, StreamSender, Streaming};

const LIST: &str = "/test.Echo/List";
const SUM: &str = "/test.Echo/Sum";
const CHAT: &str = "/test.Echo/Chat";

fn id(name: &str) -> MethodId {
    MethodId::from_name(name)
}

fn options() -> CallOptions {
    CallOptions::new().timeout(Duration::from_secs(5))
}

/// The value of `x-seen` the handler found, or "-".
fn seen(metadata: &Metadata) -> String {
    metadata.get_str("x-seen").unwrap_or("-").to_owned()
}

/// One method of each kind. Each handler counts itself in `ran` and answers with the `x-seen`
/// metadata it received as its payload.
fn four_kinds(ran: &Arc<AtomicUsize>) -> ServerBuilder {
    let (a, b, c, d) = (ran.clone(), ran.clone(), ran.clone(), ran.clone());
    Server::builder()
        .unary(ECHO, move |request: Request<Echo>| {
            a.fetch_add(1, Ordering::SeqCst);
            let seen = seen(request.metadata());
            async move { Ok::<_, Status>(echo(seen)) }
        })
        .server_streaming(LIST, move |request: Request<Echo>, mut out: StreamSender<Echo>| {
            b.fetch_add(1, Ordering::SeqCst);
            let seen = seen(request.metadata());
            async move {
                for _ in 0..3 {
                    out.send(&echo(seen.clone())).await?;
                }
                Ok(())
            }
        })
        .client_streaming(SUM, move |mut request: Request<Streaming<Echo>>| {
            c.fetch_add(1, Ordering::SeqCst);
            async move {
                let mut count = 0;
                while request.message().await?.is_some() {
                    count += 1;
                }
                Ok::<_, Status>(echo(format!("{}:{count}", seen(request.metadata()))))
            }
        })
        .bidi_streaming(CHAT, move |mut request: Request<Streaming<Echo>>, mut out: StreamSender<Echo>| {
            d.fetch_add(1, Ordering::SeqCst);
            async move {
                while request.message().await?.is_some() {
                    out.send(&echo(seen(request.metadata()))).await?;
                }
                Ok(())
            }
        })
}

async fn serve(builder: ServerBuilder) -> ServerHandle {
    builder.build().unwrap().serve("127.0.0.1:0").await.unwrap()
}

/// Makes one call of each kind; the four payloads (or the statuses) in order.
async fn call_all_four(channel: &Channel) -> Vec<Result<String, Code>> {
    let text = |e: Echo| String::from_utf8_lossy(&e.payload).into_owned();
    let unary = channel.unary::<Echo, Echo>(ECHO, &echo(&b""[..]), options()).await.map(text);
    let list = async {
        let mut stream: Streaming<Echo> = channel.server_streaming(LIST, &echo(&b""[..]), options()).await?;
        let mut all = Vec::new();
        while let Some(message) = stream.message().await? {
            all.push(text(message));
        }
        Ok::<_, Status>(all.join(","))
    }
    .await;
    let sum = async {
        let mut call = channel.client_streaming::<Echo, Echo>(SUM, options()).await?;
        call.send(&echo(&b"1"[..])).await?;
        call.send(&echo(&b"2"[..])).await?;
        call.finish().await.map(text)
    }
    .await;
    let chat = async {
        let (mut sender, mut responses) = channel.bidi_streaming::<Echo, Echo>(CHAT, options()).await?;
        sender.send(&echo(&b"x"[..])).await?;
        let first = responses.message().await?.map(text).unwrap_or_default();
        sender.close();
        while responses.message().await?.is_some() {}
        Ok::<_, Status>(first)
    }
    .await;
    [unary, list, sum, chat]
        .into_iter()
        .map(|r| r.map_err(|status| status.code()))
        .collect()
}

/// Refuses calls without `x-key: open`.
fn require_key(call: &mut InboundCall) -> Result<(), Status> {
    match call.metadata().get_str("x-key") {
        Some("open") => Ok(()),
        _ => Err(Status::permission_denied(format!("{} needs x-key", call.method()))),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_interceptor_refuses_all_four_kinds_before_their_handlers_run() {
    let ran = Arc::new(AtomicUsize::new(0));
    let server = serve(four_kinds(&ran).interceptor(require_key)).await;
    let channel = Channel::builder().connect(server.local_addr()).await.unwrap();
    let results = call_all_four(&channel).await;
    assert_eq!(results, vec![Err(Code::PermissionDenied); 4]);
    assert_eq!(ran.load(Ordering::SeqCst), 0, "no handler ran");

    let keyed = Channel::builder()
        .interceptor(|call: &mut OutboundCall| {
            call.metadata_mut().insert("x-key", "open").unwrap();
            Ok(())
        })
        .connect(server.local_addr())
        .await
        .unwrap();
    assert!(call_all_four(&keyed).await.iter().all(Result::is_ok));
    assert_eq!(ran.load(Ordering::SeqCst), 4);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_interceptor_adds_metadata_that_every_handler_sees() {
    let ran = Arc::new(AtomicUsize::new(0));
    let stamp = |call: &mut InboundCall| {
        let method = call.method().rsplit('/').next().unwrap_or_default().to_owned();
        call.metadata_mut().insert("x-seen", format!("server-{method}")).unwrap();
        Ok(())
    };
    let server = serve(four_kinds(&ran).interceptor(stamp)).await;
    let channel = Channel::builder().connect(server.local_addr()).await.unwrap();
    let results = call_all_four(&channel).await;
    assert_eq!(
        results,
        vec![
            Ok("server-Say".to_owned()),
            Ok("server-List,server-List,server-List".to_owned()),
            Ok("server-Sum:2".to_owned()),
            Ok("server-Chat".to_owned()),
        ]
    );
    server.shutdown().await;
}

/// Records every outcome it observes, and what ran in which order.
#[derive(Default)]
struct Recorder {
    name: &'static str,
    log: Arc<Mutex<Vec<String>>>,
}

impl ServerInterceptor for Recorder {
    async fn on_call(&self, call: &mut InboundCall) -> Result<(), Status> {
        // An interceptor may wait: a lookup in another service, say.
        tokio::task::yield_now().await;
        self.log.lock().unwrap().push(format!("{} call {}", self.name, call.method()));
        Ok(())
    }

    fn on_end(&self, call: &InboundCall, outcome: &CallOutcome) {
        assert!(outcome.elapsed < Duration::from_secs(5));
        self.log
            .lock()
            .unwrap()
            .push(format!("{} end {} {:?}", self.name, call.method(), outcome.code));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_interceptors_run_in_order_and_observe_each_outcome_in_reverse() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let server = common::echo_server()
        .interceptor(Recorder {
            name: "outer",
            log: log.clone(),
        })
        .interceptor(Recorder {
            name: "inner",
            log: log.clone(),
        })
        .build()
        .unwrap()
        .serve("127.0.0.1:0")
        .await
        .unwrap();
    let channel = Channel::builder().connect(server.local_addr()).await.unwrap();
    let _: Echo = channel.unary(ECHO, &echo(&b"a"[..]), options()).await.unwrap();
    // The server's on_end runs after the answer is sent: wait for it before the next call.
    common::wait_for("the first call observed", || log.lock().unwrap().len() == 4).await;
    let failing = Echo {
        fail_with: Code::NotFound as u32,
        ..echo(&b""[..])
    };
    let err = channel.unary::<Echo, Echo>(ECHO, &failing, options()).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    common::wait_for("both calls observed", || log.lock().unwrap().len() == 8).await;
    let log = log.lock().unwrap().clone();
    assert_eq!(
        log,
        [
            "outer call /test.Echo/Say",
            "inner call /test.Echo/Say",
            "inner end /test.Echo/Say Ok",
            "outer end /test.Echo/Say Ok",
            "outer call /test.Echo/Say",
            "inner call /test.Echo/Say",
            "inner end /test.Echo/Say NotFound",
            "outer end /test.Echo/Say NotFound",
        ]
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_interceptor_that_refuses_stops_the_ones_after_it_and_the_outer_ones_see_the_refusal() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let server = common::echo_server()
        .interceptor(Recorder {
            name: "outer",
            log: log.clone(),
        })
        .interceptor(require_key)
        .interceptor(Recorder {
            name: "inner",
            log: log.clone(),
        })
        .build()
        .unwrap()
        .serve("127.0.0.1:0")
        .await
        .unwrap();
    let channel = Channel::builder().connect(server.local_addr()).await.unwrap();
    let err = channel.unary::<Echo, Echo>(ECHO, &echo(&b""[..]), options()).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains("needs x-key"), "{err}");
    common::wait_for("the refusal observed", || log.lock().unwrap().len() == 2).await;
    assert_eq!(
        *log.lock().unwrap(),
        ["outer call /test.Echo/Say", "outer end /test.Echo/Say PermissionDenied"]
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_interceptor_can_shorten_the_deadline_the_handler_runs_under() {
    let server = common::echo_server()
        .interceptor(|call: &mut InboundCall| {
            call.set_deadline(Some(Instant::now() + Duration::from_millis(50)));
            Ok(())
        })
        .build()
        .unwrap()
        .serve("127.0.0.1:0")
        .await
        .unwrap();
    let channel = Channel::builder().connect(server.local_addr()).await.unwrap();
    let slow = Echo {
        sleep_ms: 2_000,
        ..echo(&b""[..])
    };
    let started = Instant::now();
    let err = channel.unary::<Echo, Echo>(ECHO, &slow, options()).await.unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded);
    assert!(started.elapsed() < Duration::from_secs(1));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_interceptor_observes_a_call_the_client_cancelled_as_cancelled() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let server = common::echo_server()
        .interceptor(Recorder {
            name: "audit",
            log: log.clone(),
        })
        .build()
        .unwrap()
        .serve("127.0.0.1:0")
        .await
        .unwrap();
    let channel = Channel::builder().connect(server.local_addr()).await.unwrap();
    let slow = Echo {
        sleep_ms: 10_000,
        ..echo(&b""[..])
    };
    let call = tokio::spawn({
        let channel = channel.clone();
        async move { channel.unary::<Echo, Echo>(ECHO, &slow, CallOptions::new()).await }
    });
    common::wait_for("the handler started", || log.lock().unwrap().len() == 1).await;
    call.abort();
    common::wait_for("the cancel observed", || log.lock().unwrap().len() == 2).await;
    assert_eq!(log.lock().unwrap()[1], "audit end /test.Echo/Say Cancelled");
    server.shutdown().await;
}

/// A client interceptor counting what it sees and observes.
#[derive(Default)]
struct Observer {
    calls: AtomicUsize,
    ends: Mutex<Vec<(MethodId, Code)>>,
}

/// The interceptor: a handle on an [`Observer`] the test keeps too.
#[derive(Clone)]
struct Observing(Arc<Observer>);

impl ClientInterceptor for Observing {
    async fn on_call(&self, call: &mut OutboundCall) -> Result<(), Status> {
        self.0.calls.fetch_add(1, Ordering::SeqCst);
        assert!(call.deadline().is_some(), "the call's timeout shows as a deadline");
        call.metadata_mut().insert("x-seen", "client").unwrap();
        Ok(())
    }

    fn on_end(&self, call: &OutboundCall, outcome: &CallOutcome) {
        self.0.ends.lock().unwrap().push((call.method_id(), outcome.code));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_interceptor_adds_metadata_and_observes_all_four_kinds() {
    let ran = Arc::new(AtomicUsize::new(0));
    let server = serve(four_kinds(&ran)).await;
    let observer = Arc::new(Observer::default());
    let channel = Channel::builder()
        .interceptor(Observing(observer.clone()))
        .connect(server.local_addr())
        .await
        .unwrap();
    let results = call_all_four(&channel).await;
    assert_eq!(
        results,
        vec![
            Ok("client".to_owned()),
            Ok("client,client,client".to_owned()),
            Ok("client:2".to_owned()),
            Ok("client".to_owned()),
        ]
    );
    assert_eq!(observer.calls.load(Ordering::SeqCst), 4);
    let ends = observer.ends.lock().unwrap().clone();
    assert_eq!(
        ends,
        [
            (id(ECHO), Code::Ok),
            (id(LIST), Code::Ok),
            (id(SUM), Code::Ok),
            (id(CHAT), Code::Ok)
        ]
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_interceptor_observes_a_stream_dropped_early_as_cancelled_and_a_failed_call_with_its_code() {
    let ran = Arc::new(AtomicUsize::new(0));
    let server = serve(four_kinds(&ran)).await;
    let observer = Arc::new(Observer::default());
    let channel = Channel::builder()
        .interceptor(Observing(observer.clone()))
        .connect(server.local_addr())
        .await
        .unwrap();
    let stream: Streaming<Echo> = channel.server_streaming(LIST, &echo(&b""[..]), options()).await.unwrap();
    drop(stream);
    let err = channel
        .unary::<Echo, Echo>("/test.Echo/Missing", &echo(&b""[..]), options())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented);
    let ends = observer.ends.lock().unwrap().clone();
    assert_eq!(ends[1], (id("/test.Echo/Missing"), Code::Unimplemented));
    assert!(matches!(ends[0], (m, Code::Cancelled | Code::Ok) if m == id(LIST)), "{ends:?}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_interceptor_observes_a_unary_call_its_caller_dropped_as_cancelled() {
    let server = common::start_tcp().await;
    let observer = Arc::new(Observer::default());
    let channel = Channel::builder()
        .interceptor(Observing(observer.clone()))
        .connect(server.local_addr())
        .await
        .unwrap();
    let slow = Echo {
        sleep_ms: 10_000,
        ..echo(&b""[..])
    };
    let call = channel.unary::<Echo, Echo>(ECHO, &slow, options());
    assert!(tokio::time::timeout(Duration::from_millis(50), call).await.is_err());
    assert_eq!(*observer.ends.lock().unwrap(), [(id(ECHO), Code::Cancelled)]);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_interceptor_refuses_calls_of_every_kind_before_anything_is_written() {
    let ran = Arc::new(AtomicUsize::new(0));
    let reached = Arc::new(AtomicUsize::new(0));
    let count = reached.clone();
    let server = serve(four_kinds(&ran).interceptor(move |_: &mut InboundCall| {
        count.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }))
    .await;
    let channel = Channel::builder()
        .interceptor(|_: &mut OutboundCall| Err(Status::failed_precondition("offline mode: no calls")))
        .connect(server.local_addr())
        .await
        .unwrap();
    let results = call_all_four(&channel).await;
    assert_eq!(results, vec![Err(Code::FailedPrecondition); 4]);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(reached.load(Ordering::SeqCst), 0, "no call reached the server");
    assert_eq!(channel.stats().map(|s| s.calls_started), Some(0));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_auth_admits_the_right_token_refuses_others_and_leaves_open_methods_open() {
    let ran = Arc::new(AtomicUsize::new(0));
    let server = serve(four_kinds(&ran).interceptor(BearerAuth::tokens(["s3cret", "other"]).allow_unauthenticated(LIST))).await;
    let address = server.local_addr().clone();

    let anonymous = Channel::builder().connect(&address).await.unwrap();
    let results = call_all_four(&anonymous).await;
    assert_eq!(results[0], Err(Code::Unauthenticated));
    assert!(results[1].is_ok(), "List is open");
    assert_eq!(results[2..], [Err(Code::Unauthenticated), Err(Code::Unauthenticated)]);
    let err = anonymous.unary::<Echo, Echo>(ECHO, &echo(&b""[..]), options()).await.unwrap_err();
    assert!(err.message().contains("authorization"), "says what to send: {err}");

    let wrong = Channel::builder()
        .interceptor(BearerToken::new("guess").unwrap())
        .connect(&address)
        .await
        .unwrap();
    assert_eq!(call_all_four(&wrong).await[0], Err(Code::Unauthenticated));

    let right = Channel::builder()
        .interceptor(BearerToken::new("s3cret").unwrap())
        .connect(&address)
        .await
        .unwrap();
    assert!(call_all_four(&right).await.iter().all(Result::is_ok));
    server.shutdown().await;
}

#[tokio::test]
async fn a_bearer_token_is_not_sent_in_plaintext_to_another_host_unless_allowed() {
    let refused = Channel::builder()
        .interceptor(BearerToken::new("s3cret").unwrap())
        .connect_lazy("192.0.2.10:7000");
    match refused {
        Err(volley::Error::PlaintextCredentials(err)) => {
            assert_eq!(err.address.to_string(), "192.0.2.10:7000");
            assert!(err.to_string().contains("TLS"), "{err}");
        }
        other => panic!("expected a PlaintextCredentials error, got {other:?}"),
    }
    // The eager connect refuses before it dials.
    let refused = Channel::builder()
        .interceptor(BearerToken::new("s3cret").unwrap())
        .connect("[2001:db8::1]:7000")
        .await;
    assert!(matches!(refused, Err(volley::Error::PlaintextCredentials(_))));
    for local in [
        "127.0.0.1:7000",
        "[::1]:7000",
        "[::ffff:127.0.0.1]:7000",
        "unix:/tmp/volley-auth.sock",
    ] {
        let channel = Channel::builder()
            .interceptor(BearerToken::new("s3cret").unwrap())
            .connect_lazy(local);
        assert!(channel.is_ok(), "{local} stays on this host");
    }
    let opted_in = Channel::builder()
        .interceptor(BearerToken::new("s3cret").unwrap().allow_plaintext())
        .connect_lazy("192.0.2.10:7000");
    assert!(opted_in.is_ok());
    assert!(
        !format!("{:?}", BearerToken::new("s3cret").unwrap()).contains("s3cret"),
        "Debug hides the token"
    );
}

/// A clock a test moves by hand.
#[derive(Clone)]
struct TestClock(Arc<Mutex<Instant>>);

impl TestClock {
    fn new() -> Self {
        Self(Arc::new(Mutex::new(Instant::now())))
    }

    fn advance(&self, by: Duration) {
        *self.0.lock().unwrap() += by;
    }

    fn now(&self) -> Instant {
        *self.0.lock().unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_refuses_a_peer_over_its_burst_until_its_bucket_refills() {
    let clock = TestClock::new();
    let time = clock.clone();
    let limit = RateLimit::builder()
        .per_peer(Quota::per_second(10).burst(3))
        .clock(move || time.now())
        .build();
    let server = serve(common::echo_server().interceptor(limit)).await;
    let channel = Channel::builder().connect(server.local_addr()).await.unwrap();
    let empty = echo(&b""[..]);
    let call = || channel.unary::<Echo, Echo>(ECHO, &empty, options());
    for _ in 0..3 {
        call().await.unwrap();
    }
    let err = call().await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert_eq!(err.metadata().get_str("retry-after-ms"), Some("100"));
    assert!(err.message().contains("peer 127.0.0.1"), "{err}");
    // A second connection from the same address shares the bucket.
    let other = Channel::builder().connect(server.local_addr()).await.unwrap();
    let err = other.unary::<Echo, Echo>(ECHO, &echo(&b""[..]), options()).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);

    clock.advance(Duration::from_millis(100));
    call().await.unwrap();
    assert_eq!(call().await.unwrap_err().code(), Code::ResourceExhausted);
    clock.advance(Duration::from_secs(1));
    for _ in 0..3 {
        call().await.unwrap();
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_per_method_limits_that_method_only() {
    let clock = TestClock::new();
    let time = clock.clone();
    let limit = RateLimit::builder()
        .per_method(LIST, Quota::per_minute(2))
        .clock(move || time.now())
        .build();
    let ran = Arc::new(AtomicUsize::new(0));
    let server = serve(four_kinds(&ran).interceptor(limit)).await;
    let channel = Channel::builder().connect(server.local_addr()).await.unwrap();
    assert!(call_all_four(&channel).await.iter().all(Result::is_ok));
    assert!(call_all_four(&channel).await.iter().all(Result::is_ok));
    let third = call_all_four(&channel).await;
    assert_eq!(third[1], Err(Code::ResourceExhausted), "List's bucket of 2 is empty");
    assert!(third[0].is_ok() && third[2].is_ok() && third[3].is_ok(), "{third:?}");
    clock.advance(Duration::from_secs(30));
    assert!(call_all_four(&channel).await.iter().all(Result::is_ok), "one token back after 30 s");
    server.shutdown().await;
}
