//! Frame encode and decode.

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use volley::wire::{CallHead, CallId, Frame, decode_frame};
use volley::{Metadata, MethodId};

fn request(size: usize) -> Frame {
    let head = CallHead {
        method_id: MethodId::from_name("/bench.Echo/Echo"),
        ..CallHead::default()
    };
    Frame::Request {
        call_id: CallId(1),
        head,
        message: Some(Bytes::from(vec![0x5a; size])),
        end_stream: true,
    }
}

fn response(size: usize) -> Frame {
    Frame::Response {
        call_id: CallId(1),
        metadata: Metadata::new(),
        message: Some(Bytes::from(vec![0x5a; size])),
        end_stream: true,
    }
}

fn bench_wire(c: &mut Criterion) {
    let mut group = c.benchmark_group("wire");
    for size in [64usize, 4096] {
        let frame = request(size);
        group.throughput(Throughput::Bytes(frame.encoded_len() as u64));
        group.bench_function(format!("encode_request_{size}B"), |b| {
            let mut buf = BytesMut::with_capacity(64 * 1024);
            b.iter(|| {
                buf.clear();
                black_box(&frame).encode(&mut buf);
                black_box(buf.len())
            })
        });
        let mut encoded = BytesMut::new();
        response(size).encode(&mut encoded);
        let encoded = encoded.freeze();
        group.bench_function(format!("decode_response_{size}B"), |b| {
            b.iter(|| {
                let mut buf = BytesMut::from(&encoded[..]);
                black_box(decode_frame(&mut buf, u32::MAX).unwrap())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_wire);
criterion_main!(benches);
