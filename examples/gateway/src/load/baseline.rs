//! The unary round trip the gateway's order-to-ack latency is compared with: `QueryOrder` of an
//! order that does not exist, one call in flight, on the same gateway, client and placement as
//! the load. It crosses the same transport and service layers and takes the engine's lock, but
//! matches nothing and waits for no journal.
//!
//! [`unary_baseline`] measures it back to back, warm. [`unary_after_fsync`] measures it the way
//! a lone order's transport half runs under `--fsync every`: each call right after a write and an
//! `fdatasync` on the journal's disk, on the same runtime, so the round trip starts on a CPU that
//! just waited for the disk.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

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
/// The size of the record [`unary_after_fsync`] writes before each call, about a journaled
/// order's.
const SCRATCH_RECORD: usize = 72;
/// The scratch file's zeroed space, written over in place (as the journal writes its records).
const SCRATCH_LEN: u64 = 1 << 20;

/// Measures `calls` `QueryOrder` round trips at one in flight; the latency in nanoseconds.
pub async fn unary_baseline(target: Address, calls: u32) -> Result<Histogram<u64>, LoadError> {
    measure(target, calls, |_| Ok(())).await
}

/// Measures `calls` `QueryOrder` round trips at one in flight, each right after a
/// [`SCRATCH_RECORD`]-byte write and an `fdatasync` of a scratch file created at `scratch` (on
/// the journal's disk; removed afterwards). The write and the sync are not timed, as the fsync
/// is subtracted from a lone order's latency; the latency is in nanoseconds.
pub async fn unary_after_fsync(target: Address, calls: u32, scratch: &Path) -> Result<Histogram<u64>, LoadError> {
    let scratch_error = |err: io::Error| LoadError::Start {
        account: "baseline".into(),
        reason: format!("scratch file {}: {err}", scratch.display()),
    };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(scratch)
        .map_err(scratch_error)?;
    // Zeroed and synced ahead, so each sync flushes data only, as the journal's do.
    let prepared = file.write_all_at(&vec![0; SCRATCH_LEN as usize], 0).and_then(|()| file.sync_data());
    let measured = match prepared {
        Ok(()) => measure(target, calls, |n| write_and_sync(&file, n)).await,
        Err(err) => Err(scratch_error(err)),
    };
    drop(file);
    let _ = std::fs::remove_file(scratch);
    measured
}

/// Writes the `n`th scratch record in place and syncs it.
fn write_and_sync(file: &File, n: u32) -> io::Result<()> {
    let record = [n as u8 | 1; SCRATCH_RECORD];
    let offset = (u64::from(n) * SCRATCH_RECORD as u64) % (SCRATCH_LEN - SCRATCH_RECORD as u64);
    file.write_all_at(&record, offset)?;
    file.sync_data()
}

/// The measuring loop: `before_each(n)` (untimed), then one timed call.
async fn measure(target: Address, calls: u32, mut before_each: impl FnMut(u32) -> io::Result<()>) -> Result<Histogram<u64>, LoadError> {
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
        before_each(n).map_err(|err| start_error(format!("before call {n}: {err}")))?;
        let started = Instant::now();
        client
            .query_order(query.clone())
            .await
            .map_err(|status| start_error(status.to_string()))?;
        if n >= WARM_UP {
            let _ = latency.record(duration_nanos(started.elapsed()));
        }
    }
    Ok(latency)
}

fn duration_nanos(elapsed: Duration) -> u64 {
    u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX).max(1)
}
