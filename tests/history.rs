//! The encrypted history, attacked through the real binary: killed with
//! SIGKILL at random moments while ingesting at 1 kHz, starved of disk
//! space, and copied to another machine.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::print_stderr
)]

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use twinshield_e2e::{
    Run, Scratch, contains, on_another_machine, plant, run_args, run_in, twinshield,
};

/// A device identity and a bundle sealed for it.
fn setup(name: &str) -> Scratch {
    let dir = Scratch::new(name);
    let ok = |args: &[&str]| {
        let r = run_in(dir.path(), args);
        assert_eq!(r.code, Some(0), "{args:?}: {r:?}");
    };
    ok(&["fingerprint", "--state", "state", "--out", "device.fp"]);
    ok(&["keys", "new", "--out", "vendor"]);
    let model = twinshield_e2e::root().join("models/quadtank.twin");
    ok(&[
        "seal",
        &model.to_string_lossy(),
        "--device",
        "device.fp",
        "--sign",
        "vendor.key",
        "--out",
        "q.bundle",
        "--release",
        "1",
    ]);
    dir
}

fn export_csv(dir: &Path, data: &str) -> Run {
    run_in(
        dir,
        &[
            "history", "export", "--state", "state", "--data", data, "--csv",
        ],
    )
}

fn read_count(path: &Path) -> u64 {
    fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn killed_at_fifty_random_moments_nothing_acknowledged_is_lost() {
    let s = setup("hist-crash");
    let p = plant(&["--seconds", "600"]);
    let mut acknowledged = 0u64;
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    for round in 0..50 {
        let ack = s.path().join("ack");
        let _ = fs::remove_file(&ack);
        let mut child = Command::new(twinshield())
            .args([
                "run",
                "q.bundle",
                "--trust",
                "vendor.pub",
                "--plant",
                &p.url,
                "--state",
                "state",
            ])
            .args(["--data", "data", "--period", "0.001", "--ack-file", "ack"])
            .current_dir(s.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        // From 150 ms (still opening the history) to 1.45 s (writing):
        // long enough on average that a loaded two-core machine
        // acknowledges the 10,000 samples asserted below (with up to
        // 800 ms it got 7,500 to 9,800 while a build ran beside it).
        let wait = Duration::from_millis(150 + rng % 1300);
        std::thread::sleep(wait);
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        acknowledged += read_count(&ack);
        // The store opens, decrypts and authenticates every record, and
        // holds at least everything acknowledged so far.
        let r = export_csv(s.path(), "data");
        assert_eq!(r.code, Some(0), "round {round}: {r:?}");
        let rows: Vec<&str> = r.stdout.lines().skip(1).collect();
        assert!(
            rows.len() as u64 >= acknowledged,
            "round {round}: {} rows stored, {acknowledged} acknowledged",
            rows.len()
        );
        // Nothing corrupt: every row complete, times increasing.
        let mut last = 0.0f64;
        for row in &rows {
            let fields: Vec<&str> = row.split(',').collect();
            assert_eq!(fields.len(), 15, "round {round}: {row}");
            let t: f64 = fields[0].parse().unwrap();
            assert!(t > last, "round {round}: time went back at {row}");
            last = t;
        }
    }
    eprintln!("{acknowledged} samples acknowledged in 50 rounds");
    assert!(
        acknowledged > 10_000,
        "only {acknowledged} samples acknowledged in 50 rounds"
    );
}

#[test]
fn a_full_disk_stops_storage_but_not_monitoring_and_writing_resumes() {
    let s = setup("hist-full");
    let p = plant(&["--seconds", "600"]);
    let script = format!(
        "set -e; mkdir -p full; mount -t tmpfs -o size=2m tmpfs full; \
         dd if=/dev/zero of=full/filler bs=1k count=1900 2>/dev/null; \
         (sleep 3; rm full/filler) & \
         '{bin}' run q.bundle --trust vendor.pub --plant {plant} --state state --data full/data \
            --seconds 6 --period 0.001",
        bin = twinshield().display(),
        plant = p.url
    );
    let r: Run = Command::new("unshare")
        .args(["--mount", "sh", "-c", &script])
        .current_dir(s.path())
        .stdin(Stdio::null())
        .output()
        .unwrap()
        .into();
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(
        r.stderr
            .contains("storage fault: I/O error: No space left on device"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("storage resumed"), "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(r.stdout.trim()).unwrap();
    let samples = v["samples"].as_u64().unwrap();
    assert!(samples > 3000, "monitoring stalled: {v}");
    assert_eq!(v["storage_faults"], 1, "{v}");
    // Everything kept in memory during the fault was written once space returned.
    assert_eq!(v["stored_samples"].as_u64().unwrap(), samples, "{v}");
}

#[test]
fn a_copied_data_directory_yields_nothing_elsewhere() {
    let s = setup("hist-copy");
    let p = plant(&["--seconds", "600"]);
    let mut args = run_args("q.bundle", &p.url, "2").to_vec();
    args.extend(["--data", "data", "--period", "0.01"]);
    let r = run_in(s.path(), &args);
    assert_eq!(r.code, Some(0), "{r:?}");
    let csv = export_csv(s.path(), "data");
    assert_eq!(csv.code, Some(0), "{csv:?}");
    // The audit log records who ran what.
    let json = run_in(
        s.path(),
        &[
            "history", "export", "--state", "state", "--data", "data", "--json",
        ],
    );
    let v: serde_json::Value = serde_json::from_str(json.stdout.trim()).unwrap();
    let audit: Vec<&str> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "audit")
        .map(|e| e["text"].as_str().unwrap())
        .collect();
    assert_eq!(audit.len(), 2, "{audit:?}");
    assert!(
        audit[0].starts_with("twin started: `quadtank` 1.0.0 release 1"),
        "{audit:?}"
    );
    assert!(audit[1].starts_with("twin stopped after"), "{audit:?}");
    for name in ["quadtank", "twin started"] {
        let db = fs::read(s.path().join("data/history.redb")).unwrap();
        assert!(!contains(&db, name.as_bytes()), "the store holds `{name}`");
    }
    let first: Vec<f32> = csv
        .stdout
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .skip(1)
        .map(|v| v.parse().unwrap())
        .collect();

    // On another machine, the copied state directory opens no key, so the
    // history opens neither.
    let r = on_another_machine(s.path(), "history export --state state --data data --csv");
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(r.stderr.contains("this machine is not the device"), "{r:?}");
    assert!(r.stdout.is_empty());
    // Under another device's key (another identity on this machine): refused.
    let r = run_in(
        s.path(),
        &["fingerprint", "--state", "other", "--out", "other.fp"],
    );
    assert_eq!(r.code, Some(0), "{r:?}");
    let r = run_in(
        s.path(),
        &[
            "history", "export", "--state", "other", "--data", "data", "--csv",
        ],
    );
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(
        r.stderr
            .contains("the data directory belongs to another device"),
        "{r:?}"
    );

    // No channel name and no stored value appears in the files.
    let db = fs::read(s.path().join("data/history.redb")).unwrap();
    for name in ["est:h1", "res:y1", "y1\ny2", "v1\nv2"] {
        assert!(!contains(&db, name.as_bytes()), "the store holds `{name}`");
    }
    for v in first.iter().filter(|v| **v != 0.0) {
        assert!(
            !contains(&db, &v.to_le_bytes()),
            "the store holds the value {v} in clear"
        );
    }
}

#[test]
fn history_export_refuses_bad_requests() {
    let s = setup("hist-bad");
    let r = run_in(
        s.path(),
        &[
            "history", "export", "--state", "state", "--data", "nowhere", "--csv",
        ],
    );
    assert_eq!(r.code, Some(1));
    assert_eq!(r.stderr.trim(), "error: no history in nowhere");
    let r = run_in(
        s.path(),
        &[
            "history", "export", "--state", "state", "--from", "5", "--to", "1", "--csv",
        ],
    );
    assert_eq!(r.code, Some(1));
    assert_eq!(r.stderr.trim(), "error: --from must not be after --to");
    let started = Instant::now();
    let r = run_in(s.path(), &["history", "export", "--state", "state"]);
    assert_eq!(r.code, Some(2), "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// What the device keeps (keys, token hashes, TLS key, history, outbox) is
/// readable by the twin's own user only: directories 0700, files 0600.
#[test]
fn the_devices_state_and_history_are_the_owners_only() {
    use std::os::unix::fs::PermissionsExt;
    let s = setup("hist-modes");
    let r = run_in(
        s.path(),
        &["token", "new", "--role", "viewer", "--state", "state"],
    );
    assert_eq!(r.code, Some(0), "{r:?}");
    let p = plant(&["--seconds", "600"]);
    let mut args = run_args("q.bundle", &p.url, "1").to_vec();
    args.extend(["--data", "data"]);
    let r = run_in(s.path(), &args);
    assert_eq!(r.code, Some(0), "{r:?}");
    let mode = |p: &str| {
        fs::metadata(s.path().join(p))
            .unwrap_or_else(|e| panic!("{p}: {e}"))
            .permissions()
            .mode()
            & 0o777
    };
    for dir in ["state", "state/api", "data"] {
        assert_eq!(mode(dir), 0o700, "{dir}");
    }
    for file in ["data/history.redb", "state/api/tokens"] {
        assert_eq!(mode(file), 0o600, "{file}");
    }
}
