#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
//! Frozen and flatline data.

mod common;

use common::{Rng, quantize};
use twinshield_detect::{DetectError, FrozenDetector, FrozenSettings};

const DT: f64 = 0.1;

fn detector() -> FrozenDetector {
    FrozenDetector::new(FrozenSettings {
        frozen_after: 30.0,
        window: 100,
        noise_std: 0.05,
        ..FrozenSettings::default()
    })
    .unwrap()
}

#[test]
fn constant_input_triggers_both_tests() {
    let mut det = detector();
    let mut flat_at = None;
    let mut frozen_at = None;
    for i in 0..400 {
        let t = f64::from(i) * DT;
        let s = det.update(t, 12.34);
        if s.flatline.alarming && flat_at.is_none() {
            flat_at = Some(t);
        }
        if s.unchanged.alarming && frozen_at.is_none() {
            frozen_at = Some(t);
        }
    }
    // Flatline: once the 100-sample window is full (t = 9.9 s).
    assert!((flat_at.unwrap() - 9.9).abs() < 1e-9, "{flat_at:?}");
    // Unchanged: the first sample more than 30 s after the last change.
    let t = frozen_at.unwrap();
    assert!(t > 30.0 && t < 30.0 + 2.0 * DT, "{t}");
    assert!((det.unchanged_for() - 39.9).abs() < 1e-9);
}

#[test]
fn noisy_quantized_input_never_triggers() {
    let mut rng = Rng::new(30);
    let mut det = detector();
    for i in 0..200_000 {
        let t = f64::from(i) * DT;
        let v = quantize(12.0 + 0.05 * rng.normal());
        let s = det.update(t, v);
        assert!(!s.alarming(), "alarm at {t}: {s:?}");
        assert!(s.flatline.statistic < 2.0);
    }
}

#[test]
fn clears_when_the_value_moves_again() {
    let mut rng = Rng::new(31);
    let mut det = detector();
    let mut t = 0.0;
    for _ in 0..200 {
        det.update(t, quantize(5.0 + 0.05 * rng.normal()));
        t += DT;
    }
    for _ in 0..400 {
        det.update(t, 5.0);
        t += DT;
    }
    let s = det.status();
    assert!(s.unchanged.alarming && s.flatline.alarming);
    // Noise resumes: the unchanged test clears on the first change, the
    // flatline test once the window's std is above 0.2 × noise again.
    let mut unchanged_cleared = None;
    let mut flat_cleared = None;
    for n in 1..=100 {
        let mut v = quantize(5.0 + 0.05 * rng.normal());
        if n == 1 && v == 5.0 {
            v = 5.01;
        }
        let s = det.update(t, v);
        t += DT;
        if !s.unchanged.alarming && unchanged_cleared.is_none() {
            unchanged_cleared = Some(n);
        }
        if !s.flatline.alarming && flat_cleared.is_none() {
            flat_cleared = Some(n);
        }
    }
    assert_eq!(unchanged_cleared, Some(1));
    let n = flat_cleared.expect("flatline never cleared");
    assert!(n <= 30, "flatline cleared after {n}");
}

#[test]
fn zero_noise_disables_the_variance_test() {
    let mut det = FrozenDetector::new(FrozenSettings::default()).unwrap();
    for i in 0..250 {
        let s = det.update(f64::from(i) * DT, 1.0);
        assert!(!s.flatline.alarming);
        assert_eq!(s.flatline.statistic, 0.0);
    }
}

#[test]
fn time_going_backwards_and_bad_samples() {
    let mut det = detector();
    det.update(100.0, 1.0);
    let s = det.update(50.0, 1.0);
    assert_eq!(s.unchanged.statistic, 0.0);
    let s = det.update(70.0, 1.0);
    assert!((s.unchanged.statistic - 20.0).abs() < 1e-12);
    for (t, v) in [
        (f64::NAN, 1.0),
        (1.0, f64::NAN),
        (f64::INFINITY, 2.0),
        (1.0, f64::NEG_INFINITY),
    ] {
        det.update(t, v);
    }
    assert_eq!(det.skipped(), 4);
    let s = det.update(-f64::MAX, 1.0);
    assert!(s.unchanged.statistic.is_finite());
    let s = det.update(f64::MAX, 1.0);
    assert!(s.unchanged.statistic.is_finite() && s.unchanged.alarming);
    det.reset();
    assert!(!det.alarming());
}

#[test]
fn invalid_settings_are_rejected() {
    let d = FrozenSettings::default();
    for bad in [
        FrozenSettings {
            frozen_after: 0.0,
            ..d
        },
        FrozenSettings {
            frozen_after: f64::NAN,
            ..d
        },
        FrozenSettings { window: 0, ..d },
        FrozenSettings { window: 1, ..d },
        FrozenSettings {
            noise_std: -0.1,
            ..d
        },
        FrozenSettings {
            noise_std: f64::INFINITY,
            ..d
        },
        FrozenSettings {
            flat_ratio: 0.0,
            ..d
        },
        FrozenSettings {
            clear_ratio: 0.05,
            ..d
        },
    ] {
        let err = FrozenDetector::new(bad).unwrap_err();
        assert!(matches!(
            err,
            DetectError::NotPositive { .. }
                | DetectError::Negative { .. }
                | DetectError::TooSmall { .. }
                | DetectError::OutOfRange { .. }
        ));
    }
}
