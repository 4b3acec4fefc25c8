//! The buffer pool against plain allocation.

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{Criterion, criterion_group, criterion_main};
use volley::buf::BufferPool;

fn bench_pool(c: &mut Criterion) {
    let mut group = c.benchmark_group("pool");
    let pool = BufferPool::default();
    group.bench_function("take_give_64KiB", |b| {
        b.iter(|| {
            let mut buf = pool.take();
            buf.extend_from_slice(black_box(b"frame"));
            pool.give(buf);
        })
    });
    group.bench_function("allocate_64KiB", |b| {
        b.iter(|| {
            let mut buf = BytesMut::with_capacity(64 * 1024);
            buf.extend_from_slice(black_box(b"frame"));
            black_box(buf);
        })
    });
    group.finish();
}

criterion_group!(benches, bench_pool);
criterion_main!(benches);
