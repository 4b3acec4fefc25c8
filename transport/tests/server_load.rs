//! The server's count of calls in flight (the figure its `volley-load` reports carry) goes back
//! to zero however its calls end: answered, failed by a panicking handler, or cancelled by the
//! client. A call holds a plain ticket and leaves the count through its connection's
//! dispatcher; a path that forgot to would leave the count high for good.

use std::time::{Duration, Instant};

use volley::balance::LOAD_METADATA_KEY;
use volley::server::LoadReports;
use volley::{CallOptions, Client, Code, Request, Server, ServerHandle, Status};

const ECHO: &str = "/load.Test/Echo";

/// Echoes, except `panic` (the handler panics) and `hold` (the handler never answers).
async fn server() -> ServerHandle {
    Server::builder()
        .load_reports(LoadReports::Always)
        .unary(ECHO, |request: Request<String>| async move {
            match request.get_ref().as_str() {
                "panic" => panic!("this handler panics on purpose"),
                "hold" => std::future::pending::<Result<String, Status>>().await,
                _ => Ok(request.into_inner()),
            }
        })
        .build()
        .expect("valid server")
        .serve("127.0.0.1:0")
        .await
        .expect("bind")
}

/// The report on the answer of one echo call on `client`: the server's calls in flight on its
/// other connections.
async fn report(client: &Client) -> String {
    let response = client
        .unary_response::<String, String>(
            volley::MethodId::from_name(ECHO),
            &"ping".to_owned(),
            CallOptions::new().timeout(Duration::from_secs(5)),
        )
        .await
        .expect("echo");
    response.metadata().get_str(LOAD_METADATA_KEY).expect("reports are on").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_leave_the_servers_load_when_answered_failed_or_cancelled() {
    let server = server().await;
    let caller = Client::connect(server.local_addr()).await.expect("connect");
    let watcher = Client::connect(server.local_addr()).await.expect("connect");
    for _ in 0..10 {
        let echoed: String = caller.unary(ECHO, &"x".to_owned(), CallOptions::default()).await.expect("echo");
        assert_eq!(echoed, "x");
    }
    let panicked = caller
        .unary::<String, String>(ECHO, &"panic".to_owned(), CallOptions::default())
        .await;
    assert_eq!(panicked.expect_err("the handler panicked").code(), Code::Internal);
    let held = caller
        .unary::<String, String>(ECHO, &"hold".to_owned(), CallOptions::new().timeout(Duration::from_millis(50)))
        .await;
    assert_eq!(held.expect_err("never answered").code(), Code::DeadlineExceeded);
    // The cancelled call leaves once the server has read the Cancel and dropped its handler.
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let others = report(&watcher).await;
        if others == "0" {
            break;
        }
        assert!(
            Instant::now() < until,
            "the server still counts {others} calls in flight on other connections"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
