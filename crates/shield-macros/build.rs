//! Resolves the build seed the macros key their sites with:
//! `TWINSHIELD_SEED` (decimal or 0x-hex) or, unset, a random one. Passed to
//! the macro crate as `TWINSHIELD_MACRO_SEED`, so that changing the seed
//! rebuilds the macros and every crate that uses them.
#![allow(clippy::print_stdout)]

fn main() {
    println!("cargo:rerun-if-env-changed=TWINSHIELD_SEED");
    let given = std::env::var("TWINSHIELD_SEED").ok().and_then(|t| {
        let t = t.trim().to_owned();
        match t.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16).ok(),
            None => t.parse().ok(),
        }
    });
    let seed = given.unwrap_or_else(|| {
        let mut x = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        if let Ok(uuid) = std::fs::read("/proc/sys/kernel/random/uuid") {
            for b in uuid {
                x = (x ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
            }
        }
        x ^ u64::from(std::process::id()).rotate_left(29)
    });
    println!("cargo:rustc-env=TWINSHIELD_MACRO_SEED={seed}");
}
