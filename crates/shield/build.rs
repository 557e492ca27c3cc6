//! Embeds the public half of this build's release key: the key that signs
//! the guard table `harden` writes, so that only whoever holds its private
//! half (the vendor's build machine, never the product) can seal a binary.
//!
//! `TWINSHIELD_RELEASE_KEY_FILE` names the vendor's key file; without it
//! the first build of a profile creates one, `twinshield-release.key`
//! beside the binaries of that profile (mode 0600), and every later build
//! there reuses it, so all binaries of one target directory share a key.
// A build script talks to cargo on standard output and explains a failure
// on standard error.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use ed25519_dalek::SigningKey;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// First line of a release key file.
const HEADER: &str = "twinshield release key v1";

fn main() {
    println!("cargo:rerun-if-env-changed=TWINSHIELD_RELEASE_KEY_FILE");
    println!("cargo:rerun-if-changed=build.rs");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
    let seed = match std::env::var_os("TWINSHIELD_RELEASE_KEY_FILE").filter(|v| !v.is_empty()) {
        Some(file) => {
            let file = PathBuf::from(file);
            println!("cargo:rerun-if-changed={}", file.display());
            read_key(&file)
        }
        None => profile_key(&out),
    };
    let public = SigningKey::from_bytes(&seed).verifying_key().to_bytes();
    // Stored masked, so the key is no 32-byte constant to search for.
    let mut mask = [0u8; 32];
    random(&mut mask);
    let masked: Vec<u8> = public.iter().zip(&mask).map(|(p, m)| p ^ m).collect();
    let code = format!(
        "const MASKED_RELEASE_KEY: [u8; 32] = {masked:?};\nconst RELEASE_KEY_MASK: [u8; 32] = {mask:?};\n"
    );
    let target = out.join("release_key.rs");
    if let Err(e) = fs::write(&target, code) {
        fail(&format!("cannot write {}: {e}", target.display()));
    }
}

fn random(buf: &mut [u8]) {
    let read = fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(buf));
    if let Err(e) = read {
        fail(&format!("no randomness: {e}"));
    }
}

fn fail(why: &str) -> ! {
    eprintln!("error: release key: {why}");
    std::process::exit(1);
}

/// The key file's 32-byte seed.
fn read_key(path: &Path) -> [u8; 32] {
    let text = fs::read_to_string(path)
        .unwrap_or_else(|e| fail(&format!("cannot read {}: {e}", path.display())));
    let mut lines = text.lines();
    if lines.next() != Some(HEADER) {
        fail(&format!(
            "{} is not a twinshield release key",
            path.display()
        ));
    }
    let hex = lines.next().unwrap_or_default().trim();
    let mut seed = [0u8; 32];
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        fail(&format!("{}: the key is not 64 hex digits", path.display()));
    }
    for (i, b) in seed.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap_or(0);
    }
    seed
}

/// The profile's key, created on first use: `OUT_DIR` is
/// `<target>/<profile>/build/<package>/out`, the binaries sit in
/// `<target>/<profile>`.
fn profile_key(out: &Path) -> [u8; 32] {
    let Some(profile) = out.ancestors().nth(3) else {
        fail("cannot find the target directory from OUT_DIR");
    };
    let path = profile.join("twinshield-release.key");
    // A deleted key file makes the next build create a new one (and embed it).
    println!("cargo:rerun-if-changed={}", path.display());
    if !path.exists() {
        create_key(&path);
    }
    read_key(&path)
}

/// Writes a fresh key to `path` unless another build got there first
/// (the temporary file is linked into place, which fails if one exists).
fn create_key(path: &Path) {
    let mut seed = [0u8; 32];
    random(&mut seed);
    let hex: String = seed.iter().map(|b| format!("{b:02x}")).collect();
    let tmp = path.with_extension(format!("key.{}", std::process::id()));
    let written = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(format!("{HEADER}\n{hex}\n").as_bytes()));
    if let Err(e) = written {
        fail(&format!("cannot write {}: {e}", tmp.display()));
    }
    let _ = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
}
