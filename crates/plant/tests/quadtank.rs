#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
// Parallel arrays (levels, setpoints, registers) read best indexed together.
#![allow(clippy::needless_range_loop)]
//! Behaviour of the reference quadruple-tank plant: determinism, the steady
//! start, the PLC's tracking, each attack, and robustness to bad input.

use twinshield_plant::{
    Attack, AttackKind, MAX_STEP, PlantConfig, PlantError, QuadTank, Registers, START_LEVELS,
};

const DT: f64 = 0.1;

/// One sample of a run, taken after each step.
#[derive(Debug, Clone, Copy)]
struct Sample {
    t: f64,
    regs: Registers,
    truth: [f64; 4],
    applied: [f64; 2],
    commanded: [f64; 2],
    setpoints: [f64; 2],
}

fn plant(seed: u64, attack: Option<Attack>) -> QuadTank {
    QuadTank::new(PlantConfig { seed, attack }).unwrap()
}

fn run(plant: &mut QuadTank, seconds: f64, dt: f64) -> Vec<Sample> {
    let n = (seconds / dt).round() as usize;
    (0..n)
        .map(|_| {
            plant.step(dt).unwrap();
            Sample {
                t: plant.time(),
                regs: plant.registers(),
                truth: plant.true_levels(),
                applied: plant.applied_voltages(),
                commanded: plant.commanded_voltages(),
                setpoints: plant.setpoints(),
            }
        })
        .collect()
}

/// Runs the same seed with and without `attack`, side by side.
fn pair(seed: u64, attack: Attack, seconds: f64) -> (Vec<Sample>, Vec<Sample>) {
    let attacked = run(&mut plant(seed, Some(attack)), seconds, DT);
    let clean = run(&mut plant(seed, None), seconds, DT);
    (attacked, clean)
}

fn mean(xs: impl Iterator<Item = f64>) -> f64 {
    let (s, n) = xs.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    s / n as f64
}

#[test]
fn same_seed_same_registers_other_seed_other_registers() {
    let registers = |seed: u64| {
        let mut p = plant(seed, Some(Attack::new(AttackKind::Ramp, 200.0)));
        (0..3000)
            .map(|_| {
                let dt = p.jittered_period(0.2);
                p.step(dt).unwrap();
                p.registers()
            })
            .collect::<Vec<_>>()
    };
    let a = registers(7);
    assert_eq!(a, registers(7));
    assert_ne!(a, registers(8));
}

#[test]
fn starts_steady_at_the_equilibrium() {
    let mut p = plant(1, None);
    let start = p.true_levels();
    assert_eq!(&start[..2], &START_LEVELS);
    let regs = p.registers().levels_cm();
    for i in 0..4 {
        assert!((regs[i] - start[i]).abs() < 0.25, "{regs:?} vs {start:?}");
    }
    assert!(p.registers().coils[0]);
    let samples = run(&mut p, 60.0, DT);
    assert!(p.next_setpoint_change() > 60.0);
    for s in &samples {
        for i in 0..4 {
            let rel = (s.truth[i] - start[i]).abs() / start[i];
            assert!(
                rel < 0.02,
                "t={} h{}={} start {}",
                s.t,
                i + 1,
                s.truth[i],
                start[i]
            );
        }
        for v in s.commanded {
            assert!((v - 3.0).abs() < 0.3, "{v}");
        }
    }
}

#[test]
fn pi_controllers_track_setpoint_changes_without_oscillation() {
    let samples = run(&mut plant(3, None), 3.0 * 3600.0, DT);
    // Split the run at each setpoint change.
    let mut segments: Vec<&[Sample]> = Vec::new();
    let mut begin = 0;
    for i in 1..samples.len() {
        if samples[i].setpoints != samples[i - 1].setpoints {
            segments.push(&samples[begin..i]);
            begin = i;
        }
    }
    assert!(segments.len() >= 20, "{} setpoint changes", segments.len());
    for seg in segments.iter().skip(1) {
        let sp = seg[0].setpoints;
        let duration = seg.last().unwrap().t - seg[0].t;
        assert!((239.0..=421.0).contains(&duration), "{duration}");
        for s in seg.iter() {
            assert!((9.0..=15.0).contains(&sp[0]) && (9.0..=15.0).contains(&sp[1]));
            assert!(s.truth.iter().all(|h| (0.0..20.0).contains(h)), "{s:?}");
        }
        // No oscillation: little overshoot beyond the setpoint (some comes
        // from the other loop's step through the upper tanks).
        for i in 0..2 {
            let step = sp[i] - seg[0].truth[i];
            let over = seg
                .iter()
                .map(|s| (s.truth[i] - sp[i]) * step.signum())
                .fold(0.0, f64::max);
            assert!(
                over < 0.75,
                "t={} h{} step {step} overshoot {over}",
                seg[0].t,
                i + 1
            );
        }
        // Settled within a few minutes: the last minute of each interval
        // (at least 3 minutes after the change) sits on the setpoint.
        let tail = &seg[seg.len() - 600..];
        for i in 0..2 {
            let err = mean(tail.iter().map(|s| (s.truth[i] - sp[i]).abs()));
            assert!(
                err < 0.2,
                "t={} h{} off by {err} from {}",
                seg[0].t,
                i + 1,
                sp[i]
            );
        }
    }
}

#[test]
fn attack_activation_is_reported() {
    let mut p = plant(2, Some(Attack::new(AttackKind::Bias, 50.0)));
    assert!(!p.attack_active());
    run(&mut p, 49.9, DT);
    assert!(!p.attack_active() && p.attack_since().is_none());
    run(&mut p, 0.2, DT);
    assert!(p.attack_active());
    assert!((p.attack_since().unwrap() - 50.0).abs() < 0.11);
    assert_eq!(p.attack().unwrap().kind, AttackKind::Bias);
}

#[test]
fn bias_offsets_the_h1_register_only() {
    let (a, c) = pair(4, Attack::new(AttackKind::Bias, 100.0), 600.0);
    for (a, c) in a.iter().zip(&c) {
        assert_eq!(a.truth, c.truth);
        assert_eq!(a.regs.holding, c.regs.holding);
        assert_eq!(a.regs.input[1..], c.regs.input[1..]);
        let diff = i32::from(a.regs.input[0]) - i32::from(c.regs.input[0]);
        if a.t < 99.95 {
            assert_eq!(diff, 0);
        } else {
            assert!((99..=101).contains(&diff), "t={} diff {diff}", a.t);
        }
    }
}

#[test]
fn ramp_offset_on_h2_grows() {
    let (a, c) = pair(5, Attack::new(AttackKind::Ramp, 100.0), 700.0);
    for (a, c) in a.iter().zip(&c) {
        assert_eq!(a.truth, c.truth);
        assert_eq!(a.regs.input[0], c.regs.input[0]);
        assert_eq!(a.regs.input[2..], c.regs.input[2..]);
        let diff = f64::from(a.regs.input[1]) - f64::from(c.regs.input[1]);
        let expected = if a.t < 99.95 {
            0.0
        } else {
            0.5 * (a.t - 100.0)
        };
        assert!((diff - expected).abs() <= 1.1, "t={} diff {diff}", a.t);
    }
    // 600 s at 0.005 cm/s: 3 cm, i.e. 300 counts.
    let last = (a.last().unwrap(), c.last().unwrap());
    assert!(last.0.regs.input[1] - last.1.regs.input[1] >= 299);
}

#[test]
fn freeze_sticks_the_h1_register() {
    let (a, c) = pair(6, Attack::new(AttackKind::Freeze, 100.0), 600.0);
    let frozen: Vec<_> = a.iter().filter(|s| s.t > 100.05).collect();
    assert!(
        frozen
            .iter()
            .all(|s| s.regs.input[0] == frozen[0].regs.input[0])
    );
    let clean: Vec<_> = c.iter().filter(|s| s.t > 100.05).collect();
    assert!(
        clean
            .iter()
            .any(|s| s.regs.input[0] != clean[0].regs.input[0])
    );
    for (a, c) in a.iter().zip(&c) {
        assert_eq!(a.truth, c.truth);
        assert_eq!(a.regs.input[1..], c.regs.input[1..]);
    }
}

#[test]
fn dos_freezes_every_input_register_while_the_plant_moves() {
    let (a, c) = pair(7, Attack::new(AttackKind::Dos, 100.0), 900.0);
    let after: Vec<_> = a.iter().filter(|s| s.t > 100.05).collect();
    assert!(after.iter().all(|s| s.regs.input == after[0].regs.input));
    // A setpoint change happens meanwhile and the truth moves.
    let first = after[0];
    let last = after.last().unwrap();
    assert_ne!(first.setpoints, last.setpoints);
    assert!((first.truth[0] - last.truth[0]).abs() + (first.truth[1] - last.truth[1]).abs() > 0.5);
    for (a, c) in a.iter().zip(&c) {
        assert_eq!(a.truth, c.truth);
        assert_eq!(a.regs.holding, c.regs.holding);
    }
}

#[test]
fn actuator_runs_pump_1_above_what_is_reported() {
    let (a, c) = pair(8, Attack::new(AttackKind::Actuator, 100.0), 3600.0);
    for s in &a {
        assert_eq!(s.regs.holding[0], (s.commanded[0] * 1000.0).round() as u16);
        assert_eq!(s.applied[1], s.commanded[1]);
        if s.t < 99.95 {
            assert_eq!(s.applied[0], s.commanded[0]);
        } else {
            let expected = (s.commanded[0] + 0.6).min(10.0);
            assert!((s.applied[0] - expected).abs() < 1e-12, "{s:?}");
        }
    }
    // The PLC holds the levels, so on average it commands 0.6 V less.
    let window = |r: &[Sample]| mean(r.iter().filter(|s| s.t > 600.0).map(|s| s.commanded[0]));
    let drop = window(&c) - window(&a);
    assert!((drop - 0.6).abs() < 0.1, "commanded v1 drop {drop}");
    let h1 = |r: &[Sample]| mean(r.iter().filter(|s| s.t > 600.0).map(|s| s.truth[0]));
    assert!((h1(&a) - h1(&c)).abs() < 0.1);
}

#[test]
fn replay_repeats_the_last_300_seconds_and_hides_a_setpoint_change() {
    let at = 1000.0;
    let (a, c) = pair(9, Attack::new(AttackKind::Replay, at), 2000.0);
    let lag = (300.0 / DT).round() as usize;
    let start = a.iter().position(|s| s.t > at + 0.05).unwrap();
    assert!((a[start].t - a[start - lag].t - 300.0).abs() < 1e-6);
    for i in start..a.len() {
        assert_eq!(
            a[i].regs.input[..2],
            a[i - lag].regs.input[..2],
            "t={}",
            a[i].t
        );
    }
    // Before the attack the run is the clean one; after it the upper tanks
    // still report their live values.
    for (a, c) in a.iter().zip(&c).take(start - 1) {
        assert_eq!(a.regs, c.regs);
    }
    for s in &a[start..] {
        for i in 2..4 {
            let live = f64::from(s.regs.input[i]) * 0.01;
            assert!((live - s.truth[i]).abs() < 0.3, "{s:?}");
        }
    }
    // The attacker's setpoint change is real: 3 cm on both loops.
    let s0 = a[start].setpoints;
    let c0 = c[start].setpoints;
    for i in 0..2 {
        assert!(
            ((s0[i] - c0[i]).abs() - 3.0).abs() < 1e-9,
            "{s0:?} vs {c0:?}"
        );
    }
    // The tanks follow it within 300 s, while the reported values do not
    // leave the range they had before the attack.
    let moved = &a[start + lag - 1];
    let before = &a[start - lag..start];
    for i in 0..2 {
        assert!((moved.truth[i] - s0[i]).abs() < 0.5, "{moved:?}");
        let hi = before.iter().map(|s| s.regs.input[i]).max().unwrap();
        let lo = before.iter().map(|s| s.regs.input[i]).min().unwrap();
        assert!(
            a[start..]
                .iter()
                .all(|s| (lo..=hi).contains(&s.regs.input[i]))
        );
        let truth_cnt = (moved.truth[i] * 100.0) as u16;
        assert!(truth_cnt > hi + 100 || truth_cnt + 100 < lo);
    }
}

#[test]
fn leak_makes_the_plc_push_harder() {
    let (a, c) = pair(10, Attack::new(AttackKind::Leak, 100.0), 3600.0);
    let after = |r: &[Sample], f: fn(&Sample) -> f64| mean(r.iter().filter(|s| s.t > 900.0).map(f));
    // The PI loops bring h1 and h2 back to their setpoints ...
    let level = |r: &[Sample], i: usize| mean(r.iter().filter(|s| s.t > 900.0).map(|s| s.truth[i]));
    for i in 0..2 {
        let (ha, hc) = (level(&a, i), level(&c, i));
        assert!((ha - hc).abs() < 0.1, "h{} {ha} vs {hc}", i + 1);
    }
    // ... with more flow from pump 1 (about 2 V), less from pump 2.
    let dv1 = after(&a, |s| s.commanded[0]) - after(&c, |s| s.commanded[0]);
    let dv2 = after(&a, |s| s.commanded[1]) - after(&c, |s| s.commanded[1]);
    assert!(dv1 > 1.2 && dv1 < 3.0, "v1 up by {dv1}");
    assert!(dv2 < -0.3, "v2 changed by {dv2}");
    // Right after the leak opens, h1 sags before the PLC catches up.
    let dip = a
        .iter()
        .zip(&c)
        .filter(|(s, _)| s.t > 100.0 && s.t < 300.0)
        .map(|(s, k)| k.truth[0] - s.truth[0])
        .fold(0.0, f64::max);
    assert!(dip > 0.3, "h1 dip {dip}");
}

#[test]
fn bad_steps_are_rejected_and_change_nothing() {
    let mut p = plant(11, None);
    run(&mut p, 10.0, DT);
    let before = (p.time(), p.registers(), p.true_levels());
    for dt in [
        f64::NAN,
        -1.0,
        f64::INFINITY,
        f64::NEG_INFINITY,
        MAX_STEP + 0.1,
        1e300,
    ] {
        assert!(
            matches!(p.step(dt), Err(PlantError::InvalidStep { .. })),
            "{dt}"
        );
        assert_eq!((p.time(), p.registers(), p.true_levels()), before);
    }
    p.step(0.0).unwrap();
    assert_eq!((p.time(), p.registers(), p.true_levels()), before);
    assert_eq!(p.jittered_period(f64::NAN), 0.0);
    assert_eq!(p.jittered_period(-1.0), 0.0);
    for _ in 0..1000 {
        let j = p.jittered_period(1.0);
        assert!((0.95..=1.05).contains(&j));
    }
}

#[test]
fn extreme_attacks_and_long_steps_never_break_the_plant() {
    let extremes = [
        Attack::new(AttackKind::Bias, 5.0).with_magnitude(1e12),
        Attack::new(AttackKind::Bias, 5.0).with_magnitude(-1e12),
        Attack::new(AttackKind::Ramp, 0.0).with_magnitude(1e300),
        Attack::new(AttackKind::Ramp, 0.0).with_magnitude(-1e300),
        Attack::new(AttackKind::Actuator, 5.0).with_magnitude(1e9),
        Attack::new(AttackKind::Actuator, 5.0).with_magnitude(-1e9),
        Attack::new(AttackKind::Leak, 5.0).with_magnitude(1e300),
        Attack::new(AttackKind::Replay, 0.0).with_magnitude(1e9),
        Attack::new(AttackKind::Freeze, 0.0),
        Attack::new(AttackKind::Dos, 0.0),
    ];
    for attack in extremes.into_iter().map(Some).chain([None]) {
        let mut p = plant(12, attack);
        for i in 0..2000 {
            p.step(if i % 2 == 0 { MAX_STEP } else { 1e-9 }).unwrap();
            assert!(
                p.true_levels().iter().all(|h| (0.0..=20.0).contains(h)),
                "{attack:?}"
            );
            for v in p
                .applied_voltages()
                .into_iter()
                .chain(p.commanded_voltages())
            {
                assert!((0.0..=10.0).contains(&v), "{attack:?}");
            }
            assert!(p.registers().holding.iter().all(|r| *r <= 10_000));
        }
    }
    for bad in [
        Attack::new(AttackKind::Bias, f64::NAN),
        Attack::new(AttackKind::Bias, -5.0),
        Attack::new(AttackKind::Bias, 1.0).with_magnitude(f64::NAN),
    ] {
        assert!(matches!(
            QuadTank::new(PlantConfig {
                seed: 0,
                attack: Some(bad)
            }),
            Err(PlantError::InvalidAttack { .. })
        ));
    }
}
