//! In-process twin pipeline throughput: decode a register image → EKF →
//! detectors → history append, on samples recorded from the reference
//! plant. Run with `cargo bench -p twinshield-twin --bench pipeline`.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use twinshield_connect::{Point, PointMap, RegisterBank, Table};
use twinshield_model::Model;
use twinshield_plant::{PlantConfig, QuadTank};
use twinshield_twin::{Twin, TwinSettings};

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

    // The shield's per-sample calls, as the sync loop makes them (a timed
    // checkpoint around the decision, a tick that checks a guard region
    // every 100 ms), with its monitor thread running. The process was never
    // hardened, so the guards check a table of this process's own code
    // taken at start (same region sizes as `harden`).
    let mut memory = twinshield_shield::guard::SelfMemory::open().unwrap();
    let table = twinshield_shield::guard::running_code_table(&mut memory, 1, 8192).unwrap();
    let shield = twinshield_shield::Shield::start(
        &twinshield_shield::Options {
            unprotected: true,
            defer_to_bundle_policy: false,
            guard_table: Some(table),
            hold_tracer_slot: false,
        },
        Box::new(|_, _| {}),
    )
    .unwrap();
    assert!(shield.guarded());

    let mut g = c.benchmark_group("twin_pipeline");
    g.throughput(Throughput::Elements(SAMPLES as u64));
    g.sample_size(20);
    for (name, shielded) in [
        ("decode_ekf_detect_append", None),
        ("decode_ekf_detect_append_with_shield", Some(&shield)),
    ] {
        g.bench_function(name, |b| {
            b.iter_with_setup(
                || Twin::new(&model, TwinSettings::default()).unwrap(),
                |mut twin| {
                    for (k, bank) in images.iter().enumerate() {
                        let reading = bank.read(&map).unwrap();
                        let (y, u) = reading.values.split_at(4);
                        let checkpoint = shielded.map(|s| s.checkpoint());
                        black_box(twin.update(k as f64 * 0.1, u, y).unwrap().len());
                        if let (Some(c), Some(s)) = (checkpoint, shielded) {
                            c.end();
                            s.tick();
                        }
                    }
                    twin
                },
            )
        });
    }
    g.finish();
    let f = shield.findings();
    assert!(
        f.iter()
            .all(|(f, _)| f.class == twinshield_shield::FindingClass::Environment),
        "{f:?}"
    );
}

criterion_group!(pipeline, benches);
criterion_main!(pipeline);
