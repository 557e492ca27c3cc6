//! The cost of the integrity guards: checksum throughput, and the cost of
//! a sync-loop tick (the per-sample call; it checks one region every
//! 100 ms).
#![allow(clippy::unwrap_used)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use twinshield_shield::guard::region_hash;

fn hash(c: &mut Criterion) {
    let data = vec![0x5au8; 1 << 20];
    let mut group = c.benchmark_group("guard");
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.bench_function("region_hash_1MiB", |b| {
        b.iter(|| region_hash(black_box(7), 3, black_box(&data)));
    });
    group.finish();
}

criterion_group!(benches, hash);
criterion_main!(benches);
