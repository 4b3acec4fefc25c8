//! The balanced channels a [`super::Metrics`] exposes, and their per-endpoint series.
//!
//! A [`crate::balance::BalancedChannel`] built with a `Metrics` registers itself here, held
//! weakly: a scrape reads the snapshot each live channel gives
//! ([`crate::balance::BalancedChannel::endpoints`]) and forgets channels that were dropped.
//! Nothing here runs per call: the channel's counters are the relaxed atomics it keeps anyway.

use std::fmt;
use std::sync::{Mutex, Weak};

use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

use crate::balance::{EndpointSnapshot, Phase};
use crate::sync::lock;

/// Something that lists a balanced channel's endpoints with their counters.
pub(crate) trait EndpointSource: Send + Sync + 'static {
    /// The endpoints now.
    fn endpoints(&self) -> Vec<EndpointSnapshot>;
}

/// One balanced channel's endpoints, in a [`super::MetricsSnapshot`].
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct BalancedChannelSnapshot {
    /// The channel's name: its `channel` label.
    pub name: String,
    /// Its endpoints, with their counters.
    pub endpoints: Vec<EndpointSnapshot>,
}

/// The registered channels, by name.
#[derive(Default)]
pub(crate) struct BalancedChannels {
    channels: Mutex<Registered>,
}

#[derive(Default)]
struct Registered {
    live: Vec<(String, Weak<dyn EndpointSource>)>,
    /// Channels registered so far: numbers default names and de-duplicating suffixes.
    count: u64,
}

impl fmt::Debug for BalancedChannels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let channels = lock(&self.channels);
        f.debug_list().entries(channels.live.iter().map(|(name, _)| name)).finish()
    }
}

impl BalancedChannels {
    /// Registers a channel under `name` (or `balanced-N`); returns the name its series carry.
    pub(crate) fn register(&self, name: Option<&str>, source: Weak<dyn EndpointSource>) -> String {
        let mut channels = lock(&self.channels);
        channels.live.retain(|(_, source)| source.strong_count() > 0);
        channels.count += 1;
        let count = channels.count;
        let mut name = name.map_or_else(|| format!("balanced-{count}"), str::to_owned);
        if channels.live.iter().any(|(taken, _)| *taken == name) {
            name = format!("{name}-{count}");
        }
        channels.live.push((name.clone(), source));
        name
    }

    /// Every live channel's endpoints, in registration order; dropped channels are forgotten.
    pub(crate) fn snapshot(&self) -> Vec<BalancedChannelSnapshot> {
        let live: Vec<(String, std::sync::Arc<dyn EndpointSource>)> = {
            let mut channels = lock(&self.channels);
            channels.live.retain(|(_, source)| source.strong_count() > 0);
            channels
                .live
                .iter()
                .filter_map(|(name, source)| Some((name.clone(), source.upgrade()?)))
                .collect()
        };
        // Outside the lock: a channel's snapshot takes its own locks.
        live.into_iter()
            .map(|(name, source)| BalancedChannelSnapshot {
                name,
                endpoints: source.endpoints(),
            })
            .collect()
    }
}

/// Reads one figure of an endpoint.
type Read = fn(&EndpointSnapshot) -> u64;

/// The per-endpoint series, labelled `channel` and `endpoint` (the address).
pub(super) fn encode(encoder: &mut DescriptorEncoder, channels: &[BalancedChannelSnapshot]) -> fmt::Result {
    let counters: [(&str, &str, Read); 5] = [
        (
            "volley_endpoint_calls",
            "Attempts a balanced channel sent to the endpoint (first attempts, retries and hedges)",
            |e| e.calls,
        ),
        (
            "volley_endpoint_errors",
            "Attempts to the endpoint that failed (any status but OK, cancelled hedges included)",
            |e| e.errors,
        ),
        ("volley_endpoint_retries", "Retries a balanced channel sent to the endpoint", |e| {
            e.retries
        }),
        (
            "volley_endpoint_hedges",
            "Hedged copies a balanced channel sent to the endpoint",
            |e| e.hedges,
        ),
        (
            "volley_endpoint_ejections",
            "Times the endpoint was ejected after repeated failures",
            |e| e.ejections,
        ),
    ];
    for (name, help, read) in counters {
        let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
        for (channel, endpoint, e) in endpoints(channels) {
            family
                .encode_family(&[("channel", channel), ("endpoint", endpoint.as_str())])?
                .encode_counter::<NoLabelSet, _, u64>(&read(e), None)?;
        }
    }
    let mut family = encoder.encode_descriptor(
        "volley_endpoint_latency",
        "Total time of the finished attempts to the endpoint (divide by volley_endpoint_calls_total for the mean)",
        Some(&Unit::Seconds),
        MetricType::Counter,
    )?;
    for (channel, endpoint, e) in endpoints(channels) {
        family
            .encode_family(&[("channel", channel), ("endpoint", endpoint.as_str())])?
            .encode_counter::<NoLabelSet, _, f64>(&e.latency.as_secs_f64(), None)?;
    }
    let mut family = encoder.encode_descriptor(
        "volley_endpoint_latency_average",
        "The latency average the balancer compares (decays while the endpoint is idle)",
        Some(&Unit::Seconds),
        MetricType::Gauge,
    )?;
    for (channel, endpoint, e) in endpoints(channels) {
        family
            .encode_family(&[("channel", channel), ("endpoint", endpoint.as_str())])?
            .encode_gauge(&e.latency_average.as_secs_f64())?;
    }
    let mut family = encoder.encode_descriptor(
        "volley_endpoint_calls_in_flight",
        "Calls from the channel in flight on the endpoint now (unary attempts and open streams)",
        None,
        MetricType::Gauge,
    )?;
    for (channel, endpoint, e) in endpoints(channels) {
        family
            .encode_family(&[("channel", channel), ("endpoint", endpoint.as_str())])?
            .encode_gauge(&i64::from(e.in_flight))?;
    }
    let mut family = encoder.encode_descriptor(
        "volley_endpoint_up",
        "1 while the endpoint takes calls (idle or ready), 0 while it backs off or is ejected",
        None,
        MetricType::Gauge,
    )?;
    for (channel, endpoint, e) in endpoints(channels) {
        let up = i64::from(matches!(e.phase, Phase::Idle | Phase::Ready));
        family
            .encode_family(&[("channel", channel), ("endpoint", endpoint.as_str())])?
            .encode_gauge(&up)?;
    }
    Ok(())
}

/// Every endpoint of every channel, with the channel's name and the endpoint's address text.
fn endpoints(channels: &[BalancedChannelSnapshot]) -> impl Iterator<Item = (&str, String, &EndpointSnapshot)> {
    channels
        .iter()
        .flat_map(|c| c.endpoints.iter().map(move |e| (c.name.as_str(), e.address.to_string(), e)))
}
