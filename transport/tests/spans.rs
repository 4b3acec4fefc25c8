//! Every call has a debug-level `tracing` span, `volley.call`, on each side, with the method, the
//! call id and the status it ended with. Alone in its binary: a subscriber set while other tests
//! register the span's callsite on other threads could miss it.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{ECHO, ECHO_ID, Echo, echo, echo_server};
use volley::{CallOptions, Client, Code};

#[tokio::test]
async fn each_call_has_a_debug_span_with_method_call_id_and_status() {
    let capture = Capture::default();
    let _default = tracing::subscriber::set_default(capture.clone());
    let server = echo_server().build().unwrap().serve("127.0.0.1:0").await.unwrap();
    let client = Client::connect(server.local_addr()).await.unwrap();
    let _: Echo = client.unary(ECHO_ID, &echo("hi"), CallOptions::default()).await.expect("call");
    let failing = Echo {
        fail_with: Code::Aborted as u32,
        ..echo("no")
    };
    let _ = client
        .unary::<_, Echo>(ECHO_ID, &failing, CallOptions::default())
        .await
        .unwrap_err();
    for _ in 0..500 {
        if capture.calls().iter().filter(|s| s.contains_key("status")).count() >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let calls = capture.calls();
    assert!(calls.iter().filter(|s| s.contains_key("status")).count() >= 4, "{calls:?}");
    let server_spans: Vec<_> = calls
        .iter()
        .filter(|s| s.get("side").map(String::as_str) == Some("server"))
        .collect();
    let client_spans: Vec<_> = calls
        .iter()
        .filter(|s| s.get("side").map(String::as_str) == Some("client"))
        .collect();
    assert_eq!((server_spans.len(), client_spans.len()), (2, 2), "{calls:?}");
    for (spans, method) in [(&server_spans, ECHO.to_owned()), (&client_spans, ECHO_ID.to_string())] {
        assert_eq!(spans[0].get("method"), Some(&method));
        assert!(spans[0].contains_key("call_id"));
        assert_eq!(spans[0].get("status").map(String::as_str), Some("OK"));
        assert_eq!(spans[1].get("status").map(String::as_str), Some("ABORTED"));
    }
    server.shutdown().await;
}

// ---- a subscriber that keeps the fields of `volley.call` spans ----

#[derive(Clone, Default)]
struct Capture {
    spans: Arc<Mutex<Vec<BTreeMap<String, String>>>>,
}

impl Capture {
    fn calls(&self) -> Vec<BTreeMap<String, String>> {
        self.spans.lock().expect("lock").clone()
    }
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl tracing::Subscriber for Capture {
    fn register_callsite(&self, metadata: &'static tracing::Metadata<'static>) -> tracing::subscriber::Interest {
        // Asked on every span: the subscriber is this thread's only.
        if self.enabled(metadata) {
            tracing::subscriber::Interest::sometimes()
        } else {
            tracing::subscriber::Interest::never()
        }
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::DEBUG)
    }

    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        metadata.is_span() && metadata.name() == "volley.call"
    }

    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let mut fields = BTreeMap::new();
        span.record(&mut Fields(&mut fields));
        let mut spans = self.spans.lock().expect("lock");
        spans.push(fields);
        tracing::span::Id::from_u64(spans.len() as u64)
    }

    fn record(&self, span: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        let mut spans = self.spans.lock().expect("lock");
        if let Some(fields) = spans.get_mut(span.into_u64() as usize - 1) {
            values.record(&mut Fields(fields));
        }
    }

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, _: &tracing::Event<'_>) {}

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}
