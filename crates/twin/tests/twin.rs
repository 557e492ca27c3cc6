//! The twin pipeline on samples from the model itself: quiet when plant and
//! model agree, an alarm soon after a sensor bias, and bad samples refused
//! without changing anything.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use twinshield_model::{Model, Simulator};
use twinshield_twin::{AlarmEvent, DetectorKind, Twin, TwinError, TwinSettings};

fn model() -> Model {
    Model::parse(
        "quadtank.twin",
        include_str!("../../../models/quadtank.twin"),
    )
    .unwrap()
}

/// Runs the model as the "plant" with deterministic measurement noise,
/// adding `bias` to y1 from `bias_at`; returns the raised alarms.
fn run(seconds: f64, bias_at: f64, bias: f64) -> Vec<(f64, DetectorKind, Vec<String>)> {
    let m = model();
    let mut plant = Simulator::new(&m);
    let mut twin = Twin::new(&m, TwinSettings::default()).unwrap();
    let u = [3.0, 3.0];
    let mut y = [0.0; 4];
    let mut raised = Vec::new();
    let mut state = 12345u64;
    let mut k = 0u32;
    loop {
        let t = f64::from(k) * 0.1;
        if t > seconds {
            break;
        }
        plant.outputs(&u, &mut y).unwrap();
        for v in &mut y {
            // Uniform noise of std 0.04, quantized to 0.01 like a register.
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let n = ((state >> 11) as f64 / (1u64 << 53) as f64 - 0.5) * 0.04 * 12f64.sqrt();
            *v = ((*v + n) * 100.0).round() / 100.0;
        }
        if t >= bias_at {
            y[0] += bias;
        }
        for e in twin.update(t, &u, &y).unwrap() {
            if let AlarmEvent::Raised(a) = e {
                raised.push((a.start, a.kind, a.channels.clone()));
            }
        }
        plant.advance(&u, 0.1).unwrap();
        k += 1;
    }
    raised
}

#[test]
fn quiet_when_plant_and_model_agree() {
    assert_eq!(run(1800.0, f64::INFINITY, 0.0), vec![]);
}

#[test]
fn a_sensor_bias_raises_an_alarm_on_its_channel_within_seconds() {
    let raised = run(400.0, 300.0, 1.0);
    let first = raised.first().expect("an alarm");
    assert!(first.0 >= 300.0 && first.0 < 305.0, "{raised:?}");
    assert_eq!(first.1, DetectorKind::Cusum);
    assert_eq!(first.2, vec!["y1".to_owned()]);
}

#[test]
fn nothing_alarms_during_warm_up() {
    // A bias from the start is inside the warm-up: no alarm until it ends.
    let raised = run(100.0, 0.0, 1.0);
    assert_eq!(raised, vec![]);
}

#[test]
fn bad_samples_are_refused_and_change_nothing() {
    let m = model();
    let mut twin = Twin::new(&m, TwinSettings::default()).unwrap();
    let y = [12.26, 12.78, 1.63, 1.41];
    twin.update(0.0, &[3.0, 3.0], &y).unwrap();
    let before = twin.estimate().to_vec();
    assert!(matches!(
        twin.update(0.0, &[3.0, 3.0], &y),
        Err(TwinError::TimeNotIncreasing { .. })
    ));
    assert!(matches!(
        twin.update(0.1, &[3.0, f64::NAN], &y),
        Err(TwinError::Estimator(_))
    ));
    assert!(twin.update(0.2, &[3.0], &y).is_err());
    assert_eq!(twin.estimate(), before.as_slice());
    assert_eq!(twin.samples(), 1);
    assert_eq!(twin.refused(), 3);
    assert_eq!(twin.history().appended(), 1);
}

#[test]
fn settings_are_validated() {
    let m = model();
    let bad = TwinSettings {
        sample_period: 0.0,
        ..TwinSettings::default()
    };
    assert!(matches!(Twin::new(&m, bad), Err(TwinError::Settings(_))));
}
