//! loom model of the buffer pool. Run with
//! `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p volley --release --test loom_pool`.
#![cfg(loom)]

use bytes::BytesMut;
use volley::buf::{BufferPool, BufferPoolConfig};

#[test]
fn loom_pool_never_exceeds_its_cap_under_concurrent_give_and_take() {
    loom::model(|| {
        let pool = BufferPool::new(BufferPoolConfig {
            max_pooled: 1,
            buffer_capacity: 16,
            max_retained_capacity: 64,
        });
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let pool = pool.clone();
                loom::thread::spawn(move || {
                    let mut buf = pool.take();
                    buf.extend_from_slice(b"x");
                    pool.give(buf);
                })
            })
            .collect();
        pool.give(BytesMut::with_capacity(16));
        for handle in handles {
            handle.join().unwrap();
        }
        assert!(pool.pooled() <= 1);
        assert!(pool.take().is_empty());
    });
}
