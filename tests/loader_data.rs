//! What the loader reads and writes, attacked through the real, stripped,
//! hardened binary: `.dynamic` and `.init_array` patched in the file, and a
//! GOT slot overwritten in the running twin through `/proc/PID/mem`. The
//! code guards cannot cover them (the loader rewrites them); the loader
//! data's seal in the signed guard table and the shield's run-time check of
//! the relocated RELRO range do.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::print_stderr
)]

use std::fs;
use std::path::Path;
use std::process::Command;
use twinshield_e2e::{
    Run, Scratch, demo_after_memory_write, load_bias, root, twinshield, without_core_dumps,
};

/// A section of the shipped binary: (virtual address, file offset, size),
/// from its section headers (a stripped binary keeps them).
fn section(binary: &Path, name: &str) -> (u64, usize, usize) {
    let out = Command::new("readelf")
        .args(["-S", "--wide"])
        .arg(binary)
        .output()
        .expect("readelf runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.split_whitespace().any(|w| w == name))
        .unwrap_or_else(|| panic!("no {name}"));
    let f: Vec<&str> = line.split(']').nth(1).unwrap().split_whitespace().collect();
    let hex = |s: &str| u64::from_str_radix(s, 16).unwrap();
    (hex(f[2]), hex(f[3]) as usize, hex(f[4]) as usize)
}

fn model() -> String {
    root()
        .join("models/quadtank.twin")
        .to_string_lossy()
        .into_owned()
}

/// Runs a patched copy of the shipped binary.
fn run_patched(dir: &Path, bytes: &[u8]) -> Run {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.join("twinshield");
    fs::write(&bin, bytes).unwrap();
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
    without_core_dumps(&bin)
        .current_dir(dir)
        .args(["model", "check", &model()])
        .output()
        .unwrap()
        .into()
}

fn assert_lockdown(r: &Run, evidence: &str) {
    assert_eq!(r.code, Some(3), "{r:?}");
    assert!(r.stderr.contains("error: lockdown: tamper: "), "{r:?}");
    assert!(r.stderr.contains(evidence), "expected `{evidence}`: {r:?}");
}

/// The published attack: `DT_DEBUG` turned into `DT_NEEDED` naming a
/// string that is already in `.dynstr` (here a library the binary needs
/// anyway, so the loader runs it as before).
#[test]
fn a_dynamic_entry_patched_in_the_file_is_a_lockdown() {
    let dir = Scratch::new("loader-dynamic");
    let mut bytes = fs::read(twinshield()).unwrap();
    let (_, dynamic, size) = section(twinshield(), ".dynamic");
    let (_, dynstr, dynstr_size) = section(twinshield(), ".dynstr");
    let strings = &bytes[dynstr..dynstr + dynstr_size];
    let libm = strings
        .windows(10)
        .position(|w| w == b"libm.so.6\0")
        .expect("libm.so.6 in .dynstr");
    let entry = (0..size / 16)
        .map(|i| dynamic + 16 * i)
        .find(|&at| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()) == 21)
        .expect("a DT_DEBUG entry");
    bytes[entry..entry + 8].copy_from_slice(&1u64.to_le_bytes());
    bytes[entry + 8..entry + 16].copy_from_slice(&(libm as u64).to_le_bytes());
    let r = run_patched(dir.path(), &bytes);
    assert_lockdown(&r, "the binary's .dynamic, init arrays or data differ");
}

#[test]
fn an_init_array_entry_changed_in_the_file_is_a_lockdown() {
    let dir = Scratch::new("loader-init-array");
    let mut bytes = fs::read(twinshield()).unwrap();
    let (_, init, size) = section(twinshield(), ".init_array");
    assert!(size >= 8);
    bytes[init] ^= 0x10;
    let r = run_patched(dir.path(), &bytes);
    assert_lockdown(&r, "the binary's .dynamic, init arrays or data differ");
}

/// Root overwrites one GOT slot of the running twin through
/// `/proc/PID/mem` (the kernel lets root write the read-only RELRO
/// mapping), as an attacker redirects a libc call: the twin locks down
/// within about a second.
#[test]
fn a_got_slot_overwritten_at_run_time_is_a_lockdown_within_a_second() {
    let dir = Scratch::new("loader-got");
    let (got, _, size) = section(twinshield(), ".got");
    assert!(size >= 64);
    let slot = |pid| load_bias(pid) + got + 8 * 3;
    let after = demo_after_memory_write(dir.path(), slot, &0x4141_4141_4141u64.to_le_bytes());
    let (stderr, seconds) = (after.stderr, after.seconds);
    assert_eq!(after.code, Some(3), "{stderr}");
    assert!(
        stderr.contains("error: lockdown: tamper: the GOT, .dynamic or the init arrays changed"),
        "{stderr}"
    );
    eprintln!("locked down {seconds:.2} s after the write");
    assert!(seconds < 1.5, "locked down after {seconds:.2} s");
}

/// The release links with full RELRO and immediate binding, so the GOT is
/// read-only once relocated (what the run-time check above relies on).
#[test]
fn the_shipped_binary_has_full_relro_and_immediate_binding() {
    let out = |args: &[&str]| {
        let o = Command::new("readelf")
            .args(args)
            .arg(twinshield())
            .output()
            .expect("readelf runs");
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    assert!(out(&["-l", "--wide"]).contains("GNU_RELRO"));
    let dynamic = out(&["-d", "--wide"]);
    assert!(dynamic.contains("BIND_NOW"), "{dynamic}");
    assert!(!dynamic.contains("(TEXTREL)"), "{dynamic}");
}
