//! The device binding attacked as the red team attacked it: the white-box's
//! table image lifted out of the real hardened binary, the state directory
//! copied, and the components a disk image holds supplied offline; a
//! second machine faking the disk-resident components with bind mounts;
//! and the running twin's memory searched for the device's keys.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

use hkdf::Hkdf;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::process::{Command, Stdio};
use twinshield_e2e::{Run, Setup, memory_regions, plant, run_args, twinshield};
use twinshield_seal::fingerprint::{self, Component, Residence};
use twinshield_seal::{DeviceIdentity, PublisherPub, RuntimeSecret, SealError};
use twinshield_whitebox::WhiteBox;
use zeroize::Zeroizing;

/// The runtime secret as the attacker's script computes it: the lifted
/// tables run outside the binary, the derivation around them rewritten from
/// the source (crates/seal/src/secret.rs).
struct LiftedSecret(Vec<u8>);

impl RuntimeSecret for LiftedSecret {
    fn derive(&self, context: &[u8]) -> Zeroizing<[u8; 32]> {
        let digest = Sha256::new()
            .chain_update(b"twinshield/runtime-secret/white-box-input/v2")
            .chain_update(context)
            .finalize();
        let mut block = [0u8; 16];
        block.copy_from_slice(&digest[..16]);
        // A candidate that is not the image derives a key that opens nothing.
        let Ok(wb) = WhiteBox::new(&self.0) else {
            return Zeroizing::new([0; 32]);
        };
        let encoded = wb.encrypt_encoded(&block);
        let hk = Hkdf::<Sha256>::new(Some(b"twinshield/runtime-secret/v2"), &encoded);
        let mut out = Zeroizing::new([0u8; 32]);
        hk.expand(context, out.as_mut_slice()).unwrap();
        out
    }
}

/// Candidates for the white-box's table image, lifted from the stripped,
/// hardened binary as an expert finds it: the vendor's symbol file names
/// the lazy initialiser that hands the image to the evaluator
/// (`embedded::EMBEDDED`'s closure); every address its code takes
/// (RIP-relative, objdump's `# ADDR`), and where a dynamic relocation at
/// that address points (when the image is reached through a pointer), is
/// a candidate start; the load segments give its file offset. The caller
/// keeps the candidate that opens the device with all its components.
fn lifted_candidates() -> Vec<Vec<u8>> {
    let binary = std::fs::read(twinshield()).unwrap();
    let nm = Command::new("nm")
        .arg("-S")
        .arg(twinshield().with_extension("sym"))
        .output()
        .unwrap();
    let symbols = String::from_utf8_lossy(&nm.stdout);
    let (start, size) = symbols
        .lines()
        .find(|l| l.contains("19twinshield_whitebox8embedded8EMBEDDED") && l.contains("closure"))
        .and_then(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((
                u64::from_str_radix(f[0], 16).ok()?,
                u64::from_str_radix(f[1], 16).ok()?,
            ))
        })
        .expect("the symbol file names the white-box's initialiser");
    let code = Command::new("objdump")
        .args(["-d", "--no-show-raw-insn"])
        .arg(format!("--start-address={start:#x}"))
        .arg(format!("--stop-address={:#x}", start + size))
        .arg(twinshield())
        .output()
        .unwrap();
    let taken: Vec<u64> = String::from_utf8_lossy(&code.stdout)
        .lines()
        .filter_map(|l| {
            let addr = l.split_once("# ")?.1.split_whitespace().next()?;
            u64::from_str_radix(addr, 16).ok()
        })
        .collect();
    let relocs = Command::new("readelf")
        .args(["-r", "-W"])
        .arg(twinshield())
        .output()
        .unwrap();
    let relocs = String::from_utf8_lossy(&relocs.stdout);
    let pointed = |at: u64| {
        relocs.lines().find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (u64::from_str_radix(f.first()?, 16).ok()? == at)
                .then(|| u64::from_str_radix(f.last()?, 16).ok())
                .flatten()
        })
    };
    let segments = twinshield_shield::elf::load_segments(&binary).unwrap();
    let total = twinshield_whitebox::layout::TOTAL as u64;
    taken
        .iter()
        .flat_map(|&t| [Some(t), pointed(t)])
        .flatten()
        .filter_map(|target| {
            let s = segments
                .iter()
                .find(|s| s.vaddr <= target && target + total <= s.vaddr + s.filesz)?;
            let at = (target - s.vaddr + s.offset) as usize;
            Some(binary[at..at + total as usize].to_vec())
        })
        .collect()
}

/// The lifted tables that open the identity in `state` with all of
/// `components` (the whole machine): the attacker checks a candidate that
/// way once, on a machine they hold, and keeps it for every device.
fn lifted_tables(state: &Path, components: &[Component]) -> LiftedSecret {
    let candidates = lifted_candidates();
    assert!(!candidates.is_empty(), "no candidate for the table image");
    let n = candidates.len();
    candidates
        .into_iter()
        .map(LiftedSecret)
        .find(|secret| DeviceIdentity::open_with(state, secret, components).is_ok())
        .unwrap_or_else(|| panic!("none of {n} candidates is the table image"))
}

fn component(label: &'static str, value: Vec<u8>) -> Component {
    Component {
        label,
        residence: fingerprint::residence_of(label).unwrap(),
        value: Zeroizing::new(value),
    }
}

/// This machine's components, split by where they live: what a disk image
/// holds, and what only the machine itself does.
fn this_machine() -> (Vec<Component>, Vec<Component>) {
    fingerprint::collect()
        .into_iter()
        .partition(|c| c.residence == Residence::Disk)
}

fn copied_state(s: &Setup) -> tempfile_dir::Dir {
    let copy = tempfile_dir::Dir::new("binding-copy");
    let from = s.path("state");
    for entry in std::fs::read_dir(&from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), copy.0.join(entry.file_name())).unwrap();
        }
    }
    copy
}

/// A scratch directory removed on drop (no tempfile dependency here).
mod tempfile_dir {
    pub struct Dir(pub std::path::PathBuf);
    impl Dir {
        pub fn new(name: &str) -> Self {
            let p = std::env::temp_dir().join(format!("twinshield-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            Dir(p)
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

#[test]
fn lifted_tables_a_copied_state_and_the_disk_components_open_nothing() {
    let s = Setup::new("binding-offline");
    let (disk, hardware) = this_machine();
    let labels = |c: &[Component]| c.iter().map(|c| c.label).collect::<Vec<_>>().join(", ");
    eprintln!(
        "this machine: disk-resident {}; hardware-resident {}",
        labels(&disk),
        labels(&hardware)
    );
    assert!(
        hardware.len() >= 2,
        "the binding needs two hardware-resident components; this machine has {}",
        labels(&hardware)
    );
    let copy = copied_state(&s);
    let whole: Vec<Component> = disk
        .iter()
        .chain(&hardware)
        .map(|c| component(c.label, c.value.to_vec()))
        .collect();
    let secret = lifted_tables(&s.path("state"), &whole);
    // What a stolen disk holds: the state directory and the disk-resident
    // components, read from its files (here: this machine's own values).
    let refused = DeviceIdentity::open_with(&copy.0, &secret, &disk).unwrap_err();
    assert!(
        matches!(refused, SealError::NotThisDevice { tried: 0 }),
        "{refused}"
    );
    // One hardware component guessed right besides them (the processor,
    // the easiest to guess): still nothing.
    for one in &hardware {
        let mut guess: Vec<Component> = disk
            .iter()
            .map(|c| component(c.label, c.value.to_vec()))
            .collect();
        guess.push(component(one.label, one.value.to_vec()));
        let refused = DeviceIdentity::open_with(&copy.0, &secret, &guess).unwrap_err();
        assert!(
            matches!(refused, SealError::NotThisDevice { .. }),
            "{refused}"
        );
    }
    // The whole machine stolen: the hardware-resident components too. The
    // lifted tables and the components open the keys and the bundle: the
    // software binding ends here (a TPM is the next issue's).
    let mut all = disk;
    all.extend(hardware);
    let opened = DeviceIdentity::open_with(&copy.0, &secret, &all).expect("whole machine");
    let bundle = std::fs::read(s.path("q.bundle")).unwrap();
    let trust = std::fs::read_to_string(s.path("vendor.pub")).unwrap();
    let trust = PublisherPub::from_text(&trust).unwrap();
    let model = twinshield_seal::open(&bundle, &trust, &opened)
        .unwrap()
        .model;
    assert_eq!(model.name, "quadtank");
}

/// Runs `twinshield ARGS` on "another machine" that copied this one's disk
/// and fakes its disk-resident components by bind mounts (machine-id,
/// hostname, `/proc/cpuinfo`'s model line, all with this machine's values),
/// and lacks its network card (a new network namespace).
fn on_a_machine_faking_the_disk(dir: &Path, args: &str) -> Run {
    let id = std::fs::read_to_string("/etc/machine-id").unwrap();
    std::fs::write(dir.join("copied-machine-id"), id).unwrap();
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap();
    std::fs::write(dir.join("copied-cpuinfo"), cpuinfo).unwrap();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let script = format!(
        "set -e; mount --bind copied-machine-id /etc/machine-id; \
         mount --bind copied-cpuinfo /proc/cpuinfo; hostname '{host}'; exec '{bin}' {args}",
        host = host.trim(),
        bin = twinshield().display(),
    );
    Command::new("unshare")
        .args(["--mount", "--uts", "--net", "sh", "-c", &script])
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap()
        .into()
}

#[test]
fn a_machine_faking_the_disk_components_by_bind_mounts_is_refused() {
    let s = Setup::new("binding-bind-mounts");
    let fp = s.ok(&["fingerprint", "--state", "state", "--out", "device.fp"]);
    eprintln!("{}", fp.stderr.trim());
    let before = std::fs::read(s.path("state/identity.bin")).unwrap();
    let r = on_a_machine_faking_the_disk(
        s.dir.path(),
        "run q.bundle --trust vendor.pub --plant modbus://127.0.0.1:9 --state state --seconds 1",
    );
    assert_eq!(r.code, Some(1), "{r:?}");
    assert_eq!(
        r.stderr.trim(),
        "error: this machine is not the device its keys belong to",
        "one line, nothing about how many components matched"
    );
    assert_eq!(std::fs::read(s.path("state/identity.bin")).unwrap(), before);
}

/// The device's two private seeds, decrypted from `identity.bin` as the
/// attacker's script does it (docs/bundle-format.md, "State directory"):
/// the format parsed by hand, each key wrap's Argon2id password rebuilt
/// from the lifted white-box and the components, the key block opened.
fn seeds_from_disk(state: &Path, secret: &LiftedSecret, components: &[Component]) -> [[u8; 32]; 2] {
    let bytes = std::fs::read(state.join("identity.bin")).unwrap();
    let mut at = 5;
    let mut take = |n: usize| {
        let s = &bytes[at..at + n];
        at += n;
        s
    };
    let salt: [u8; 32] = take(32).try_into().unwrap();
    let _threshold_and_hardware = take(2);
    let n = take(1)[0];
    let mut labels = Vec::new();
    for _ in 0..n {
        let len = u16::from_le_bytes(take(2).try_into().unwrap()) as usize;
        labels.push(String::from_utf8(take(len).to_vec()).unwrap());
        take(1);
    }
    let _binding = take(32);
    let wraps = take(1)[0];
    let root = secret.derive(&[b"twinshield/id/wrap-root/v2|".as_slice(), &salt].concat());
    for _ in 0..wraps {
        let mask = take(1)[0];
        let len = u32::from_le_bytes(take(4).try_into().unwrap()) as usize;
        let sealed = take(len).to_vec();
        let mut password = root.to_vec();
        let mut aad = b"twinshield/id/wrap/v2".to_vec();
        for (_, label) in labels
            .iter()
            .enumerate()
            .filter(|(i, _)| mask & (1 << i) != 0)
        {
            let c = components.iter().find(|c| c.label == label).unwrap();
            for part in [label.as_bytes(), c.value.as_slice()] {
                password.extend_from_slice(&(part.len() as u64).to_le_bytes());
                password.extend_from_slice(part);
            }
            aad.extend_from_slice(format!("|{label}").as_bytes());
        }
        let (m, t, p) = twinshield_seal::wraps::KDF;
        let params = argon2::Params::new(m, t, p, Some(32)).unwrap();
        let mut key = [0u8; 32];
        argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
            .hash_password_into(&password, &salt, &mut key)
            .unwrap();
        if let Ok(block) = twinshield_atrest::AeadKey::new(&key).open(&aad, &sealed) {
            return [
                block[..32].try_into().unwrap(),
                block[32..64].try_into().unwrap(),
            ];
        }
    }
    panic!("no key wrap opened with this machine's own components");
}

/// Where in `hay` (at `base`) each needle (8 bytes or more) occurs, as
/// (needle, address). A table of the needles' first two bytes skips almost
/// every offset, so a scan of the twin's writable memory takes a fraction
/// of a second even unoptimised.
fn find_needles(base: u64, hay: &[u8], needles: &[(String, Vec<u8>)]) -> Vec<(usize, u64)> {
    let mut first = vec![false; 1 << 16];
    for (_, n) in needles {
        first[usize::from(u16::from_le_bytes([n[0], n[1]]))] = true;
    }
    let mut hits = Vec::new();
    for at in 0..hay.len().saturating_sub(7) {
        if !first[usize::from(u16::from_le_bytes([hay[at], hay[at + 1]]))] {
            continue;
        }
        for (i, (_, n)) in needles.iter().enumerate() {
            if hay.get(at..at + n.len()) == Some(&n[..]) {
                hits.push((i, base + at as u64));
            }
        }
    }
    hits
}

/// The model's constants as the compiler folds its parameters into them
/// (the programs the bundle carries), those whose bit pattern is unlikely
/// to occur in memory by chance, as 8-byte needles: at least 20 set
/// mantissa bits (not 0.5, 2.0 or 100.0), and not a two-decimal number
/// (the plant reports levels in hundredths: `1.34`, folded from
/// (1 − γ₂)·k₂, is also a tank level the twin holds as data).
fn model_constants() -> Vec<(String, Vec<u8>)> {
    let model = twinshield_model::Model::parse(
        "quadtank.twin",
        &std::fs::read_to_string(twinshield_e2e::root().join("models/quadtank.twin")).unwrap(),
    )
    .unwrap();
    let programs = [model.derivative_program(), model.output_program()];
    let mut out: Vec<(String, Vec<u8>)> = programs
        .iter()
        .flat_map(|p| p.constants())
        .filter(|c| (c.to_bits() & ((1 << 52) - 1)).count_ones() >= 20)
        .filter(|c| ((c * 100.0).round() / 100.0 - c).abs() > 1e-12)
        .map(|c| (format!("constant {c}"), c.to_le_bytes().to_vec()))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Whether `needle` is still at `address` in process `pid`.
fn still_there(pid: u32, address: u64, needle: &[u8]) -> bool {
    use std::os::unix::fs::FileExt;
    let Ok(mem) = std::fs::File::open(format!("/proc/{pid}/mem")) else {
        return false;
    };
    let mut now = vec![0u8; needle.len()];
    mem.read_exact_at(&mut now, address).is_ok() && now == needle
}

/// Keys and the decoded model live in writable memory (heap, stacks,
/// data): the read-only mappings are the binary's and libraries' own bytes.
#[test]
fn the_running_twins_memory_holds_no_device_seed_no_storage_key_and_no_model_constant() {
    let s = Setup::new("binding-memory");
    let components = fingerprint::collect();
    let secret = lifted_tables(&s.path("state"), &components);
    let [x25519, ed25519] = seeds_from_disk(&s.path("state"), &secret, &components);
    let opened = DeviceIdentity::open_with(&s.path("state"), &secret, &components).unwrap();
    // The attacker's own decryption is right: it signs as the device does.
    let signing = ed25519_dalek::SigningKey::from_bytes(&ed25519);
    assert_eq!(
        signing.verifying_key().to_bytes(),
        opened.fingerprint().signing_public()
    );
    let mut needles: Vec<(String, Vec<u8>)> = vec![
        ("X25519 seed".into(), x25519.to_vec()),
        ("Ed25519 seed".into(), ed25519.to_vec()),
    ];
    for purpose in [
        "history",
        "outbox",
        "api-tokens",
        "api-tls",
        "release-counters",
    ] {
        needles.push((
            format!("{purpose} key"),
            opened.storage_key(purpose).to_vec(),
        ));
    }
    let constants = model_constants();
    assert!(
        constants.len() >= 5,
        "too few distinctive constants: {constants:?}"
    );
    needles.extend(constants);
    let p = plant(&["--seconds", "120"]);
    let mut args: Vec<&str> = run_args("q.bundle", &p.url, "120").to_vec();
    args.extend_from_slice(&["--listen", "127.0.0.1:0"]);
    let mut child = Command::new(twinshield())
        .current_dir(s.dir.path())
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The identity opens (one Argon2id) and the bundle within two seconds.
    std::thread::sleep(std::time::Duration::from_secs(2));
    // Per needle: copies seen, and copies still at their address 150 ms
    // later. A key is put together for the length of one use (a record's
    // encryption): a scan can land inside one. What must never be seen is
    // a copy that stays after its use.
    let mut seen = vec![0usize; needles.len()];
    let mut left = vec![0usize; needles.len()];
    let mut scans = 0;
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    while scans < 100 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(std::time::Duration::from_millis(rng % 200));
        let Some(regions) = memory_regions(child.id(), true) else {
            break;
        };
        let hits: Vec<(usize, u64)> = regions
            .iter()
            .flat_map(|(start, bytes)| find_needles(*start, bytes, &needles))
            .collect();
        if !hits.is_empty() {
            std::thread::sleep(std::time::Duration::from_millis(150));
        }
        for (i, address) in hits {
            seen[i] += 1;
            left[i] += usize::from(still_there(child.id(), address, &needles[i].1));
        }
        scans += 1;
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(scans, 100, "the twin stopped before 100 scans");
    let report: Vec<String> = needles
        .iter()
        .zip(seen.iter().zip(&left))
        .map(|((what, _), (s, l))| format!("{what}: {s} seen, {l} left after use"))
        .collect();
    eprintln!("in 100 scans of the running twin: {}", report.join("; "));
    assert!(left.iter().all(|&n| n == 0), "{}", report.join("; "));
    // The seeds have no use while the twin runs without a backend: never
    // put together, never seen.
    assert_eq!(seen[..2], [0, 0], "{}", report.join("; "));
}
