//! The writer task: drains the write queue with one vectored write per batch.

use std::future::poll_fn;
use std::io::IoSlice;
use std::sync::Arc;

use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::Shared;
use super::write_queue::Batch;
use crate::stats::Stats;
use crate::status::Status;

/// iovecs per `writev` call (64): enough for many chunked messages, far below IOV_MAX (1024).
const MAX_IOVECS: usize = 64;

pub(crate) async fn run<W: AsyncWrite + Unpin>(shared: Arc<Shared>, mut writer: W) {
    let mut batch = Batch::with_buf(shared.pool.take());
    while poll_fn(|cx| shared.queue.poll_take(cx, &mut batch)).await {
        if batch.len() >= shared.write_queue_cap {
            // Callers may be waiting for room; the queue is empty now.
            shared.capacity.notify_waiters();
        }
        if let Err(err) = write_batch(&shared.stats, &mut writer, &batch).await {
            shared.terminate(Status::unavailable(format!(
                "connection lost while writing: {err}; retry on a new connection"
            )));
            break;
        }
        Stats::add(&shared.stats.frames_out, batch.frames as u64);
        Stats::add(&shared.stats.bytes_out, batch.len() as u64);
        batch.clear();
    }
    // Everything queued before the close went out; send FIN so the peer sees a clean end.
    let _ = writer.shutdown().await;
    shared.pool.give(std::mem::take(&mut batch.buf));
}

async fn write_batch<W: AsyncWrite + Unpin>(stats: &Stats, writer: &mut W, batch: &Batch) -> std::io::Result<()> {
    let total = batch.len();
    let mut written = 0;
    while written < total {
        let mut iov = [IoSlice::new(&[]); MAX_IOVECS];
        let count = batch.io_slices(written, &mut iov);
        let n = writer.write_vectored(&iov[..count]).await?;
        Stats::add(&stats.write_syscalls, 1);
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        written += n;
    }
    Ok(())
}
