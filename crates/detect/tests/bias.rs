#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
//! Windowed-mean (bias) test.

mod common;

use common::Rng;
use twinshield_detect::{BiasDetector, BiasSettings, DetectError};

#[test]
fn quiet_on_white_noise() {
    let mut rng = Rng::new(40);
    let mut det = BiasDetector::new(BiasSettings::default()).unwrap();
    for _ in 0..500_000 {
        assert!(!det.update(2.0 * rng.normal(), 2.0).alarming);
    }
}

#[test]
fn detects_a_one_sigma_bias_and_clears_after() {
    let mut rng = Rng::new(41);
    let mut det = BiasDetector::new(BiasSettings::default()).unwrap();
    for _ in 0..1_000 {
        det.update(rng.normal(), 1.0);
    }
    // A 1-sigma bias: the full-window statistic is √50 ≈ 7.1 > 5; it
    // crosses 5 after about 35 biased samples.
    let mut detected = None;
    for n in 1..=100 {
        if det.update(1.0 + rng.normal(), 1.0).alarming {
            detected = Some(n);
            break;
        }
    }
    let n = detected.expect("bias not detected");
    assert!(n <= 60, "detected after {n}");
    for _ in 0..200 {
        det.update(1.0 + rng.normal(), 1.0);
    }
    let mut cleared = None;
    for n in 1..=200 {
        if !det.update(rng.normal(), 1.0).alarming {
            cleared = Some(n);
            break;
        }
    }
    let n = cleared.expect("never cleared");
    assert!(n <= 50, "cleared after {n}");
    assert!(det.mean().abs() < 1.0);
}

#[test]
fn correlation_time_corrects_autocorrelated_errors() {
    // AR(1) with φ = 0.9, unit marginal variance: τ = (1 + φ) / (1 − φ) = 19.
    let phi: f64 = 0.9;
    let innovation = (1.0 - phi * phi).sqrt();
    let run = |tau: f64| {
        let mut rng = Rng::new(42);
        let mut det = BiasDetector::new(BiasSettings {
            window: 500,
            correlation_time: tau,
            ..BiasSettings::default()
        })
        .unwrap();
        let mut x = 0.0;
        let mut above = 0u32;
        let n = 200_000;
        for _ in 0..n {
            x = phi * x + innovation * rng.normal();
            if det.update(x, 1.0).statistic > 3.0 {
                above += 1;
            }
        }
        f64::from(above) / f64::from(n)
    };
    let naive = run(1.0);
    let corrected = run(19.0);
    assert!(naive > 0.2, "naive: {naive}");
    assert!(corrected < 0.01, "corrected: {corrected}");
}

#[test]
fn warm_up_and_bad_samples() {
    let mut det = BiasDetector::new(BiasSettings {
        window: 10,
        ..BiasSettings::default()
    })
    .unwrap();
    for _ in 0..9 {
        let s = det.update(100.0, 1.0);
        assert!(!s.alarming && s.statistic == 0.0);
    }
    for (r, s) in [
        (f64::NAN, 1.0),
        (1.0, 0.0),
        (1.0, -2.0),
        (f64::INFINITY, 1.0),
    ] {
        det.update(r, s);
    }
    assert_eq!(det.skipped(), 4);
    assert!(det.update(100.0, 1.0).alarming);
    let s = det.update(f64::MAX, f64::MIN_POSITIVE);
    assert!(s.statistic.is_finite());
    det.reset();
    assert!(!det.alarming());
}

#[test]
fn invalid_settings_are_rejected() {
    let d = BiasSettings::default();
    for bad in [
        BiasSettings { window: 0, ..d },
        BiasSettings {
            threshold: 0.0,
            ..d
        },
        BiasSettings {
            threshold: f64::NAN,
            ..d
        },
        BiasSettings {
            clear_fraction: 1.5,
            ..d
        },
        BiasSettings {
            correlation_time: 0.5,
            ..d
        },
        BiasSettings {
            correlation_time: f64::INFINITY,
            ..d
        },
    ] {
        let err = BiasDetector::new(bad).unwrap_err();
        assert!(matches!(
            err,
            DetectError::TooSmall { .. }
                | DetectError::NotPositive { .. }
                | DetectError::OutOfRange { .. }
        ));
    }
}
