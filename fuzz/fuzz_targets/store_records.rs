//! Stored history records after decryption (a damaged disk, or a record
//! that authenticated but holds nonsense): decoders refuse or return
//! well-formed values, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (block, minute, event) = twinshield_store::decode_records(data);
    if let Some(b) = block {
        assert!(b.iter().all(|s| s.values.len() == b[0].values.len()));
    }
    if let Some(m) = minute {
        let _ = m.stats.len();
    }
    if let Some(e) = event {
        let _ = e.kind.name();
    }
});
