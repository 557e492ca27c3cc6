//! Store benchmarks: sustained ingestion, ingestion in small commits (as
//! `run` commits at 10 Hz: every 200 ms), a 24-hour range query of one
//! channel downsampled to 1,000 points, and bytes per stored sample. Run
//! with `cargo bench -p twinshield-store --bench store`.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::print_stdout
)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::Duration;
use twinshield_store::{Sample, Store, WriterConfig};
use zeroize::Zeroizing;

/// The quadtank twin's sample: 2 inputs, 4 outputs, 4 estimates, 4 residuals.
fn schema() -> Vec<String> {
    let mut s: Vec<String> = ["v1", "v2", "y1", "y2", "y3", "y4"]
        .iter()
        .map(|x| (*x).to_owned())
        .collect();
    s.extend((1..=4).map(|i| format!("est:h{i}")));
    s.extend((1..=4).map(|i| format!("res:y{i}")));
    s
}

fn sample(t: f64, i: u32) -> Sample {
    let x = (i % 1000) as f32 * 0.01;
    Sample {
        time: t,
        values: (0..14).map(|k| x + k as f32).collect(),
    }
}

fn dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!(
        "twinshield-store-bench-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Storage as `run` writes: an hour at 10 Hz, a commit per 2 samples.
fn storage_in_small_commits(key: &Zeroizing<[u8; 32]>, schema: &[String]) {
    let d = dir("hour");
    let hour = 36_000u32;
    {
        let w = Store::open(&d, key, Some(schema))
            .unwrap()
            .into_writer(WriterConfig {
                batch_max: 2,
                ..WriterConfig::default()
            })
            .unwrap();
        for i in 0..hour {
            while !w.push(sample(1.7e9 + f64::from(i) * 0.1, i)) {
                std::thread::yield_now();
            }
        }
        w.flush();
    }
    let mut store = Store::open(&d, key, None).unwrap();
    assert!(store.compact().unwrap());
    println!(
        "storage in commits of 2, after compaction: {:.1} bytes per sample",
        store.disk_bytes() as f64 / f64::from(hour)
    );
}

/// 24 hours at 10 Hz, written as fast as the writer takes them, compacted.
fn day_store(key: &Zeroizing<[u8; 32]>, schema: &[String]) -> Store {
    let d = dir("day");
    let day = 864_000u32;
    {
        let w = Store::open(&d, key, Some(schema))
            .unwrap()
            .into_writer(WriterConfig::default())
            .unwrap();
        for i in 0..day {
            while !w.push(sample(1.7e9 + f64::from(i) * 0.1, i)) {
                std::thread::yield_now();
            }
        }
        w.flush();
    }
    let mut store = Store::open(&d, key, None).unwrap();
    let bytes = store.disk_bytes();
    println!(
        "storage: {} bytes for {day} samples of 14 channels = {:.1} bytes per sample",
        bytes,
        bytes as f64 / f64::from(day)
    );
    assert!(store.compact().unwrap());
    let bytes = store.disk_bytes();
    println!(
        "storage after compaction: {} bytes = {:.1} bytes per sample",
        bytes,
        bytes as f64 / f64::from(day)
    );
    store
}

fn benches(c: &mut Criterion) {
    let key = Zeroizing::new([7u8; 32]);
    let schema = schema();

    // Ingestion: 200,000 samples pushed and acknowledged durable.
    const N: u32 = 200_000;
    let mut g = c.benchmark_group("store");
    g.throughput(Throughput::Elements(u64::from(N)));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(15));
    let mut round = 0u32;
    g.bench_function("ingest_200k_samples_durable", |b| {
        b.iter_with_setup(
            || {
                round += 1;
                let d = dir(&format!("ingest{round}"));
                Store::open(&d, &key, Some(&schema)).unwrap()
            },
            |store| {
                let w = store.into_writer(WriterConfig::default()).unwrap();
                for i in 0..N {
                    while !w.push(sample(1.7e9 + f64::from(i) * 0.001, i)) {
                        std::thread::yield_now();
                    }
                }
                w.flush();
                assert_eq!(w.status().acknowledged, u64::from(N));
            },
        )
    });

    // Small commits: 400 of 50 samples each, every one waited for (so
    // what each commit costs, the chain's links included, shows).
    const SMALL: u32 = 50;
    const COMMITS: u32 = 400;
    g.throughput(Throughput::Elements(u64::from(SMALL * COMMITS)));
    g.bench_function("ingest_20k_samples_in_commits_of_50", |b| {
        b.iter_with_setup(
            || {
                round += 1;
                let d = dir(&format!("small{round}"));
                Store::open(&d, &key, Some(&schema)).unwrap()
            },
            |store| {
                let w = store.into_writer(WriterConfig::default()).unwrap();
                for c in 0..COMMITS {
                    for i in c * SMALL..(c + 1) * SMALL {
                        assert!(w.push(sample(1.7e9 + f64::from(i) * 0.1, i)));
                    }
                    w.flush();
                }
                assert_eq!(w.status().acknowledged, u64::from(SMALL * COMMITS));
            },
        )
    });

    // 24 hours at 10 Hz, then a one-channel query downsampled to 1,000
    // points. The stores (and the storage figures) are built only when
    // this benchmark is selected, so `--bench ingest` measures ingestion
    // alone.
    let mut day: Option<Store> = None;
    g.throughput(Throughput::Elements(1));
    g.bench_function("range_24h_one_channel_1000_points", |b| {
        let store = day.get_or_insert_with(|| {
            storage_in_small_commits(&key, &schema);
            day_store(&key, &schema)
        });
        b.iter(|| {
            let r = store
                .range(black_box(2), 1.7e9, 1.7e9 + 86_400.0, 1000)
                .unwrap();
            assert!(r.len() <= 1000 && r.len() > 900);
            black_box(r)
        })
    });
    drop(day);
    g.finish();
    for e in std::fs::read_dir(std::env::temp_dir()).unwrap().flatten() {
        if e.file_name()
            .to_string_lossy()
            .starts_with("twinshield-store-bench-")
        {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

criterion_group!(store, benches);
criterion_main!(store);
