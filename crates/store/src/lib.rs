//! The twin's durable, encrypted history: samples, minute aggregates,
//! alarms, data-quality events, shield findings, the audit log and the
//! backend outbox, in an embedded redb database under the data directory.
//!
//! Every value is sealed (ChaCha20-Poly1305) under a key the caller derives
//! from the device key, with the table and record key as associated data:
//! a copy of the data directory opens nowhere else, and records cannot be
//! swapped. Writes go through a [`StoreWriter`] thread in batches, so the
//! sync loop never waits on the disk; a sample counts as acknowledged only
//! once the transaction holding it has committed durably. When the disk
//! fails (full, read-only), the writer keeps samples in memory (bounded),
//! reports the fault, and resumes when writes succeed again.
//!
//! A sample written through the writer reads back under the same key, and
//! the history opens under no other:
//!
//! ```
//! use twinshield_store::{Sample, Store, StoreError, WriterConfig};
//! use zeroize::Zeroizing;
//!
//! let dir = tempfile::tempdir()?;
//! let key = Zeroizing::new([7u8; 32]);
//! let schema = ["v1".to_owned(), "y1".to_owned()];
//! let writer = Store::open(dir.path(), &key, Some(&schema))?.into_writer(WriterConfig::default())?;
//! assert!(writer.push(Sample { time: 10.0, values: vec![3.0, 12.5] }));
//! drop(writer); // flushes, commits and closes the database
//!
//! let store = Store::open(dir.path(), &key, None)?;
//! assert_eq!(store.latest()?.map(|s| s.values), Some(vec![3.0, 12.5]));
//! drop(store);
//! let other = Zeroizing::new([8u8; 32]);
//! assert!(matches!(Store::open(dir.path(), &other, None), Err(StoreError::WrongDevice)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

mod chain;
mod codec;
mod crypt;
mod verify;
mod writer;

pub use chain::ChainHead;
pub use codec::{Event, EventKind, MinuteRow, Sample};
pub use verify::{
    ChainFault, ChainReport, ChainTable, HeadCheck, KnownHeadCheck, RecordRef, Unchained,
};

/// Decodes the plaintext of a stored record of each kind (after
/// decryption), refusing anything malformed. Public for the fuzz targets.
#[diversify]
pub fn decode_records(bytes: &[u8]) -> (Option<Vec<Sample>>, Option<MinuteRow>, Option<Event>) {
    (
        codec::decode_block(bytes),
        codec::decode_minute(bytes),
        codec::decode_event(bytes),
    )
}
pub use writer::{StoreHandle, StoreWriter, WriterConfig, WriterStatus};

use chain::{ChainKey, Meta};
use crypt::Cipher;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;
use twinshield_shield_macros::diversify;
use zeroize::Zeroizing;

pub(crate) const SAMPLES: TableDefinition<u64, &[u8]> = TableDefinition::new("samples");
pub(crate) const MINUTES: TableDefinition<u64, &[u8]> = TableDefinition::new("minutes");
pub(crate) const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

/// The key-check value stored (encrypted) in every history: a known
/// plaintext, so it is no plain constant in the binary either.
#[diversify]
fn check_value() -> twinshield_shield::obf::Revealed {
    twinshield_shield::obf_bytes!(b"twinshield history v1")
}
const DB_FILE: &str = "history.redb";

/// Why the store could not be used. Where the database or the operating
/// system gave a reason, the message shows it and
/// [`std::error::Error::source`] returns it.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The data directory could not be created.
    #[error("history store: {source}")]
    Directory {
        /// The data directory.
        path: PathBuf,
        /// What the operating system reported.
        #[source]
        source: std::io::Error,
    },
    /// The database could not be created, opened, read or written (its
    /// `redb::Error::Io` holds the operating system's reason).
    #[error("history store: {0}")]
    Database(#[source] redb::Error),
    /// Opened without a schema, and the data directory holds no history.
    #[error("history store: no history in {}", .0.display())]
    NoHistory(PathBuf),
    /// The history cannot be reached now: its writer has stopped, cannot
    /// open the database, or another handle still holds it.
    #[error("history store: {0}")]
    Unavailable(&'static str),
    /// A value could not be encrypted (no randomness for a nonce).
    #[error("history store: cannot encrypt")]
    Encrypt(#[source] twinshield_atrest::EncryptError),
    /// The data directory was written with another key: another device.
    #[error("the data directory belongs to another device (its history does not decrypt here)")]
    WrongDevice,
    /// The data directory holds history with another channel layout.
    #[error("the data directory holds history of another model layout")]
    SchemaMismatch,
    /// A record failed authentication or decoding.
    #[error("history record {0} is corrupt")]
    Corrupt(String),
    /// The history's chain state (`meta`/`chain`) does not decrypt or
    /// decode: the chain cannot be continued. [`Store::verify_chain`]
    /// still reports what it can.
    #[error("the history's hash chain record is damaged")]
    ChainDamaged,
    /// The history was not closed cleanly (its writer stopped abruptly)
    /// and cannot be read in place without the repair that opening it for
    /// writing does.
    #[error("history store: not closed cleanly, it needs repair before it can be read in place")]
    NeedsRepair(PathBuf),
    /// Another process (a running twin) holds the history open.
    #[error("history store: open in another process (stop the twin first)")]
    InUse(PathBuf),
}

#[diversify]
pub(crate) fn database_error(e: impl Into<redb::Error>) -> StoreError {
    StoreError::Database(e.into())
}

/// One point of a downsampled range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RangePoint {
    /// Start of the bucket, seconds.
    pub time: f64,
    /// Smallest value in the bucket.
    pub min: f32,
    /// Mean of the bucket.
    pub mean: f32,
    /// Largest value in the bucket.
    pub max: f32,
}

/// Microseconds, the sample table's key (block start).
#[diversify]
pub(crate) fn micros(t: f64) -> u64 {
    if t <= 0.0 { 0 } else { (t * 1e6) as u64 }
}

/// The store's keys: the cipher every record is sealed with, and the
/// chain's keyed hash, both derived from the caller's key.
#[derive(Clone)]
pub(crate) struct Keys {
    pub(crate) cipher: Arc<Cipher>,
    pub(crate) chain: Arc<ChainKey>,
}

/// An open history.
#[derive(Clone)]
pub struct Store {
    db: Arc<Database>,
    keys: Keys,
    schema: Arc<Vec<String>>,
    dir: PathBuf,
}

#[diversify]
impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({})", self.dir.display())
    }
}

#[diversify]
impl Store {
    /// Opens (creating if needed) the history in `dir` under `key`. With a
    /// `schema` (the channel names of a sample), a new history takes it and
    /// an existing one must match it; without, the stored one is used.
    pub fn open(
        dir: &Path,
        key: &Zeroizing<[u8; 32]>,
        schema: Option<&[String]>,
    ) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Directory {
            path: dir.to_path_buf(),
            source,
        })?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        }
        let db = Database::create(dir.join(DB_FILE)).map_err(database_error)?;
        #[cfg(unix)]
        {
            // redb creates the file with the process's umask (0644 by default).
            use std::os::unix::fs::PermissionsExt;
            let _ =
                std::fs::set_permissions(dir.join(DB_FILE), std::fs::Permissions::from_mode(0o600));
        }
        let cipher = Cipher::new(key);
        let stored_check = read_meta(&db, &cipher, "check")?;
        let stored_schema = read_meta(&db, &cipher, "schema")?;
        let schema: Vec<String> = match (stored_check, stored_schema) {
            (Some(c), Some(s)) => {
                if c.as_slice() != check_value().bytes() {
                    return Err(StoreError::WrongDevice);
                }
                let stored: Vec<String> = String::from_utf8_lossy(&s)
                    .split('\n')
                    .map(str::to_owned)
                    .collect();
                if let Some(want) = schema
                    && want != stored.as_slice()
                {
                    return Err(StoreError::SchemaMismatch);
                }
                stored
            }
            (None, None) => {
                let Some(want) = schema else {
                    return Err(StoreError::NoHistory(dir.to_path_buf()));
                };
                let w = db.begin_write().map_err(database_error)?;
                {
                    let mut t = w.open_table(META).map_err(database_error)?;
                    let seal = |k: &str, v: &[u8]| {
                        cipher
                            .seal("meta", k.as_bytes(), v)
                            .map_err(StoreError::Encrypt)
                    };
                    t.insert("check", seal("check", check_value().bytes())?.as_slice())
                        .map_err(database_error)?;
                    t.insert(
                        "schema",
                        seal("schema", want.join("\n").as_bytes())?.as_slice(),
                    )
                    .map_err(database_error)?;
                }
                w.commit().map_err(database_error)?;
                want.to_vec()
            }
            _ => return Err(StoreError::Corrupt("meta".into())),
        };
        Ok(Store {
            db: Arc::new(db),
            keys: Keys {
                cipher: Arc::new(cipher),
                chain: Arc::new(ChainKey::derive(key)),
            },
            schema: Arc::new(schema),
            dir: dir.to_path_buf(),
        })
    }

    /// Returns free pages to the file system (redb compaction). Only
    /// possible while no writer or other handle shares the database;
    /// returns whether it ran.
    pub fn compact(&mut self) -> Result<bool, StoreError> {
        match Arc::get_mut(&mut self.db) {
            Some(db) => db.compact().map_err(database_error),
            None => Ok(false),
        }
    }

    /// Bytes the data directory's files take on disk.
    pub fn disk_bytes(&self) -> u64 {
        std::fs::read_dir(&self.dir)
            .map(|d| {
                d.flatten()
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    }

    /// The channel names of a sample, in value order.
    pub fn schema(&self) -> &[String] {
        &self.schema
    }

    /// Index of a channel by name.
    pub fn channel(&self, name: &str) -> Option<usize> {
        self.schema.iter().position(|c| c == name)
    }

    /// Hands the database to the batching writer thread, which then owns
    /// it (so it can reopen it after an I/O error). Fails while another
    /// handle of this store is alive; reopen the store to read afterwards.
    ///
    /// The writer continues the history's hash chain; a history written
    /// before the chain existed starts one at its first commit (what it
    /// held then stays unchained, see [`ChainReport::unchained`]). Fails
    /// with [`StoreError::ChainDamaged`] if the chain's state does not
    /// read back.
    pub fn into_writer(self, config: WriterConfig) -> Result<StoreWriter, StoreError> {
        let db = Arc::try_unwrap(self.db).map_err(|_| {
            StoreError::Unavailable("the history is still open for reading elsewhere")
        })?;
        let chain = writer::load_chain(&db, &self.keys)?;
        Ok(StoreWriter::start(
            db,
            self.dir.join(DB_FILE),
            self.keys,
            self.schema,
            chain,
            config,
        ))
    }

    /// A read view over the writer thread's database handle.
    pub(crate) fn view(
        db: Arc<Database>,
        keys: Keys,
        schema: Arc<Vec<String>>,
        path: &Path,
    ) -> Store {
        Store {
            db,
            keys,
            schema,
            dir: path.parent().map(Path::to_path_buf).unwrap_or_default(),
        }
    }

    /// The chain head of the last commit, as stored; `None` if no writer
    /// has committed since the chain began (or the history predates it
    /// and was not written since).
    pub fn chain_head(&self) -> Result<Option<ChainHead>, StoreError> {
        let r = self.db.begin_read().map_err(database_error)?;
        Ok(read_chain_meta(&r, &self.keys)?.map(|m| m.head))
    }

    /// Walks the history's hash chain and reports every record that does
    /// not fit it (the first is [`ChainReport::first_fault`]), and how the
    /// history stands against `known` heads kept elsewhere (the backend's):
    /// behind one (rolled back or truncated), diverged from one
    /// (rewritten), or extending it. Damage and tampering are findings in
    /// the report; an error means the database itself could not be read.
    /// Reads one consistent snapshot; never panics on any stored bytes.
    pub fn verify_chain(&self, known: &[ChainHead]) -> Result<ChainReport, StoreError> {
        verify::verify(&*self.db, &self.keys, known)
    }

    /// [`Store::verify_chain`] of the history in `dir` under `key`, with
    /// the file opened read only: nothing is written to it, not even the
    /// bookkeeping opening a database for writing does. Refused while a
    /// writer holds the history open ([`StoreError::InUse`]), and for a
    /// history that needs repair after a crash
    /// ([`StoreError::NeedsRepair`]: opening it, or a copy of it, with
    /// [`Store::open`] repairs it).
    pub fn verify_dir(
        dir: &Path,
        key: &Zeroizing<[u8; 32]>,
        known: &[ChainHead],
    ) -> Result<ChainReport, StoreError> {
        let file = dir.join(DB_FILE);
        if !file.is_file() {
            return Err(StoreError::NoHistory(dir.to_path_buf()));
        }
        let db = redb::ReadOnlyDatabase::open(&file).map_err(|e| match e {
            redb::DatabaseError::RepairAborted => StoreError::NeedsRepair(dir.to_path_buf()),
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::InUse(dir.to_path_buf()),
            e => database_error(e),
        })?;
        let cipher = Cipher::new(key);
        match read_meta(&db, &cipher, "check")? {
            Some(c) if c.as_slice() == check_value().bytes() => {}
            Some(_) => return Err(StoreError::WrongDevice),
            None => return Err(StoreError::NoHistory(dir.to_path_buf())),
        }
        let keys = Keys {
            cipher: Arc::new(cipher),
            chain: Arc::new(ChainKey::derive(key)),
        };
        verify::verify(&db, &keys, known)
    }

    /// Full-rate samples with `from ≤ time ≤ to`, oldest first.
    pub fn samples(&self, from: f64, to: f64) -> Result<Vec<Sample>, StoreError> {
        let r = self.db.begin_read().map_err(database_error)?;
        let t = match r.open_table(SAMPLES) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(database_error(e)),
        };
        // Blocks span at most `writer::BLOCK_SPAN` seconds.
        let lo = micros(from - writer::BLOCK_SPAN - 1.0);
        let mut out = Vec::new();
        for item in t.range(lo..=micros(to)).map_err(database_error)? {
            let (k, v) = item.map_err(database_error)?;
            let key = k.value();
            let plain = self
                .keys
                .cipher
                .open("samples", &key.to_le_bytes(), v.value())
                .ok_or_else(|| StoreError::Corrupt(format!("samples/{key}")))?;
            let block = codec::decode_block(&plain)
                .ok_or_else(|| StoreError::Corrupt(format!("samples/{key}")))?;
            out.extend(block.into_iter().filter(|s| s.time >= from && s.time <= to));
        }
        Ok(out)
    }

    /// The newest stored sample.
    pub fn latest(&self) -> Result<Option<Sample>, StoreError> {
        let r = self.db.begin_read().map_err(database_error)?;
        let t = match r.open_table(SAMPLES) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(database_error(e)),
        };
        let Some((k, v)) = t.last().map_err(database_error)? else {
            return Ok(None);
        };
        let key = k.value();
        let plain = self
            .keys
            .cipher
            .open("samples", &key.to_le_bytes(), v.value())
            .ok_or_else(|| StoreError::Corrupt(format!("samples/{key}")))?;
        Ok(codec::decode_block(&plain).and_then(|b| b.into_iter().last()))
    }

    /// Minute aggregates with `from ≤ minute ≤ to`.
    pub fn minutes(&self, from: f64, to: f64) -> Result<Vec<MinuteRow>, StoreError> {
        let r = self.db.begin_read().map_err(database_error)?;
        let t = match r.open_table(MINUTES) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(database_error(e)),
        };
        let (lo, hi) = (
            writer::minute_of(from.max(0.0)),
            writer::minute_of(to.max(0.0)),
        );
        let mut out = Vec::new();
        for item in t.range(lo..=hi).map_err(database_error)? {
            let (k, v) = item.map_err(database_error)?;
            let key = k.value();
            let plain = self
                .keys
                .cipher
                .open("minutes", &key.to_le_bytes(), v.value())
                .ok_or_else(|| StoreError::Corrupt(format!("minutes/{key}")))?;
            out.push(
                codec::decode_minute(&plain)
                    .ok_or_else(|| StoreError::Corrupt(format!("minutes/{key}")))?,
            );
        }
        Ok(out)
    }

    /// One channel over `[from, to]` in at most `max_points` buckets of
    /// min/mean/max: from minute aggregates when buckets are a minute or
    /// longer (fast over days, and beyond the full-rate window), from
    /// full-rate samples otherwise.
    pub fn range(
        &self,
        channel: usize,
        from: f64,
        to: f64,
        max_points: usize,
    ) -> Result<Vec<RangePoint>, StoreError> {
        if channel >= self.schema.len()
            || max_points == 0
            || to.partial_cmp(&from) != Some(std::cmp::Ordering::Greater)
        {
            return Ok(Vec::new());
        }
        let width = (to - from) / max_points as f64;
        let mut buckets: Vec<(f64, f32, f64, f32, f64)> = Vec::new(); // start, min, sum, max, count
        let mut add = |t: f64, min: f32, sum: f64, max: f32, n: f64| {
            // The last bucket is closed, so `to` itself falls in it.
            let index = ((t - from) / width)
                .floor()
                .clamp(0.0, max_points as f64 - 1.0);
            let start = from + index * width;
            match buckets.last_mut() {
                Some(b) if (b.0 - start).abs() < width * 1e-9 => {
                    b.1 = b.1.min(min);
                    b.2 += sum;
                    b.3 = b.3.max(max);
                    b.4 += n;
                }
                _ => buckets.push((start, min, sum, max, n)),
            }
        };
        if width >= 60.0 {
            for m in self.minutes(from, to)? {
                if let Some(&(lo, mean, hi)) = m.stats.get(channel) {
                    let n = f64::from(m.count);
                    add(m.minute, lo, f64::from(mean) * n, hi, n);
                }
            }
        } else {
            for s in self.samples(from, to)? {
                if let Some(&v) = s.values.get(channel) {
                    add(s.time, v, f64::from(v), v, 1.0);
                }
            }
        }
        Ok(buckets
            .into_iter()
            .filter(|b| b.4 > 0.0)
            .map(|(time, min, sum, max, n)| RangePoint {
                time,
                min,
                mean: (sum / n) as f32,
                max,
            })
            .collect())
    }

    /// Events with `from ≤ time ≤ to`, oldest first.
    pub fn events(&self, from: f64, to: f64) -> Result<Vec<Event>, StoreError> {
        let r = self.db.begin_read().map_err(database_error)?;
        let t = match r.open_table(EVENTS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(database_error(e)),
        };
        let mut out = Vec::new();
        for item in t.iter().map_err(database_error)? {
            let (k, v) = item.map_err(database_error)?;
            let key = k.value();
            let plain = self
                .keys
                .cipher
                .open("events", &key.to_le_bytes(), v.value())
                .ok_or_else(|| StoreError::Corrupt(format!("events/{key}")))?;
            let e = codec::decode_event(&plain)
                .ok_or_else(|| StoreError::Corrupt(format!("events/{key}")))?;
            if e.time >= from && e.time <= to {
                out.push(e);
            }
        }
        Ok(out)
    }

    /// Alarm lifecycle events (raised, acknowledged, cleared) in `[from, to]`.
    pub fn alarms(&self, from: f64, to: f64) -> Result<Vec<Event>, StoreError> {
        Ok(self
            .events(from, to)?
            .into_iter()
            .filter(|e| {
                matches!(
                    e.kind,
                    EventKind::AlarmRaised | EventKind::AlarmAcknowledged | EventKind::AlarmCleared
                )
            })
            .collect())
    }
}

/// The chain's stored state, if the chain has begun; an error if it does
/// not read back.
#[diversify]
pub(crate) fn read_chain_meta(
    r: &redb::ReadTransaction,
    keys: &Keys,
) -> Result<Option<Meta>, StoreError> {
    let t = match r.open_table(META) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(database_error(e)),
    };
    let Some(v) = t.get(chain::META_KEY).map_err(database_error)? else {
        return Ok(None);
    };
    keys.cipher
        .open("meta", chain::META_KEY.as_bytes(), v.value())
        .and_then(|p| Meta::decode(&p))
        .map(Some)
        .ok_or(StoreError::ChainDamaged)
}

#[diversify]
fn read_meta(
    db: &impl ReadableDatabase,
    cipher: &Cipher,
    key: &str,
) -> Result<Option<Zeroizing<Vec<u8>>>, StoreError> {
    let r = db.begin_read().map_err(database_error)?;
    let t = match r.open_table(META) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(database_error(e)),
    };
    match t.get(key).map_err(database_error)? {
        None => Ok(None),
        Some(v) => cipher
            .open("meta", key.as_bytes(), v.value())
            .map(Some)
            .ok_or(StoreError::WrongDevice),
    }
}
