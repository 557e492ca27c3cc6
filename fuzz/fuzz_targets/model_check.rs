//! The model checker on arbitrary files (a `.twin` file is the twin's
//! configuration): it accepts or reports, never panics; whatever it accepts
//! simulates and feeds the estimator without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use twinshield_model::{Ekf, Model, Simulator};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match Model::parse("fuzz.twin", &text) {
        Err(report) => {
            assert!(!report.diagnostics().is_empty());
            let _ = report.to_string();
        }
        Ok(model) => {
            let u = model.nominal_inputs();
            let mut sim = Simulator::new(&model);
            let mut y = vec![0.0; model.outputs.len()];
            let mut ekf = Ekf::new(&model);
            for _ in 0..10 {
                if sim.step(&u).is_err() || sim.outputs(&u, &mut y).is_err() {
                    break;
                }
                let _ = ekf.step(&u, &y, model.step);
            }
        }
    }
});
