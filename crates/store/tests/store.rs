//! The history store: what goes in comes out, under the right key only,
//! with retention and downsampling as documented.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::path::PathBuf;
use std::time::Duration;
use twinshield_store::{EventKind, Sample, Store, StoreError, WriterConfig};
use zeroize::Zeroizing;

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("twinshield-store-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn key(b: u8) -> Zeroizing<[u8; 32]> {
    Zeroizing::new([b; 32])
}

fn schema() -> Vec<String> {
    vec!["v1".into(), "y1".into()]
}

fn fast() -> WriterConfig {
    WriterConfig {
        batch_interval: Duration::from_millis(10),
        ..WriterConfig::default()
    }
}

#[test]
fn samples_events_and_alarms_round_trip() {
    let d = dir("rt");
    {
        let w = Store::open(&d, &key(1), Some(&schema()))
            .unwrap()
            .into_writer(fast())
            .unwrap();
        for i in 0..1000 {
            let t = 1_000_000.0 + f64::from(i) * 0.1;
            assert!(w.push(Sample {
                time: t,
                values: vec![3.0, i as f32]
            }));
        }
        w.event(EventKind::AlarmRaised, 1_000_010.0, "cusum on y1");
        w.event(EventKind::DataQuality, 1_000_011.0, "timeout");
        w.flush();
        assert_eq!(w.status().acknowledged, 1000);
        assert_eq!(w.status().fault, None);
    }
    let store = Store::open(&d, &key(1), None).unwrap();
    let all = store.samples(0.0, f64::MAX).unwrap();
    assert_eq!(all.len(), 1000);
    assert_eq!(all[999].values, vec![3.0, 999.0]);
    assert!((all[500].time - 1_000_050.0).abs() < 1e-3);
    assert_eq!(store.latest().unwrap().unwrap().values[1], 999.0);
    let alarms = store.alarms(0.0, f64::MAX).unwrap();
    assert_eq!(alarms.len(), 1);
    assert_eq!(alarms[0].text, "cusum on y1");
    assert_eq!(store.events(0.0, f64::MAX).unwrap().len(), 2);
    // Reopened with the same key, everything is still there.
    drop(store);
    let again = Store::open(&d, &key(1), None).unwrap();
    assert_eq!(again.schema(), schema().as_slice());
    assert_eq!(again.samples(0.0, f64::MAX).unwrap().len(), 1000);
}

#[test]
fn another_key_opens_nothing() {
    let d = dir("key");
    Store::open(&d, &key(1), Some(&schema())).unwrap();
    assert!(matches!(
        Store::open(&d, &key(2), Some(&schema())),
        Err(StoreError::WrongDevice)
    ));
    assert!(matches!(
        Store::open(&d, &key(2), None),
        Err(StoreError::WrongDevice)
    ));
    let other = vec!["x".to_owned()];
    assert!(matches!(
        Store::open(&d, &key(1), Some(&other)),
        Err(StoreError::SchemaMismatch)
    ));
}

#[test]
fn no_history_an_unusable_directory_and_another_device_are_told_apart() {
    let d = dir("causes");
    assert!(matches!(
        Store::open(&d, &key(1), None),
        Err(StoreError::NoHistory(p)) if p == d
    ));
    // A file where the data directory should be.
    let file = dir("causes-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let e = Store::open(&file.join("data"), &key(1), Some(&schema())).unwrap_err();
    let StoreError::Directory { source, .. } = &e else {
        panic!("not a directory error: {e:?}");
    };
    assert_eq!(e.to_string(), format!("history store: {source}"));
    assert!(std::error::Error::source(&e).is_some());
    let _ = std::fs::remove_file(&file);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn ranges_are_downsampled_from_samples_or_minutes() {
    let d = dir("range");
    let t0 = 6_000_000.0; // a whole minute
    {
        let w = Store::open(&d, &key(3), Some(&schema()))
            .unwrap()
            .into_writer(fast())
            .unwrap();
        // Two hours at 1 Hz, y1 = minute index.
        for i in 0..7200 {
            let t = t0 + f64::from(i);
            w.push(Sample {
                time: t,
                values: vec![0.0, (i / 60) as f32],
            });
        }
        w.flush();
    }
    let store = Store::open(&d, &key(3), None).unwrap();
    // Short range: raw samples, 10 buckets over 100 s.
    let r = store.range(1, t0, t0 + 99.0, 10).unwrap();
    assert_eq!(r.len(), 10);
    assert_eq!((r[0].min, r[0].max), (0.0, 0.0));
    assert_eq!(r[9].max, 1.0);
    // Long range: minute aggregates, at most 60 buckets over two hours.
    let r = store.range(1, t0, t0 + 7199.0, 60).unwrap();
    assert!(r.len() <= 60 && r.len() >= 59, "{}", r.len());
    assert_eq!(r[0].min, 0.0);
    assert_eq!(r[0].max, 1.0); // two minutes per bucket
    assert!((r[0].mean - 0.5).abs() < 1e-6);
    assert!(store.range(9, t0, t0 + 1.0, 10).unwrap().is_empty());
}

#[test]
fn retention_drops_old_samples_and_keeps_minutes() {
    let d = dir("retain");
    {
        let w = Store::open(&d, &key(4), Some(&schema()))
            .unwrap()
            .into_writer(WriterConfig {
                full_rate: 600.0,
                ..fast()
            })
            .unwrap();
        for i in 0..3600 {
            w.push(Sample {
                time: 9_000_000.0 + f64::from(i),
                values: vec![1.0, 2.0],
            });
            if i % 100 == 0 {
                w.flush();
            }
        }
        w.flush();
    }
    let store = Store::open(&d, &key(4), None).unwrap();
    let kept = store.samples(0.0, f64::MAX).unwrap();
    assert!(
        kept.len() < 1000,
        "{} samples kept past the window",
        kept.len()
    );
    assert!(kept.first().unwrap().time >= 9_000_000.0 + 3600.0 - 600.0 - 120.0);
    assert_eq!(store.minutes(0.0, f64::MAX).unwrap().len(), 60);
}

#[test]
fn a_full_queue_refuses_without_blocking() {
    let d = dir("queue");
    let store = Store::open(&d, &key(5), Some(&schema())).unwrap();
    let w = store
        .into_writer(WriterConfig {
            queue: 4,
            batch_interval: Duration::from_secs(5),
            ..WriterConfig::default()
        })
        .unwrap();
    let start = std::time::Instant::now();
    let accepted = (0..10_000)
        .filter(|i| {
            w.push(Sample {
                time: f64::from(*i),
                values: vec![0.0, 0.0],
            })
        })
        .count();
    assert!(start.elapsed() < Duration::from_secs(1), "push blocked");
    assert!(accepted < 10_000);
    assert_eq!(w.status().refused, 10_000 - accepted as u64);
}

#[test]
fn a_second_handle_blocks_handing_the_database_to_the_writer() {
    let d = dir("handles");
    let store = Store::open(&d, &key(6), Some(&schema())).unwrap();
    let reader = store.clone();
    assert!(store.into_writer(fast()).is_err());
    drop(reader);
}
