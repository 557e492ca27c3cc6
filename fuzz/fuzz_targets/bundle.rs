//! Bundles as a device receives them: the header parser, and opening with a
//! real device identity and trusted key. Nothing panics; nothing but a
//! bundle signed by the trusted key opens.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use twinshield_seal::{DeviceIdentity, EmbeddedSecret, PublisherKey, inspect, open};

struct Fixture {
    device: DeviceIdentity,
    publisher: PublisherKey,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("twinshield-fuzz-bundle-{}", std::process::id()));
        let device = DeviceIdentity::open_or_create(&dir, &EmbeddedSecret)
            .map(|(d, _)| d)
            .unwrap_or_else(|e| panic!("fixture identity: {e}"));
        let publisher = PublisherKey::generate().unwrap_or_else(|e| panic!("fixture key: {e}"));
        Fixture { device, publisher }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let _ = inspect(data);
    // A fresh publisher key signed nothing the fuzzer can produce.
    assert!(open(data, &f.publisher.public(), &f.device).is_err());
});
