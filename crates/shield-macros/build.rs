//! Resolves what the macros key their sites with.
//!
//! - The build seed: `TWINSHIELD_SEED` (decimal or 0x-hex) or, unset, a
//!   random one, passed to the macro crate as `TWINSHIELD_MACRO_SEED`, so
//!   that changing the seed rebuilds the macros and every crate that uses
//!   them.
//! - In release builds, a digest of the whole project's sources (every file
//!   under `crates/*/src` and every crate manifest), as
//!   `TWINSHIELD_MACRO_SOURCE`: any change anywhere re-keys every site of
//!   every crate, so two releases differ in every function, not only in
//!   the one a fix touched. Cargo reruns this script when any of those
//!   files changes. Debug builds use a fixed digest: there a one-line edit
//!   should rebuild one crate, not the workspace.
#![allow(clippy::print_stdout)]

use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-env-changed=TWINSHIELD_SEED");
    println!("cargo:rerun-if-changed=build.rs");
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
    let release = std::env::var("PROFILE").is_ok_and(|p| p == "release");
    let digest = if release { source_digest() } else { 0 };
    println!("cargo:rustc-env=TWINSHIELD_MACRO_SOURCE={digest}");
}

/// FNV-1a over the sorted paths and contents of the project's sources;
/// registers each crate's source directory and manifest with cargo.
fn source_digest() -> u64 {
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from);
    let Some(crates) = manifest.as_deref().and_then(Path::parent) else {
        return 0;
    };
    let mut files = Vec::new();
    let Ok(entries) = std::fs::read_dir(crates) else {
        return 0;
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        let src = dir.join("src");
        let toml = dir.join("Cargo.toml");
        if src.is_dir() && toml.is_file() {
            println!("cargo:rerun-if-changed={}", src.display());
            println!("cargo:rerun-if-changed={}", toml.display());
            files.push(toml);
            collect(&src, &mut files);
        }
    }
    files.sort();
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    };
    for f in &files {
        let rel = f.strip_prefix(crates).unwrap_or(f);
        eat(rel.to_string_lossy().as_bytes());
        eat(&[0]);
        eat(&std::fs::read(f).unwrap_or_default());
        eat(&[0]);
    }
    h
}

/// Every file under `dir`, recursively.
fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let p = entry.path();
        if p.is_dir() {
            collect(&p, out);
        } else {
            out.push(p);
        }
    }
}
