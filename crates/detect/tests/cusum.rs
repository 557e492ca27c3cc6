#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
//! CUSUM: false alarms, detection delay, hysteresis, validation.

mod common;

use common::Rng;
use twinshield_detect::{CusumDetector, CusumSettings, DetectError};

/// Siegmund's approximation of the one-sided CUSUM average run length for a
/// mean shift `mu` (in sigmas), drift `k`, threshold `h`.
fn siegmund(mu: f64, k: f64, h: f64) -> f64 {
    let delta = mu - k;
    let b = h + 1.166;
    if delta.abs() < 1e-12 {
        b * b
    } else {
        ((-2.0 * delta * b).exp() + 2.0 * delta * b - 1.0) / (2.0 * delta * delta)
    }
}

#[test]
fn default_false_alarm_rate_matches_theory() {
    // With k = 0.5, h = 8 the two-sided in-control ARL is about 9 600
    // samples (Siegmund), so 1e6 samples hold ~100 false alarms: measure
    // the mean run length and check it within a factor of 3.
    let expected = siegmund(0.0, 0.5, 8.0) / 2.0;
    assert!((9_000.0..10_000.0).contains(&expected), "{expected}");
    let mut rng = Rng::new(1);
    let mut cusum = CusumDetector::new(CusumSettings::default()).unwrap();
    let mut alarms = 0u32;
    for _ in 0..1_000_000 {
        if cusum.update(rng.normal(), 1.0).alarming {
            alarms += 1;
            cusum.reset();
        }
    }
    let mean_run = 1e6 / f64::from(alarms.max(1));
    assert!(
        mean_run > expected / 3.0 && mean_run < expected * 3.0,
        "{alarms} alarms, mean run {mean_run}, expected {expected}"
    );
}

#[test]
fn quiet_for_a_million_samples_at_a_high_threshold() {
    // k = 0.5, h = 16: two-sided ARL ~ 2.8e7 samples.
    assert!(siegmund(0.0, 0.5, 16.0) / 2.0 > 2e7);
    let mut rng = Rng::new(2);
    let mut cusum = CusumDetector::new(CusumSettings {
        threshold: 16.0,
        ..CusumSettings::default()
    })
    .unwrap();
    let mut peak = 0.0_f64;
    for _ in 0..1_000_000 {
        let s = cusum.update(rng.normal(), 1.0);
        assert!(!s.alarming);
        peak = peak.max(s.statistic);
    }
    assert!(peak > 4.0, "the statistic moved: peak {peak}");
}

#[test]
fn detects_a_one_sigma_shift_quickly() {
    // Siegmund: ARL for a 1-sigma shift at k = 0.5, h = 8 is about 16.
    let expected = siegmund(1.0, 0.5, 8.0);
    assert!((14.0..19.0).contains(&expected), "{expected}");
    let mut rng = Rng::new(3);
    let trials = 2_000;
    let mut total = 0u64;
    let mut worst = 0u64;
    for _ in 0..trials {
        let mut cusum = CusumDetector::new(CusumSettings::default()).unwrap();
        let mut n = 0u64;
        loop {
            n += 1;
            if cusum.update(1.0 + rng.normal(), 1.0).alarming {
                break;
            }
            assert!(n < 200, "no detection after 200 samples");
        }
        total += n;
        worst = worst.max(n);
    }
    let mean = total as f64 / f64::from(trials);
    assert!(
        mean > expected * 0.7 && mean < expected * 1.5,
        "mean delay {mean}, expected {expected}"
    );
    assert!(worst < 100, "worst delay {worst}");
}

#[test]
fn detects_negative_shifts_on_the_lower_side() {
    let mut cusum = CusumDetector::new(CusumSettings::default()).unwrap();
    let mut n = 0;
    while !cusum.update(-2.0, 1.0).alarming {
        n += 1;
    }
    // S− grows by 1.5 per sample: 8 / 1.5 → the 6th sample.
    assert_eq!(n, 5);
    assert!(cusum.lower() > 8.0 && cusum.upper() == 0.0);
}

#[test]
fn hysteresis_cap_and_clearing_after_the_attack() {
    let settings = CusumSettings::default();
    let cap = settings.threshold * settings.cap_factor;
    let mut rng = Rng::new(4);
    let mut cusum = CusumDetector::new(settings).unwrap();
    for _ in 0..1_000 {
        cusum.update(rng.normal(), 1.0);
        cusum.reset();
    }
    // A 3-sigma attack for 2000 samples: alarm, statistic pinned at the cap.
    for _ in 0..2_000 {
        let s = cusum.update(3.0 + rng.normal(), 1.0);
        assert!(s.statistic <= cap);
    }
    assert!(cusum.alarming());
    assert_eq!(cusum.statistic(), cap);
    // Attack ends: the statistic falls by about k per sample, so the alarm
    // stays up below the threshold (hysteresis) and clears after about
    // (cap − h/2) / k = 152 samples.
    let mut cleared_after = None;
    let mut was_below_threshold_while_alarming = false;
    for n in 1..=400 {
        let s = cusum.update(rng.normal(), 1.0);
        if s.alarming && s.statistic < s.threshold {
            was_below_threshold_while_alarming = true;
        }
        if !s.alarming {
            assert!(s.statistic < s.clear_level);
            cleared_after = Some(n);
            break;
        }
    }
    let n = cleared_after.expect("alarm never cleared");
    assert!((100..300).contains(&n), "cleared after {n}");
    assert!(was_below_threshold_while_alarming);
}

#[test]
fn reset_clears_at_once() {
    let mut cusum = CusumDetector::new(CusumSettings::default()).unwrap();
    for _ in 0..20 {
        cusum.update(5.0, 1.0);
    }
    assert!(cusum.alarming());
    cusum.reset();
    assert!(!cusum.alarming());
    assert_eq!(cusum.statistic(), 0.0);
}

#[test]
fn bad_samples_are_skipped() {
    let mut cusum = CusumDetector::new(CusumSettings::default()).unwrap();
    cusum.update(1.0, 1.0);
    let before = cusum.status();
    for (r, s) in [
        (f64::NAN, 1.0),
        (f64::INFINITY, 1.0),
        (1.0, 0.0),
        (1.0, -1.0),
        (1.0, f64::NAN),
        (1.0, f64::INFINITY),
    ] {
        assert_eq!(cusum.update(r, s), before);
    }
    assert_eq!(cusum.skipped(), 6);
    // Huge but finite: clamped, statistic capped and finite.
    let s = cusum.update(f64::MAX, f64::MIN_POSITIVE);
    assert!(s.statistic.is_finite() && s.alarming);
}

#[test]
fn invalid_settings_are_rejected() {
    let d = CusumSettings::default();
    for bad in [
        CusumSettings { drift: 0.0, ..d },
        CusumSettings { drift: -1.0, ..d },
        CusumSettings {
            drift: f64::NAN,
            ..d
        },
        CusumSettings {
            threshold: 0.0,
            ..d
        },
        CusumSettings {
            threshold: f64::INFINITY,
            ..d
        },
        CusumSettings {
            clear_fraction: 1.0,
            ..d
        },
        CusumSettings {
            clear_fraction: 0.0,
            ..d
        },
        CusumSettings {
            cap_factor: 1.0,
            ..d
        },
        CusumSettings {
            threshold: 1e300,
            cap_factor: 1e10,
            ..d
        },
    ] {
        let err = CusumDetector::new(bad).unwrap_err();
        assert!(matches!(
            err,
            DetectError::NotPositive { .. } | DetectError::OutOfRange { .. }
        ));
    }
}
