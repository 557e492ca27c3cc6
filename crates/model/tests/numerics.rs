//! Numerical correctness: RK4's order, the quadruple tank's equilibrium, the
//! EKF's convergence, and clear errors when a model leaves its domain.

// Test code: a failed expectation is the test failing.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use twinshield_model::{Ekf, Model, SimError, Simulator};

const QUADTANK: &str = include_str!("../../../models/quadtank.twin");

/// Deterministic Gaussian noise for tests (SplitMix64 + Box-Muller).
struct Noise(u64);

impl Noise {
    fn uniform(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        ((z >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    fn gauss(&mut self) -> f64 {
        let (u1, u2) = (self.uniform(), self.uniform());
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

fn decay_model(step: f64) -> Model {
    let src = format!(
        "[twin]\nname = \"decay\"\nversion = \"1\"\nstep = {step}\n[inputs]\n\
         [states.x]\ninit = 1.0\nrange = [-1.0, 2.0]\nder = \"-x\"\n\
         [outputs.y]\nexpr = \"x\"\nnoise = 0.01\n"
    );
    Model::parse("decay.twin", &src).expect("valid model")
}

fn rk4_error(step: f64) -> f64 {
    let m = decay_model(step);
    let mut sim = Simulator::new(&m);
    sim.advance(&[], 2.0).expect("finite");
    (sim.states()[0] - (-2.0f64).exp()).abs()
}

#[test]
fn rk4_converges_with_fourth_order() {
    let steps = [0.2, 0.1, 0.05, 0.025];
    let errors: Vec<f64> = steps.iter().map(|&h| rk4_error(h)).collect();
    for w in errors.windows(2) {
        let order = (w[0] / w[1]).log2();
        assert!(
            (3.8..4.2).contains(&order),
            "observed order {order} from errors {errors:?}"
        );
    }
}

/// The equilibrium at pump voltages v, solved from the four equations in
/// closed form, independently of the model file and the VM.
fn quadtank_equilibrium(v1: f64, v2: f64) -> [f64; 4] {
    let (a1, a2, a3, a4) = (0.071, 0.057, 0.071, 0.057);
    let (k1, k2, g1, g2, g) = (3.33, 3.35, 0.70, 0.60, 981.0);
    // Steady state: outflow a·sqrt(2 g h) equals inflow for every tank.
    let level = |flow: f64, hole: f64| (flow / hole).powi(2) / (2.0 * g);
    let h3 = level((1.0 - g2) * k2 * v2, a3);
    let h4 = level((1.0 - g1) * k1 * v1, a4);
    let h1 = level(g1 * k1 * v1 + (1.0 - g2) * k2 * v2, a1);
    let h2 = level(g2 * k2 * v2 + (1.0 - g1) * k1 * v1, a2);
    [h1, h2, h3, h4]
}

#[test]
fn quadtank_stays_at_its_equilibrium() {
    let m = Model::parse("quadtank.twin", QUADTANK).expect("valid");
    let eq = quadtank_equilibrium(3.0, 3.0);
    let mut sim = Simulator::new(&m);
    let u = [3.0, 3.0];
    for _ in 0..2000 {
        sim.advance(&u, 1.0).expect("finite");
        for (i, (x, e)) in sim.states().iter().zip(eq).enumerate() {
            let rel = (x - e).abs() / e;
            assert!(
                rel < 0.01,
                "h{} = {x} at t = {} is {:.3}% from equilibrium {e}",
                i + 1,
                sim.time(),
                rel * 100.0
            );
        }
    }
}

#[test]
fn quadtank_settles_to_a_new_equilibrium_after_a_step() {
    let m = Model::parse("quadtank.twin", QUADTANK).expect("valid");
    let eq = quadtank_equilibrium(3.5, 2.5);
    let mut sim = Simulator::new(&m);
    sim.advance(&[3.5, 2.5], 3000.0).expect("finite");
    for (x, e) in sim.states().iter().zip(eq) {
        assert!((x - e).abs() / e < 0.01, "{x} vs {e}");
    }
}

#[test]
fn ekf_converges_from_three_centimetres_off_within_sixty_seconds() {
    let m = Model::parse("quadtank.twin", QUADTANK).expect("valid");
    let mut truth = Simulator::new(&m);
    let mut ekf = Ekf::new(&m);
    let start: Vec<f64> = truth.states().iter().map(|h| h + 3.0).collect();
    ekf.reset(&start, &[3.0; 4]).expect("shape");
    let mut noise = Noise(7);
    let sigma = m.outputs[0].noise;
    let u = [3.2, 2.8]; // a setpoint change, so the state moves while we converge
    let dt = 0.5;
    let mut y = [0.0; 4];
    let mut t = 0.0;
    let mut worst_after_60 = 0.0f64;
    while t < 180.0 {
        truth.advance(&u, dt).expect("finite");
        t += dt;
        truth.outputs(&u, &mut y).expect("shape");
        for v in &mut y {
            *v += sigma * noise.gauss();
        }
        let inn = ekf.step(&u, &y, dt).expect("update");
        assert!(inn.nis.is_finite());
        if t >= 60.0 {
            for (e, x) in ekf.state().iter().zip(truth.states()) {
                worst_after_60 = worst_after_60.max((e - x).abs());
            }
        }
    }
    // Converged: within a few measurement standard deviations of the truth.
    assert!(
        worst_after_60 < 0.15,
        "estimate is still {worst_after_60} cm off after 60 s"
    );
}

#[test]
fn ekf_innovation_is_consistent_when_plant_and_model_agree() {
    let m = Model::parse("quadtank.twin", QUADTANK).expect("valid");
    let mut truth = Simulator::new(&m);
    let mut ekf = Ekf::new(&m);
    let mut noise = Noise(11);
    let u = [3.0, 3.0];
    let mut y = [0.0; 4];
    let (mut sum, mut n) = (0.0, 0);
    for k in 0..2000 {
        truth.advance(&u, 0.5).expect("finite");
        truth.outputs(&u, &mut y).expect("shape");
        for v in &mut y {
            *v += 0.05 * noise.gauss();
        }
        let inn = ekf.step(&u, &y, 0.5).expect("update");
        if k >= 200 {
            sum += inn.nis;
            n += 1;
        }
    }
    // NIS is chi-square with 4 degrees of freedom: mean 4.
    let mean = sum / f64::from(n);
    assert!((3.0..5.0).contains(&mean), "mean NIS {mean}");
}

#[test]
fn ekf_rejects_bad_measurements_and_stays_unchanged() {
    let m = Model::parse("quadtank.twin", QUADTANK).expect("valid");
    let mut ekf = Ekf::new(&m);
    let before = ekf.state().to_vec();
    let err = ekf
        .step(&[3.0, 3.0], &[1.0, f64::NAN, 1.0, 1.0], 0.5)
        .expect_err("NaN measurement");
    assert_eq!(err.to_string(), "measurement 1 is not a finite number");
    assert_eq!(ekf.state(), before.as_slice());
    let err = ekf.step(&[3.0, 3.0], &[1.0, 1.0], 0.5).expect_err("short");
    assert_eq!(err.to_string(), "expected 4 measurements, got 2");
    assert_eq!(ekf.state(), before.as_slice());
}

#[test]
fn leaving_the_domain_is_a_clear_error_naming_state_and_time() {
    let src = "[twin]\nname = \"d\"\nversion = \"1\"\nstep = 0.1\n[inputs]\n\
               [states.x]\ninit = 0.55\nrange = [-10.0, 10.0]\nder = \"-1\"\n\
               [states.y]\ninit = 0.0\nrange = [-10.0, 10.0]\nder = \"sqrt(x)\"\n\
               [outputs.o]\nexpr = \"y\"\nnoise = 1\n";
    let m = Model::parse("d.twin", src).expect("valid");
    let mut sim = Simulator::new(&m);
    let err = sim.advance(&[], 10.0).expect_err("sqrt of a negative");
    match &err {
        SimError::NonFinite { state, time, .. } => {
            assert_eq!(state, "y");
            assert!((time - 0.6).abs() < 1e-9, "time {time}");
        }
        other => panic!("unexpected error {other:?}"),
    }
    assert_eq!(err.to_string(), "state `y` became NaN at t = 0.6 s");
}
