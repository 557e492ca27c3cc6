//! A decrypted bundle payload: the model reader checks every count, range
//! and program; whatever it accepts simulates without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use twinshield_model::bytecode::Encoding;
use twinshield_model::{Model, Simulator};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Model::from_payload(data, &Encoding::identity()) {
        let mut sim = Simulator::new(&m);
        let u = m.nominal_inputs();
        for _ in 0..5 {
            if sim.step(&u).is_err() {
                break;
            }
        }
    }
});
