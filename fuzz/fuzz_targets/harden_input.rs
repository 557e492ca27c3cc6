//! `harden`'s input, a file an operator names: parsed as ELF, searched for
//! the guard table, hardened; and guard tables decoded. Never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = twinshield_shield::ReleaseKey::from_text(&twinshield_shield::ReleaseKey::text_for(
        &[1; 32],
    ))
    .expect("a well-formed key");
    let mut bytes = data.to_vec();
    if twinshield_shield::harden(&mut bytes, 1, &key).is_err() {
        assert_eq!(bytes, data, "a refused binary is left as it was");
    }
    let _ = twinshield_shield::elf::load_segments(data);
    let _ = twinshield_shield::guard::decode(data);
    let _ = twinshield_shield::guard::signed_by_release_key(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = twinshield_shield::ReleaseKey::from_text(text);
    }
});
