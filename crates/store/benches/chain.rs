//! What verifying the hash chain costs: an hour of history at 10 Hz (the
//! quadtank twin's 14 channels), written in commits of 2 samples as `run`
//! writes them (every 200 ms), with an alarm every 6 minutes, verified
//! whole. Run with `cargo bench -p twinshield-store --bench chain`.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::print_stdout
)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::time::Duration;
use twinshield_store::{EventKind, Sample, Store, WriterConfig};
use zeroize::Zeroizing;

fn benches(c: &mut Criterion) {
    let key = Zeroizing::new([7u8; 32]);
    let schema: Vec<String> = (0..14).map(|i| format!("c{i}")).collect();
    let d = std::env::temp_dir().join(format!("twinshield-chain-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    const HOUR: u32 = 36_000;
    let started = std::time::Instant::now();
    {
        let w = Store::open(&d, &key, Some(&schema))
            .unwrap()
            .into_writer(WriterConfig {
                // A commit per 2 samples, as at 10 Hz with 200 ms batches.
                batch_max: 2,
                ..WriterConfig::default()
            })
            .unwrap();
        for i in 0..HOUR {
            let t = 1.7e9 + f64::from(i) * 0.1;
            let s = Sample {
                time: t,
                values: (0..14)
                    .map(|k| (i % 1000) as f32 * 0.01 + k as f32)
                    .collect(),
            };
            while !w.push(s.clone()) {
                std::thread::yield_now();
            }
            if i % 3_600 == 0 {
                w.event(EventKind::AlarmRaised, t, "cusum on y1");
            }
        }
        w.flush();
    }
    let mut store = Store::open(&d, &key, None).unwrap();
    let head = store.chain_head().unwrap().unwrap();
    assert!(store.compact().unwrap());
    println!(
        "an hour at 10 Hz in {} commits: written in {:.0} s, {} bytes after compaction",
        head.seq,
        started.elapsed().as_secs_f64(),
        store.disk_bytes()
    );
    let mut g = c.benchmark_group("chain");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    g.throughput(Throughput::Elements(u64::from(HOUR)));
    g.bench_function("verify_1h_at_10hz_in_commits_of_2", |b| {
        b.iter(|| {
            let r = store.verify_chain(&[head]).unwrap();
            assert!(r.is_clean());
            r
        })
    });
    g.finish();
    drop(store);
    let _ = std::fs::remove_dir_all(&d);
}

criterion_group!(chain, benches);
criterion_main!(chain);
