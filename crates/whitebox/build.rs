//! Generates this build's white-box tables: AES-128 under the runtime's
//! embedded secret, diversified by the build seed.
//!
//! The secret (32 bytes: the AES key, then the key of the external output
//! encoding) comes from `TWINSHIELD_WB_SECRET` (64 hex digits) or from the
//! file named by `TWINSHIELD_WB_SECRET_FILE` (the same hex, outside the
//! source tree). Without either, a DEVELOPMENT secret, public in this file,
//! is used and the build is marked as such (`SecretSource::Development`),
//! which release hardening refuses. The seed comes from `TWINSHIELD_SEED`
//! (decimal or 0x-hex) or, unset, from the operating system.
#![allow(clippy::print_stdout, clippy::print_stderr)]

#[allow(dead_code)]
#[path = "src/aes_ref.rs"]
mod aes_ref;
#[allow(dead_code)]
#[path = "src/generate.rs"]
mod generate;
#[allow(dead_code)]
#[path = "src/gf2.rs"]
mod gf2;
#[allow(dead_code)]
#[path = "src/layout.rs"]
mod layout;

use std::path::{Path, PathBuf};
use std::time::Instant;

/// DEVELOPMENT ONLY: public, in the repository, refused by `harden`.
const DEVELOPMENT_SECRET: &str = "646576656c6f706d656e742d6f6e6c79206e6f742d612d7365637265742d2121";

fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    std::process::exit(1)
}

fn parse_secret(hex: &str, from: &str) -> [u8; 32] {
    let hex = hex.trim();
    let bytes = hex.as_bytes();
    if bytes.len() != 64 || !bytes.iter().all(u8::is_ascii_hexdigit) {
        fail(&format!(
            "{from}: the white-box secret must be 64 hex digits"
        ));
    }
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        let text = std::str::from_utf8(pair).unwrap_or("00");
        *o = u8::from_str_radix(text, 16).unwrap_or(0);
    }
    out
}

fn parse_seed(text: &str) -> u64 {
    let t = text.trim();
    let parsed = match t.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => t.parse(),
    };
    parsed.unwrap_or_else(|_| fail("TWINSHIELD_SEED must be a 64-bit number (decimal or 0x-hex)"))
}

fn os_seed() -> u64 {
    let mut buf = [0u8; 8];
    if let Ok(bytes) = std::fs::read("/proc/sys/kernel/random/uuid") {
        for (k, b) in bytes.iter().enumerate() {
            buf[k % 8] = buf[k % 8].rotate_left(5) ^ b;
        }
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    u64::from_le_bytes(buf) ^ nanos ^ u64::from(std::process::id()).rotate_left(32)
}

fn main() {
    for var in [
        "TWINSHIELD_WB_SECRET",
        "TWINSHIELD_WB_SECRET_FILE",
        "TWINSHIELD_SEED",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    for file in [
        "build.rs",
        "src/aes_ref.rs",
        "src/generate.rs",
        "src/gf2.rs",
        "src/layout.rs",
    ] {
        println!("cargo:rerun-if-changed={file}");
    }
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let (secret, source) = if let Ok(hex) = std::env::var("TWINSHIELD_WB_SECRET") {
        (parse_secret(&hex, "TWINSHIELD_WB_SECRET"), "Environment")
    } else if let Some(path) = std::env::var_os("TWINSHIELD_WB_SECRET_FILE") {
        let path = PathBuf::from(path);
        println!("cargo:rerun-if-changed={}", path.display());
        refuse_inside_source_tree(&path, &manifest);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| fail(&format!("{}: {e}", path.display())));
        (parse_secret(&text, &path.display().to_string()), "File")
    } else {
        (
            parse_secret(DEVELOPMENT_SECRET, "development secret"),
            "Development",
        )
    };
    let seed = std::env::var("TWINSHIELD_SEED").map_or_else(|_| os_seed(), |s| parse_seed(&s));

    let mut aes_key = [0u8; 16];
    let mut encoding_key = [0u8; 16];
    aes_key.copy_from_slice(&secret[..16]);
    encoding_key.copy_from_slice(&secret[16..]);
    let started = Instant::now();
    let image = generate::generate(&aes_key, &encoding_key, seed);
    let micros = started.elapsed().as_micros();

    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
    let write = |name: &str, bytes: &[u8]| {
        std::fs::write(out.join(name), bytes)
            .unwrap_or_else(|e| fail(&format!("{}: {e}", out.join(name).display())));
    };
    write("whitebox.tables", &image);
    write(
        "whitebox_build.rs",
        format!(
            "/// Where this build's white-box secret came from.\n\
             pub const SECRET_SOURCE: SecretSource = SecretSource::{source};\n\
             /// This build's seed: it diversified the tables.\n\
             pub const BUILD_SEED: u64 = {seed:#x};\n\
             /// Time the build script took to generate the tables (µs, as built: unoptimised).\n\
             pub const GENERATION_MICROS: u64 = {micros};\n"
        )
        .as_bytes(),
    );
}

/// A secret file inside the source tree would be one `git add` away from
/// being committed.
fn refuse_inside_source_tree(path: &Path, manifest: &Path) {
    let root = manifest.ancestors().nth(2).unwrap_or(manifest);
    if let (Ok(file), Ok(root)) = (path.canonicalize(), root.canonicalize())
        && file.starts_with(&root)
    {
        fail(&format!(
            "{}: the white-box secret file must live outside the source tree ({})",
            path.display(),
            root.display()
        ));
    }
}
