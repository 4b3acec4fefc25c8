//! Metrics over loopback (feature `metrics`): after N calls the exposition shows exactly N in the
//! right series, histogram counts sum to N, a scrape with a real HTTP client parses as
//! Prometheus text, and the Grafana dashboard only queries exposed metrics.
//!
//! Run with `cargo test -p volley --features metrics --test metrics` (as `.ci/run` does).

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use common::{ECHO, ECHO_ID, Echo, echo, echo_server};
use volley::metrics::{Metrics, MetricsEndpoint};
use volley::{CallOptions, Client, Code, MethodId, Request, ServerHandle, StreamSender};

const TICKS: &str = "/test.Echo/Ticks";
const NOT_SERVED: &str = "/test.Echo/NotServed";

/// An echo server (unary `ECHO`, server-streaming `TICKS`) and a client, both recording into
/// one `Metrics`, as one process serving and calling would.
async fn start(metrics: &Metrics) -> (ServerHandle, Client) {
    let server = echo_server()
        .server_streaming(TICKS, |request: Request<Echo>, mut sender: StreamSender<Echo>| async move {
            for _ in 0..request.get_ref().sleep_ms {
                sender.send(&echo("tick")).await?;
            }
            Ok(())
        })
        .metrics(metrics.clone())
        .build()
        .expect("valid server")
        .serve("127.0.0.1:0")
        .await
        .expect("bind");
    metrics.register_client_method(ECHO);
    metrics.register_client_method(TICKS);
    let client = Client::builder()
        .metrics(metrics.clone())
        .connect(server.local_addr())
        .await
        .expect("connect");
    (server, client)
}

/// The exposition as `series -> value`, where a series is the sample line without its value.
fn scrape(metrics: &Metrics) -> BTreeMap<String, f64> {
    let mut text = String::new();
    metrics.encode(&mut text).expect("encode");
    parse_exposition(&text).unwrap_or_else(|err| panic!("invalid exposition: {err}\n{text}"))
}

fn value(series: &BTreeMap<String, f64>, key: &str) -> f64 {
    *series.get(key).unwrap_or_else(|| panic!("no series {key}"))
}

/// Polls until `done` holds: the server records a call's end just after it queues the answer,
/// so the client can see the answer first.
async fn eventually(mut done: impl FnMut() -> bool) {
    for _ in 0..500 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(done(), "condition not reached within a second");
}

#[tokio::test]
async fn after_n_calls_each_series_shows_exactly_n() {
    let metrics = Metrics::new();
    let (server, client) = start(&metrics).await;
    const OK_CALLS: u64 = 120;
    const FAILED_CALLS: u64 = 7;
    for _ in 0..OK_CALLS {
        let _: Echo = client.unary(ECHO_ID, &echo("hi"), CallOptions::default()).await.expect("call");
    }
    for _ in 0..FAILED_CALLS {
        let failing = Echo {
            fail_with: Code::NotFound as u32,
            ..echo("no")
        };
        let status = client
            .unary::<_, Echo>(ECHO_ID, &failing, CallOptions::default())
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound);
    }
    let status = client
        .unary::<_, Echo>(MethodId::from_name(NOT_SERVED), &echo("?"), CallOptions::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented);
    let total = OK_CALLS + FAILED_CALLS;
    eventually(|| {
        metrics
            .snapshot()
            .method(ECHO)
            .is_some_and(|m| m.server.calls.finished_total() == total)
    })
    .await;

    let series = scrape(&metrics);
    let m = format!("method=\"{ECHO}\"");
    for side in ["client", "server"] {
        let n = |name: &str| value(&series, &format!("volley_{side}_{name}{{{m}}}")) as u64;
        assert_eq!(n("calls_started_total"), total, "{side}");
        assert_eq!(n("calls_in_flight"), 0, "{side}");
        let by_code = |code: &str| value(&series, &format!("volley_{side}_calls_finished_total{{{m},code=\"{code}\"}}")) as u64;
        assert_eq!(by_code("OK"), OK_CALLS, "{side}");
        assert_eq!(by_code("NOT_FOUND"), FAILED_CALLS, "{side}");
        assert!(
            !series.contains_key(&format!("volley_{side}_calls_finished_total{{{m},code=\"INTERNAL\"}}")),
            "codes never seen are not exposed"
        );
        // The calls to the method nobody registered or served count under `other`.
        let other = |name: &str| value(&series, &format!("volley_{side}_{name}{{method=\"other\"}}")) as u64;
        assert_eq!(other("calls_started_total"), 1, "{side}");
        let unimplemented = format!("volley_{side}_calls_finished_total{{method=\"other\",code=\"UNIMPLEMENTED\"}}");
        assert_eq!(value(&series, &unimplemented) as u64, 1, "{side}");
    }
    let histograms = [
        "volley_client_round_trip_seconds",
        "volley_server_handling_seconds",
        "volley_server_queueing_seconds",
    ];
    for histogram in histograms {
        assert_eq!(value(&series, &format!("{histogram}_count{{{m}}}")) as u64, total, "{histogram}");
        assert_eq!(value(&series, &format!("{histogram}_bucket{{{m},le=\"+Inf\"}}")) as u64, total);
        let sum = value(&series, &format!("{histogram}_sum{{{m}}}"));
        assert!(sum > 0.0 && sum < 60.0 * total as f64, "{histogram} sum {sum}");
    }
    let snapshot = metrics.snapshot();
    let echo_method = snapshot.method(ECHO).expect("registered");
    assert_eq!(echo_method.client.round_trip.count(), total);
    let p50 = echo_method.client.round_trip.quantile(0.5);
    let p9999 = echo_method.client.round_trip.quantile(0.9999);
    assert!(Duration::ZERO < p50 && p50 <= p9999, "p50 {p50:?}, p99.99 {p9999:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn histogram_buckets_sum_to_the_number_of_calls() {
    let metrics = Metrics::new();
    let (server, client) = start(&metrics).await;
    const CALLS: usize = 64;
    let calls = (0..CALLS).map(|_| {
        let client = client.clone();
        tokio::spawn(async move { client.unary::<_, Echo>(ECHO_ID, &echo("x"), CallOptions::default()).await })
    });
    for call in calls.collect::<Vec<_>>() {
        call.await.expect("task").expect("call");
    }
    eventually(|| {
        metrics
            .snapshot()
            .method(ECHO)
            .is_some_and(|m| m.server.handling.count() == CALLS as u64)
    })
    .await;
    let series = scrape(&metrics);
    for histogram in ["volley_client_round_trip_seconds", "volley_server_handling_seconds"] {
        let prefix = format!("{histogram}_bucket{{method=\"{ECHO}\",le=");
        let buckets = buckets_in_order(&series, &prefix);
        let mut below = 0;
        let mut taken_apart = 0;
        for (_, cumulative) in &buckets {
            assert!(*cumulative >= below, "{histogram}: buckets are cumulative");
            taken_apart += cumulative - below;
            below = *cumulative;
        }
        assert_eq!(taken_apart, CALLS as u64, "{histogram}");
        assert_eq!(buckets.last().map(|(le, _)| le.as_str()), Some("+Inf"));
    }
    server.shutdown().await;
}

#[tokio::test]
async fn streaming_calls_count_once_on_each_side() {
    let metrics = Metrics::new();
    let (server, client) = start(&metrics).await;
    const CALLS: u64 = 5;
    for _ in 0..CALLS {
        let request = Echo { sleep_ms: 3, ..echo("") };
        let mut ticks = client
            .server_streaming::<_, Echo>(MethodId::from_name(TICKS), &request, CallOptions::default())
            .await
            .expect("open");
        let mut n = 0;
        while ticks.message().await.expect("tick").is_some() {
            n += 1;
        }
        assert_eq!(n, 3);
    }
    eventually(|| {
        let snapshot = metrics.snapshot();
        let ticks = snapshot.method(TICKS).expect("registered");
        ticks.server.calls.finished_with(Code::Ok) == CALLS && ticks.client.calls.finished_with(Code::Ok) == CALLS
    })
    .await;
    let snapshot = metrics.snapshot();
    let ticks = snapshot.method(TICKS).expect("registered");
    assert_eq!(ticks.client.calls.started, CALLS);
    assert_eq!(ticks.client.round_trip.count(), CALLS);
    assert_eq!(ticks.server.handling.count(), CALLS);
    assert_eq!(ticks.server.calls.in_flight(), 0);
    server.shutdown().await;
}

#[tokio::test]
async fn connection_series_sum_the_connections_stats_once() {
    let metrics = Metrics::new();
    let (server, client) = start(&metrics).await;
    for _ in 0..10 {
        let _: Echo = client.unary(ECHO_ID, &echo("hi"), CallOptions::default()).await.expect("call");
    }
    let second = Client::builder()
        .metrics(metrics.clone())
        .connect(server.local_addr())
        .await
        .expect("connect");
    let _: Echo = second.unary(ECHO_ID, &echo("hi"), CallOptions::default()).await.expect("call");
    eventually(|| server.connections() == 2).await;
    let series = scrape(&metrics);
    assert_eq!(value(&series, "volley_connections_open{side=\"client\"}"), 2.0);
    assert_eq!(value(&series, "volley_connections_open{side=\"server\"}"), 2.0);
    assert_eq!(value(&series, "volley_connections_opened_total{side=\"server\"}"), 2.0);

    // Closed connections keep counting, exactly once, after their state is gone.
    second.close();
    drop(second);
    eventually(|| server.connections() == 1).await;
    let expected = client.stats();
    eventually(|| {
        let totals = metrics.snapshot();
        totals.server_connections.open == 1
            && totals.client_connections.stats.bytes_out == totals.server_connections.stats.bytes_in
            && totals.server_connections.stats.bytes_out == totals.client_connections.stats.bytes_in
    })
    .await;
    let series = scrape(&metrics);
    assert_eq!(value(&series, "volley_connections_open{side=\"client\"}"), 1.0);
    assert_eq!(value(&series, "volley_connections_closed_total{side=\"client\"}"), 1.0);
    let server_stats = server.stats();
    assert_eq!(
        value(&series, "volley_frames_received_total{side=\"server\"}") as u64,
        server_stats.frames_in
    );
    assert_eq!(
        value(&series, "volley_received_bytes_total{side=\"server\"}") as u64,
        server_stats.bytes_in
    );
    let client_syscalls = value(&series, "volley_write_syscalls_total{side=\"client\"}") as u64;
    assert!(client_syscalls > expected.write_syscalls, "the second client's writes are kept");
    let batching = value(&series, "volley_frames_per_write_syscall{side=\"server\"}");
    assert!(batching >= 1.0, "{batching}");
    assert_eq!(value(&series, "volley_write_queue_bytes{side=\"client\"}"), 0.0);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_over_http_parses_as_prometheus_text() {
    let metrics = Metrics::new();
    let (server, client) = start(&metrics).await;
    for _ in 0..25 {
        let _: Echo = client.unary(ECHO_ID, &echo("hi"), CallOptions::default()).await.expect("call");
    }
    let endpoint: MetricsEndpoint = metrics.serve_http("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/metrics", endpoint.local_addr());
    let (status, content_type, body) = tokio::task::spawn_blocking(move || {
        let mut response = ureq::get(&url).call().expect("scrape");
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = response.body_mut().read_to_string().expect("body");
        (response.status().as_u16(), content_type, body)
    })
    .await
    .expect("scraper");
    assert_eq!(status, 200);
    assert_eq!(content_type, volley::metrics::CONTENT_TYPE);
    let series = parse_exposition(&body).unwrap_or_else(|err| panic!("invalid exposition: {err}\n{body}"));
    assert_eq!(
        value(&series, &format!("volley_client_calls_started_total{{method=\"{ECHO}\"}}")),
        25.0
    );

    let elsewhere = format!("http://{}/", endpoint.local_addr());
    let refused = tokio::task::spawn_blocking(move || ureq::get(&elsewhere).call().map(|r| r.status().as_u16()))
        .await
        .expect("scraper");
    assert!(matches!(refused, Err(ureq::Error::StatusCode(404))), "{refused:?}");
    endpoint.shutdown();
    server.shutdown().await;
}

#[tokio::test]
async fn the_dashboard_queries_only_exposed_metrics() {
    let metrics = Metrics::new();
    let (server, client) = start(&metrics).await;
    let _: Echo = client.unary(ECHO_ID, &echo("hi"), CallOptions::default()).await.expect("call");
    let exposed: BTreeSet<String> = scrape(&metrics)
        .keys()
        .map(|series| series.split('{').next().unwrap_or_default().to_owned())
        .collect();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../dashboards/volley.json");
    let dashboard: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).expect("dashboard file")).expect("valid JSON");
    assert!(
        dashboard["schemaVersion"].as_u64().is_some_and(|v| v >= 36),
        "a current Grafana schema"
    );
    assert!(dashboard["uid"].is_string() && dashboard["title"].is_string());
    let mut exprs = Vec::new();
    collect_exprs(&dashboard, &mut exprs);
    assert!(exprs.len() >= 8, "every panel has a query: {exprs:?}");
    let mut used = BTreeSet::new();
    for expr in &exprs {
        for name in metric_names(expr) {
            assert!(
                exposed.contains(&name),
                "the dashboard queries {name}, which is not exposed: {expr}"
            );
            used.insert(name);
        }
    }
    for needed in [
        "volley_server_calls_finished_total",
        "volley_server_handling_seconds_bucket",
        "volley_client_round_trip_seconds_bucket",
        "volley_server_queueing_seconds_bucket",
        "volley_server_calls_in_flight",
        "volley_write_queue_bytes",
        "volley_connections_open",
        "volley_frames_sent_total",
        "volley_write_syscalls_total",
    ] {
        assert!(used.contains(needed), "the dashboard has a panel over {needed}");
    }
    server.shutdown().await;
}

// ---- a strict reader of the Prometheus text format (0.0.4) ----

/// Parses an exposition into `series -> value`, checking what Prometheus checks: metric and
/// label names, quoting, one TYPE per family before its samples, families not interleaved, no
/// duplicate series, and for histograms cumulative buckets ending in `+Inf` equal to `_count`.
fn parse_exposition(text: &str) -> Result<BTreeMap<String, f64>, String> {
    let mut series = BTreeMap::new();
    let mut types: HashMap<String, String> = HashMap::new();
    let mut finished_families = BTreeSet::new();
    let mut current: Option<String> = None;
    for (number, line) in text.lines().enumerate() {
        let at = |msg: &str| format!("line {}: {msg}: {line}", number + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut words = rest.splitn(3, ' ');
            let (keyword, name) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
            if !is_metric_name(name) {
                return Err(at("bad metric name"));
            }
            if keyword == "TYPE" {
                let kind = words.next().unwrap_or("");
                if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                    return Err(at("unknown type"));
                }
                if types.insert(name.to_owned(), kind.to_owned()).is_some() {
                    return Err(at("second TYPE for a family"));
                }
            }
            if current.as_deref() != Some(name) {
                if let Some(done) = current.replace(name.to_owned()) {
                    finished_families.insert(done);
                }
                if finished_families.contains(name) {
                    return Err(at("family interleaved with another"));
                }
            }
            continue;
        }
        let (name, labels, value) = split_sample(line).ok_or_else(|| at("malformed sample"))?;
        let family = family_of(name, &types).ok_or_else(|| at("sample without a TYPE"))?;
        if current.as_deref() != Some(family) {
            return Err(at("sample outside its family's block"));
        }
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse::<f64>().map_err(|_| at("bad value"))?,
        };
        let key = format!("{name}{labels}");
        if series.insert(key, value).is_some() {
            return Err(at("duplicate series"));
        }
    }
    check_histograms(&series, &types)?;
    Ok(series)
}

/// `name`, `{labels}` (or empty) and the value of a sample line, labels validated.
fn split_sample(line: &str) -> Option<(&str, &str, &str)> {
    let name_end = line.find(['{', ' '])?;
    let name = &line[..name_end];
    if !is_metric_name(name) {
        return None;
    }
    let (labels, rest) = if line[name_end..].starts_with('{') {
        let close = labels_end(&line[name_end..])? + name_end;
        (&line[name_end..=close], &line[close + 1..])
    } else {
        ("", &line[name_end..])
    };
    let value = rest.strip_prefix(' ')?;
    if value.is_empty() || value.contains(' ') {
        return None; // No timestamps are written.
    }
    Some((name, labels, value))
}

/// The index of the `}` closing a label set that starts at `{`, checking each `name="value"`.
fn labels_end(s: &str) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut i = 1;
    loop {
        if bytes.get(i) == Some(&b'}') {
            return Some(i);
        }
        let name_start = i;
        while bytes.get(i).is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_') {
            i += 1;
        }
        let name = &s[name_start..i];
        if name.is_empty() || name.as_bytes()[0].is_ascii_digit() || bytes.get(i) != Some(&b'=') || bytes.get(i + 1) != Some(&b'"') {
            return None;
        }
        i += 2;
        loop {
            match bytes.get(i)? {
                b'\\' => {
                    if !matches!(bytes.get(i + 1)?, b'\\' | b'"' | b'n') {
                        return None;
                    }
                    i += 2;
                }
                b'"' => break,
                b'\n' => return None,
                _ => i += 1,
            }
        }
        i += 1;
        match bytes.get(i)? {
            b',' => i += 1,
            b'}' => return Some(i),
            _ => return None,
        }
    }
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn family_of<'a>(sample: &'a str, types: &HashMap<String, String>) -> Option<&'a str> {
    if types.contains_key(sample) {
        return Some(sample);
    }
    ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
        let family = sample.strip_suffix(suffix)?;
        (types.get(family).map(String::as_str) == Some("histogram")).then_some(family)
    })
}

fn check_histograms(series: &BTreeMap<String, f64>, types: &HashMap<String, String>) -> Result<(), String> {
    for (family, _) in types.iter().filter(|(_, kind)| *kind == "histogram") {
        let counts: Vec<(&String, &f64)> = series.iter().filter(|(k, _)| k.starts_with(&format!("{family}_count"))).collect();
        for (count_key, &count) in counts {
            let labels = &count_key[family.len() + "_count".len()..];
            let inner = labels.trim_start_matches('{').trim_end_matches('}');
            let prefix = if inner.is_empty() {
                format!("{family}_bucket{{le=")
            } else {
                format!("{family}_bucket{{{inner},le=")
            };
            let buckets = buckets_in_order(series, &prefix);
            if buckets.last().map(|(le, _)| le.as_str()) != Some("+Inf") {
                return Err(format!("{count_key}: no +Inf bucket"));
            }
            if buckets.windows(2).any(|w| w[0].1 > w[1].1) {
                return Err(format!("{count_key}: buckets are not cumulative"));
            }
            if buckets.last().map(|(_, n)| *n as f64) != Some(count) {
                return Err(format!("{count_key}: +Inf bucket differs from the count"));
            }
            if !series.contains_key(&format!("{family}_sum{labels}")) {
                return Err(format!("{count_key}: no _sum"));
            }
        }
    }
    Ok(())
}

/// `(le, cumulative count)` of the buckets whose series start with `prefix`, by bound.
fn buckets_in_order(series: &BTreeMap<String, f64>, prefix: &str) -> Vec<(String, u64)> {
    let mut buckets: Vec<(f64, String, u64)> = series
        .iter()
        .filter_map(|(key, &value)| {
            let le = key.strip_prefix(prefix)?.trim_end_matches('}').trim_matches('"').to_owned();
            let bound = if le == "+Inf" { f64::INFINITY } else { le.parse().ok()? };
            Some((bound, le, value as u64))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    buckets.into_iter().map(|(_, le, n)| (le, n)).collect()
}

// ---- the dashboard ----

fn collect_exprs(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("expr", serde_json::Value::String(expr)) => out.push(expr.clone()),
                    _ => collect_exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_exprs(v, out)),
        _ => {}
    }
}

/// Identifiers starting with `volley_` in a PromQL expression.
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while let Some(found) = expr[i..].find("volley_") {
        let start = i + found;
        let preceded_by_ident = start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_' || bytes[end] == b':') {
            end += 1;
        }
        if !preceded_by_ident {
            names.push(expr[start..end].to_owned());
        }
        i = end;
    }
    names
}

#[test]
fn the_exposition_reader_rejects_what_prometheus_rejects() {
    let ok = "# HELP a_total x\n# TYPE a_total counter\na_total{m=\"x\\\"y\"} 1\n";
    assert!(parse_exposition(ok).is_ok());
    for bad in [
        "a_total 1\n",
        "# TYPE a_total counter\na_total{m=x} 1\n",
        "# TYPE a_total counter\na_total 1\na_total 2\n",
        "# TYPE a_total counter\n# TYPE b gauge\nb 1\na_total 1\n",
        "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
        "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 1\n",
        "# TYPE 1a counter\n",
    ] {
        assert!(parse_exposition(bad).is_err(), "accepted: {bad}");
    }
}

#[tokio::test]
async fn admission_refusals_and_evictions_are_counted_by_reason() {
    let metrics = Metrics::new();
    let server = echo_server()
        .max_connections(1)
        .metrics(metrics.clone())
        .build()
        .expect("valid server")
        .serve("127.0.0.1:0")
        .await
        .expect("bind");
    let first = Client::connect(server.local_addr()).await.unwrap();
    let _: Echo = first.unary(ECHO_ID, &echo("one"), CallOptions::default()).await.unwrap();
    // At the cap with the first connection idle: the second takes its place.
    let second = Client::connect(server.local_addr()).await.unwrap();
    let _: Echo = second.unary(ECHO_ID, &echo("two"), CallOptions::default()).await.unwrap();
    let series = scrape(&metrics);
    assert_eq!(value(&series, "volley_connections_evicted_total"), 1.0);
    for reason in ["peer_connections", "peer_handshakes", "server_full"] {
        assert_eq!(
            value(&series, &format!("volley_connections_refused_total{{reason=\"{reason}\"}}")),
            0.0
        );
    }
    assert_eq!(metrics.snapshot().admission, server.admission());
    server.shutdown().await;
}

/// Inline handlers answer while the reader dispatches its pass, and their metrics wait for the
/// pass's one clock read (`metrics/pass.rs`); they are recorded before the pass's answers are
/// written, so a snapshot taken once the calls have returned sees every one, without waiting.
#[tokio::test]
async fn inline_answers_are_recorded_before_the_client_sees_them() {
    let metrics = Metrics::new();
    let server = volley::Server::builder()
        .unary_inline(ECHO, |request: Request<Echo>| Ok::<_, volley::Status>(request.into_inner()))
        .metrics(metrics.clone())
        .build()
        .expect("valid server")
        .serve("127.0.0.1:0")
        .await
        .expect("bind");
    let client = Client::builder().connect(server.local_addr()).await.expect("connect");
    const CALLS: u64 = 128;
    for _ in 0..3 {
        let calls: Vec<_> = (0..CALLS)
            .map(|_| {
                let client = client.clone();
                tokio::spawn(async move { client.unary::<_, Echo>(ECHO_ID, &echo("x"), CallOptions::default()).await })
            })
            .collect();
        for call in calls {
            call.await.expect("task").expect("call");
        }
    }
    let snapshot = metrics.snapshot();
    let method = snapshot.method(ECHO).expect("served");
    assert_eq!(method.server.calls.finished_with(Code::Ok), 3 * CALLS);
    assert_eq!(method.server.handling.count(), 3 * CALLS);
    assert_eq!(method.server.calls.in_flight(), 0);
    server.shutdown().await;
}
