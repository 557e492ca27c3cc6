#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
//! No detector panics or reports a non-finite statistic, whatever the input
//! and whatever settings its constructor accepts.

use proptest::prelude::*;
use twinshield_detect::{
    AlarmEvent, AlarmTracker, BiasDetector, BiasSettings, ChiSquareDetector, ChiSquareSettings,
    CusumDetector, CusumSettings, DetectorKind, FrozenDetector, FrozenSettings, Status,
    chi_square_quantile, chi_square_quantile_wh, normal_quantile,
};

/// Any f64 at all, plus plenty of ordinary and edge values.
fn num() -> impl Strategy<Value = f64> {
    prop_oneof![
        proptest::num::f64::ANY,
        -1e3..1e3_f64,
        0.0..1.0_f64,
        Just(0.0),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(f64::MAX),
        Just(-f64::MAX),
        Just(f64::MIN_POSITIVE),
        Just(1e-320),
    ]
}

/// Settings numbers: any f64, or a plausible valid value.
fn setting(lo: f64, hi: f64) -> impl Strategy<Value = f64> {
    prop_oneof![proptest::num::f64::ANY, lo..hi]
}

fn finite(s: &Status) -> bool {
    s.statistic.is_finite() && s.threshold.is_finite() && s.clear_level.is_finite()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn cusum_never_misbehaves(
        drift in setting(0.01, 3.0),
        threshold in setting(0.1, 50.0),
        clear in setting(0.01, 0.99),
        cap in setting(1.01, 100.0),
        samples in proptest::collection::vec((num(), num()), 0..200),
    ) {
        let settings = CusumSettings { drift, threshold, clear_fraction: clear, cap_factor: cap };
        if let Ok(mut det) = CusumDetector::new(settings) {
            for (r, s) in samples {
                let st = det.update(r, s);
                prop_assert!(finite(&st), "{st:?}");
                prop_assert!(st.statistic >= 0.0 && st.clear_level < st.threshold);
            }
        }
    }

    #[test]
    fn chi2_never_misbehaves(
        window in 0usize..64,
        dof in 0usize..12,
        p in setting(1e-12, 0.5),
        pc in setting(0.01, 0.99),
        samples in proptest::collection::vec(num(), 0..200),
    ) {
        let settings = ChiSquareSettings {
            window, dof_per_sample: dof, false_alarm: p, clear_false_alarm: pc,
        };
        if let Ok(mut det) = ChiSquareDetector::new(settings) {
            for x in samples {
                let st = det.update(x);
                prop_assert!(finite(&st), "{st:?}");
                prop_assert!(st.statistic >= 0.0 && st.clear_level < st.threshold);
            }
        }
    }

    #[test]
    fn frozen_never_misbehaves(
        after in setting(0.01, 100.0),
        window in 0usize..64,
        noise in setting(0.0, 1.0),
        flat in setting(0.01, 0.5),
        clear in setting(0.1, 0.99),
        samples in proptest::collection::vec((num(), num()), 0..200),
    ) {
        let settings = FrozenSettings {
            frozen_after: after, window, noise_std: noise, flat_ratio: flat, clear_ratio: clear,
        };
        if let Ok(mut det) = FrozenDetector::new(settings) {
            for (t, v) in samples {
                let st = det.update(t, v);
                prop_assert!(finite(&st.unchanged) && finite(&st.flatline), "{st:?}");
                prop_assert!(st.unchanged.statistic >= 0.0 && st.flatline.statistic >= 0.0);
            }
        }
    }

    #[test]
    fn bias_never_misbehaves(
        window in 0usize..64,
        threshold in setting(0.1, 10.0),
        clear in setting(0.01, 0.99),
        tau in setting(1.0, 50.0),
        samples in proptest::collection::vec((num(), num()), 0..200),
    ) {
        let settings = BiasSettings { window, threshold, clear_fraction: clear, correlation_time: tau };
        if let Ok(mut det) = BiasDetector::new(settings) {
            for (r, s) in samples {
                let st = det.update(r, s);
                prop_assert!(finite(&st), "{st:?}");
                prop_assert!(det.mean().is_finite());
            }
        }
    }

    #[test]
    fn quantiles_never_misbehave(p in num(), dof in num()) {
        let quantiles = [chi_square_quantile(p, dof), chi_square_quantile_wh(p, dof)];
        for x in quantiles.into_iter().flatten() {
            prop_assert!(x.is_finite() && x >= 0.0, "p {p} dof {dof}: {x}");
        }
        if let Ok(z) = normal_quantile(p) {
            prop_assert!(z.is_finite());
        }
    }

}

proptest! {
    // Fewer cases: each one generates and feeds far more numbers.
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn the_tracker_never_misbehaves(
        samples in proptest::collection::vec((num(), num(), any::<bool>()), 0..100),
    ) {
        let mut tracker = AlarmTracker::new(8);
        let sources = [
            tracker.register(DetectorKind::Cusum, vec!["y0".into()]),
            tracker.register(DetectorKind::ChiSquare, vec!["y0".into(), "y1".into()]),
        ];
        let mut last_raised = 0;
        for (i, (t, statistic, alarming)) in samples.into_iter().enumerate() {
            let status = Status { alarming, statistic, threshold: 8.0, clear_level: 4.0 };
            if let Ok(Some(e)) = tracker.observe(sources[i % 2], t, &status) {
                let a = e.alarm();
                prop_assert!(a.start.is_finite() && a.peak.is_finite());
                if matches!(e, AlarmEvent::Raised(_)) {
                    prop_assert!(a.id > last_raised);
                    last_raised = a.id;
                }
            }
        }
        let mut ids: Vec<u64> = tracker.past().chain(tracker.active()).map(|a| a.id).collect();
        let n = ids.len();
        ids.sort_unstable();
        ids.dedup();
        prop_assert_eq!(ids.len(), n);
        let mut tracker = AlarmTracker::new(4);
        let src = tracker.register(DetectorKind::Cusum, vec![]);
        let _ = tracker.observe(src, f64::NAN, &Status {
            alarming: true, statistic: f64::NAN, threshold: f64::INFINITY, clear_level: 0.0,
        });
        prop_assert_eq!(tracker.active_count(), 0);
    }
}
