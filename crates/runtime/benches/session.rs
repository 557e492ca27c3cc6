//! The session's own cost over the twin's: the same 10,000 recorded
//! register images of `crates/twin/benches/pipeline.rs`, but each goes
//! through a `Session` (plant source, wiring, twin, alarm bookkeeping,
//! observer, the shield's per-sample calls) instead of straight into the
//! twin. Run with `cargo bench -p twinshield-runtime --bench session`;
//! compare with `cargo bench -p twinshield-twin --bench pipeline`.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;
use twinshield_connect::{
    ConnectionState, PlantSample, PlantSource, PointMap, Quality, ReadError, RegisterBank,
    SourceInfo,
};
use twinshield_plant::{PlantConfig, QuadTank};
use twinshield_runtime::summary::AlarmSummary;
use twinshield_runtime::{
    Progress, SampleTime, Session, SessionObserver, ShieldHandle, Wiring, wiring,
};
use twinshield_twin::{Twin, TwinSettings};

const SAMPLES: usize = 10_000;

/// Recorded register images, replayed one per read.
struct Replay {
    map: PointMap,
    images: Arc<Vec<RegisterBank>>,
    next: usize,
}

impl PlantSource for Replay {
    type Error = ReadError;

    async fn read(&mut self) -> Result<PlantSample, ReadError> {
        let bank = &self.images[self.next % self.images.len()];
        self.next += 1;
        let r = bank.read(&self.map)?;
        Ok(PlantSample {
            quality: vec![Quality::Good; r.values.len()],
            values: r.values,
            source_time: None,
        })
    }

    fn state(&self) -> ConnectionState {
        ConnectionState::Connected
    }

    fn describe(&self) -> SourceInfo {
        SourceInfo {
            protocol: "modbus",
            address: "replay".into(),
            channels: self.map.points().iter().map(|p| p.name.clone()).collect(),
        }
    }
}

struct Quiet;

impl SessionObserver for Quiet {
    fn alarm_raised(&mut self, a: &AlarmSummary) {
        black_box(a.id);
    }
    fn progress(&mut self, p: &Progress) {
        black_box(p.samples);
    }
    fn notice(&mut self, _: &str) {}
}

fn images() -> Vec<RegisterBank> {
    let mut plant = QuadTank::new(PlantConfig {
        seed: 7,
        attack: None,
    })
    .unwrap();
    (0..SAMPLES)
        .map(|_| {
            plant.step(0.1).unwrap();
            let r = plant.registers();
            RegisterBank {
                coils: r.coils.to_vec(),
                discrete: vec![],
                input: r.input_registers().to_vec(),
                holding: r.holding.to_vec(),
            }
        })
        .collect()
}

fn shield() -> Arc<twinshield_shield::Shield> {
    let mut memory = twinshield_shield::guard::SelfMemory::open().unwrap();
    let table = twinshield_shield::guard::running_code_table(&mut memory, 1, 8192).unwrap();
    twinshield_shield::Shield::start(
        &twinshield_shield::Options {
            unprotected: true,
            defer_to_bundle_policy: false,
            guard_table: Some(table),
            hold_tracer_slot: false,
        },
        Box::new(|_, _| {}),
    )
    .unwrap()
}

fn benches(c: &mut Criterion) {
    let model = wiring::quadtank().unwrap();
    let map = wiring::modbus_map(&model).unwrap();
    let images = Arc::new(images());
    let shield = shield();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("session");
    g.throughput(Throughput::Elements(SAMPLES as u64));
    g.sample_size(20);
    for (name, handle) in [
        ("source_wiring_twin_alarms", ShieldHandle::new(None)),
        (
            "source_wiring_twin_alarms_with_shield",
            ShieldHandle::new(Some(shield.clone())),
        ),
    ] {
        g.bench_function(name, |b| {
            b.iter_with_setup(
                || {
                    let source = Replay {
                        map: map.clone(),
                        images: Arc::clone(&images),
                        next: 0,
                    };
                    Session {
                        model: &model,
                        wiring: Wiring::new(&model, &source.describe()).unwrap(),
                        source,
                        twin: Twin::new(&model, TwinSettings::default()).unwrap(),
                        period: Duration::from_millis(100),
                        feed: None,
                        attack: None,
                        recorder: None,
                        publisher: None,
                        shield: handle.clone(),
                        time: SampleTime::Poll,
                    }
                    .stepped()
                },
                |mut stepped| {
                    rt.block_on(async {
                        for k in 0..SAMPLES {
                            stepped.step(k as f64 * 0.1, &mut Quiet).await;
                        }
                    });
                    stepped.finish().twin.samples()
                },
            )
        });
    }
    g.finish();
}

criterion_group!(session, benches);
criterion_main!(session);
