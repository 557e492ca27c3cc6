//! What `#[protect]` refuses, compiled by rustc against the built macro
//! crate: the exact errors, one per refused construct.

#![allow(clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The newest build of this crate's proc-macro library next to the test
/// binary (target/<profile>/deps).
fn macro_library(deps: &Path) -> PathBuf {
    let mut found: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(deps)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.starts_with("libtwinshield_shield_macros-")
                    && (n.ends_with(".so") || n.ends_with(".dylib"))
            })
        })
        .filter_map(|p| Some((p.metadata().ok()?.modified().ok()?, p)))
        .collect();
    found.sort();
    match found.pop() {
        Some((_, p)) => p,
        None => panic!("no libtwinshield_shield_macros-*.so in {}", deps.display()),
    }
}

#[test]
fn refused_constructs_get_their_error() {
    let exe = std::env::current_exe().unwrap_or_default();
    let deps = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    let lib = macro_library(&deps);
    let out_dir = std::env::temp_dir().join(format!("twinshield-refused-{}", std::process::id()));
    std::fs::create_dir_all(&out_dir).unwrap_or_default();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/refused.rs");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let output = Command::new(rustc)
        .args([
            "--edition",
            "2024",
            "--crate-type",
            "lib",
            "--crate-name",
            "refused",
        ])
        .args(["--emit", "metadata", "--error-format", "short", "--out-dir"])
        .arg(&out_dir)
        .arg("--extern")
        .arg(format!("twinshield_shield_macros={}", lib.display()))
        .arg("-L")
        .arg(format!("dependency={}", deps.display()))
        .arg(&fixture)
        .output();
    let _ = std::fs::remove_dir_all(&out_dir);
    let output = match output {
        Ok(o) => o,
        Err(e) => panic!("cannot run rustc: {e}"),
    };
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    // `path:line:col: error: message`, without the path.
    let mut errors: Vec<String> = stderr
        .lines()
        .filter_map(|l| l.split_once(": error: "))
        .map(|(at, msg)| {
            let line = at.rsplit(':').nth(1).unwrap_or("?");
            format!("{line}: {msg}")
        })
        .collect();
    errors.sort();
    let mut expected = vec![
        "6: #[protect] does not handle `async fn` (its body is a state machine already: protect the functions it calls)",
        "9: #[protect] does not handle `const fn` (an obfuscated body cannot run at compile time)",
        "13: #[protect] takes no arguments",
        "18: #[protect] reserves identifiers and labels starting with `__ts` for its expansion",
        "24: #[protect] applies to a function with a body (a free function or a method)",
    ];
    expected.sort();
    assert_eq!(errors, expected, "rustc said:\n{stderr}");
}
