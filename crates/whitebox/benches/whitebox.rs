//! White-box throughput against the `aes` crate (one core, one block at a
//! time, as the key derivation uses it), and table generation time.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::hint::black_box;

use aes::Aes128;
use aes::cipher::{BlockCipherEncrypt, KeyInit};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use twinshield_whitebox::WhiteBox;
use twinshield_whitebox::generate::generate;

fn encrypt(c: &mut Criterion) {
    let (key, encoding_key) = ([0x2bu8; 16], [0x7eu8; 16]);
    let image = generate(&key, &encoding_key, 1);
    let wb = WhiteBox::new(&image).unwrap();
    let cipher = Aes128::new(&key.into());
    let mut group = c.benchmark_group("aes128_block");
    group.throughput(Throughput::Bytes(16));
    let mut block = [0u8; 16];
    group.bench_function("whitebox", |b| {
        b.iter(|| {
            block = wb.encrypt_encoded(black_box(&block));
        });
    });
    let mut plain = [0u8; 16].into();
    group.bench_function("aes_crate", |b| {
        b.iter(|| cipher.encrypt_block(black_box(&mut plain)));
    });
    group.finish();
}

fn generation(c: &mut Criterion) {
    let mut group = c.benchmark_group("whitebox_generate");
    group.sample_size(10);
    group.bench_function("tables", |b| {
        b.iter(|| generate(black_box(&[1u8; 16]), &[2u8; 16], 3));
    });
    group.finish();
}

criterion_group!(benches, encrypt, generation);
criterion_main!(benches);
