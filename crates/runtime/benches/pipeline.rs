//! In-process twin pipeline throughput: decode a register image → EKF →
//! detectors → history append, on samples recorded from the reference
//! plant. Run with `cargo bench -p twinshield-runtime --bench pipeline`.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use twinshield_connect::{Point, PointMap, RegisterBank, Table};
use twinshield_model::Model;
use twinshield_plant::{PlantConfig, QuadTank};
use twinshield_runtime::{Twin, TwinSettings};

const SAMPLES: usize = 10_000;

fn point(name: &str, table: Table, address: u16, scale: f64) -> Point {
    Point {
        name: name.into(),
        table,
        address,
        words: 1,
        scale,
        offset: 0.0,
        signed: false,
        range: (0.0, 25.0),
    }
}

fn benches(c: &mut Criterion) {
    let model = Model::parse(
        "quadtank.twin",
        include_str!("../../../models/quadtank.twin"),
    )
    .unwrap();
    let mut points: Vec<Point> = (0..4)
        .map(|i| point(&format!("y{}", i + 1), Table::Input, i, 0.01))
        .collect();
    points.push(point("v1", Table::Holding, 0, 0.001));
    points.push(point("v2", Table::Holding, 1, 0.001));
    let map = PointMap::new(1, points).unwrap();

    // Record register images from the plant at 10 Hz.
    let mut plant = QuadTank::new(PlantConfig {
        seed: 7,
        attack: None,
    })
    .unwrap();
    let mut images = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        plant.step(0.1).unwrap();
        let r = plant.registers();
        images.push(RegisterBank {
            coils: r.coils.to_vec(),
            discrete: vec![],
            input: r.input.to_vec(),
            holding: r.holding.to_vec(),
        });
    }

    let mut g = c.benchmark_group("twin_pipeline");
    g.throughput(Throughput::Elements(SAMPLES as u64));
    g.sample_size(20);
    g.bench_function("decode_ekf_detect_append", |b| {
        b.iter_with_setup(
            || Twin::new(&model, TwinSettings::default()).unwrap(),
            |mut twin| {
                for (k, bank) in images.iter().enumerate() {
                    let reading = bank.read(&map).unwrap();
                    let (y, u) = reading.values.split_at(4);
                    black_box(twin.update(k as f64 * 0.1, u, y).unwrap().len());
                }
                twin
            },
        )
    });
    g.finish();
}

criterion_group!(pipeline, benches);
criterion_main!(pipeline);
