//! Metrics in the Prometheus text format, through `prometheus-client`: [`Metrics`] is a
//! [`Collector`] that reads a snapshot on each scrape.
//!
//! Series (all names below; `docs/observability.md` describes each):
//! per method, with a `method` label, `volley_server_calls_started_total`,
//! `volley_server_calls_finished_total` (and `code`), `volley_server_calls_in_flight`,
//! `volley_server_handling_seconds`, `volley_server_queueing_seconds`, and the client's
//! `volley_client_calls_started_total`, `volley_client_calls_finished_total`,
//! `volley_client_calls_in_flight`, `volley_client_round_trip_seconds`; per side (`side` label,
//! `client` or `server`), summed over connections: `volley_connections_open`,
//! `volley_connections_opened_total`, `volley_connections_closed_total`,
//! `volley_sent_bytes_total`, `volley_received_bytes_total`, `volley_frames_sent_total`,
//! `volley_frames_received_total`, `volley_write_syscalls_total`,
//! `volley_frames_per_write_syscall` and `volley_write_queue_bytes`; per endpoint of a balanced
//! channel (`channel` and `endpoint` labels; `balancers.rs`), `volley_endpoint_calls_total`,
//! `volley_endpoint_errors_total`, `volley_endpoint_retries_total`,
//! `volley_endpoint_hedges_total`, `volley_endpoint_ejections_total`,
//! `volley_endpoint_latency_seconds_total`, `volley_endpoint_latency_average_seconds`,
//! `volley_endpoint_calls_in_flight` and `volley_endpoint_up`.

use std::fmt;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use super::{CallCounts, ConnectionTotals, HistogramSnapshot, Metrics, MetricsSnapshot};
use crate::stats::{AdmissionStats, Refusal};
use crate::status::Code;

/// The `Content-Type` of [`Metrics::encode`]'s output: Prometheus text format 0.0.4.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Smallest histogram bound exposed: 2^10 ns (1.024 µs).
const FIRST_BOUND_EXPONENT: u32 = 10;
/// Largest finite histogram bound exposed: 2^34 ns (17.2 s); longer calls count in `+Inf`.
const LAST_BOUND_EXPONENT: u32 = 34;

impl Metrics {
    /// Appends every metric to `out` in the Prometheus text format ([`CONTENT_TYPE`]), for an
    /// HTTP handler of your own.
    ///
    /// ```
    /// let metrics = volley::metrics::Metrics::new();
    /// metrics.register_client_method("/echo.Echo/Say");
    /// let mut text = String::new();
    /// metrics.encode(&mut text).expect("writing to a String does not fail");
    /// assert!(text.contains("volley_client_calls_started_total{method=\"/echo.Echo/Say\"} 0"));
    /// ```
    pub fn encode(&self, out: &mut String) -> fmt::Result {
        let mut registry = Registry::default();
        self.register(&mut registry);
        prometheus_client::encoding::prometheus_text::encode(out, &registry)
    }

    /// Adds these metrics to a `prometheus-client` registry of yours, beside your own; they
    /// are read on each scrape. Use the re-exported [`prometheus_client`]
    /// to get the same version.
    ///
    /// ```
    /// use volley::metrics::Metrics;
    /// use volley::metrics::prometheus_client::{encoding::text, metrics::counter::Counter, registry::Registry};
    ///
    /// let metrics = Metrics::new();
    /// let mut registry = Registry::default();
    /// let orders: Counter = Counter::default();
    /// registry.register("orders", "Orders accepted", orders.clone());
    /// metrics.register(&mut registry);
    /// let mut text = String::new();
    /// text::encode(&mut text, &registry)?; // OpenMetrics; prometheus_text::encode for 0.0.4
    /// assert!(text.contains("orders_total 0") && text.contains("volley_connections_open"));
    /// # Ok::<(), std::fmt::Error>(())
    /// ```
    pub fn register(&self, registry: &mut Registry) {
        registry.register_collector(Box::new(self.clone()));
    }
}

impl Collector for Metrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        encode_snapshot(&self.snapshot(), &mut encoder)
    }
}

fn encode_snapshot(snapshot: &MetricsSnapshot, encoder: &mut DescriptorEncoder) -> fmt::Result {
    let server: Vec<(&str, &CallCounts)> = snapshot
        .methods
        .iter()
        .filter(|m| shown(m.server.registered, &m.server.calls, &m.name))
        .map(|m| (m.name.as_str(), &m.server.calls))
        .collect();
    let client: Vec<(&str, &CallCounts)> = snapshot
        .methods
        .iter()
        .filter(|m| shown(m.client.registered, &m.client.calls, &m.name))
        .map(|m| (m.name.as_str(), &m.client.calls))
        .collect();
    for (side, calls) in [("server", &server), ("client", &client)] {
        calls_started(encoder, side, calls)?;
        calls_finished(encoder, side, calls)?;
        calls_in_flight(encoder, side, calls)?;
    }
    let server_histograms = |pick: fn(&super::MethodSnapshot) -> &HistogramSnapshot| {
        snapshot
            .methods
            .iter()
            .filter(|m| shown(m.server.registered, &m.server.calls, &m.name))
            .map(move |m| (m.name.as_str(), pick(m)))
    };
    histogram_family(
        encoder,
        "volley_server_handling",
        "Server time per call, from reading the request frame to queueing the final frame; an answer given while the reader dispatches the calls of its read (an inline handler's) ends when that dispatch ends, just before the read's answers are written together",
        server_histograms(|m| &m.server.handling),
    )?;
    histogram_family(
        encoder,
        "volley_server_queueing",
        "Time from the client's send timestamp to the server reading the request (client write queue, network, server socket buffer)",
        server_histograms(|m| &m.server.queueing),
    )?;
    histogram_family(
        encoder,
        "volley_client_round_trip",
        "Client time per call, from starting it to its outcome",
        snapshot
            .methods
            .iter()
            .filter(|m| shown(m.client.registered, &m.client.calls, &m.name))
            .map(|m| (m.name.as_str(), &m.client.round_trip)),
    )?;
    let totals = [&snapshot.client_connections, &snapshot.server_connections];
    connections(encoder, totals)?;
    frames_per_write(encoder, totals)?;
    admission(encoder, &snapshot.admission)?;
    super::balancers::encode(encoder, &snapshot.balanced_channels)
}

/// A method's series on one side are shown once it is registered there (`other` never is) or
/// has calls there (a client calling a method its process also serves, say).
fn shown(registered: bool, calls: &CallCounts, name: &str) -> bool {
    (registered && name != super::registry::OTHER) || calls.started > 0 || calls.finished_total() > 0
}

fn calls_started(encoder: &mut DescriptorEncoder, side: &str, calls: &[(&str, &CallCounts)]) -> fmt::Result {
    let name = format!("volley_{side}_calls_started");
    let mut family = encoder.encode_descriptor(&name, "Calls started, by method", None, MetricType::Counter)?;
    for (method, counts) in calls {
        counter(&mut family.encode_family(&[("method", *method)])?, counts.started)?;
    }
    Ok(())
}

fn calls_finished(encoder: &mut DescriptorEncoder, side: &str, calls: &[(&str, &CallCounts)]) -> fmt::Result {
    let name = format!("volley_{side}_calls_finished");
    let mut family = encoder.encode_descriptor(
        &name,
        "Calls finished, by method and status code (OK always shown, other codes once seen)",
        None,
        MetricType::Counter,
    )?;
    for (method, counts) in calls {
        for (byte, &n) in counts.finished.iter().enumerate() {
            if n > 0 || byte == 0 {
                let code = Code::from_u8(byte as u8).as_str();
                counter(&mut family.encode_family(&[("method", *method), ("code", code)])?, n)?;
            }
        }
    }
    Ok(())
}

fn calls_in_flight(encoder: &mut DescriptorEncoder, side: &str, calls: &[(&str, &CallCounts)]) -> fmt::Result {
    let name = format!("volley_{side}_calls_in_flight");
    let mut family = encoder.encode_descriptor(&name, "Calls started and not yet finished, by method", None, MetricType::Gauge)?;
    for (method, counts) in calls {
        family.encode_family(&[("method", *method)])?.encode_gauge(&counts.in_flight())?;
    }
    Ok(())
}

fn histogram_family<'a>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    histograms: impl Iterator<Item = (&'a str, &'a HistogramSnapshot)>,
) -> fmt::Result {
    let mut family = encoder.encode_descriptor(name, help, Some(&Unit::Seconds), MetricType::Histogram)?;
    let mut buckets = Vec::with_capacity(64);
    for (method, histogram) in histograms {
        prometheus_buckets(histogram, &mut buckets);
        let count = histogram.count();
        let sum = histogram.sum_ns() as f64 / 1e9;
        family
            .encode_family(&[("method", method)])?
            .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
    }
    Ok(())
}

/// The exposed bucket bounds in ns: every power of two and 1.5 × every power of two from 2^10 to
/// 2^34, all exact bounds of the histogram's own buckets.
pub(crate) fn bucket_bounds_ns() -> impl Iterator<Item = u64> {
    (FIRST_BOUND_EXPONENT..LAST_BOUND_EXPONENT)
        .flat_map(|e| [1u64 << e, 3u64 << (e - 1)])
        .chain(std::iter::once(1u64 << LAST_BOUND_EXPONENT))
}

/// `(upper bound in seconds, count in this bucket alone)`, ending with `+Inf`, as
/// `prometheus-client` takes them.
fn prometheus_buckets(histogram: &HistogramSnapshot, out: &mut Vec<(f64, u64)>) {
    out.clear();
    let mut below = 0;
    for bound in bucket_bounds_ns() {
        let cumulative = histogram.count_at_most_ns(bound);
        out.push((bound as f64 / 1e9, cumulative - below));
        below = cumulative;
    }
    out.push((f64::INFINITY, histogram.count() - below));
}

fn connections(encoder: &mut DescriptorEncoder, totals: [&ConnectionTotals; 2]) -> fmt::Result {
    type Read = fn(&ConnectionTotals) -> u64;
    let counters: [(&str, &str, Read); 7] = [
        ("volley_connections_opened", "Connections opened", |t| t.opened),
        ("volley_sent_bytes", "Bytes written to sockets", |t| t.stats.bytes_out),
        ("volley_received_bytes", "Bytes read from sockets", |t| t.stats.bytes_in),
        ("volley_frames_sent", "Frames written", |t| t.stats.frames_out),
        ("volley_frames_received", "Frames read", |t| t.stats.frames_in),
        ("volley_write_syscalls", "write/writev system calls", |t| t.stats.write_syscalls),
        ("volley_connections_closed", "Connections closed or closing", |t| {
            t.opened - t.open.min(t.opened)
        }),
    ];
    for (name, help, read) in counters {
        let help = format!("{help}, summed over every connection of a side (client or server)");
        let mut family = encoder.encode_descriptor(name, &help, None, MetricType::Counter)?;
        for (side, total) in ["client", "server"].into_iter().zip(totals) {
            counter(&mut family.encode_family(&[("side", side)])?, read(total))?;
        }
    }
    let gauges: [(&str, &str, Read); 2] = [
        ("volley_connections_open", "Connections open now", |t| t.open),
        ("volley_write_queue_bytes", "Bytes waiting in write queues now", |t| {
            t.write_queue_bytes
        }),
    ];
    for (name, help, read) in gauges {
        let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
        for (side, total) in ["client", "server"].into_iter().zip(totals) {
            family.encode_family(&[("side", side)])?.encode_gauge(&read(total))?;
        }
    }
    Ok(())
}

/// `volley_connections_refused_total{reason}` and `volley_connections_evicted_total`.
fn admission(encoder: &mut DescriptorEncoder, stats: &AdmissionStats) -> fmt::Result {
    let mut family = encoder.encode_descriptor(
        "volley_connections_refused",
        "Connections a server refused at accept, by reason (peer_connections, peer_handshakes, server_full)",
        None,
        MetricType::Counter,
    )?;
    let counts = [
        stats.refused_peer_connections,
        stats.refused_peer_handshakes,
        stats.refused_server_full,
    ];
    for (refusal, count) in Refusal::ALL.into_iter().zip(counts) {
        counter(&mut family.encode_family(&[("reason", refusal.label())])?, count)?;
    }
    let mut family = encoder.encode_descriptor(
        "volley_connections_evicted",
        "Idle connections a server at max_connections closed (GoAway) to make room for a new one",
        None,
        MetricType::Counter,
    )?;
    counter(&mut family, stats.evicted)
}

fn frames_per_write(encoder: &mut DescriptorEncoder, totals: [&ConnectionTotals; 2]) -> fmt::Result {
    let mut family = encoder.encode_descriptor(
        "volley_frames_per_write_syscall",
        "Frames sent per write system call since start: how well writes batch",
        None,
        MetricType::Gauge,
    )?;
    for (side, total) in ["client", "server"].into_iter().zip(totals) {
        family
            .encode_family(&[("side", side)])?
            .encode_gauge(&total.stats.frames_per_write())?;
    }
    Ok(())
}

fn counter(encoder: &mut MetricEncoder, value: u64) -> fmt::Result {
    encoder.encode_counter::<NoLabelSet, _, u64>(&value, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::histogram::bucket_index;

    #[test]
    fn exposed_bounds_are_exact_bucket_bounds() {
        for bound in bucket_bounds_ns() {
            assert_ne!(bucket_index(bound), bucket_index(bound + 1), "{bound} ns ends a bucket");
        }
        assert_eq!(bucket_bounds_ns().count(), 49);
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_end_at_the_count() {
        let metrics = Metrics::new();
        let slot = metrics.register_server_method("/a.B/C");
        for us in [1, 2, 3, 50, 50, 2_000, 40_000_000] {
            let started = metrics.server_call_started(slot, 0, std::time::Instant::now());
            metrics.server_call_finished(slot, Code::Ok, started.minus_ns(us * 1_000));
        }
        let mut text = String::new();
        metrics.encode(&mut text).expect("encode");
        let buckets: Vec<u64> = text
            .lines()
            .filter(|l| l.starts_with("volley_server_handling_seconds_bucket{method=\"/a.B/C\""))
            .map(|l| l.rsplit(' ').next().and_then(|v| v.parse().ok()).expect("a count"))
            .collect();
        assert_eq!(buckets.len(), 50);
        assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "cumulative: {buckets:?}");
        assert_eq!(buckets.last(), Some(&7));
        assert!(
            text.contains("volley_server_handling_seconds_count{method=\"/a.B/C\"} 7\n"),
            "{text}"
        );
        assert!(text.contains("volley_server_calls_finished_total{method=\"/a.B/C\",code=\"OK\"} 7\n"));
        assert!(!text.contains("method=\"other\""), "other has no calls yet: {text}");
    }
}
