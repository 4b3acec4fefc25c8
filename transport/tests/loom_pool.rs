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

#[test]
fn loom_release_idle_racing_take_and_give_never_loses_a_taken_buffer_or_exceeds_the_cap() {
    loom::model(|| {
        let pool = BufferPool::new(BufferPoolConfig {
            max_pooled: 2,
            buffer_capacity: 16,
            max_retained_capacity: 64,
        });
        pool.give(BytesMut::with_capacity(16));
        pool.give(BytesMut::with_capacity(16));
        // Starts a period with both pooled.
        assert_eq!(pool.release_idle(), 0);
        let user = {
            let pool = pool.clone();
            loom::thread::spawn(move || {
                let mut buf = pool.take();
                buf.extend_from_slice(b"frame");
                assert_eq!(&buf[..], b"frame", "a taken buffer is the taker's alone");
                pool.give(buf);
            })
        };
        let released = pool.release_idle();
        user.join().unwrap();
        // The release either ran before the take (both idle so far: both dropped, the user got a
        // fresh buffer) or after it (the one taken was needed: only the other dropped). Either
        // way the buffer the user gave back is the one left.
        assert!(released == 1 || released == 2, "released {released}");
        assert_eq!(pool.pooled(), 1);
    });
}
