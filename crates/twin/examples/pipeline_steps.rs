//! A fixed amount of the pipeline's work, for counting instructions where
//! the machine is too busy for wall-clock figures: `ROUNDS` fresh twins, each
//! fed the same 10,000 decoded samples recorded from the reference plant
//! (the `pipeline` benchmark's loop, without criterion and the shield).
//!
//! ```text
//! cargo build --profile bench -p twinshield-twin --example pipeline_steps
//! valgrind --tool=cachegrind --cache-sim=no target/release/examples/pipeline_steps 0
//! valgrind --tool=cachegrind --cache-sim=no target/release/examples/pipeline_steps 2
//! ```
//!
//! The difference of the two counts over 20,000 is the instructions per
//! update (the recording and the set-up cancel out).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::print_stdout)]

use std::hint::black_box;
use twinshield_model::Model;
use twinshield_plant::{PlantConfig, QuadTank};
use twinshield_twin::{Twin, TwinSettings};

const SAMPLES: usize = 10_000;

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .map_or(1, |a| a.parse().expect("ROUNDS is a number"));
    let model = Model::parse(
        "quadtank.twin",
        include_str!("../../../models/quadtank.twin"),
    )
    .unwrap();
    let mut plant = QuadTank::new(PlantConfig {
        seed: 7,
        attack: None,
    })
    .unwrap();
    let mut samples = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        plant.step(0.1).unwrap();
        let r = plant.registers();
        let y: Vec<f64> = r.input[..4].iter().map(|&v| f64::from(v) * 0.01).collect();
        let u: Vec<f64> = r.holding[..2]
            .iter()
            .map(|&v| f64::from(v) * 0.001)
            .collect();
        samples.push((u, y));
    }
    let mut events = 0;
    for _ in 0..rounds {
        let mut twin = Twin::new(&model, TwinSettings::default()).unwrap();
        for (k, (u, y)) in samples.iter().enumerate() {
            events += black_box(twin.update(k as f64 * 0.1, u, y).unwrap().len());
        }
    }
    println!("{rounds} rounds of {SAMPLES} updates, {events} alarm events");
}
