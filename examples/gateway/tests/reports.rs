//! Execution-report streams resumed by sequence: a subscriber that reconnects with the last
//! sequence it saw gets every report after it, then live ones, with no gap and no duplicate,
//! also after a restart (the kept reports are rebuilt from the journal).

mod common;

use std::time::Duration;

use common::{client, config, limit, scratch, start};
use gateway::proto::{ExecutionReport, Side, SubscribeReports};
use volley::{Code, Streaming};

const WAIT: Duration = Duration::from_secs(5);

async fn next(stream: &mut Streaming<ExecutionReport>) -> ExecutionReport {
    tokio::time::timeout(WAIT, stream.message())
        .await
        .expect("a report in time")
        .expect("the stream is healthy")
        .expect("the stream is open")
}

fn subscribe(account: &str, after_sequence: u64) -> SubscribeReports {
    SubscribeReports {
        account: account.into(),
        after_sequence,
    }
}

#[tokio::test]
async fn a_report_stream_resumed_after_its_last_sequence_misses_nothing_and_repeats_nothing() {
    let (_dir, journal) = scratch();
    let running = start(&config(&journal)).await;
    let orders = client(&running).await;

    let mut first = orders.execution_reports(subscribe("A", 0)).await.unwrap();
    next(&mut first).await; // The confirmation.
    let a1 = orders.new_order(limit("A", "a-1", Side::Buy, 18_700, 1)).await.unwrap();
    let seen = next(&mut first).await;
    assert_eq!((seen.cl_ord_id.as_str(), seen.sequence), ("a-1", a1.sequence));
    drop(first); // The subscriber goes away…

    let a2 = orders.new_order(limit("A", "a-2", Side::Buy, 18_700, 1)).await.unwrap();
    orders.new_order(limit("B", "b-1", Side::Buy, 18_700, 1)).await.unwrap(); // Not A's.
    let a3 = orders.new_order(limit("A", "a-3", Side::Buy, 18_700, 1)).await.unwrap();

    // …and comes back with the last sequence it saw.
    let mut resumed = orders.execution_reports(subscribe("A", seen.sequence)).await.unwrap();
    let confirmation = next(&mut resumed).await;
    assert_eq!(confirmation.sequence, seen.sequence, "{confirmation:?}");
    let a4 = orders.new_order(limit("A", "a-4", Side::Buy, 18_700, 1)).await.unwrap();
    let mut got = Vec::new();
    for _ in 0..3 {
        let report = next(&mut resumed).await;
        got.push((report.cl_ord_id, report.sequence));
    }
    assert_eq!(
        got,
        [
            ("a-2".to_owned(), a2.sequence),
            ("a-3".to_owned(), a3.sequence),
            ("a-4".to_owned(), a4.sequence)
        ],
        "the missed ones in order, then the live one"
    );
    running.shutdown().await.unwrap();

    // After a restart the kept reports are rebuilt from the journal.
    let running = start(&config(&journal)).await;
    let orders = client(&running).await;
    let mut after_restart = orders.execution_reports(subscribe("A", a2.sequence)).await.unwrap();
    assert_eq!(next(&mut after_restart).await.sequence, a2.sequence);
    assert_eq!(next(&mut after_restart).await.cl_ord_id, "a-3");
    assert_eq!(next(&mut after_restart).await.cl_ord_id, "a-4");

    // Resuming beyond the last durable command is refused, at the call: the handler refuses
    // before it sends the stream's head.
    let refused = tokio::time::timeout(WAIT, orders.execution_reports(subscribe("A", 1_000_000)))
        .await
        .expect("an answer in time");
    assert_eq!(refused.err().map(|status| status.code()), Some(Code::InvalidArgument));
    running.shutdown().await.unwrap();
}
