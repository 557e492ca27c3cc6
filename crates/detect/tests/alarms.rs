#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
//! Alarm tracker and detector bank.

mod common;

use common::{Rng, quantize};
use twinshield_detect::{
    AlarmEvent, AlarmTracker, BankSettings, DetectError, DetectorBank, DetectorKind,
    OutputSettings, Status,
};

fn status(alarming: bool, statistic: f64) -> Status {
    Status {
        alarming,
        statistic,
        threshold: 8.0,
        clear_level: 4.0,
    }
}

#[test]
fn kinds_have_stable_names() {
    let names: Vec<String> = [
        DetectorKind::Cusum,
        DetectorKind::ChiSquare,
        DetectorKind::Frozen,
        DetectorKind::Flatline,
        DetectorKind::Bias,
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    assert_eq!(names, ["cusum", "chi2", "frozen", "flatline", "bias"]);
}

#[test]
fn raise_and_clear_once_each_with_increasing_ids() {
    let mut tracker = AlarmTracker::new(10);
    let a = tracker.register(DetectorKind::Cusum, vec!["y1".into()]);
    let b = tracker.register(DetectorKind::ChiSquare, vec!["y1".into(), "y2".into()]);
    let mut events = Vec::new();
    let script = [
        (a, 0.0, status(false, 1.0)),
        (a, 1.0, status(true, 9.0)),
        (b, 1.0, status(true, 50.0)),
        (a, 2.0, status(true, 12.0)),
        (a, 3.0, status(true, 10.0)),
        (b, 3.0, status(false, 3.0)),
        (a, 4.0, status(false, 3.0)),
        (a, 5.0, status(false, 2.0)),
        (a, 6.0, status(true, 8.5)),
    ];
    for (src, t, s) in script {
        events.extend(tracker.observe(src, t, &s).unwrap());
    }
    let summary: Vec<(bool, u64, f64)> = events
        .iter()
        .map(|e| {
            let a = e.alarm();
            let t = match e {
                AlarmEvent::Raised(a) => a.start,
                AlarmEvent::Cleared(a) => a.clear.unwrap(),
            };
            (matches!(e, AlarmEvent::Raised(_)), a.id, t)
        })
        .collect();
    assert_eq!(
        summary,
        [
            (true, 1, 1.0),
            (true, 2, 1.0),
            (false, 2, 3.0),
            (false, 1, 4.0),
            (true, 3, 6.0),
        ]
    );
    let past: Vec<_> = tracker.past().collect();
    assert_eq!(past.len(), 2);
    let first = past.iter().find(|a| a.id == 1).unwrap();
    assert_eq!(first.kind, DetectorKind::Cusum);
    assert_eq!(first.channels, ["y1"]);
    assert_eq!(first.statistic_at_raise, 9.0);
    assert_eq!(first.peak, 12.0);
    assert_eq!(first.peak_time, 2.0);
    assert_eq!(first.threshold, 8.0);
    assert_eq!(first.clear, Some(4.0));
    let active: Vec<_> = tracker.active().collect();
    assert_eq!(active.len(), 1);
    assert!(active[0].is_active() && active[0].id == 3);
    assert_eq!(tracker.last_id(), 3);

    let cleared = tracker.clear_all(7.0);
    assert_eq!(cleared.len(), 1);
    assert_eq!(tracker.active_count(), 0);
}

#[test]
fn bad_observations_are_ignored_and_unknown_sources_rejected() {
    let mut tracker = AlarmTracker::new(2);
    let a = tracker.register(DetectorKind::Bias, vec!["v1".into()]);
    assert_eq!(
        tracker.observe(a, f64::NAN, &status(true, 9.0)).unwrap(),
        None
    );
    assert_eq!(
        tracker.observe(a, 0.0, &status(true, f64::NAN)).unwrap(),
        None
    );
    assert_eq!(tracker.active_count(), 0);
    let mut other = AlarmTracker::new(2);
    other.register(DetectorKind::Bias, vec![]);
    let foreign = other.register(DetectorKind::Bias, vec![]);
    assert_eq!(
        tracker.observe(foreign, 0.0, &status(true, 9.0)),
        Err(DetectError::UnknownSource(1))
    );
    // History is bounded, oldest dropped first.
    for i in 0..5 {
        let t = f64::from(i);
        tracker.observe(a, t, &status(true, 9.0)).unwrap();
        tracker.observe(a, t + 0.5, &status(false, 1.0)).unwrap();
    }
    let ids: Vec<u64> = tracker.past().map(|a| a.id).collect();
    assert_eq!(ids, [4, 5]);
}

fn bank_settings() -> BankSettings {
    BankSettings {
        chi2_window: None,
        chi2_false_alarm: None,
        sample_period: 0.1,
        outputs: (1..=4)
            .map(|i| OutputSettings {
                name: format!("y{i}"),
                noise_std: 0.05,
                ..OutputSettings::default()
            })
            .collect(),
    }
}

#[test]
fn bank_raises_and_clears_the_right_alarms() {
    // The defaults (CUSUM h = 8: one false alarm per ~9 600 samples per
    // channel; chi-square p = 1e-4 per window) would give about one false
    // alarm in this 220 s run on four channels; raise both so that every
    // event below is caused by the injected faults.
    let mut settings = bank_settings();
    settings.chi2_false_alarm = Some(1e-7);
    for out in &mut settings.outputs {
        out.cusum_threshold = Some(16.0);
    }
    let mut bank = DetectorBank::new(&settings).unwrap();
    assert_eq!(bank.outputs(), ["y1", "y2", "y3", "y4"]);
    let mut rng = Rng::new(50);
    let mut t = 0.0;
    let mut all = Vec::new();
    let step = |bank: &mut DetectorBank, t: f64, bias: f64, freeze: bool, rng: &mut Rng| {
        let z: Vec<f64> = (0..4).map(|_| rng.normal()).collect();
        let residual = [0.05 * (z[0] + bias), 0.05 * z[1], 0.05 * z[2], 0.05 * z[3]];
        let std = [0.05; 4];
        let nis: f64 = (z[0] + bias).powi(2) + z[1..].iter().map(|x| x * x).sum::<f64>();
        let raw = [
            quantize(12.0 + residual[0]),
            if freeze {
                12.0
            } else {
                quantize(12.0 + residual[1])
            },
            quantize(1.6 + residual[2]),
            quantize(1.4 + residual[3]),
        ];
        bank.update(t, &residual, &std, nis, &raw).unwrap()
    };
    // Quiet period (100 s).
    for _ in 0..1_000 {
        let ev = step(&mut bank, t, 0.0, false, &mut rng);
        assert!(ev.is_empty(), "{ev:?}");
        t += 0.1;
    }
    // A 3-sigma bias on y1 and a freeze of y2 for 60 s.
    for _ in 0..600 {
        all.extend(step(&mut bank, t, 3.0, true, &mut rng));
        t += 0.1;
    }
    let raised: Vec<(DetectorKind, Vec<String>)> = all
        .iter()
        .filter_map(|e| match e {
            AlarmEvent::Raised(a) => Some((a.kind, a.channels.clone())),
            AlarmEvent::Cleared(_) => None,
        })
        .collect();
    for want in [
        (DetectorKind::Cusum, vec!["y1".to_string()]),
        (DetectorKind::ChiSquare, bank.outputs().to_vec()),
        (DetectorKind::Flatline, vec!["y2".to_string()]),
        (DetectorKind::Frozen, vec!["y2".to_string()]),
    ] {
        assert!(raised.contains(&want), "missing {want:?} in {raised:?}");
    }
    assert_eq!(raised.len(), 4, "{raised:?}");
    // Back to normal: every alarm clears within 60 s, each exactly once.
    let mut cleared = Vec::new();
    for _ in 0..600 {
        cleared.extend(step(&mut bank, t, 0.0, false, &mut rng));
        t += 0.1;
    }
    assert_eq!(bank.tracker().active_count(), 0);
    assert!(
        cleared.iter().all(|e| matches!(e, AlarmEvent::Cleared(_))),
        "{cleared:?}"
    );
    assert_eq!(cleared.len(), 4);
    let mut ids: Vec<u64> = cleared.iter().map(|e| e.alarm().id).collect();
    ids.sort_unstable();
    assert_eq!(ids, [1, 2, 3, 4]);
}

#[test]
fn bank_validates_settings_and_shapes() {
    let mut bank = DetectorBank::new(&bank_settings()).unwrap();
    assert_eq!(
        bank.update(0.0, &[0.0; 3], &[1.0; 4], 1.0, &[0.0; 4]),
        Err(DetectError::LengthMismatch {
            name: "residual",
            got: 3,
            expected: 4
        })
    );
    assert!(
        bank.update(0.0, &[0.0; 4], &[1.0; 4], 1.0, &[0.0; 5])
            .is_err()
    );

    let mut s = bank_settings();
    s.outputs.clear();
    assert!(DetectorBank::new(&s).is_err());
    let mut s = bank_settings();
    s.sample_period = 0.0;
    assert!(DetectorBank::new(&s).is_err());
    let mut s = bank_settings();
    s.chi2_false_alarm = Some(1.5);
    assert!(DetectorBank::new(&s).is_err());
    let mut s = bank_settings();
    s.chi2_window = Some(0);
    assert!(DetectorBank::new(&s).is_err());
    let mut s = bank_settings();
    s.outputs[2].cusum_threshold = Some(-1.0);
    assert!(DetectorBank::new(&s).is_err());
    let mut s = bank_settings();
    s.outputs[0].frozen_after = Some(f64::NAN);
    assert!(DetectorBank::new(&s).is_err());
    let mut s = bank_settings();
    s.outputs[1].noise_std = -1.0;
    assert!(DetectorBank::new(&s).is_err());
}
