#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
//! Chi-square window test: false-alarm rate, detection, hysteresis, warm-up.

mod common;

use common::Rng;
use twinshield_detect::{ChiSquareDetector, ChiSquareSettings, DetectError, chi_square_quantile};

/// Fraction of non-overlapping full windows whose NIS sum exceeds the
/// threshold, on in-control chi-square data.
fn exceedance_rate(p: f64, windows: usize, seed: u64) -> f64 {
    let m = 4;
    let w = 20;
    let mut det = ChiSquareDetector::new(ChiSquareSettings {
        window: w,
        dof_per_sample: m,
        false_alarm: p,
        ..ChiSquareSettings::default()
    })
    .unwrap();
    let mut rng = Rng::new(seed);
    let mut exceed = 0usize;
    for _ in 0..windows {
        let mut s = det.status();
        for _ in 0..w {
            s = det.update(rng.chi2(m));
        }
        assert_eq!(det.filled(), w);
        if s.statistic > s.threshold {
            exceed += 1;
        }
    }
    exceed as f64 / windows as f64
}

#[test]
fn false_alarm_rate_near_design() {
    for (p, windows, seed) in [(1e-2, 20_000, 10), (1e-3, 100_000, 11), (1e-4, 400_000, 12)] {
        let rate = exceedance_rate(p, windows, seed);
        assert!(
            rate > p / 3.0 && rate < p * 3.0,
            "design {p}, measured {rate} over {windows} windows"
        );
    }
}

#[test]
fn thresholds_are_the_quantiles() {
    let det = ChiSquareDetector::new(ChiSquareSettings {
        dof_per_sample: 4,
        ..ChiSquareSettings::default()
    })
    .unwrap();
    // chi2(1 − 1e-4, 80) = 135.7825 (mpmath), chi2(0.9, 80) = 96.5782.
    assert!((det.full_threshold() - 135.782_521_114_654).abs() < 1e-6);
    assert!((det.full_clear_level() - 96.578_203_615_267).abs() < 1e-6);
    // Warm-up: one sample is tested against 4 degrees of freedom.
    assert_eq!(
        det.status().threshold,
        chi_square_quantile(1.0 - 1e-4, 4.0).unwrap()
    );
}

#[test]
fn detects_a_shift_quickly_and_clears_after_it() {
    let m = 4;
    let mut det = ChiSquareDetector::new(ChiSquareSettings {
        dof_per_sample: m,
        ..ChiSquareSettings::default()
    })
    .unwrap();
    let mut rng = Rng::new(20);
    for _ in 0..200 {
        assert!(!det.update(rng.chi2(m)).alarming);
    }
    // A 3-sigma bias on one output: NIS grows by about 9 per sample.
    let mut detected = None;
    for n in 1..=100 {
        let nis: f64 = (rng.normal() + 3.0).powi(2) + rng.chi2(m - 1);
        if det.update(nis).alarming {
            detected = Some(n);
            break;
        }
    }
    let n = detected.expect("shift not detected");
    assert!(n <= 15, "detected after {n} samples");
    for _ in 0..100 {
        let nis: f64 = (rng.normal() + 3.0).powi(2) + rng.chi2(m - 1);
        det.update(nis);
    }
    assert!(det.alarming());
    // Back to normal: the anomalous samples leave the window within W = 20.
    let mut cleared = None;
    for n in 1..=100 {
        let s = det.update(rng.chi2(m));
        if !s.alarming {
            cleared = Some(n);
            break;
        }
    }
    let n = cleared.expect("never cleared");
    assert!(n <= 21, "cleared after {n}");
}

#[test]
fn hysteresis_holds_between_the_levels() {
    let mut det = ChiSquareDetector::new(ChiSquareSettings {
        window: 2,
        dof_per_sample: 1,
        false_alarm: 0.01,
        clear_false_alarm: 0.5,
    })
    .unwrap();
    let hi = det.full_threshold();
    let lo = det.full_clear_level();
    det.update(hi);
    assert!(det.update(1.0).alarming);
    // Sum between the clear level and the threshold: stays alarming.
    let mid = 0.5 * (hi + lo);
    det.update(mid / 2.0);
    assert!(det.update(mid / 2.0).alarming);
    det.update(lo / 4.0);
    assert!(!det.update(lo / 4.0).alarming);
    // And between the levels it does not raise again.
    det.update(mid / 2.0);
    assert!(!det.update(mid / 2.0).alarming);
}

#[test]
fn bad_samples_are_skipped_and_huge_ones_capped() {
    let mut det = ChiSquareDetector::new(ChiSquareSettings::default()).unwrap();
    for x in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -1.0, -1e-300] {
        let s = det.update(x);
        assert_eq!(s.statistic, 0.0);
    }
    assert_eq!(det.skipped(), 5);
    assert_eq!(det.filled(), 0);
    for _ in 0..100 {
        let s = det.update(f64::MAX);
        assert!(s.statistic.is_finite() && s.alarming);
    }
    det.reset();
    assert!(!det.alarming() && det.statistic() == 0.0);
}

#[test]
fn invalid_settings_are_rejected() {
    let d = ChiSquareSettings::default();
    for bad in [
        ChiSquareSettings { window: 0, ..d },
        ChiSquareSettings {
            dof_per_sample: 0,
            ..d
        },
        ChiSquareSettings {
            window: usize::MAX,
            ..d
        },
        ChiSquareSettings {
            false_alarm: 0.0,
            ..d
        },
        ChiSquareSettings {
            false_alarm: 1.0,
            ..d
        },
        ChiSquareSettings {
            false_alarm: f64::NAN,
            ..d
        },
        ChiSquareSettings {
            clear_false_alarm: 1e-5,
            ..d
        },
        ChiSquareSettings {
            clear_false_alarm: 1.0,
            ..d
        },
    ] {
        let err = ChiSquareDetector::new(bad).unwrap_err();
        assert!(matches!(
            err,
            DetectError::TooSmall { .. }
                | DetectError::TooLarge { .. }
                | DetectError::OutOfRange { .. }
        ));
    }
}
