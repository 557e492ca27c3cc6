//! The release binary as an attacker with a copy of it finds it: stripped
//! (the symbols stay with the vendor), and sealed with a guard table that
//! only the vendor's release key can sign. Each test is the attack an
//! expert tries first: look the shield's functions up by name, patch one,
//! and seal the binary again with the shipped `harden` or with a hardener
//! of their own.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::print_stderr
)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use twinshield_e2e::{
    Run, Scratch, demo_after_memory_write, mapped_address, twinshield, vendor_functions,
    without_core_dumps,
};
use twinshield_shield::guard::{TABLE_LEN, marker};
use twinshield_shield::{ReleaseKey, harden};

/// The symbols the vendor keeps beside the test's hardened binary.
fn symbols() -> PathBuf {
    twinshield().with_extension("sym")
}

/// The names in a file's symbol table (`nm`), empty when it has none.
fn symbol_names(file: &Path) -> Vec<String> {
    let out = Command::new("nm").arg(file).output().expect("nm runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2).map(str::to_owned))
        .collect()
}

/// The section names of an ELF file (`readelf -S`).
fn sections(file: &Path) -> String {
    let out = Command::new("readelf")
        .args(["-S", "--wide"])
        .arg(file)
        .output()
        .expect("readelf runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The file offset of the guard table, found as an attacker finds it: the
/// marker that starts it.
fn table_offset(binary: &[u8]) -> usize {
    let m = marker();
    let found: Vec<usize> = binary
        .windows(m.len())
        .enumerate()
        .filter(|(_, w)| *w == m)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(found.len(), 1, "one guard table");
    found[0]
}

/// The file offset of the function whose symbol (from the vendor's
/// symbol file) contains `name`.
fn function_offset(binary: &[u8], name: &str) -> Option<usize> {
    vendor_functions(binary)
        .into_iter()
        .find_map(|(sym, at)| sym.contains(name).then_some(at))
}

/// The hardened binary with the shield's reporting patched to return at
/// once (the one-byte patch that used to turn the shield off, when one
/// function answered every finding), its table's
/// state word cleared so that it reads as never hardened.
fn patched_to_look_unhardened() -> Vec<u8> {
    let mut bytes = fs::read(twinshield()).unwrap();
    let at = [
        "Shield6report",
        "Shield7respond",
        "probe17tracer_other_than",
    ]
    .iter()
    .find_map(|n| function_offset(&bytes, n))
    .expect("the vendor's symbols name the shield's functions");
    bytes[at] = 0xc3;
    let table = table_offset(&bytes);
    bytes[table + 16..table + 24].fill(0);
    bytes
}

fn write_executable(path: &Path, bytes: &[u8]) {
    use std::os::unix::fs::PermissionsExt;
    fs::write(path, bytes).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

fn harden_with_shipped_tool(dir: &Path, binary: &Path, extra: &[&str]) -> Run {
    without_core_dumps(twinshield())
        .current_dir(dir)
        .arg("harden")
        .arg(binary)
        .args(["--allow-development-secret"])
        .args(extra)
        .output()
        .unwrap()
        .into()
}

/// Error lines (a development build's harden also warns about its
/// white-box secret).
fn errors(r: &Run) -> usize {
    r.stderr.lines().filter(|l| l.starts_with("error:")).count()
}

fn attacker_key(dir: &Path) -> PathBuf {
    let path = dir.join("attacker.key");
    fs::write(&path, &*ReleaseKey::text_for(&[0x42; 32])).unwrap();
    path
}

#[test]
fn the_shipped_binary_carries_no_symbols_and_the_vendor_keeps_them() {
    let shipped = sections(twinshield());
    assert!(!shipped.contains(".symtab"), "{shipped}");
    // (`.debug_gdb_scripts` is no debug information: it names gdb's
    // pretty-printers for Rust's types.)
    for debug in [".debug_info", ".debug_line", ".debug_str", ".debug_abbrev"] {
        assert!(!shipped.contains(debug), "{debug}: {shipped}");
    }
    assert!(symbol_names(twinshield()).is_empty());
    let kept = symbol_names(&symbols());
    assert!(
        kept.iter().any(|s| s.contains("twinshield_shield")),
        "the vendor's symbol file names the shield's functions"
    );
    // No function name of ours is left for a lookup by name.
    let bytes = fs::read(twinshield()).unwrap();
    for name in ["Shield7respond", "probe6tracer", "verify_all"] {
        assert!(
            !bytes.windows(name.len()).any(|w| w == name.as_bytes()),
            "`{name}` is in the shipped binary"
        );
    }
}

#[test]
fn a_hardened_binary_is_never_hardened_again() {
    let dir = Scratch::new("release-reharden");
    let copy = dir.path().join("twinshield");
    fs::copy(twinshield(), &copy).unwrap();
    // Even with the vendor's own key at hand.
    let key = twinshield().with_file_name("twinshield-release.key");
    let before = fs::read(&copy).unwrap();
    let r = harden_with_shipped_tool(dir.path(), &copy, &["--release-key", key.to_str().unwrap()]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert_eq!(errors(&r), 1, "{r:?}");
    assert!(r.stderr.contains("already hardened"), "{r:?}");
    assert!(fs::read(&copy).unwrap() == before, "the binary changed");
}

#[test]
fn a_patched_binary_cannot_be_sealed_again_with_the_shipped_tools() {
    let dir = Scratch::new("release-patched");
    let patched = dir.path().join("twinshield");
    write_executable(&patched, &patched_to_look_unhardened());
    let before = fs::read(&patched).unwrap();
    // The attacker has the binary, not the build machine's key file.
    let r = harden_with_shipped_tool(dir.path(), &patched, &[]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("release key"), "{r:?}");
    // Nor does a key of their own do.
    let own = attacker_key(dir.path());
    let r = harden_with_shipped_tool(
        dir.path(),
        &patched,
        &["--release-key", own.to_str().unwrap()],
    );
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(
        r.stderr
            .contains("not the release key this twinshield was built with"),
        "{r:?}"
    );
    assert!(fs::read(&patched).unwrap() == before, "the binary changed");
}

#[test]
fn a_binary_sealed_with_a_hardener_of_the_attackers_own_refuses_to_start() {
    let dir = Scratch::new("release-own-hardener");
    let mut bytes = patched_to_look_unhardened();
    // The library's `harden` has no key check: it is the attacker's own
    // hardener, signing with their own key.
    let own = ReleaseKey::from_text(&ReleaseKey::text_for(&[0x42; 32])).unwrap();
    harden(&mut bytes, 7, &own).expect("the attacker's hardener seals it");
    let table = table_offset(&bytes);
    assert_eq!(bytes[table..table + TABLE_LEN].len(), TABLE_LEN);
    let resealed = dir.path().join("twinshield");
    write_executable(&resealed, &bytes);
    for args in [
        vec!["fingerprint", "--state", "state", "--out", "device.fp"],
        vec!["model", "check", "/nonexistent.twin"],
    ] {
        let r: Run = without_core_dumps(&resealed)
            .current_dir(dir.path())
            .args(&args)
            .output()
            .unwrap()
            .into();
        assert_eq!(r.code, Some(1), "{args:?}: {r:?}");
        assert_eq!(r.stderr.lines().count(), 1, "{r:?}");
        assert!(
            r.stderr.contains("not sealed by its vendor"),
            "{args:?}: {r:?}"
        );
    }
    assert!(!dir.path().join("state").exists(), "nothing was created");
}

/// Root rewrites one byte of a region's checksum in the running twin's
/// mapped guard table through `/proc/PID/mem` (the kernel lets root write
/// read-only mappings): the twin locks down within about a second.
#[test]
fn a_checksum_rewritten_in_the_running_twins_table_is_a_lockdown() {
    let table = table_offset(&fs::read(twinshield()).unwrap());
    let dir = Scratch::new("release-table-in-memory");
    let record = table as u64 + twinshield_shield::guard::HEADER as u64 + 17;
    let after = demo_after_memory_write(dir.path(), |pid| mapped_address(pid, record), &[0x5a]);
    let (stderr, seconds) = (after.stderr, after.seconds);
    assert_eq!(after.code, Some(3), "{stderr}");
    assert!(
        stderr.contains("error: lockdown: tamper: the guard table is not signed"),
        "{stderr}"
    );
    assert!(seconds < 2.0, "locked down after {seconds:.2} s");
    eprintln!("locked down {seconds:.2} s after the write");
}
