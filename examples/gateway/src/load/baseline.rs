//! The unary round trip the gateway's order-to-ack latency is compared with: `QueryOrder` of an
//! order that does not exist, one call in flight, on the same gateway, client and placement as
//! the load. It crosses the same transport and service layers and takes the engine's lock, but
//! matches nothing and waits for no journal.

use std::time::Instant;

use hdrhistogram::Histogram;
use volley::Client;
use volley::net::Address;

use super::LoadError;
use crate::proto::OrderQuery;
use crate::proto::order_entry_client::OrderEntryClient;

/// Round trips measured after [`WARM_UP`] unmeasured ones.
pub const BASELINE_CALLS: u32 = 2_000;
/// Unmeasured calls first, so connection setup and first-touch costs stay out.
const WARM_UP: u32 = 200;

/// Measures `calls` `QueryOrder` round trips at one in flight; the latency in nanoseconds.
pub async fn unary_baseline(target: Address, calls: u32) -> Result<Histogram<u64>, LoadError> {
    let start_error = |reason: String| LoadError::Start {
        account: "baseline".into(),
        reason,
    };
    let client = OrderEntryClient::new(Client::connect(target).await.map_err(|err| start_error(err.to_string()))?);
    // 3 significant figures up to 60 s: creation cannot fail with these bounds.
    let mut latency = Histogram::new_with_bounds(1, 60_000_000_000, 3).unwrap_or_else(|_| unreachable!("valid bounds"));
    let query = OrderQuery {
        account: "baseline".into(),
        cl_ord_id: "no-such-order".into(),
    };
    for n in 0..WARM_UP + calls {
        let started = Instant::now();
        client
            .query_order(query.clone())
            .await
            .map_err(|status| start_error(status.to_string()))?;
        if n >= WARM_UP {
            let _ = latency.record(started.elapsed().as_nanos().max(1) as u64);
        }
    }
    Ok(latency)
}
