//! A balanced channel's per-endpoint series in the Prometheus exposition, scraped over HTTP.

use volley::balance::BalancedChannel;
use volley::metrics::Metrics;

use crate::replica::{Behaviour, DEADLINE, Replica, beside_others, idempotent, load, quick_ejection};

/// The value of the series `name{channel="metered",endpoint="address"}` in `text`.
fn series(text: &str, name: &str, address: &str) -> f64 {
    let prefix = format!("{name}{{channel=\"metered\",endpoint=\"{address}\"}} ");
    let line = text
        .lines()
        .find(|line| line.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no {prefix} in the exposition:\n{text}"));
    line[prefix.len()..].parse().expect("a number")
}

async fn scrape(url: &str) -> String {
    let url = url.to_owned();
    tokio::task::spawn_blocking(move || ureq::get(&url).call().expect("scrape").body_mut().read_to_string().expect("text"))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_endpoint_series_are_scraped_and_follow_calls_errors_retries_and_latency() {
    let _shared = beside_others().await;
    let good = Replica::start("127.0.0.1", Behaviour::Echo).await;
    let bad = Replica::start("127.0.0.2", Behaviour::Unavailable).await;
    let metrics = Metrics::new();
    let endpoint = metrics.serve_http("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/metrics", endpoint.local_addr());
    let channel = BalancedChannel::builder()
        .metrics(metrics.clone())
        .name("metered")
        .timeout(DEADLINE)
        .ejection(quick_ejection())
        .retry_budget(1.0, 1_000)
        .build([good.address.clone(), bad.address.clone()])
        .unwrap();
    let (good_address, bad_address) = (good.address.to_string(), bad.address.to_string());

    let before = scrape(&url).await;
    for address in [&good_address, &bad_address] {
        assert_eq!(series(&before, "volley_endpoint_calls_total", address), 0.0);
        assert_eq!(series(&before, "volley_endpoint_errors_total", address), 0.0);
        assert_eq!(series(&before, "volley_endpoint_up", address), 1.0);
    }

    // Idempotent calls: those that land on the failing replica are retried on the good one.
    let run = load(&channel, 4, 200, idempotent()).await;
    assert!(run.errors.is_empty(), "{:?}", run.errors.first());
    let after = scrape(&url).await;
    let calls = |address| series(&after, "volley_endpoint_calls_total", address);
    let errors = |address| series(&after, "volley_endpoint_errors_total", address);
    let retries = |address| series(&after, "volley_endpoint_retries_total", address);
    assert!(errors(&bad_address) >= 1.0, "the failing replica's errors are counted");
    assert_eq!(errors(&good_address), 0.0);
    assert_eq!(
        retries(&good_address),
        errors(&bad_address),
        "every failure was retried on the good replica"
    );
    assert_eq!(
        calls(&good_address) + calls(&bad_address),
        200.0 + retries(&good_address) + retries(&bad_address),
        "attempts = calls + retries"
    );
    assert_eq!(
        calls(&good_address) as u64,
        good.calls(),
        "the good replica saw every attempt counted"
    );
    assert!(series(&after, "volley_endpoint_latency_seconds_total", &good_address) > 0.0);
    assert!(series(&after, "volley_endpoint_latency_average_seconds", &good_address) > 0.0);
    assert_eq!(series(&after, "volley_endpoint_calls_in_flight", &good_address), 0.0);
    assert_eq!(series(&after, "volley_endpoint_hedges_total", &good_address), 0.0);
    assert_eq!(series(&after, "volley_endpoint_ejections_total", &good_address), 0.0);
    let snapshot = metrics.snapshot();
    assert_eq!(snapshot.balanced_channels.len(), 1);
    assert_eq!(snapshot.balanced_channels[0].name, "metered");

    // A dropped channel's series go with it.
    drop(channel);
    let gone = scrape(&url).await;
    assert!(!gone.contains("channel=\"metered\""), "{gone}");
}
