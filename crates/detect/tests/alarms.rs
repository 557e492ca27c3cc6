#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
//! The alarm tracker.

use twinshield_detect::{AlarmEvent, AlarmTracker, DetectError, DetectorKind, Status};

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
