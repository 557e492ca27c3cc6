//! The history's hash chain, attacked as someone holding the device key
//! would: records rewritten and re-sealed with the real key, deleted, the
//! whole file swapped for an older copy or for a history rebuilt from
//! scratch; and the legitimate changes (retention, a crash, a history from
//! before the chain) that must still verify.
//!
//! The attacker works on the redb file directly and seals with the
//! store's own AEAD (`twinshield-atrest`'s `AeadKey`, associated data
//! `table ‖ 0 ‖ key`), exactly as the store does.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use proptest::prelude::*;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use std::path::{Path, PathBuf};
use std::time::Duration;
use twinshield_atrest::AeadKey;
use twinshield_store::{
    ChainFault, ChainHead, ChainReport, ChainTable, EventKind, HeadCheck, RecordRef, Sample, Store,
    StoreWriter, Unchained, WriterConfig,
};
use zeroize::Zeroizing;

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("twinshield-chain-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

const KEY: [u8; 32] = [0x5a; 32];

fn key() -> Zeroizing<[u8; 32]> {
    Zeroizing::new(KEY)
}

fn schema() -> Vec<String> {
    vec!["v1".into(), "y1".into()]
}

fn fast() -> WriterConfig {
    WriterConfig {
        batch_interval: Duration::from_millis(5),
        ..WriterConfig::default()
    }
}

fn writer(d: &Path, config: WriterConfig) -> StoreWriter {
    Store::open(d, &key(), Some(&schema()))
        .unwrap()
        .into_writer(config)
        .unwrap()
}

/// `n` samples at 10 Hz from `t0`, committed in batches of 50 (so the
/// chain has many commits and blocks span several), with an alarm raised
/// and cleared and an audit line every 200 samples. Returns the head
/// after each batch.
fn record(w: &StoreWriter, t0: f64, n: u32) -> Vec<ChainHead> {
    let mut heads = Vec::new();
    for i in 0..n {
        let t = t0 + f64::from(i) * 0.1;
        assert!(w.push(Sample {
            time: t,
            values: vec![1.0, i as f32],
        }));
        if i % 200 == 100 {
            w.event(EventKind::AlarmRaised, t, format!("cusum on y1 at {i}"));
            w.event(EventKind::Audit, t, "operator alice logged in");
        }
        if i % 200 == 150 {
            w.event(EventKind::AlarmCleared, t, format!("cusum on y1 at {i}"));
        }
        if i % 50 == 49 {
            w.flush();
            heads.push(w.chain_head().expect("a head after a commit"));
        }
    }
    w.flush();
    heads.push(w.chain_head().expect("a head after a commit"));
    heads.dedup();
    heads
}

fn verify(d: &Path, known: &[ChainHead]) -> ChainReport {
    Store::open(d, &key(), None)
        .unwrap()
        .verify_chain(known)
        .unwrap()
}

/// Someone holding the device key, editing the database file directly.
struct Attacker {
    db: redb::Database,
    aead: AeadKey,
}

fn aad(table: &str, key: &[u8]) -> Vec<u8> {
    [table.as_bytes(), &[0], key].concat()
}

impl Attacker {
    fn open(d: &Path) -> Self {
        Attacker {
            db: redb::Database::open(d.join("history.redb")).unwrap(),
            aead: AeadKey::new(&KEY),
        }
    }

    fn keys(&self, table: &str) -> Vec<u64> {
        let r = self.db.begin_read().unwrap();
        let t = r
            .open_table(TableDefinition::<u64, &[u8]>::new(table))
            .unwrap();
        t.iter().unwrap().map(|e| e.unwrap().0.value()).collect()
    }

    fn read(&self, table: &str, key: u64) -> Option<Vec<u8>> {
        let r = self.db.begin_read().unwrap();
        let t = r
            .open_table(TableDefinition::<u64, &[u8]>::new(table))
            .unwrap();
        let sealed = t.get(key).unwrap()?.value().to_vec();
        let plain = self.aead.open(&aad(table, &key.to_le_bytes()), &sealed);
        Some(plain.unwrap().to_vec())
    }

    /// Seals `plain` as record `key` of `table`, as the store would.
    fn write(&self, table: &str, key: u64, plain: &[u8]) {
        let sealed = self
            .aead
            .seal(&aad(table, &key.to_le_bytes()), plain)
            .unwrap();
        let w = self.db.begin_write().unwrap();
        w.open_table(TableDefinition::<u64, &[u8]>::new(table))
            .unwrap()
            .insert(key, sealed.as_slice())
            .unwrap();
        w.commit().unwrap();
    }

    /// The chain's state record (`meta`/`chain`).
    fn state(&self) -> Vec<u8> {
        let r = self.db.begin_read().unwrap();
        let t = r
            .open_table(TableDefinition::<&str, &[u8]>::new("meta"))
            .unwrap();
        let sealed = t.get("chain").unwrap().unwrap().value().to_vec();
        self.aead
            .open(&aad("meta", b"chain"), &sealed)
            .unwrap()
            .to_vec()
    }

    fn set_state(&self, plain: &[u8]) {
        let sealed = self.aead.seal(&aad("meta", b"chain"), plain).unwrap();
        let w = self.db.begin_write().unwrap();
        w.open_table(TableDefinition::<&str, &[u8]>::new("meta"))
            .unwrap()
            .insert("chain", sealed.as_slice())
            .unwrap();
        w.commit().unwrap();
    }

    fn delete(&self, table: &str, key: u64) {
        let w = self.db.begin_write().unwrap();
        w.open_table(TableDefinition::<u64, &[u8]>::new(table))
            .unwrap()
            .remove(key)
            .unwrap();
        w.commit().unwrap();
    }

    /// Every event, decoded: key, kind's code, time, text.
    fn events(&self) -> Vec<(u64, u8, f64, String)> {
        self.keys("events")
            .into_iter()
            .map(|k| {
                let plain = self.read("events", k).unwrap();
                let e = twinshield_store::decode_records(&plain).2.unwrap();
                (k, plain[0], e.time, e.text)
            })
            .collect()
    }
}

/// An event's plaintext: kind code, time (f64 LE), text.
fn event_plaintext(code: u8, time: f64, text: &str) -> Vec<u8> {
    [&[code][..], &time.to_le_bytes(), text.as_bytes()].concat()
}

const ALARM_RAISED: u8 = 1;
const AUDIT: u8 = 5;

fn history(name: &str) -> (PathBuf, Vec<ChainHead>) {
    let d = dir(name);
    let w = writer(&d, fast());
    let heads = record(&w, 1_700_000_000.0, 1000);
    drop(w);
    (d, heads)
}

#[test]
fn a_clean_history_verifies_and_extends_every_head_it_gave_out() {
    let (d, heads) = history("clean");
    let r = verify(&d, &heads);
    assert!(r.is_clean(), "{r:#?}");
    assert_eq!(r.head, heads.last().copied());
    assert_eq!(r.base.map(|b| b.seq), Some(0));
    assert_eq!(r.unchained, Unchained::default());
    assert_eq!(r.commits, heads.last().unwrap().seq);
    assert_eq!(r.events, 15);
    assert!(r.sample_blocks >= 4);
    assert!(r.known.iter().all(|k| k.check == HeadCheck::Matches));
    // Every commit is a link: the heads handed out are strictly ordered.
    assert!(heads.windows(2).all(|w| w[0].seq < w[1].seq));
    let store = Store::open(&d, &key(), None).unwrap();
    assert_eq!(store.chain_head().unwrap(), heads.last().copied());
}

/// Two alarms turned into harmless audit lines, re-sealed with the real
/// key: the store reads them back as audit lines, and the chain names
/// both, the earlier first.
#[test]
fn alarms_rewritten_as_audit_lines_with_the_device_key_are_named() {
    let (d, heads) = history("rewrite");
    let a = Attacker::open(&d);
    let alarms: Vec<_> = a
        .events()
        .into_iter()
        .filter(|e| e.1 == ALARM_RAISED)
        .take(2)
        .collect();
    for (k, _, t, _) in &alarms {
        a.write(
            "events",
            *k,
            &event_plaintext(AUDIT, *t, "operator alice logged in"),
        );
    }
    drop(a);
    let store = Store::open(&d, &key(), None).unwrap();
    assert_eq!(
        store.alarms(0.0, f64::MAX).unwrap().len(),
        5 * 2 - 2,
        "the store itself reads the rewritten records as audit lines"
    );
    let r = store.verify_chain(&heads).unwrap();
    assert_eq!(r.faults.len(), 2, "{r:#?}");
    for (fault, (k, _, t, _)) in r.faults.iter().zip(&alarms) {
        let ChainFault::Rewritten(RecordRef {
            table: ChainTable::Events,
            key,
            time,
            seq: Some(seq),
        }) = *fault
        else {
            panic!("not a rewritten event: {fault:?}");
        };
        assert_eq!((key, time), (*k, Some(*t)));
        assert!(seq >= 1 && seq <= heads.last().unwrap().seq);
    }
    assert!(!r.is_clean());
}

/// A rewritten block of samples is named by its key and time.
#[test]
fn samples_rewritten_with_the_device_key_are_named() {
    let (d, heads) = history("samples");
    let a = Attacker::open(&d);
    let blocks = a.keys("samples");
    let victim = blocks[1];
    let mut plain = a.read("samples", victim).unwrap();
    // The third value of the block's first sample: y1.
    plain[14 + 8..14 + 12].copy_from_slice(&0.0f32.to_le_bytes());
    a.write("samples", victim, &plain);
    drop(a);
    let r = verify(&d, &heads);
    assert_eq!(r.faults.len(), 1, "{r:#?}");
    let ChainFault::Rewritten(at) = r.faults[0] else {
        panic!("{:?}", r.faults[0]);
    };
    assert_eq!((at.table, at.key), (ChainTable::Samples, victim));
    assert!((at.time.unwrap() - victim as f64 / 1e6).abs() < 1e-6);
}

/// An alarm deleted with its chain record (as a thorough attacker would),
/// then one deleted without: both named, by key.
#[test]
fn a_deleted_alarm_is_named() {
    let (d, heads) = history("delete-event");
    let a = Attacker::open(&d);
    let alarms: Vec<u64> = a
        .events()
        .into_iter()
        .filter(|e| e.1 == ALARM_RAISED)
        .map(|e| e.0)
        .collect();
    a.delete("events", alarms[1]);
    a.delete("chain-events", alarms[1]);
    a.delete("events", alarms[3]);
    drop(a);
    let r = verify(&d, &heads);
    let deleted: Vec<(u64, Option<u64>)> = r
        .faults
        .iter()
        .filter_map(|f| match f {
            ChainFault::Deleted(at) if at.table == ChainTable::Events => Some((at.key, at.seq)),
            _ => None,
        })
        .collect();
    assert_eq!(deleted.len(), 2, "{r:#?}");
    assert!(deleted.iter().any(|d| d.0 == alarms[1] && d.1.is_none()));
    assert!(deleted.iter().any(|d| d.0 == alarms[3] && d.1.is_some()));
    assert!(!r.is_clean());
}

/// A block of samples deleted with its link: the next block's link names
/// it, and the commits that wrote only it are missing.
#[test]
fn a_deleted_block_of_samples_is_named() {
    let (d, heads) = history("delete-block");
    let a = Attacker::open(&d);
    let blocks = a.keys("samples");
    let victim = blocks[1];
    a.delete("samples", victim);
    a.delete("chain-blocks", victim);
    drop(a);
    let r = verify(&d, &heads);
    let first = r.first_fault().expect("a finding");
    let named = r.faults.iter().any(|f| {
        matches!(f, ChainFault::Deleted(at) if at.table == ChainTable::Samples && at.key == victim)
    });
    assert!(named, "{r:#?}");
    assert!(
        matches!(
            first,
            ChainFault::Deleted(_) | ChainFault::MissingCommits { .. }
        ),
        "{first:?}"
    );
    // The newest block deleted too: the chain's state names it.
    let a = Attacker::open(&d);
    let newest = *a.keys("samples").last().unwrap();
    a.delete("samples", newest);
    a.delete("chain-blocks", newest);
    drop(a);
    let r = verify(&d, &heads);
    assert!(r.faults.iter().any(|f| {
        matches!(f, ChainFault::Deleted(at) if at.table == ChainTable::Samples && at.key == newest)
    }));
}

/// The whole file restored from an older copy verifies by itself (an
/// older history is a consistent one), but not against the head the
/// backend received after the copy: behind it. Written on from there, it
/// diverges from that head.
#[test]
fn an_older_copy_restored_is_caught_by_a_later_known_head() {
    let d = dir("rollback");
    let w = writer(&d, fast());
    let early = record(&w, 1_700_000_000.0, 500);
    drop(w);
    let copy = std::fs::read(d.join("history.redb")).unwrap();
    let w = writer(&d, fast());
    let late = record(&w, 1_700_000_050.0, 500);
    drop(w);
    std::fs::write(d.join("history.redb"), &copy).unwrap();

    let (h1, h2) = (*early.last().unwrap(), *late.last().unwrap());
    let r = verify(&d, &[h1, h2]);
    assert!(r.faults.is_empty(), "the copy is consistent by itself");
    assert_eq!(r.known[0].check, HeadCheck::Matches);
    assert_eq!(r.known[1].check, HeadCheck::Behind { store: Some(h1) });
    assert!(!r.is_clean());

    // Writing on from the old copy past the later head's seq.
    let w = writer(&d, fast());
    let again = record(&w, 1_700_000_100.0, 1000);
    drop(w);
    assert!(again.last().unwrap().seq > h2.seq);
    let r = verify(&d, &[h1, h2]);
    assert!(r.faults.is_empty());
    assert_eq!(r.known[0].check, HeadCheck::Matches);
    assert!(
        matches!(r.known[1].check, HeadCheck::Diverged { store } if store.seq == h2.seq),
        "{:?}",
        r.known[1]
    );
}

/// What the chain cannot stop: with the device key, the whole history can
/// be rebuilt without the alarm, through the store's own code. It
/// verifies by itself; only the backend's head catches it.
#[test]
fn a_history_rebuilt_with_the_device_key_is_caught_only_by_the_backends_head() {
    let (d, heads) = history("rebuilt");
    let original = Store::open(&d, &key(), None).unwrap();
    let samples = original.samples(0.0, f64::MAX).unwrap();
    let events = original.events(0.0, f64::MAX).unwrap();
    drop(original);
    let forged = dir("rebuilt-forged");
    let w = writer(&forged, fast());
    for s in samples {
        w.push(s);
    }
    for e in events
        .into_iter()
        .filter(|e| e.kind != EventKind::AlarmRaised)
    {
        w.event(e.kind, e.time, e.text);
    }
    drop(w);
    let r = verify(&forged, &heads);
    assert!(r.faults.is_empty(), "a rebuilt chain is consistent: {r:#?}");
    let last = r.known.last().unwrap();
    assert_ne!(last.check, HeadCheck::Matches, "{last:?}");
    assert!(!r.is_clean());
}

/// Retention deletes old full-rate samples: legitimate, recorded in the
/// chain (the base moves), and the history verifies clean; heads from
/// before the base can no longer be checked, later ones match. Deleting
/// the oldest remaining block and moving the base by hand is not
/// retention.
#[test]
fn retention_moves_the_base_and_the_history_verifies_clean() {
    let d = dir("retention");
    let config = WriterConfig {
        full_rate: 120.0,
        ..fast()
    };
    let w = writer(&d, config.clone());
    let heads = record(&w, 1_700_000_000.0, 6000);
    drop(w);
    let r = verify(&d, &heads);
    assert!(r.is_clean(), "{r:#?}");
    let base = r.base.unwrap();
    assert!(base.seq > 0, "retention moved the base");
    let kept = Store::open(&d, &key(), None)
        .unwrap()
        .samples(0.0, f64::MAX)
        .unwrap();
    assert!(kept.len() < 3000, "{} samples kept", kept.len());
    assert!(
        r.known
            .iter()
            .any(|k| matches!(k.check, HeadCheck::BeforeBase { .. }))
    );
    assert_eq!(r.known.last().unwrap().check, HeadCheck::Matches);
    assert_eq!(r.events, 90, "events are never cut by retention");
    // And on after a restart.
    let w = writer(&d, config);
    let more = record(&w, 1_700_000_600.0, 1000);
    drop(w);
    let all: Vec<ChainHead> = heads.iter().chain(&more).copied().collect();
    let r = verify(&d, &all);
    assert!(r.is_clean(), "{r:#?}");

    // The oldest block deleted out of turn: named (its commits are after
    // the base, so retention did not take it).
    let a = Attacker::open(&d);
    let oldest = a.keys("chain-blocks")[0];
    a.delete("samples", oldest);
    a.delete("chain-blocks", oldest);
    drop(a);
    let r = verify(&d, &all);
    assert!(!r.faults.is_empty(), "{r:#?}");
}

/// A writer dropped mid-stream and a writer whose process is killed
/// (SIGKILL) at random moments: whatever committed verifies, and every
/// head seen before a crash is still matched after it.
#[test]
fn a_crash_mid_write_leaves_a_history_that_verifies() {
    let d = dir("crash");
    let w = writer(&d, fast());
    for i in 0..3000u32 {
        w.push(Sample {
            time: 1_700_000_000.0 + f64::from(i) * 0.01,
            values: vec![0.0, i as f32],
        });
    }
    drop(w); // flushes what it has
    let mut known: Vec<ChainHead> = Vec::new();
    known.extend(verify(&d, &[]).head);
    let exe = std::env::current_exe().unwrap();
    for round in 0..6u64 {
        let mut child = std::process::Command::new(&exe)
            .args([
                "--exact",
                "writer_child_for_the_crash_test",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("TWINSHIELD_CHAIN_CHILD", &d)
            .env("TWINSHIELD_CHAIN_ROUND", round.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(300 + 170 * round));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let r = verify(&d, &known);
        assert!(r.is_clean(), "round {round}: {r:#?}");
        known.extend(r.head);
    }
    assert!(
        known.windows(2).any(|w| w[1].seq > w[0].seq),
        "the child processes committed something: {known:?}"
    );
}

/// The writer the crash test kills: writes until killed (does nothing when
/// run as an ordinary test).
#[test]
fn writer_child_for_the_crash_test() {
    let Some(d) = std::env::var_os("TWINSHIELD_CHAIN_CHILD") else {
        return;
    };
    let round: f64 = std::env::var("TWINSHIELD_CHAIN_ROUND")
        .unwrap()
        .parse()
        .unwrap();
    let w = writer(
        Path::new(&d),
        WriterConfig {
            batch_interval: Duration::from_millis(2),
            ..WriterConfig::default()
        },
    );
    let t0 = 1_700_001_000.0 + round * 1000.0;
    for i in 0u32.. {
        let t = t0 + f64::from(i) * 0.001;
        w.push(Sample {
            time: t,
            values: vec![1.0, i as f32],
        });
        if i % 97 == 0 {
            w.event(EventKind::Audit, t, "child");
        }
        if i % 64 == 0 {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

/// A history written before the chain existed (simulated: the chain's
/// tables and state removed) opens, and the writer starts the chain at
/// its first commit; verification reports what was written before as
/// unchained, and the rest clean.
#[test]
fn a_history_from_before_the_chain_opens_and_reports_its_unchained_part() {
    let (d, _) = history("legacy");
    let old_events;
    let old_blocks;
    {
        let a = Attacker::open(&d);
        old_events = a.keys("events").len() as u64;
        old_blocks = a.keys("samples").len() as u64;
        let w = a.db.begin_write().unwrap();
        for t in ["chain-blocks", "chain-events", "chain-retention"] {
            w.delete_table(TableDefinition::<u64, &[u8]>::new(t))
                .unwrap();
        }
        w.open_table(TableDefinition::<&str, &[u8]>::new("meta"))
            .unwrap()
            .remove("chain")
            .unwrap();
        w.commit().unwrap();
    }
    let r = verify(&d, &[]);
    assert!(r.is_clean(), "{r:#?}");
    assert_eq!(r.head, None);
    assert_eq!(
        r.unchained,
        Unchained {
            events: old_events,
            sample_blocks: old_blocks
        }
    );
    let w = writer(&d, fast());
    assert_eq!(w.chain_head(), None, "no chained commit yet");
    let heads = record(&w, 1_700_000_200.0, 1000);
    drop(w);
    let r = verify(&d, &heads);
    assert!(r.is_clean(), "{r:#?}");
    assert_eq!(
        r.unchained,
        Unchained {
            events: old_events,
            sample_blocks: old_blocks
        }
    );
    assert_eq!(r.events, 15);
    // The old records still read.
    let store = Store::open(&d, &key(), None).unwrap();
    assert_eq!(store.samples(0.0, f64::MAX).unwrap().len(), 2000);
}

/// Removing the chain's state to pass the history off as one from before
/// the chain is itself a finding.
#[test]
fn removing_the_chain_state_is_a_finding() {
    let (d, heads) = history("state");
    let w = {
        let a = Attacker::open(&d);
        let w = a.db.begin_write().unwrap();
        w.open_table(TableDefinition::<&str, &[u8]>::new("meta"))
            .unwrap()
            .remove("chain")
            .unwrap();
        w.commit().unwrap();
        a
    };
    drop(w);
    let r = verify(&d, &heads);
    assert_eq!(r.faults, vec![ChainFault::StateMissing]);
    assert!(
        r.known
            .iter()
            .all(|k| k.check == HeadCheck::Behind { store: None })
    );
}

/// The head every API hands out is the same one, and serialises.
#[test]
fn the_head_is_the_same_through_writer_handle_and_store() {
    let d = dir("api");
    let w = writer(&d, fast());
    assert_eq!(w.chain_head(), None);
    w.push(Sample {
        time: 5.0,
        values: vec![1.0, 2.0],
    });
    w.flush();
    let h = w.chain_head().unwrap();
    assert_eq!(h.seq, 1);
    assert_eq!(h.time, 5.0);
    assert_eq!(w.handle().chain_head(), Some(h));
    let via_query = w.handle().query(|s| s.chain_head()).unwrap();
    assert_eq!(via_query, Some(h));
    let report = w.handle().query(move |s| s.verify_chain(&[h])).unwrap();
    assert!(report.is_clean(), "{report:#?}");
    drop(w);
    assert_eq!(
        Store::open(&d, &key(), None).unwrap().chain_head().unwrap(),
        Some(h)
    );
    let json = serde_json::to_string(&h).unwrap();
    assert_eq!(serde_json::from_str::<ChainHead>(&json).unwrap(), h);
    assert_eq!(h.signing_bytes().len(), ChainHead::SIGNING_LEN);
}

/// One recorded history (its file, the heads it gave out, its base's
/// seq), copied afresh for each corruption case.
fn pristine() -> &'static (Vec<u8>, Vec<ChainHead>, u64) {
    static P: std::sync::OnceLock<(Vec<u8>, Vec<ChainHead>, u64)> = std::sync::OnceLock::new();
    P.get_or_init(|| {
        let d = dir("prop-source");
        let w = writer(
            &d,
            WriterConfig {
                full_rate: 30.0,
                ..fast()
            },
        );
        let heads = record(&w, 1_700_000_000.0, 1200);
        drop(w);
        let r = verify(&d, &heads);
        assert!(r.is_clean(), "{r:#?}");
        let base = r.base.unwrap().seq;
        assert!(base > 0, "retention moved the base");
        (std::fs::read(d.join("history.redb")).unwrap(), heads, base)
    })
}

/// Bytes 9..49 of an event's chain record are the hash and time of the
/// head recorded after its commit: a locator for the replay. Once
/// retention has moved the base past that commit, the replay no longer
/// reaches it, so a changed hash or time there is inert (the event itself,
/// and the seq of its commit, are still checked by the event chain, whose
/// value every later head covers).
fn inert(table: &str, plain: &[u8], byte: usize, base: u64) -> bool {
    let seq = u64::from_le_bytes(plain[1..9].try_into().unwrap());
    table == "chain-events" && (9..49).contains(&byte) && seq <= base
}

const TABLES: [&str; 5] = [
    "samples",
    "events",
    "chain-blocks",
    "chain-events",
    "chain-retention",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Any record of any table deleted, truncated, bit-flipped or replaced
    /// by garbage, and re-sealed with the real key: verification never
    /// panics, and reports a finding.
    #[test]
    fn random_corruptions_are_reported_and_never_panic(
        table in 0..TABLES.len(),
        pick in any::<prop::sample::Index>(),
        how in 0..4u8,
        at in any::<prop::sample::Index>(),
        garbage in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let (bytes, heads, base) = pristine();
        let d = dir(&format!("prop-{table}-{how}"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("history.redb"), bytes).unwrap();
        let a = Attacker::open(&d);
        let keys = a.keys(TABLES[table]);
        prop_assume!(!keys.is_empty());
        let k = *pick.get(&keys);
        let plain = a.read(TABLES[table], k).unwrap();
        match how {
            0 => a.delete(TABLES[table], k),
            1 => a.write(TABLES[table], k, &plain[..at.index(plain.len())]),
            2 => {
                let mut p = plain.clone();
                let i = at.index(p.len());
                prop_assume!(!inert(TABLES[table], &plain, i, *base));
                p[i] ^= 0x10;
                a.write(TABLES[table], k, &p);
            }
            _ => {
                prop_assume!(garbage != plain);
                a.write(TABLES[table], k, &garbage);
            }
        }
        drop(a);
        let r = verify(&d, heads);
        let _ = std::fs::remove_dir_all(&d);
        prop_assert!(
            !r.is_clean(),
            "{} {k} ({how}, at {at:?}) went unnoticed: head {:?}, base {:?}",
            TABLES[table],
            r.head,
            r.base
        );
    }

    /// The chain's own state truncated, bit-flipped or replaced, and
    /// re-sealed: reported, never a panic.
    #[test]
    fn a_corrupt_chain_state_is_reported_and_never_panics(
        how in 0..3u8,
        at in any::<prop::sample::Index>(),
        garbage in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        let (bytes, heads, _) = pristine();
        let d = dir(&format!("prop-state-{how}"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("history.redb"), bytes).unwrap();
        let a = Attacker::open(&d);
        let plain = a.state();
        let changed = match how {
            0 => plain[..at.index(plain.len())].to_vec(),
            1 => {
                let mut p = plain.clone();
                p[at.index(plain.len())] ^= 0x01;
                p
            }
            _ => garbage,
        };
        prop_assume!(changed != plain);
        a.set_state(&changed);
        drop(a);
        let r = verify(&d, heads);
        let _ = std::fs::remove_dir_all(&d);
        prop_assert!(!r.is_clean(), "({how}, at {at:?}) went unnoticed: {:?}", r.faults);
    }
}
