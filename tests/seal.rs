//! Sealed bundles and device binding, attacked through the real binary:
//! copying to another machine, flipping bytes, another signer, an older
//! release, another device, corrupt inputs, what a thief can read, and
//! whether the runtime's embedded secret can be lifted from the binary or
//! from a running twin's memory.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use twinshield_e2e::{
    MODEL, Run, SECRET, Setup, contains, plant, process_memory, run_args, twinshield,
    without_core_dumps,
};

/// Every file under the state directory (the history in `state/data`
/// included), with its bytes.
fn state_files(s: &Setup) -> Vec<(PathBuf, Vec<u8>)> {
    let mut v = all_bytes(&s.path("state"));
    v.sort();
    v
}

fn one_line_error(r: &Run, expected: &str) {
    assert_eq!(r.code, Some(1), "{r:?}");
    assert_eq!(r.stderr.lines().count(), 1, "{r:?}");
    assert!(
        r.stderr.contains(expected),
        "expected `{expected}` in: {}",
        r.stderr
    );
}

#[test]
fn a_bundle_sealed_for_this_device_runs_against_the_plant() {
    let s = Setup::new("seal-run");
    let p = plant(&["--seconds", "120"]);
    let r = s.ok(&run_args("q.bundle", &p.url, "2"));
    let v: serde_json::Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(v["model"], "quadtank");
    assert_eq!(v["release"], 5);
    assert!(v["samples"].as_u64().unwrap() >= 10, "{v}");
    assert_eq!(v["data_quality_events"], 0, "{v}");
}

#[test]
fn inspect_shows_the_public_header_only() {
    let s = Setup::new("seal-inspect");
    let r = s.ok(&["inspect", "q.bundle", "--json"]);
    let v: serde_json::Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(v["model"], "quadtank");
    assert_eq!(v["version"], "1.0.0");
    assert_eq!(v["release"], 5);
    assert_eq!(v["devices"].as_array().unwrap().len(), 1);
    for hidden in ["sqrt", "gamma", "h1", "y1", "holding", "input", SECRET] {
        assert!(
            !r.stdout.contains(hidden),
            "inspect shows `{hidden}`: {}",
            r.stdout
        );
    }
}

fn on_another_machine(s: &Setup, args: &str) -> Run {
    twinshield_e2e::on_another_machine(s.dir.path(), args)
}

#[test]
fn a_copied_bundle_and_state_directory_do_not_open_on_another_machine() {
    let s = Setup::new("seal-copy");
    let before = state_files(&s);
    let r = on_another_machine(
        &s,
        "run q.bundle --trust vendor.pub --plant modbus://127.0.0.1:9 --state state --seconds 1",
    );
    one_line_error(&r, "this machine is not the device its keys belong to");
    // The copied state directory yields no key there either.
    let r = on_another_machine(&s, "fingerprint --state state --out stolen.fp");
    one_line_error(&r, "this machine is not the device its keys belong to");
    assert!(!s.path("stolen.fp").exists());
    assert_eq!(state_files(&s), before, "a refused run changed the state");
}

#[test]
fn one_changed_component_still_runs() {
    let s = Setup::new("seal-hostname");
    let script = format!(
        "set -e; hostname renamed-host; exec '{}' run q.bundle --trust vendor.pub \
         --plant modbus://127.0.0.1:9 --state state --seconds 0.5",
        twinshield().display()
    );
    let r: Run = Command::new("unshare")
        .args(["--uts", "sh", "-c", &script])
        .current_dir(s.dir.path())
        .stdin(Stdio::null())
        .output()
        .unwrap()
        .into();
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(r.stderr.contains("components match"), "{r:?}");
}

#[test]
fn every_flipped_byte_is_refused_and_changes_nothing() {
    let s = Setup::new("seal-flip");
    let good = fs::read(s.path("q.bundle")).unwrap();
    let before = state_files(&s);
    let n = good.len();
    // 200 positions spread over the whole file, ends included.
    let positions: Vec<usize> = (0..200).map(|i| i * (n - 1) / 199).collect();
    for (k, &pos) in positions.iter().enumerate() {
        let mut bad = good.clone();
        bad[pos] ^= 1 << (k % 8);
        fs::write(s.path("bad.bundle"), &bad).unwrap();
        let r = s.run_bundle("bad.bundle");
        assert_eq!(
            r.code,
            Some(1),
            "flip at byte {pos} of {n} was accepted: {r:?}"
        );
        assert_eq!(r.stderr.lines().count(), 1, "{r:?}");
    }
    assert_eq!(
        state_files(&s),
        before,
        "a refused bundle changed the state"
    );
    // Truncations too.
    for len in [0, 4, 5, n / 2, n - 1] {
        fs::write(s.path("short.bundle"), &good[..len]).unwrap();
        let r = s.run_bundle("short.bundle");
        assert_eq!(r.code, Some(1), "truncation to {len} accepted: {r:?}");
    }
}

#[test]
fn another_publisher_an_older_release_or_another_device_is_refused() {
    let s = Setup::new("seal-refuse");
    // Another publisher's signature.
    s.ok(&["keys", "new", "--out", "mallory"]);
    s.seal("forged.bundle", "mallory.key", "device.fp", 9);
    one_line_error(
        &s.run_bundle("forged.bundle"),
        "bundle signature does not verify",
    );
    // Release 5 runs, after which release 4 is a rollback.
    assert_eq!(s.run_bundle("q.bundle").code, Some(0));
    s.seal("old.bundle", "vendor.key", "device.fp", 4);
    let before = state_files(&s);
    one_line_error(
        &s.run_bundle("old.bundle"),
        "bundle release 4 is older than release 5 already run",
    );
    assert_eq!(state_files(&s), before);
    // Sealed for another device only.
    s.ok(&["fingerprint", "--state", "other-state", "--out", "other.fp"]);
    s.seal("theirs.bundle", "vendor.key", "other.fp", 6);
    one_line_error(
        &s.run_bundle("theirs.bundle"),
        "bundle is not licensed for this device",
    );
}

#[test]
fn corrupt_inputs_get_one_clear_line() {
    let s = Setup::new("seal-corrupt");
    let mut fp = fs::read(s.path("device.fp")).unwrap();
    let mid = fp.len() / 2;
    fp[mid] ^= 0x40;
    fs::write(s.path("bad.fp"), &fp).unwrap();
    let model = twinshield_e2e::root().join(MODEL);
    let model = model.to_string_lossy();
    let r = s.run(&[
        "seal",
        &model,
        "--device",
        "bad.fp",
        "--sign",
        "vendor.key",
        "--out",
        "x.bundle",
    ]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert_eq!(r.stderr.lines().count(), 1, "{r:?}");
    assert!(r.stderr.contains("bad.fp"), "{r:?}");
    assert!(!s.path("x.bundle").exists());
    fs::write(s.path("junk.key"), "not a key\n").unwrap();
    let r = s.run(&[
        "seal",
        &model,
        "--device",
        "device.fp",
        "--sign",
        "junk.key",
        "--out",
        "x.bundle",
    ]);
    one_line_error(&r, "not a twinshield publisher key file");
    let r = s.run(&[
        "run",
        "q.bundle",
        "--trust",
        "vendor.pub",
        "--plant",
        "modbus://127.0.0.1:9",
        "--state",
        "missing",
    ]);
    one_line_error(&r, "no device identity in missing");
    let r = s.run(&[
        "run",
        "q.bundle",
        "--trust",
        "vendor.pub",
        "--plant",
        "http://x",
        "--state",
        "state",
    ]);
    one_line_error(&r, "must be modbus://HOST:PORT");
    let r = s.run(&[
        "run",
        "models/quadtank.twin",
        "--trust",
        "vendor.pub",
        "--plant",
        "modbus://127.0.0.1:9",
        "--state",
        "state",
    ]);
    assert_eq!(r.code, Some(1), "{r:?}");
}

fn all_bytes(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(all_bytes(&p));
        } else {
            out.push((p.clone(), fs::read(&p).unwrap()));
        }
    }
    out
}

#[test]
fn nothing_readable_in_the_bundle_state_or_data_directory() {
    let s = Setup::new("seal-strings");
    let p = plant(&["--seconds", "120"]);
    let mut args = run_args("q.bundle", &p.url, "1").to_vec();
    args.extend(["--data", "data"]);
    s.ok(&args);
    let mut files = vec![(s.path("q.bundle"), fs::read(s.path("q.bundle")).unwrap())];
    files.extend(all_bytes(&s.path("state")));
    files.extend(all_bytes(&s.path("data")));
    // Parameter names, state and output names as the payload stores them
    // (name, length-prefixed unit), the register map's scales as stored
    // floats, the bytecode and payload magics, the sealed secret. Needles
    // are at least four bytes, so random ciphertext cannot match by chance.
    let scale_cm = 0.01f64.to_le_bytes();
    let scale_mv = 0.001f64.to_le_bytes();
    let needles: [&[u8]; 12] = [
        b"gamma1",
        b"gamma2",
        b"sqrt",
        b"holding",
        b"h1\x02\x00cm",
        b"y1\x02\x00cm",
        &scale_cm,
        &scale_mv,
        b"TSBC",
        b"TSMP",
        SECRET.as_bytes(),
        b"hunter2",
    ];
    for (path, bytes) in &files {
        for n in needles {
            assert!(
                !contains(bytes, n),
                "{} contains `{}`",
                path.display(),
                String::from_utf8_lossy(n)
            );
        }
        // No long readable text beyond the public header's model name and
        // version (16 characters: random bytes make shorter runs by chance).
        // redb's own page-accounting names are its file format, not ours;
        // the history's content is checked in tests/history.rs.
        if path.extension().is_some_and(|e| e == "redb") {
            continue;
        }
        let mut run = Vec::new();
        for &b in bytes.iter().chain([0u8].iter()) {
            if b.is_ascii_graphic() || b == b' ' {
                run.push(b);
            } else {
                if run.len() >= 16 {
                    let s = String::from_utf8_lossy(&run);
                    // The fingerprint's component labels are public (every
                    // device.fp carries them); random bytes beside one can
                    // make a run of 16 by chance.
                    let public = ["quadtank", "1.0.0"]
                        .iter()
                        .chain(twinshield_seal::fingerprint::LABELS.iter());
                    assert!(
                        public.clone().any(|ok| s.contains(ok)),
                        "{} holds readable text `{s}`",
                        path.display()
                    );
                }
                run.clear();
            }
        }
    }
}

#[test]
fn the_needles_searched_for_are_in_the_plaintext_payload() {
    // Guards the test above against searching for things that would not be
    // there even unencrypted.
    use twinshield_model::Model;
    use twinshield_model::bytecode::Encoding;
    let m = Model::parse("q", include_str!("../models/quadtank.twin")).unwrap();
    let plain = m.to_payload(&Encoding::identity());
    for n in [
        b"h1\x02\x00cm".as_slice(),
        b"y1\x02\x00cm",
        &0.01f64.to_le_bytes(),
        &0.001f64.to_le_bytes(),
        b"TSMP",
        b"TSBC",
    ] {
        assert!(
            contains(&plain, n),
            "`{}` not in the plaintext payload",
            String::from_utf8_lossy(n)
        );
    }
}

/// The white-box secret the binary under test was built with: what build.rs
/// reads (`TWINSHIELD_WB_SECRET`, `TWINSHIELD_WB_SECRET_FILE`), else its
/// public development secret (copied here from build.rs).
fn build_secret() -> [u8; 32] {
    let hex = std::env::var("TWINSHIELD_WB_SECRET")
        .ok()
        .or_else(|| {
            std::env::var_os("TWINSHIELD_WB_SECRET_FILE")
                .map(|p| fs::read_to_string(p).unwrap().trim().to_owned())
        })
        .unwrap_or_else(|| {
            "646576656c6f706d656e742d6f6e6c79206e6f742d612d7365637265742d2121".to_owned()
        });
    std::array::from_fn(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
}

/// What a key-lifting tool looks for: the secret, both its halves, its hex
/// text, and the AES key schedule (all 11 round keys, as `aeskeyfind`
/// finds keys in memory images).
fn secret_needles() -> Vec<Vec<u8>> {
    let secret = build_secret();
    let key: [u8; 16] = secret[..16].try_into().unwrap();
    let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    let mut needles = vec![secret.to_vec(), secret[16..].to_vec(), hex.into_bytes()];
    needles.extend(
        twinshield_whitebox::aes_ref::expand_key(&key)
            .iter()
            .map(|rk| rk.to_vec()),
    );
    needles
}

/// The first needle found in `hay`, if any (one pass, needles of 16 bytes
/// or more).
fn find_any<'n>(hay: &[u8], needles: &'n [Vec<u8>]) -> Option<&'n [u8]> {
    let mut first = [false; 256];
    for n in needles {
        first[usize::from(n[0])] = true;
    }
    (0..hay.len()).find_map(|i| {
        if !first[usize::from(hay[i])] {
            return None;
        }
        needles
            .iter()
            .find(|n| hay[i..].starts_with(n))
            .map(Vec::as_slice)
    })
}

#[test]
fn the_binary_holds_neither_the_secret_nor_its_key_schedule() {
    let binary = fs::read(twinshield()).unwrap();
    let needles = secret_needles();
    assert_eq!(find_any(&binary, &needles), None);
    // The search finds a round key where one is: plant round key 10.
    let mut planted = binary.clone();
    let at = planted.len() / 2;
    planted[at..at + 16].copy_from_slice(&needles[13]);
    assert_eq!(find_any(&planted, &needles), Some(needles[13].as_slice()));
}

/// A twin that opened its bundle (every device-key derivation done through
/// the white-box) has its memory read whole, as root reads it: gcore cannot
/// attach (the guardian holds the tracer slot), so through `/proc/PID/mem`
/// by the mappings. The image holds neither the secret nor any round key of
/// it.
#[test]
fn a_running_twins_memory_holds_neither_the_secret_nor_its_key_schedule() {
    let s = Setup::new("seal-memory");
    let p = plant(&["--seconds", "120"]);
    let mut child = Command::new(twinshield())
        .current_dir(s.dir.path())
        .args(run_args("q.bundle", &p.url, "30"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The bundle opens and the history starts within a second or two.
    std::thread::sleep(std::time::Duration::from_secs(3));
    let gcore = without_core_dumps("gcore")
        .arg("-o")
        .arg(s.path("core"))
        .arg(child.id().to_string())
        .output()
        .expect("gcore (Debian package gdb) is needed");
    let image = process_memory(child.id());
    let _ = child.kill();
    let _ = child.wait();
    assert!(!gcore.status.success(), "gcore attached: {gcore:?}");
    let image = image.expect("root reads the twin's memory through /proc/PID/mem");
    assert_eq!(find_any(&image, &secret_needles()), None);
    // The image is the twin's memory: the opened model's parameter names
    // are in it (the model is in memory while it runs).
    assert!(contains(&image, b"gamma1"), "the image misses the heap");
}
