//! The batching writer: one thread owns every write transaction.

use crate::chain::{
    self, BLOCK_LINKS, BlockLink, ChainHead, CommitInput, EVENT_LINKS, EventLink, Hash, META_KEY,
    Meta, RETENTION_LINKS,
};
use crate::codec::{self, BlockBytes, Event, EventKind, MinuteRow, Sample};
use crate::crypt::Cipher;
use crate::{EVENTS, Keys, META, MINUTES, SAMPLES, StoreError, micros};
use redb::{Database, ReadableDatabase, ReadableTable};
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
    /// The chain head of the last durable commit.
    head: Mutex<Option<ChainHead>>,
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
    shared: Arc<Shared>,
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

    /// The chain head of the writer's last durable commit (see
    /// [`StoreWriter::chain_head`]); never blocks. After the writer
    /// stopped, the head it last committed.
    pub fn chain_head(&self) -> Option<ChainHead> {
        self.shared.head.lock().ok().and_then(|h| *h)
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
    /// Starts the writer thread over `db`, continuing the chain `chain`
    /// (`durable`: its state is on disk already).
    pub(crate) fn start(
        db: Database,
        path: PathBuf,
        keys: Keys,
        schema: Arc<Vec<String>>,
        (chain, durable): (Meta, bool),
        config: WriterConfig,
    ) -> Self {
        let (tx, rx) = mpsc::sync_channel(config.queue.max(1));
        let shared = Arc::new(Shared {
            head: Mutex::new(durable.then_some(chain.head)),
            ..Shared::default()
        });
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("twinshield-store".into())
            .spawn(move || Worker::new(db, path, keys, schema, chain, config, s).run(rx))
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
            shared: self.shared.clone(),
        }
    }

    /// The chain head of the last durable commit: every sample and event
    /// acknowledged so far is covered by it. `None` until this history's
    /// first chained commit. Never blocks; the head to sign and send to
    /// the backend ([`ChainHead::signing_bytes`]).
    pub fn chain_head(&self) -> Option<ChainHead> {
        self.shared.head.lock().ok().and_then(|h| *h)
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
    keys: Keys,
    schema: Arc<Vec<String>>,
    channels: usize,
    config: WriterConfig,
    shared: Arc<Shared>,
    samples: VecDeque<Sample>,
    events: VecDeque<Event>,
    minute: Option<MinuteAcc>,
    /// The chain as of the last durable commit.
    chain: Meta,
    last_retention: f64,
    failing_since: Option<Instant>,
}

/// What one commit adds to the chain, gathered while its transaction is
/// written; hashed and stored at its end.
struct Pending {
    seq: u64,
    /// The history's latest record time after this commit.
    time: f64,
    /// Digest of each part of a block written, in order.
    segments: Vec<Hash>,
    /// The blocks written (their links get this commit's head).
    links: Vec<(u64, BlockLink)>,
    /// The events written: key and event-chain value after each.
    events: Vec<(u64, Hash)>,
    /// The seq retention moved the chain's base to.
    base: Option<u64>,
}

/// The block samples are being appended to in this commit.
struct Open {
    key: u64,
    bytes: BlockBytes,
    link: BlockLink,
    /// Samples the block held before this commit.
    from: u32,
}

#[diversify]
impl Open {
    /// Whether a sample at time `t` must start a new block.
    fn full_for(&self, t: f64) -> bool {
        self.bytes.count() as usize >= BLOCK_SAMPLES
            || t - self.bytes.start() > BLOCK_SPAN
            || t < self.bytes.start()
    }
}

/// A redb error as the writer reports it.
#[diversify]
fn text(e: impl std::fmt::Display) -> String {
    e.to_string()
}

#[diversify]
impl Worker {
    fn new(
        db: Database,
        path: PathBuf,
        keys: Keys,
        schema: Arc<Vec<String>>,
        chain: Meta,
        config: WriterConfig,
        shared: Arc<Shared>,
    ) -> Self {
        Worker {
            db: Some(Arc::new(db)),
            path,
            keys,
            channels: schema.len(),
            schema,
            config,
            shared,
            samples: VecDeque::new(),
            events: VecDeque::new(),
            minute: None,
            chain,
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
                self.keys.clone(),
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
            Ok((n, minute, chain)) => {
                self.samples.drain(..n);
                self.events.clear();
                self.minute = minute;
                if let Ok(mut h) = self.shared.head.lock() {
                    *h = Some(chain.head);
                }
                self.chain = chain;
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
    /// the samples written, and the minute accumulator and chain to keep,
    /// on success.
    fn write(&mut self) -> Result<(usize, Option<MinuteAcc>, Meta), String> {
        if self.db.is_none() {
            self.db = Some(Arc::new(Database::create(&self.path).map_err(text)?));
        }
        let Some(db) = self.db.as_ref() else {
            return Err("history database is closed".into());
        };
        let w = db.begin_write().map_err(text)?;
        // Work on copies: a failed transaction leaves them as they were.
        let mut minute = self.minute.clone();
        let mut chain = self.chain.clone();
        match self.write_in(&w, &mut minute, &mut chain) {
            Ok(n) => {
                w.commit().map_err(text)?;
                Ok((n, minute, chain))
            }
            Err(err) => {
                let _ = w.abort();
                Err(err)
            }
        }
    }

    /// The body of [`Worker::write`]'s transaction `w`: samples with their
    /// minute aggregates in `minute`, retention, events, then the chain's
    /// records for all of it (`chain` advanced by one commit). Returns the
    /// samples written.
    fn write_in(
        &mut self,
        w: &redb::WriteTransaction,
        minute: &mut Option<MinuteAcc>,
        chain: &mut Meta,
    ) -> Result<usize, String> {
        let n = self.samples.len();
        let mut pending = Pending {
            seq: chain.head.seq.checked_add(1).ok_or("the chain is full")?,
            time: chain.head.time,
            segments: Vec::new(),
            links: Vec::new(),
            events: Vec::new(),
            base: None,
        };
        {
            let mut samples = w.open_table(SAMPLES).map_err(text)?;
            let mut minutes = w.open_table(MINUTES).map_err(text)?;
            let mut links = w.open_table(BLOCK_LINKS).map_err(text)?;
            let mut tables = (&mut samples, &mut links);
            self.append_samples(&mut tables, &mut minutes, minute, chain, &mut pending)?;
            self.apply_retention(&mut tables, &mut minutes, chain, &mut pending)?;
        }
        self.write_events(w, chain, &mut pending)?;
        self.write_chain(w, chain, pending)?;
        Ok(n)
    }

    /// Appends the pending samples to the blocks of `samples` (continuing
    /// the newest block while it has room) and folds them into the minute
    /// aggregates, writing each finished minute and the running one.
    fn append_samples(
        &self,
        (samples, links): &mut Blocks<'_, '_>,
        minutes: &mut redb::Table<u64, &[u8]>,
        minute: &mut Option<MinuteAcc>,
        chain: &mut Meta,
        pending: &mut Pending,
    ) -> Result<(), String> {
        let mut open = self.reopen_block(samples, links, chain)?;
        for s in self.samples.iter() {
            if let Some(full) = open.take_if(|b| b.full_for(s.time)) {
                self.close_block(samples, full, chain, pending)?;
            }
            let block = match open {
                Some(ref mut b) => b,
                None => open.insert(self.new_block(samples, links, s.time, chain, pending.seq)?),
            };
            let stored = block.bytes.push(s);
            if stored.is_finite() {
                pending.time = pending.time.max(stored);
            }
            self.aggregate(minutes, minute, s)?;
        }
        if let Some(b) = open {
            self.close_block(samples, b, chain, pending)?;
        }
        // The running minute too, so it survives a crash.
        if let Some(acc) = minute.as_ref() {
            write_minute(minutes, &self.keys.cipher, acc)?;
        }
        Ok(())
    }

    /// The chain's newest block and its link, if it has room for more
    /// samples and both read back as the chain left them; else `None`
    /// (the next sample starts a new block).
    fn reopen_block(
        &self,
        samples: &redb::Table<u64, &[u8]>,
        links: &redb::Table<u64, &[u8]>,
        chain: &Meta,
    ) -> Result<Option<Open>, String> {
        let Some((key, _)) = chain.last_block else {
            return Ok(None);
        };
        let cipher = &self.keys.cipher;
        let k = key.to_le_bytes();
        let bytes = match samples.get(key).map_err(text)? {
            Some(v) => cipher
                .open("samples", &k, v.value())
                .and_then(|mut p| BlockBytes::parse(std::mem::take(&mut *p))),
            None => None,
        };
        let link = match links.get(key).map_err(text)? {
            Some(v) => cipher
                .open("chain-blocks", &k, v.value())
                .and_then(|p| BlockLink::decode(&p)),
            None => None,
        };
        let (Some(bytes), Some(link)) = (bytes, link) else {
            return Ok(None);
        };
        let fits = bytes.channels() == self.channels
            && (bytes.count() as usize) < BLOCK_SAMPLES
            && link.commits.last().map(|c| c.1) == Some(bytes.count())
            && link.number.checked_add(1) == Some(chain.next_block);
        Ok(fits.then(|| Open {
            key,
            from: bytes.count(),
            bytes,
            link,
        }))
    }

    /// A new, empty block for a sample at time `t`, keyed by its start
    /// time (never a key in use, nor one whose link is still there).
    fn new_block(
        &self,
        samples: &redb::Table<u64, &[u8]>,
        links: &redb::Table<u64, &[u8]>,
        t: f64,
        chain: &mut Meta,
        seq: u64,
    ) -> Result<Open, String> {
        let mut key = micros(t);
        while samples.get(key).map_err(text)?.is_some() || links.get(key).map_err(text)?.is_some() {
            key = key.checked_add(1).ok_or("no free block key")?;
        }
        let link = BlockLink {
            number: chain.next_block,
            prev: chain.last_block,
            digest: chain::block_seed(key, chain.next_block, chain.last_block),
            head: chain.head,
            commits: Vec::new(),
        };
        chain.next_block = chain.next_block.saturating_add(1);
        chain.last_block = Some((key, seq));
        Ok(Open {
            key,
            bytes: BlockBytes::new(t, self.channels),
            link,
            from: 0,
        })
    }

    /// Writes `b` if this commit added to it: its sealed bytes, and its
    /// part's digest into the commit and the block's link.
    fn close_block(
        &self,
        samples: &mut redb::Table<u64, &[u8]>,
        mut b: Open,
        chain: &mut Meta,
        pending: &mut Pending,
    ) -> Result<(), String> {
        let to = b.bytes.count();
        if to == b.from {
            return Ok(());
        }
        let part = chain::segment_digest(b.key, &b.bytes, b.from, to)
            .ok_or("a block part out of range")?;
        b.link.digest = chain::fold(&b.link.digest, pending.seq, &part);
        b.link.commits.push((pending.seq, to));
        pending.segments.push(part);
        let sealed = seal(&self.keys.cipher, "samples", b.key, b.bytes.bytes())?;
        samples.insert(b.key, sealed.as_slice()).map_err(text)?;
        chain.last_block = Some((b.key, pending.seq));
        pending.links.push((b.key, b.link));
        Ok(())
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
            write_minute(minutes, &self.keys.cipher, &done)?;
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

    /// Drops full-rate samples (with their links) and minute aggregates
    /// past their retention, about once a minute of data time. A block
    /// this commit wrote waits for the next round. When chained blocks go,
    /// the chain's base moves to the newest head among them, and the
    /// commit records the move.
    fn apply_retention(
        &mut self,
        (samples, links): &mut Blocks<'_, '_>,
        minutes: &mut redb::Table<u64, &[u8]>,
        chain: &mut Meta,
        pending: &mut Pending,
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
            .map_err(text)?
            .filter_map(|r| r.ok().map(|(k, _)| k.value()))
            .filter(|k| !pending.links.iter().any(|(w, _)| w == k))
            .collect();
        let mut base: Option<ChainHead> = None;
        for k in old {
            let link = links.remove(k).map_err(text)?.and_then(|v| {
                self.keys
                    .cipher
                    .open("chain-blocks", &k.to_le_bytes(), v.value())
                    .and_then(|p| BlockLink::decode(&p))
            });
            if let Some(l) = link
                && base.is_none_or(|b| l.head.seq > b.seq)
            {
                base = Some(l.head);
            }
            samples.remove(k).map_err(text)?;
        }
        if let Some(b) = base
            && b.seq > chain.base.seq
            && b.seq < pending.seq
        {
            chain.base = b;
            pending.base = Some(b.seq);
        }
        let mcut = minute_of(newest - self.config.minutes);
        let old: Vec<u64> = minutes
            .range(..mcut)
            .map_err(text)?
            .filter_map(|r| r.ok().map(|(k, _)| k.value()))
            .collect();
        for k in old {
            minutes.remove(k).map_err(text)?;
        }
        Ok(())
    }

    /// Writes the pending events after the last event key in use (or the
    /// chain's next key, if that is higher: a key whose event went
    /// missing is not reused), each one a link of the event chain.
    fn write_events(
        &self,
        w: &redb::WriteTransaction,
        chain: &mut Meta,
        pending: &mut Pending,
    ) -> Result<(), String> {
        if self.events.is_empty() {
            return Ok(());
        }
        let mut events = w.open_table(EVENTS).map_err(text)?;
        let after_last = events
            .last()
            .map_err(text)?
            .map_or(0, |(k, _)| k.value().saturating_add(1));
        let mut key = after_last.max(chain.next_event);
        for ev in self.events.iter() {
            let plain = codec::encode_event(ev);
            let sealed = seal(&self.keys.cipher, "events", key, &plain)?;
            events.insert(key, sealed.as_slice()).map_err(text)?;
            chain.ev = self.keys.chain.event(&chain.ev, key, pending.seq, &plain);
            pending.events.push((key, chain.ev));
            if ev.time.is_finite() {
                pending.time = pending.time.max(ev.time);
            }
            key = key.checked_add(1).ok_or("no free event key")?;
        }
        chain.next_event = key;
        Ok(())
    }

    /// Hashes the commit into the chain and writes its records: the links
    /// of the blocks and events it wrote (each with the new head), the
    /// retention record if the base moved, and the chain's state.
    fn write_chain(
        &self,
        w: &redb::WriteTransaction,
        chain: &mut Meta,
        p: Pending,
    ) -> Result<(), String> {
        let hash = self.keys.chain.commit(&CommitInput {
            prev: &chain.head.hash,
            seq: p.seq,
            start: &chain.start,
            time: p.time,
            next_event: chain.next_event,
            ev: &chain.ev,
            segments: &p.segments,
            base: p.base,
        });
        let head = ChainHead {
            seq: p.seq,
            hash,
            time: p.time,
        };
        chain.head = head;
        let cipher = &self.keys.cipher;
        let mut links = w.open_table(BLOCK_LINKS).map_err(text)?;
        for (k, mut link) in p.links {
            link.head = head;
            let sealed = seal(cipher, "chain-blocks", k, &link.encode())?;
            links.insert(k, sealed.as_slice()).map_err(text)?;
        }
        if !p.events.is_empty() {
            let mut t = w.open_table(EVENT_LINKS).map_err(text)?;
            for (k, ev) in p.events {
                let sealed = seal(cipher, "chain-events", k, &EventLink { head, ev }.encode())?;
                t.insert(k, sealed.as_slice()).map_err(text)?;
            }
        }
        if let Some(base) = p.base {
            let mut t = w.open_table(RETENTION_LINKS).map_err(text)?;
            let done: Vec<u64> = t
                .range(..=base)
                .map_err(text)?
                .filter_map(|r| r.ok().map(|(k, _)| k.value()))
                .collect();
            for k in done {
                t.remove(k).map_err(text)?;
            }
            let sealed = seal(
                cipher,
                "chain-retention",
                p.seq,
                &chain::encode_retention(base),
            )?;
            t.insert(p.seq, sealed.as_slice()).map_err(text)?;
        }
        let sealed = cipher
            .seal("meta", META_KEY.as_bytes(), &chain.encode())
            .map_err(|_| "cannot encrypt a record".to_owned())?;
        let mut meta = w.open_table(META).map_err(text)?;
        meta.insert(META_KEY, sealed.as_slice()).map_err(text)?;
        Ok(())
    }
}

/// The samples table and the block links, written together.
type Blocks<'a, 't> = (
    &'a mut redb::Table<'t, u64, &'static [u8]>,
    &'a mut redb::Table<'t, u64, &'static [u8]>,
);

/// The chain as the writer continues it: the stored state, or a new
/// chain starting after what the history holds (`false`: not on disk
/// yet). A stored state that does not read back is refused.
#[diversify]
pub(crate) fn load_chain(db: &Database, keys: &Keys) -> Result<(Meta, bool), StoreError> {
    let r = db.begin_read().map_err(crate::database_error)?;
    let last = |t: redb::TableDefinition<u64, &[u8]>| -> Result<Option<u64>, StoreError> {
        match r.open_table(t) {
            Ok(t) => Ok(t
                .last()
                .map_err(crate::database_error)?
                .map(|(k, _)| k.value())),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
            Err(e) => Err(crate::database_error(e)),
        }
    };
    if let Some(meta) = crate::read_chain_meta(&r, keys)? {
        return Ok((meta, true));
    }
    let start = chain::Start {
        first_event: last(EVENTS)?.map_or(0, |k| k.saturating_add(1)),
        legacy_last_block: last(SAMPLES)?,
    };
    Ok((Meta::fresh(start, &keys.chain), false))
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
