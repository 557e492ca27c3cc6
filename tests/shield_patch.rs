//! Issue 17: no single point of failure. For every function of the shield
//! and of the key and bundle code paths (the list from the vendor's
//! symbol file, as an attacker holding it would take it), the hardened,
//! stripped binary with that function's entry patched to return at once:
//! sealed again with the shipped `harden` and a key of the attacker's own
//! (it must refuse), then run under gdb and under a preloaded implant. No patched function may leave the
//! twin running blind: each run locks down, refuses to start, or dies.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::print_stderr
)]

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use twinshield_e2e::{
    Scratch, demo_after_memory_write, mapped_address, shared_object, twinshield, vendor_functions,
    without_core_dumps,
};

/// The crates and modules whose functions are patched: the shield (the
/// library and the binary's own wiring of it), the white-box and at-rest
/// keys, the bundle, and the runtime's device and gate paths.
const PATCHED: [&str; 7] = [
    "17twinshield_shield",
    "10twinshield6shield",
    "19twinshield_whitebox",
    "17twinshield_atrest",
    "15twinshield_seal",
    "18twinshield_runtime6device",
    "18twinshield_runtime4gate",
];

/// What one run of a patched binary did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    /// Exit status 3 with a lockdown message.
    LockedDown,
    /// Exit status 3 without one (the patch was in the reporting: the
    /// site that found it exited itself).
    LockedDownSilently,
    /// Refused to start: an error line and status 1 or 2.
    Refused,
    /// Killed by a signal, or a panic (the patch broke it before it could
    /// run).
    Died,
    /// An outcome none of the above explains (printed in full).
    Unexplained,
    /// Ran to the end, or was still running at the deadline: blind.
    RanBlind,
}

/// The demo: a bundle sealed and opened with the device's keys, the plant,
/// the twin, the API; 20 plant seconds in about one wall second.
const DEMO: [&str; 8] = [
    "demo",
    "--seconds",
    "20",
    "--speed",
    "20",
    "--attack",
    "none",
    "--insecure-http",
];

/// Runs `command` (in `dir`) for at most 30 s; its exit code (`None`:
/// a signal) and its output, or `None` when it was still running.
fn bounded(mut command: Command, dir: &Path) -> Option<(Option<i32>, String)> {
    let out = dir.join(format!("out.{}", std::process::id()));
    let file = fs::File::create(&out).unwrap();
    let mut child = command
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    // Lossy: a patched function can print garbage.
    let text = String::from_utf8_lossy(&fs::read(&out).unwrap_or_default()).into_owned();
    status.map(|s| (s.code(), text))
}

/// The patched binary `bin` under a preloaded implant.
fn under_implant(bin: &Path, implant: &Path, dir: &Path) -> Outcome {
    let mut c = without_core_dumps(bin);
    c.args(DEMO).env("LD_PRELOAD", implant);
    match bounded(c, dir) {
        None | Some((Some(0), _)) => Outcome::RanBlind,
        Some((Some(3), t)) if t.contains("error: lockdown: ") => Outcome::LockedDown,
        Some((Some(3), _)) => Outcome::LockedDownSilently,
        Some((Some(1 | 2), t)) if t.contains("error: ") => Outcome::Refused,
        Some((None, _)) => Outcome::Died,
        Some((Some(101), t)) if t.contains("panicked") => Outcome::Died,
        Some((code, t)) => {
            eprintln!("{}: unexpected exit {code:?}: {t}", bin.display());
            Outcome::Unexplained
        }
    }
}

/// The patched binary `bin` run by gdb.
fn under_gdb(bin: &Path, dir: &Path) -> Outcome {
    let mut c = without_core_dumps("gdb");
    c.args(["-nx", "-batch", "-ex", "run", "--args"])
        .arg(bin)
        .args(DEMO);
    let Some((code, t)) = bounded(c, dir) else {
        return Outcome::RanBlind;
    };
    if t.contains("exited with code 03") && t.contains("error: lockdown: ") {
        Outcome::LockedDown
    } else if t.contains("exited with code 03") {
        Outcome::LockedDownSilently
    } else if t.contains("exited with code 01") || t.contains("exited with code 02") {
        Outcome::Refused
    } else if t.contains("received signal")
        || t.contains("terminated with signal")
        || (t.contains("exited with code 0145") && t.contains("panicked"))
    {
        Outcome::Died
    } else if t.contains("exited normally") {
        Outcome::RanBlind
    } else {
        eprintln!("{}: unexpected gdb exit {code:?}: {t}", bin.display());
        Outcome::Unexplained
    }
}

/// Opens the executable `path` for writing, once the last process running
/// it is gone (a guardian outlives its twin by a moment: until then the
/// kernel refuses with "text file busy").
fn open_for_write(path: &Path) -> fs::File {
    let started = Instant::now();
    loop {
        match fs::OpenOptions::new().write(true).open(path) {
            Ok(f) => return f,
            Err(e)
                if e.raw_os_error() == Some(26) && started.elapsed() < Duration::from_secs(5) =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("cannot write {}: {e}", path.display()),
        }
    }
}

/// Writes `bytes` at `at` of the executable `path`.
fn write_at(path: &Path, at: usize, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    open_for_write(path).write_all_at(bytes, at as u64).unwrap();
}

/// The worker's copy of the hardened binary in `dir`.
fn mutant(dir: &Path, original: &[u8]) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.join("twinshield");
    fs::write(&bin, original).unwrap();
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

/// One patched function, tried every way: the worst outcome, and whether
/// the shipped `harden` sealed it again. `bin` holds `original` before and
/// after.
fn attack(bin: &Path, original: &[u8], at: usize, implant: &Path, key: &Path) -> (Outcome, bool) {
    let dir = bin.parent().unwrap();
    write_at(bin, at, &[0xc3]); // ret
    // The shipped tool, as the attacker has it, with a key of their own.
    let harden = Command::new(twinshield())
        .arg("harden")
        .arg(bin)
        .args(["--seed", "2", "--allow-development-secret", "--release-key"])
        .arg(key)
        .output()
        .unwrap();
    let sealed_again = harden.status.success();
    let worst = under_implant(bin, implant, dir).max(under_gdb(bin, dir));
    if sealed_again {
        write_at(bin, 0, original);
    } else {
        write_at(bin, at, &original[at..=at]);
    }
    (worst, sealed_again)
}

#[test]
fn no_patched_shield_key_or_bundle_function_leaves_the_twin_running_blind() {
    let original = fs::read(twinshield()).unwrap();
    let functions: Vec<(String, usize)> = vendor_functions(&original)
        .into_iter()
        .filter(|(name, _)| PATCHED.iter().any(|p| name.contains(p)))
        .collect();
    assert!(
        functions.len() > 100,
        "the symbol file names the shield: {}",
        functions.len()
    );
    let scratch = Scratch::new("shield-patch");
    let implant = shared_object(
        "int twinshield_test_implant = 1;\n",
        &scratch.path().join("libimplant"),
    );
    let key = scratch.path().join("attacker.key");
    fs::write(&key, &*twinshield_shield::ReleaseKey::text_for(&[0x42; 32])).unwrap();
    let queue = Mutex::new(functions.iter());
    let results = Mutex::new(Vec::new());
    let started = Instant::now();
    std::thread::scope(|s| {
        for worker in 0..2 {
            let dir = scratch.path().join(format!("w{worker}"));
            fs::create_dir_all(&dir).unwrap();
            let bin = mutant(&dir, &original);
            let (queue, results, original, implant, key) =
                (&queue, &results, &original, &implant, &key);
            s.spawn(move || {
                while let Some((name, at)) = queue.lock().unwrap().next() {
                    let (outcome, resealed) = attack(&bin, original, *at, implant, key);
                    if outcome >= Outcome::Unexplained {
                        eprintln!("{name}: {outcome:?}");
                    }
                    results
                        .lock()
                        .unwrap()
                        .push((name.clone(), outcome, resealed));
                }
            });
        }
    });
    let results = results.into_inner().unwrap();
    let mut counts: BTreeMap<Outcome, usize> = BTreeMap::new();
    for (_, o, _) in &results {
        *counts.entry(*o).or_default() += 1;
    }
    let blind: Vec<&String> = results
        .iter()
        .filter(|(_, o, _)| *o == Outcome::RanBlind)
        .map(|(n, _, _)| n)
        .collect();
    let resealed: Vec<&String> = results
        .iter()
        .filter(|(_, _, r)| *r)
        .map(|(n, _, _)| n)
        .collect();
    eprintln!(
        "{} functions patched to return (under gdb and under a preloaded implant, in {:.0} s): \
         worst outcome {counts:?}; sealed again by the shipped harden: {}",
        results.len(),
        started.elapsed().as_secs_f64(),
        resealed.len()
    );
    assert!(
        resealed.is_empty(),
        "the shipped harden sealed patched binaries: {resealed:#?}"
    );
    assert!(
        blind.is_empty(),
        "patched functions left the twin running blind: {blind:#?}"
    );
    assert_eq!(
        counts.get(&Outcome::Unexplained),
        None,
        "see the outcomes printed above"
    );
}

/// At run time, root writes an endless loop (`jmp $`) over the entry of a
/// function the monitor thread calls every round (the tracer probe),
/// through `/proc/PID/mem`: the monitor is stuck there, checks nothing and
/// answers no challenge; the watchdog, which reads no code itself, locks
/// the twin down within 16 of its rounds (or a sync-loop guard check finds
/// the changed region first).
#[test]
fn a_monitor_stuck_in_patched_code_is_locked_down_by_the_watchdog() {
    let original = fs::read(twinshield()).unwrap();
    let (_, at) = vendor_functions(&original)
        .into_iter()
        .find(|(n, _)| n.contains("5probe17tracer_other_than"))
        .expect("the vendor's symbols name the tracer probe");
    let dir = Scratch::new("shield-stuck-monitor");
    let after = demo_after_memory_write(
        dir.path(),
        |pid| mapped_address(pid, at as u64),
        &[0xeb, 0xfe],
    );
    eprintln!(
        "monitor stuck: locked down {:.2} s after the write: {}",
        after.seconds,
        after.stderr.lines().last().unwrap_or_default()
    );
    assert_eq!(after.code, Some(3), "{}", after.stderr);
    assert!(
        [
            "the shield's monitor stopped",
            "the shield's checks stopped answering",
            "guard region"
        ]
        .iter()
        .any(|m| after
            .stderr
            .contains(&format!("error: lockdown: tamper: {m}"))),
        "{}",
        after.stderr
    );
    assert!(after.seconds < 6.0, "{:.2} s", after.seconds);
}
