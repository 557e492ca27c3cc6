//! device.fp as a vendor receives it: parsed and its self-signature checked;
//! never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use twinshield_seal::DeviceFp;

fuzz_target!(|data: &[u8]| {
    if let Ok(fp) = DeviceFp::decode(data) {
        assert!(usize::from(fp.threshold()) <= fp.components().count());
    }
});
