//! The history's hash chain and the backend's signed heads, through the
//! real (stripped, hardened) binary: a twin runs twice against a plant,
//! publishing to `twinshield backend`, which keeps the signed heads of its
//! history; then, with the device's keys as an attacker on the device has
//! them, one record is rewritten and re-sealed, one deleted, the whole
//! history restored from an older copy, and one rebuilt from scratch with
//! the store's own code. `history verify` names each; the untouched
//! history verifies clean, and bad input is one line and changes nothing.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::print_stderr
)]

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use twinshield_atrest::AeadKey;
use twinshield_e2e::{Run, Setup, plant, run_args, twinshield};
use twinshield_seal::{DeviceIdentity, EmbeddedSecret};
use twinshield_store::{Sample, Store, WriterConfig};
use zeroize::Zeroizing;

/// A running `twinshield backend` on `listen`; killed on drop.
struct Backend(Child);

impl Backend {
    fn start(dir: &Path, listen: &str) -> Backend {
        let child = Command::new(twinshield())
            .args(["backend", "--listen", listen, "--devices", "devices"])
            .args(["--store", "store"])
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let started = Instant::now();
        while std::net::TcpStream::connect(listen).is_err() {
            assert!(started.elapsed() < Duration::from_secs(20), "no backend");
            std::thread::sleep(Duration::from_millis(50));
        }
        Backend(child)
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Copies the files of directory `from` into a new directory `to`.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// The history's AEAD key, as the device derives it.
fn history_key(state: &Path) -> Zeroizing<[u8; 32]> {
    DeviceIdentity::open(state, &EmbeddedSecret)
        .unwrap()
        .storage_key("history")
}

/// Someone holding the device key, editing the history's file directly
/// (as `crates/store/tests/chain.rs` does): records sealed with the
/// store's own AEAD, associated data `table ‖ 0 ‖ key`.
struct Attacker {
    db: redb::Database,
    aead: AeadKey,
}

const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");

fn aad(key: u64) -> Vec<u8> {
    [&b"events\0"[..], &key.to_le_bytes()].concat()
}

impl Attacker {
    fn open(data: &Path, key: &[u8; 32]) -> Attacker {
        Attacker {
            db: redb::Database::open(data.join("history.redb")).unwrap(),
            aead: AeadKey::new(key),
        }
    }

    /// Every event: key, time, text.
    fn events(&self) -> Vec<(u64, f64, String)> {
        let r = self.db.begin_read().unwrap();
        let t = r.open_table(EVENTS).unwrap();
        t.iter()
            .unwrap()
            .map(|e| {
                let (k, v) = e.unwrap();
                let plain = self.aead.open(&aad(k.value()), v.value()).unwrap();
                let e = twinshield_store::decode_records(&plain).2.unwrap();
                (k.value(), e.time, e.text)
            })
            .collect()
    }

    /// Event `key` as an audit line saying `text`, re-sealed.
    fn rewrite(&self, key: u64, time: f64, text: &str) {
        const AUDIT: u8 = 5;
        let plain = [&[AUDIT][..], &time.to_le_bytes(), text.as_bytes()].concat();
        let sealed = self.aead.seal(&aad(key), &plain).unwrap();
        let w = self.db.begin_write().unwrap();
        w.open_table(EVENTS)
            .unwrap()
            .insert(key, sealed.as_slice())
            .unwrap();
        w.commit().unwrap();
    }

    fn delete(&self, key: u64) {
        let w = self.db.begin_write().unwrap();
        w.open_table(EVENTS).unwrap().remove(key).unwrap();
        w.commit().unwrap();
    }
}

/// `history verify` of `data` (relative to the scratch directory), with
/// `extra` arguments.
fn verify(s: &Setup, data: &str, extra: &[&str]) -> Run {
    let mut args = vec!["history", "verify", "--state", "state", "--data", data];
    args.extend_from_slice(extra);
    s.run(&args)
}

/// The one line `history verify` printed on standard error, and exit 4.
fn damaged(r: &Run) -> &str {
    eprintln!("{}", r.stderr.trim_end());
    assert_eq!(r.code, Some(4), "{r:?}");
    assert!(r.stdout.is_empty(), "{r:?}");
    assert_eq!(r.stderr.lines().count(), 1, "{r:?}");
    r.stderr.trim_end()
}

/// A failed command: one `error:` line, exit 1.
fn refused(r: &Run) -> &str {
    assert_eq!(r.code, Some(1), "{r:?}");
    assert_eq!(r.stderr.lines().count(), 1, "{r:?}");
    assert!(r.stderr.starts_with("error: "), "{r:?}");
    r.stderr.trim_end()
}

/// (records, head seq) of `history intact (N records, head seq S…)`.
fn intact(r: &Run) -> (u64, u64) {
    eprintln!("{}", r.stdout.trim_end());
    assert_eq!(r.code, Some(0), "{r:?}");
    assert_eq!(r.stdout.lines().count(), 1, "{r:?}");
    let rest = r
        .stdout
        .strip_prefix("history intact (")
        .unwrap_or_else(|| panic!("{r:?}"));
    let (n, rest) = rest.split_once(" records, head seq ").unwrap();
    let seq: String = rest.chars().take_while(char::is_ascii_digit).collect();
    (n.parse().unwrap(), seq.parse().unwrap())
}

/// The heads of the backend's export: (seq, time as the verdict prints it).
fn heads_of(file: &Path) -> Vec<(u64, String)> {
    let v: Value = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
    v["heads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            let t: f64 = h["time"].as_str().unwrap().parse().unwrap();
            (h["seq"].as_u64().unwrap(), format!("{t}"))
        })
        .collect()
}

/// The twin run twice against a plant, publishing to a backend: the
/// scratch directory (history in `state/data`, its state after the first
/// run in `older`, the backend's heads in `heads.json`) and the backend,
/// still serving.
fn twin_with_heads(name: &str) -> (Setup, Backend) {
    let s = Setup::new(name);
    std::fs::create_dir_all(s.path("devices")).unwrap();
    std::fs::copy(s.path("device.fp"), s.path("devices/device.fp")).unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let url = format!("http://{listen}");
    s.seal_with(
        "b.bundle",
        "vendor.key",
        "device.fp",
        6,
        &["--backend", &url],
    );
    let backend = Backend::start(&s.path(""), &listen);
    let p = plant(&["--seconds", "300"]);
    for (seconds, then) in [("12", Some("older")), ("22", None)] {
        let r = s.run(&run_args("b.bundle", &p.url, seconds));
        assert_eq!(r.code, Some(0), "{r:?}");
        let v: Value = serde_json::from_str(&r.stdout).unwrap();
        assert_eq!(v["backend"]["pending"], 0, "{v}");
        if let Some(dir) = then {
            copy_dir(&s.path("state/data"), &s.path(dir));
        }
    }
    let kid = DeviceIdentity::open(&s.path("state"), &EmbeddedSecret)
        .unwrap()
        .fingerprint()
        .key_id_hex();
    let r = s.run(&["backend", "heads", "--store", "store", "--device", &kid]);
    assert_eq!(r.code, Some(0), "{r:?}");
    std::fs::write(s.path("heads.json"), &r.stdout).unwrap();
    (s, backend)
}

#[test]
fn a_rewritten_deleted_rolled_back_or_rebuilt_history_is_named() {
    let (s, _backend) = twin_with_heads("history-chain-attacks");
    let heads = heads_of(&s.path("heads.json"));
    // A summary every 10 s of each run carries the head (none before the
    // first run's first commit): at least 1 + 3.
    assert!(heads.len() >= 4, "{heads:?}");
    assert!(heads.windows(2).all(|w| w[0].0 < w[1].0), "{heads:?}");

    // Untouched: intact on its own and against every head; verifying
    // changes nothing.
    let file = s.path("state/data/history.redb");
    let before = std::fs::read(&file).unwrap();
    let (records, seq) = intact(&verify(&s, "state/data", &[]));
    assert!(records >= 4, "{records}");
    assert!(seq >= heads.last().unwrap().0, "{seq} vs {heads:?}");
    let r = verify(&s, "state/data", &["--heads", "heads.json"]);
    assert_eq!(intact(&r), (records, seq));
    assert!(
        r.stdout.contains(&format!(
            "; extends all {} heads from the backend)",
            heads.len()
        )),
        "{r:?}"
    );
    // The same heads read from the backend the bundle names, over its
    // signed GET /v1/heads.
    let from_backend = ["--bundle", "b.bundle", "--trust", "vendor.pub"];
    let b = verify(&s, "state/data", &from_backend);
    assert_eq!((b.code, &b.stdout), (Some(0), &r.stdout), "{b:?}");
    assert!(std::fs::read(&file).unwrap() == before, "verify wrote");
    let key = history_key(&s.path("state"));

    // (a) An audit line of the first run rewritten and re-sealed with the
    // device key: named by its key and time, the chain alone finds it.
    copy_dir(&s.path("state/data"), &s.path("rewritten"));
    let a = Attacker::open(&s.path("rewritten"), &key);
    let events = a.events();
    assert!(events.len() >= 4, "{events:?}");
    let (k, t, _) = events[0].clone();
    a.rewrite(k, t, "operator alice logged in");
    drop(a);
    let r = verify(&s, "rewritten", &[]);
    let line = damaged(&r);
    assert!(
        line.starts_with(&format!(
            "error: history damaged: events record {k} (time {t}) of commit "
        )) && line.ends_with(": rewritten (its content is not what the chain recorded)"),
        "{line}"
    );

    // (b) An event deleted: named by its key.
    copy_dir(&s.path("state/data"), &s.path("deleted"));
    let (k, _, _) = events[1].clone();
    Attacker::open(&s.path("deleted"), &key).delete(k);
    let r = verify(&s, "deleted", &[]);
    let line = damaged(&r);
    assert!(
        line.starts_with(&format!("error: history damaged: events record {k} "))
            && line.ends_with(": deleted"),
        "{line}"
    );

    // (c) The whole history restored from the copy taken after the first
    // run: a consistent chain on its own, rolled back against the heads.
    let (_, older_seq) = intact(&verify(&s, "older", &[]));
    let r = verify(&s, "older", &["--heads", "heads.json"]);
    let newer: Vec<_> = heads.iter().filter(|h| h.0 > older_seq).collect();
    assert!(newer.len() >= 2, "{older_seq} vs {heads:?}");
    let line = damaged(&r);
    let (first, time) = newer[0];
    assert!(
        line.starts_with(&format!(
            "error: history rolled back or truncated: the backend holds head seq {first} \
             (time {time}), the history ends at seq {older_seq} (time "
        )),
        "{line}"
    );
    assert!(
        line.ends_with(&format!("(and {} more findings)", newer.len() - 1)),
        "{line}"
    );
    let b = verify(&s, "older", &from_backend);
    assert_eq!(damaged(&b), line);

    // (d) A history rebuilt from scratch with the device key and the
    // store's own code, about as many commits as the real one: a perfect
    // chain on its own; against the heads, rewritten from the first on.
    let schema = Store::open(&s.path("state/data"), &key, None)
        .unwrap()
        .schema()
        .to_vec();
    let w = Store::open(&s.path("rebuilt"), &key, Some(&schema))
        .unwrap()
        .into_writer(WriterConfig::default())
        .unwrap();
    for i in 0..heads.last().unwrap().0 + 5 {
        assert!(w.push(Sample {
            time: 1_700_000_000.0 + i as f64,
            values: vec![0.0; schema.len()],
        }));
        w.flush();
    }
    drop(w);
    intact(&verify(&s, "rebuilt", &[]));
    let r = verify(&s, "rebuilt", &["--heads", "heads.json"]);
    let line = damaged(&r);
    let (first, time) = &heads[0];
    assert_eq!(
        line,
        format!(
            "error: history rewritten at or before commit {first}: its hash is not the one \
             in the backend's head seq {first} (time {time}) (and {} more findings)",
            heads.len() - 1
        )
    );
}

#[test]
fn bad_heads_or_no_history_are_one_line_and_change_nothing() {
    let (s, _backend) = twin_with_heads("history-chain-bad-input");
    let file = s.path("state/data/history.redb");
    let before = std::fs::read(&file).unwrap();
    let mut v: Value =
        serde_json::from_slice(&std::fs::read(s.path("heads.json")).unwrap()).unwrap();
    // One head's hash changed: its signature no longer verifies.
    let last = v["heads"].as_array().unwrap().len() - 1;
    let seq = v["heads"][last]["seq"].as_u64().unwrap();
    let hash = v["heads"][last]["hash"].as_str().unwrap().to_owned();
    let flipped = if hash.starts_with('0') { "1" } else { "0" };
    v["heads"][last]["hash"] = Value::from(format!("{flipped}{}", &hash[1..]));
    std::fs::write(s.path("forged.json"), v.to_string()).unwrap();
    v["heads"][last]["hash"] = Value::from(hash);
    v["device"] = Value::from("0123456789abcdef");
    std::fs::write(s.path("other.json"), v.to_string()).unwrap();
    std::fs::write(s.path("junk.json"), "{\"heads\": 7}").unwrap();
    let kid = DeviceIdentity::open(&s.path("state"), &EmbeddedSecret)
        .unwrap()
        .fingerprint()
        .key_id_hex();
    v["heads"] = Value::Array(Vec::new());
    v["device"] = Value::from(kid);
    std::fs::write(s.path("none.json"), v.to_string()).unwrap();
    std::fs::create_dir_all(s.path("empty")).unwrap();
    let cases: [(&str, &[&str], String); 7] = [
        (
            "state/data",
            &["--heads", "forged.json"],
            "signature does not verify with the device's key".into(),
        ),
        (
            "state/data",
            &["--heads", "other.json"],
            "the heads are device 0123456789abcdef's".into(),
        ),
        (
            "state/data",
            &["--heads", "junk.json"],
            "not a list of heads".into(),
        ),
        (
            "state/data",
            &["--heads", "missing.json"],
            "heads file".into(),
        ),
        (
            "state/data",
            &["--heads", "none.json"],
            "none.json holds no history heads of this device".into(),
        ),
        ("empty", &[], "no history in".into()),
        (
            "state/data",
            &["--bundle", "q.bundle", "--trust", "vendor.pub"],
            "the bundle names no backend".into(),
        ),
    ];
    for (data, extra, want) in cases {
        let r = verify(&s, data, extra);
        let line = refused(&r);
        assert!(line.contains(&want), "{extra:?}: {line}");
        assert!(!line.contains("panicked"), "{line}");
    }
    assert!(
        refused(&verify(&s, "state/data", &["--heads", "forged.json"]))
            .contains(&format!("head {seq}:")),
    );
    assert!(std::fs::read(&file).unwrap() == before, "a refusal wrote");
    assert!(!s.path("empty/history.redb").exists());
}

/// A twin killed (SIGKILL) while recording leaves a history that needs
/// repair: verified from a repaired copy, intact, the original untouched;
/// while a twin still holds it, one line and exit 1.
#[test]
fn a_killed_twins_history_verifies_from_a_repaired_copy_and_a_running_one_is_refused() {
    let s = Setup::new("history-chain-killed");
    let p = plant(&["--seconds", "120"]);
    let mut twin = Command::new(twinshield())
        .args(run_args("q.bundle", &p.url, "60"))
        .current_dir(s.path(""))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let file = s.path("state/data/history.redb");
    let started = Instant::now();
    while !file.exists() {
        assert!(started.elapsed() < Duration::from_secs(30), "no history");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(4));
    let line = refused(&verify(&s, "state/data", &[])).to_owned();
    assert!(
        line.ends_with("history store: open in another process (stop the twin first)"),
        "{line}"
    );
    twin.kill().unwrap();
    twin.wait().unwrap();
    let before = std::fs::read(&file).unwrap();
    let r = verify(&s, "state/data", &[]);
    let (records, seq) = intact(&r);
    assert!(records >= 2 && seq >= 5, "{r:?}");
    assert!(
        r.stdout
            .trim_end()
            .ends_with("; read from a repaired copy: it was not closed cleanly)"),
        "{r:?}"
    );
    assert!(std::fs::read(&file).unwrap() == before, "verify wrote");
}
