//! The per-call flush hint (`CallOptions::flush`), shown by the client's write syscalls: N calls
//! made one by one take N writes, the same N calls corked with `flush(false)` and ended by one
//! flushing call take one; and a call that does not flush waits in the queue until one does.
//! Loopback TCP; counts, not timings.

mod common;

use std::time::Duration;

use common::{ECHO_ID, Echo, echo, start_tcp};
use volley::{CallOptions, Client};

const CALLS: usize = 32;

#[tokio::test(flavor = "current_thread")]
async fn a_corked_burst_takes_one_write_where_the_same_calls_one_by_one_take_one_each() {
    let server = start_tcp().await;
    let client = Client::connect(server.local_addr()).await.unwrap();
    // One by one, each flushing (the default): every call is its own write.
    let before = client.stats().write_syscalls;
    for _ in 0..CALLS {
        let _: Echo = client.unary(ECHO_ID, &echo("one"), CallOptions::new()).await.unwrap();
    }
    assert_eq!(client.stats().write_syscalls - before, CALLS as u64);
    // The same calls as a burst: the first 31 with flush(false) wait in the queue, the last
    // flushes all 32 in one writev. (On a current-thread runtime the spawned calls run in order,
    // all queued before the writer task runs.)
    let before = client.stats().write_syscalls;
    let calls: Vec<_> = (0..CALLS)
        .map(|i| {
            let client = client.clone();
            let options = CallOptions::new().flush(i + 1 == CALLS);
            tokio::spawn(async move { client.unary::<_, Echo>(ECHO_ID, &echo("burst"), options).await })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    assert_eq!(client.stats().write_syscalls - before, 1);
    server.shutdown().await;
}

#[tokio::test]
async fn a_call_that_does_not_flush_waits_in_the_queue_until_one_that_does() {
    let server = start_tcp().await;
    let client = Client::connect(server.local_addr()).await.unwrap();
    let corked = {
        let client = client.clone();
        tokio::spawn(async move {
            client
                .unary::<_, Echo>(ECHO_ID, &echo("corked"), CallOptions::new().flush(false))
                .await
        })
    };
    common::wait_for("the corked call is queued", || client.stats().calls_started == 1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(server.stats().calls_started, 0, "nothing was written: the server saw no call");
    assert!(!corked.is_finished());
    let _: Echo = client.unary(ECHO_ID, &echo("flushes"), CallOptions::new()).await.unwrap();
    assert_eq!(corked.await.unwrap().unwrap().payload, "corked");
    assert_eq!(server.stats().calls_started, 2);
    server.shutdown().await;
}
