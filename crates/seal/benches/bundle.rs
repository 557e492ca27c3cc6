//! Opening the device identity (one Argon2id derivation), opening a
//! quadtank bundle (device key derivation from the fingerprint, signature
//! check, HPKE unwrap, decryption, model load), and sealing for 100
//! devices. Run with `cargo bench -p twinshield-seal --bench bundle`.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use twinshield_model::Model;
use twinshield_seal::{DeviceIdentity, EmbeddedSecret, PublisherKey, SealRequest, open, seal};

fn benches(c: &mut Criterion) {
    let model = Model::parse(
        "quadtank.twin",
        include_str!("../../../models/quadtank.twin"),
    )
    .unwrap();
    let root = std::env::temp_dir().join(format!("twinshield-bench-{}", std::process::id()));
    let publisher = PublisherKey::generate().unwrap();
    let devices: Vec<_> = (0..100)
        .map(|i| {
            let (id, _) =
                DeviceIdentity::open_or_create(&root.join(format!("d{i}")), &EmbeddedSecret)
                    .unwrap();
            id.fingerprint().clone()
        })
        .collect();
    let state = root.join("d0");
    let bundle = seal(&SealRequest {
        model: &model,
        devices: &devices[..1],
        publisher: &publisher,
        release: 1,
        secrets: &[],
        shield_policy: None,
        backend: None,
        backend_ca: None,
    })
    .unwrap();
    let trust = publisher.public();

    let mut g = c.benchmark_group("bundle");
    g.sample_size(20);
    // One Argon2id derivation (the first key wrap whose components are all
    // present), the white-box derivation before it and one AEAD open.
    g.bench_function("open_device_identity", |b| {
        b.iter(|| black_box(DeviceIdentity::open(&state, &EmbeddedSecret).unwrap()))
    });
    g.bench_function("open_quadtank_with_key_derivation", |b| {
        b.iter(|| {
            let id = DeviceIdentity::open(&state, &EmbeddedSecret).unwrap();
            black_box(
                open(black_box(&bundle), &trust, &id)
                    .unwrap()
                    .model
                    .states
                    .len(),
            )
        })
    });
    g.sample_size(10);
    g.bench_function("seal_quadtank_for_100_devices", |b| {
        b.iter(|| {
            black_box(
                seal(&SealRequest {
                    model: &model,
                    devices: &devices,
                    publisher: &publisher,
                    release: 2,
                    secrets: &[],
                    shield_policy: None,
                    backend: None,
                    backend_ca: None,
                })
                .unwrap()
                .len(),
            )
        })
    });
    g.finish();
    let _ = std::fs::remove_dir_all(&root);
}

criterion_group!(bundle, benches);
criterion_main!(bundle);
