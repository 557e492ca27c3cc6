//! The bytecode decoder and VM on arbitrary bytes under an arbitrary
//! encoding: decoding accepts only programs that stay in bounds, and any
//! program it accepts runs without panicking and re-encodes to a program
//! that decodes to the same instructions (in the encoding's own order; to
//! the same bytes under the plain encoding).
#![no_main]

use libfuzzer_sys::fuzz_target;
use twinshield_model::bytecode::{Encoding, Program};
use twinshield_model::vm::Machine;

fuzz_target!(|data: &[u8]| {
    let Some((seed, bytes)) = data.split_first_chunk::<8>() else {
        return;
    };
    let seed = u64::from_le_bytes(*seed);
    let enc = if seed == 0 {
        Encoding::identity()
    } else {
        Encoding::from_seed(seed)
    };
    if let Ok(prog) = Program::decode(bytes, &enc) {
        let again = prog.encode(&enc);
        let back = Program::decode(&again, &enc);
        assert!(back.is_ok_and(|b| b.same_up_to_order(&prog)));
        if seed == 0 {
            assert_eq!(again, bytes);
        }
        let mut vm = Machine::new(&prog);
        let inputs = vec![1.5; prog.n_inputs()];
        let states = vec![-2.0; prog.n_states()];
        let mut out = vec![0.0; prog.n_results()];
        assert!(vm.eval(&prog, &inputs, &states, &mut out).is_ok());
    }
});
