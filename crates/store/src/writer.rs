//! The batching writer: one thread owns every write transaction.

use crate::codec::{self, Event, EventKind, MinuteRow, Sample};
use crate::crypt::Cipher;
use crate::{EVENTS, MINUTES, SAMPLES, StoreError, micros};
use redb::{Database, ReadableTable};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use twinshield_shield_macros::diversify;

/// Longest time span of one stored block of samples, seconds.
pub(crate) const BLOCK_SPAN: f64 = 60.0;
/// Most samples in one stored block.
const BLOCK_SAMPLES: usize = 272;

#[diversify]
pub(crate) fn minute_of(t: f64) -> u64 {
    (t / 60.0).floor().max(0.0) as u64
}

/// How the writer batches and retains.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// Longest wait before a batch is committed.
    pub batch_interval: Duration,
    /// Most items in one batch.
    pub batch_max: usize,
    /// Items the queue holds before `push` refuses (the sync loop never waits).
    pub queue: usize,
    /// Samples kept in memory while the disk refuses writes; beyond, the
    /// oldest unwritten are dropped and counted.
    pub backlog: usize,
    /// Full-rate samples are kept this many seconds (default 7 days).
    pub full_rate: f64,
    /// Minute aggregates are kept this many seconds (default 1 year).
    pub minutes: f64,
}

#[diversify]
impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            batch_interval: Duration::from_millis(200),
            batch_max: 8192,
            queue: 1 << 17,
            backlog: 1 << 21,
            full_rate: 7.0 * 86400.0,
            minutes: 365.0 * 86400.0,
        }
    }
}

/// A read the writer thread runs against its own database handle.
type Query = Box<dyn FnOnce(Result<&crate::Store, StoreError>) + Send>;

enum Msg {
    Sample(Sample),
    Event(Event),
    Flush(mpsc::Sender<()>),
    Query(Query),
}

#[derive(Default)]
struct Shared {
    acknowledged: AtomicU64,
    refused: AtomicU64,
    lost: AtomicU64,
    fault: Mutex<Option<String>>,
    faults: AtomicU64,
}

/// What the writer has done so far.
#[derive(Debug, Clone, PartialEq)]
pub struct WriterStatus {
    /// Samples durably committed (acknowledged).
    pub acknowledged: u64,
    /// Samples refused because the queue was full.
    pub refused: u64,
    /// Samples dropped from the in-memory backlog during a long disk fault.
    pub lost: u64,
    /// The current storage fault, if writes are failing.
    pub fault: Option<String>,
    /// Storage faults seen since the start.
    pub faults: u64,
}

/// Handle of the writer thread. Dropping it flushes and stops the thread.
pub struct StoreWriter {
    tx: Option<SyncSender<Msg>>,
    /// The sender readers borrow; emptied when the writer stops, so a
    /// reader never keeps the thread alive.
    readers: Arc<Mutex<Option<SyncSender<Msg>>>>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// Reads the history and queues events while a [`StoreWriter`] owns it
/// (the API's door into the history): each query runs on the writer's
/// thread, between batches, against the same database. Cheap to clone;
/// after the writer stopped every query fails and every event is refused.
#[derive(Clone)]
pub struct StoreHandle {
    tx: Arc<Mutex<Option<SyncSender<Msg>>>>,
}

#[diversify]
impl std::fmt::Debug for StoreHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreHandle")
    }
}

#[diversify]
impl StoreHandle {
    /// Queues an event (an audit entry, an acknowledgement); never blocks.
    /// `false` if the writer refused it (queue full, or stopped).
    pub fn event(&self, kind: EventKind, time: f64, text: impl Into<String>) -> bool {
        let Some(tx) = self.tx.lock().ok().and_then(|t| t.clone()) else {
            return false;
        };
        tx.try_send(Msg::Event(Event {
            kind,
            time,
            text: text.into(),
        }))
        .is_ok()
    }

    /// Runs `read` against the history on the writer's thread and returns
    /// its result; blocks until the writer has run it (call it from a
    /// blocking context).
    pub fn query<R: Send + 'static>(
        &self,
        read: impl FnOnce(&crate::Store) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, StoreError> {
        let (reply_tx, reply_rx) = mpsc::channel();
        let q: Query = Box::new(move |store| {
            let _ = reply_tx.send(store.and_then(read));
        });
        let tx = self
            .tx
            .lock()
            .ok()
            .and_then(|t| t.clone())
            .ok_or_else(stopped)?;
        tx.send(Msg::Query(q)).map_err(|_| stopped())?;
        drop(tx);
        reply_rx.recv().map_err(|_| stopped())?
    }
}

#[diversify]
fn stopped() -> StoreError {
    StoreError::Unavailable("the history writer has stopped")
}

#[diversify]
impl std::fmt::Debug for StoreWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StoreWriter({:?})", self.status())
    }
}

#[diversify]
impl StoreWriter {
    pub(crate) fn start(
        db: Database,
        path: PathBuf,
        cipher: Arc<Cipher>,
        schema: Arc<Vec<String>>,
        config: WriterConfig,
    ) -> Self {
        let (tx, rx) = mpsc::sync_channel(config.queue.max(1));
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("twinshield-store".into())
            .spawn(move || Worker::new(db, path, cipher, schema, config, s).run(rx))
            .ok();
        StoreWriter {
            readers: Arc::new(Mutex::new(Some(tx.clone()))),
            tx: Some(tx),
            shared,
            thread,
        }
    }

    /// A handle that reads the history (and queues events) through this
    /// writer's thread.
    pub fn handle(&self) -> StoreHandle {
        StoreHandle {
            tx: self.readers.clone(),
        }
    }

    /// Queues a sample; never blocks. `false` if the queue is full (the
    /// sample is then not stored, and counted as refused).
    pub fn push(&self, sample: Sample) -> bool {
        self.send(Msg::Sample(sample))
    }

    /// Queues an event; never blocks.
    pub fn event(&self, kind: EventKind, time: f64, text: impl Into<String>) -> bool {
        self.send(Msg::Event(Event {
            kind,
            time,
            text: text.into(),
        }))
    }

    fn send(&self, m: Msg) -> bool {
        match self.tx.as_ref().map(|tx| tx.try_send(m)) {
            Some(Ok(())) => true,
            Some(Err(TrySendError::Full(_) | TrySendError::Disconnected(_))) | None => {
                self.shared.refused.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Waits until everything queued before this call is committed (or the
    /// disk refused it; see [`StoreWriter::status`]).
    pub fn flush(&self) {
        let (done_tx, done_rx) = mpsc::channel();
        if let Some(tx) = &self.tx
            && tx.send(Msg::Flush(done_tx)).is_ok()
        {
            let _ = done_rx.recv();
        }
    }

    /// Counters and the current fault.
    pub fn status(&self) -> WriterStatus {
        WriterStatus {
            acknowledged: self.shared.acknowledged.load(Ordering::Acquire),
            refused: self.shared.refused.load(Ordering::Relaxed),
            lost: self.shared.lost.load(Ordering::Relaxed),
            fault: self.shared.fault.lock().ok().and_then(|f| f.clone()),
            faults: self.shared.faults.load(Ordering::Relaxed),
        }
    }
}

#[diversify]
impl Drop for StoreWriter {
    fn drop(&mut self) {
        self.flush();
        if let Ok(mut r) = self.readers.lock() {
            *r = None;
        }
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[derive(Clone)]
struct MinuteAcc {
    minute: u64,
    count: u32,
    stats: Vec<(f32, f64, f32)>,
}

struct Worker {
    /// `None` after a failed write: redb must be reopened after an I/O error.
    db: Option<Arc<Database>>,
    path: PathBuf,
    cipher: Arc<Cipher>,
    schema: Arc<Vec<String>>,
    channels: usize,
    config: WriterConfig,
    shared: Arc<Shared>,
    samples: VecDeque<Sample>,
    events: VecDeque<Event>,
    minute: Option<MinuteAcc>,
    last_retention: f64,
    failing_since: Option<Instant>,
}

#[diversify]
impl Worker {
    fn new(
        db: Database,
        path: PathBuf,
        cipher: Arc<Cipher>,
        schema: Arc<Vec<String>>,
        config: WriterConfig,
        shared: Arc<Shared>,
    ) -> Self {
        Worker {
            db: Some(Arc::new(db)),
            path,
            cipher,
            channels: schema.len(),
            schema,
            config,
            shared,
            samples: VecDeque::new(),
            events: VecDeque::new(),
            minute: None,
            last_retention: 0.0,
            failing_since: None,
        }
    }

    fn run(mut self, rx: Receiver<Msg>) {
        let mut flushes: Vec<mpsc::Sender<()>> = Vec::new();
        loop {
            let deadline = Instant::now() + self.config.batch_interval;
            let mut closed = false;
            let mut taken = 0usize;
            while taken < self.config.batch_max {
                let wait = deadline.saturating_duration_since(Instant::now());
                match rx.recv_timeout(wait) {
                    Ok(Msg::Sample(s)) => {
                        self.samples.push_back(s);
                        taken += 1;
                    }
                    Ok(Msg::Event(e)) => {
                        self.events.push_back(e);
                        taken += 1;
                    }
                    Ok(Msg::Flush(done)) => {
                        flushes.push(done);
                        break;
                    }
                    Ok(Msg::Query(q)) => self.answer(q),
                    Err(RecvTimeoutError::Timeout) => break,
                    Err(RecvTimeoutError::Disconnected) => {
                        closed = true;
                        break;
                    }
                }
            }
            self.trim_backlog();
            if !self.samples.is_empty() || !self.events.is_empty() {
                self.commit();
            }
            for f in flushes.drain(..) {
                let _ = f.send(());
            }
            if closed {
                return;
            }
        }
    }

    /// Runs a reader's query against the database as last committed.
    fn answer(&mut self, q: Query) {
        if self.db.is_none() {
            self.db = Database::create(&self.path).ok().map(Arc::new);
        }
        match &self.db {
            Some(db) => q(Ok(&crate::Store::view(
                db.clone(),
                self.cipher.clone(),
                self.schema.clone(),
                &self.path,
            ))),
            None => q(Err(StoreError::Unavailable(
                "the history cannot be read now",
            ))),
        }
    }

    fn trim_backlog(&mut self) {
        while self.samples.len() > self.config.backlog {
            self.samples.pop_front();
            self.shared.lost.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn commit(&mut self) {
        match self.write() {
            Ok((n, minute)) => {
                self.samples.drain(..n);
                self.events.clear();
                self.minute = minute;
                self.shared
                    .acknowledged
                    .fetch_add(n as u64, Ordering::AcqRel);
                if self.failing_since.take().is_some() {
                    if let Ok(mut f) = self.shared.fault.lock() {
                        *f = None;
                    }
                    tracing::info!("history store writes again");
                }
            }
            Err(e) => {
                // redb refuses further use after an I/O error: reopen next time.
                self.db = None;
                let first = self.failing_since.is_none();
                self.failing_since.get_or_insert_with(Instant::now);
                if let Ok(mut f) = self.shared.fault.lock() {
                    *f = Some(e.clone());
                }
                if first {
                    self.shared.faults.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, "history store cannot write; keeping samples in memory");
                }
                // Give the disk a moment rather than spinning on it.
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    /// Writes every pending sample and event in one transaction. Returns
    /// the samples written and the minute accumulator to keep on success.
    fn write(&mut self) -> Result<(usize, Option<MinuteAcc>), String> {
        if self.db.is_none() {
            self.db = Some(Arc::new(
                Database::create(&self.path).map_err(|x| x.to_string())?,
            ));
        }
        let Some(db) = self.db.as_ref() else {
            return Err("history database is closed".into());
        };
        let w = db.begin_write().map_err(|x| x.to_string())?;
        // Work on a copy: a failed transaction leaves the accumulator as it was.
        let mut minute = self.minute.clone();
        match self.write_in(&w, &mut minute) {
            Ok(n) => {
                w.commit().map_err(|x| x.to_string())?;
                Ok((n, minute))
            }
            Err(err) => {
                let _ = w.abort();
                Err(err)
            }
        }
    }

    /// The body of [`Worker::write`]'s transaction `w`: samples with their
    /// minute aggregates in `minute`, retention, then events. Returns the
    /// samples written.
    fn write_in(
        &mut self,
        w: &redb::WriteTransaction,
        minute: &mut Option<MinuteAcc>,
    ) -> Result<usize, String> {
        let n = self.samples.len();
        {
            let mut samples = w.open_table(SAMPLES).map_err(|x| x.to_string())?;
            let mut minutes = w.open_table(MINUTES).map_err(|x| x.to_string())?;
            self.append_samples(&mut samples, &mut minutes, minute)?;
            self.apply_retention(&mut samples, &mut minutes)?;
        }
        if !self.events.is_empty() {
            let mut events = w.open_table(EVENTS).map_err(|x| x.to_string())?;
            let first = events
                .last()
                .map_err(|x| x.to_string())?
                .map_or(0, |(k, _)| k.value() + 1);
            for (key, ev) in (first..).zip(self.events.iter()) {
                let sealed = seal(&self.cipher, "events", key, &codec::encode_event(ev))?;
                events
                    .insert(key, sealed.as_slice())
                    .map_err(|x| x.to_string())?;
            }
        }
        Ok(n)
    }

    /// Appends the pending samples to the blocks of `samples` (continuing
    /// the newest block while it has room) and folds them into the minute
    /// aggregates, writing each finished minute and the running one.
    fn append_samples(
        &self,
        samples: &mut redb::Table<u64, &[u8]>,
        minutes: &mut redb::Table<u64, &[u8]>,
        minute: &mut Option<MinuteAcc>,
    ) -> Result<(), String> {
        let (mut block, mut block_key) = self.open_block(samples)?;
        for s in self.samples.iter() {
            let full = block.len() >= BLOCK_SAMPLES
                || block
                    .first()
                    .is_some_and(|f| s.time - f.time > BLOCK_SPAN || s.time < f.time);
            if full && let Some(k) = block_key.take() {
                let sealed = seal(
                    &self.cipher,
                    "samples",
                    k,
                    &codec::encode_block(&block, self.channels),
                )?;
                samples
                    .insert(k, sealed.as_slice())
                    .map_err(|x| x.to_string())?;
                block.clear();
            }
            if block.is_empty() {
                // Keys are block start times; never reuse one.
                let mut k = micros(s.time);
                while samples.get(k).map_err(|x| x.to_string())?.is_some() && Some(k) != block_key {
                    k += 1;
                }
                block_key = Some(k);
            }
            block.push(s.clone());
            self.aggregate(minutes, minute, s)?;
        }
        if let Some(k) = block_key {
            let sealed = seal(
                &self.cipher,
                "samples",
                k,
                &codec::encode_block(&block, self.channels),
            )?;
            samples
                .insert(k, sealed.as_slice())
                .map_err(|x| x.to_string())?;
        }
        // The running minute too, so it survives a crash.
        if let Some(acc) = minute.as_ref() {
            write_minute(minutes, &self.cipher, acc)?;
        }
        Ok(())
    }

    /// The newest stored block and its key, if it has room for more
    /// samples; else an empty block with no key yet.
    fn open_block(
        &self,
        samples: &redb::Table<u64, &[u8]>,
    ) -> Result<(Vec<Sample>, Option<u64>), String> {
        if let Some((k, v)) = samples.last().map_err(|x| x.to_string())? {
            let key = k.value();
            if let Some(plain) = self.cipher.open("samples", &key.to_le_bytes(), v.value())
                && let Some(b) = codec::decode_block(&plain)
                && b.len() < BLOCK_SAMPLES
            {
                return Ok((b, Some(key)));
            }
        }
        Ok((Vec::new(), None))
    }

    /// Folds `s` into the running minute aggregate, first writing the
    /// previous minute when `s` starts a new one.
    fn aggregate(
        &self,
        minutes: &mut redb::Table<u64, &[u8]>,
        minute: &mut Option<MinuteAcc>,
        s: &Sample,
    ) -> Result<(), String> {
        let m = minute_of(s.time);
        if minute.as_ref().is_some_and(|a| a.minute != m)
            && let Some(done) = minute.take()
        {
            write_minute(minutes, &self.cipher, &done)?;
        }
        let acc = minute.get_or_insert_with(|| MinuteAcc {
            minute: m,
            count: 0,
            stats: vec![(f32::INFINITY, 0.0, f32::NEG_INFINITY); self.channels],
        });
        acc.count = acc.count.saturating_add(1);
        for (st, v) in acc.stats.iter_mut().zip(&s.values) {
            if v.is_finite() {
                st.0 = st.0.min(*v);
                st.1 += f64::from(*v);
                st.2 = st.2.max(*v);
            }
        }
        Ok(())
    }

    /// Drops full-rate samples and minute aggregates past their retention,
    /// about once a minute of data time.
    fn apply_retention(
        &mut self,
        samples: &mut redb::Table<u64, &[u8]>,
        minutes: &mut redb::Table<u64, &[u8]>,
    ) -> Result<(), String> {
        let Some(newest) = self.samples.back().map(|s| s.time) else {
            return Ok(());
        };
        if newest - self.last_retention < 60.0 {
            return Ok(());
        }
        self.last_retention = newest;
        let cut = micros(newest - self.config.full_rate);
        let old: Vec<u64> = samples
            .range(..cut)
            .map_err(|x| x.to_string())?
            .filter_map(|r| r.ok().map(|(k, _)| k.value()))
            .collect();
        for k in old {
            samples.remove(k).map_err(|x| x.to_string())?;
        }
        let mcut = minute_of(newest - self.config.minutes);
        let old: Vec<u64> = minutes
            .range(..mcut)
            .map_err(|x| x.to_string())?
            .filter_map(|r| r.ok().map(|(k, _)| k.value()))
            .collect();
        for k in old {
            minutes.remove(k).map_err(|x| x.to_string())?;
        }
        Ok(())
    }
}

/// Seals the record `key` of `table`.
#[diversify]
fn seal(cipher: &Cipher, table: &str, key: u64, plaintext: &[u8]) -> Result<Vec<u8>, String> {
    cipher
        .seal(table, &key.to_le_bytes(), plaintext)
        .map_err(|_| "cannot encrypt a record".to_owned())
}

#[diversify]
fn write_minute(
    t: &mut redb::Table<u64, &[u8]>,
    cipher: &Cipher,
    acc: &MinuteAcc,
) -> Result<(), String> {
    let n = f64::from(acc.count.max(1));
    let row = MinuteRow {
        minute: acc.minute as f64 * 60.0,
        count: acc.count,
        stats: acc
            .stats
            .iter()
            .map(|&(lo, sum, hi)| (lo, (sum / n) as f32, hi))
            .collect(),
    };
    let sealed = cipher
        .seal(
            "minutes",
            &acc.minute.to_le_bytes(),
            &codec::encode_minute(&row),
        )
        .map_err(|_| "cannot encrypt a record".to_owned())?;
    t.insert(acc.minute, sealed.as_slice())
        .map_err(|x| x.to_string())?;
    Ok(())
}
