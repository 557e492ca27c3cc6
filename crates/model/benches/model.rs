//! Benchmarks for the figures the README quotes: VM against native Rust on
//! the quadruple tank's derivatives, RK4 steps per second, and the EKF.
//!
//! Run with `cargo bench -p twinshield-model --bench model`.

// Test code: a failed expectation is the test failing.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use twinshield_model::vm::Machine;
use twinshield_model::{Ekf, Model, Simulator};

const QUADTANK: &str = include_str!("../../../models/quadtank.twin");

/// The quadruple tank's derivatives written directly in Rust, as the
/// baseline the VM is measured against (same parameters, same `max(h, 0)`).
fn native_quadtank(u: &[f64; 2], h: &[f64; 4], out: &mut [f64; 4]) {
    const A1: f64 = 28.0;
    const A2: f64 = 32.0;
    const A3: f64 = 28.0;
    const A4: f64 = 32.0;
    const A1H: f64 = 0.071;
    const A2H: f64 = 0.057;
    const A3H: f64 = 0.071;
    const A4H: f64 = 0.057;
    const G: f64 = 981.0;
    const K1: f64 = 3.33;
    const K2: f64 = 3.35;
    const G1: f64 = 0.70;
    const G2: f64 = 0.60;
    let q1 = (2.0 * G * h[0].max(0.0)).sqrt();
    let q2 = (2.0 * G * h[1].max(0.0)).sqrt();
    let q3 = (2.0 * G * h[2].max(0.0)).sqrt();
    let q4 = (2.0 * G * h[3].max(0.0)).sqrt();
    out[0] = -(A1H / A1) * q1 + (A3H / A1) * q3 + G1 * K1 * u[0] / A1;
    out[1] = -(A2H / A2) * q2 + (A4H / A2) * q4 + G2 * K2 * u[1] / A2;
    out[2] = -(A3H / A3) * q3 + (1.0 - G2) * K2 * u[1] / A3;
    out[3] = -(A4H / A4) * q4 + (1.0 - G1) * K1 * u[0] / A4;
}

fn benches(c: &mut Criterion) {
    let model = Model::parse("quadtank.twin", QUADTANK).expect("shipped model is valid");
    let u = [3.0, 3.0];
    let h = [12.263, 12.783, 1.634, 1.409];

    let prog = model.derivative_program();
    let mut vm = Machine::new(prog);
    let mut out = [0.0; 4];
    vm.eval(prog, &u, &h, &mut out).expect("shape");
    let mut native = [0.0; 4];
    native_quadtank(&u, &h, &mut native);
    assert!(
        out.iter().zip(&native).all(|(a, b)| (a - b).abs() < 1e-12),
        "VM and native disagree: {out:?} vs {native:?}"
    );

    let mut g = c.benchmark_group("quadtank_derivatives");
    g.bench_function("vm", |b| {
        b.iter(|| {
            vm.eval(prog, black_box(&u), black_box(&h), &mut out)
                .expect("shape");
            black_box(&out);
        })
    });
    g.bench_function("native", |b| {
        b.iter(|| {
            native_quadtank(black_box(&u), black_box(&h), &mut native);
            black_box(&native);
        })
    });
    // The program as a bundle carries it: decoded from a diversified
    // encoding (other opcode numbers, masks, instruction order). Decoding
    // happens once, at load; this measures what the encoding costs the VM.
    let enc = twinshield_model::bytecode::Encoding::from_seed(0x5eed);
    let diversified =
        twinshield_model::bytecode::Program::decode(&prog.encode(&enc), &enc).expect("decodes");
    let mut vm2 = Machine::new(&diversified);
    let mut out2 = [0.0; 4];
    g.bench_function("vm_diversified", |b| {
        b.iter(|| {
            vm2.eval(&diversified, black_box(&u), black_box(&h), &mut out2)
                .expect("shape");
            black_box(&out2);
        })
    });
    g.finish();

    let mut sim = Simulator::new(&model);
    c.bench_function("quadtank_rk4_step", |b| {
        b.iter(|| {
            sim.set_states(black_box(&h)).expect("shape");
            sim.step(black_box(&u)).expect("finite");
        })
    });

    let y = [12.3, 12.7, 1.65, 1.40];
    let mut ekf = Ekf::new(&model);
    let mut g = c.benchmark_group("quadtank_ekf");
    g.bench_function("correct", |b| {
        b.iter(|| {
            ekf.reset(&h, &[0.1; 4]).expect("shape");
            black_box(
                ekf.correct(black_box(&u), black_box(&y))
                    .expect("update")
                    .nis,
            );
        })
    });
    g.bench_function("reset_only", |b| {
        b.iter(|| {
            ekf.reset(black_box(&h), &[0.1; 4]).expect("shape");
        })
    });
    // One full cycle at a 10 Hz sample rate: predict 0.1 s (one RK4 step of
    // the model's 0.1 s step, plus the Jacobian) and correct.
    g.bench_function("cycle_100ms", |b| {
        b.iter(|| {
            ekf.reset(&h, &[0.1; 4]).expect("shape");
            black_box(
                ekf.step(black_box(&u), black_box(&y), 0.1)
                    .expect("update")
                    .nis,
            );
        })
    });
    g.finish();
}

criterion_group!(model_benches, benches);
criterion_main!(model_benches);
