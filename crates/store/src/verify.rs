//! Verifying the history against its hash chain: every chained block of
//! samples against its link, every event against the event chain, every
//! commit's hash recomputed from the records it wrote, and the history's
//! heads against heads known elsewhere.
//!
//! After a finding the walk resynchronises on the chain's own records
//! (the stored event-chain value, the stored head), so one altered record
//! is reported once and the rest of the history is still checked.

// A parser of stored (possibly damaged or forged) records: no indexing
// that can panic, no unchecked arithmetic.
#![deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use crate::chain::{
    self, BLOCK_LINKS, BlockLink, ChainHead, CommitInput, EVENT_LINKS, EventLink, Hash, Meta,
    RETENTION_LINKS,
};
use crate::codec::{self, BlockBytes};
use crate::{EVENTS, Keys, SAMPLES, StoreError, database_error, read_chain_meta};
use redb::{ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTable};
use std::collections::{BTreeMap, VecDeque};
use twinshield_shield_macros::diversify;

/// Findings kept in a report; beyond, only counted.
const MAX_FAULTS: usize = 1000;

/// The table a finding is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainTable {
    /// Full-rate samples (a block of them, keyed by its start in µs).
    Samples,
    /// Events: alarms, data-quality events, shield findings, the audit
    /// log (keyed by number).
    Events,
    /// The chain's record of a block of samples.
    SampleLinks,
    /// The chain's record of an event.
    EventLinks,
    /// The chain's record of a retention run (keyed by commit seq).
    Retention,
}

#[diversify]
impl ChainTable {
    /// Stable name, for reports.
    pub fn name(self) -> &'static str {
        match self {
            ChainTable::Samples => "samples",
            ChainTable::Events => "events",
            ChainTable::SampleLinks => "sample links",
            ChainTable::EventLinks => "event links",
            ChainTable::Retention => "retention records",
        }
    }
}

/// The record a finding points at.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RecordRef {
    /// Its table.
    pub table: ChainTable,
    /// Its key: a block's start in microseconds, an event's number, a
    /// commit's seq.
    pub key: u64,
    /// Its time, seconds: a block's start (from its key), an event's own
    /// time when it could still be read.
    pub time: Option<f64>,
    /// The commit that last wrote it, if the chain says.
    pub seq: Option<u64>,
}

#[diversify]
impl std::fmt::Display for RecordRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} record {}", self.table.name(), self.key)?;
        if let Some(t) = self.time {
            write!(f, " (time {t})")?;
        }
        if let Some(s) = self.seq {
            write!(f, " of commit {s}")?;
        }
        Ok(())
    }
}

/// One thing in the history that does not fit its chain.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum ChainFault {
    /// A record's content is not what the chain recorded: rewritten (and
    /// re-sealed, by someone holding the key), or damaged.
    #[error("{0}: rewritten (its content is not what the chain recorded)")]
    Rewritten(RecordRef),
    /// A record the chain recorded is gone, and retention did not take it.
    #[error("{0}: deleted")]
    Deleted(RecordRef),
    /// A record the chain knows nothing of, in the chained part of the
    /// history: inserted, or its chain record deleted.
    #[error("{0}: not in the chain (inserted, or its chain record deleted)")]
    Unchained(RecordRef),
    /// A record that does not decrypt or decode.
    #[error("{0}: does not decrypt or decode")]
    Unreadable(RecordRef),
    /// A record chained by a commit after the history's head: the head
    /// was set back.
    #[error("{0}: chained after the history's head")]
    BeyondHead(RecordRef),
    /// Events `from..=to` are gone, with their chain records.
    #[error("events {from} to {to}: deleted, with their chain records")]
    DeletedEvents {
        /// First missing key.
        from: u64,
        /// Last missing key.
        to: u64,
    },
    /// Commits `from..=to` left no record behind: everything they wrote
    /// was deleted.
    #[error("commits {from} to {to}: missing (every record they wrote is gone)")]
    MissingCommits {
        /// First missing seq.
        from: u64,
        /// Last missing seq.
        to: u64,
    },
    /// Commit `seq`'s hash, recomputed from its records, is not the one
    /// recorded: the chain's own records were altered there.
    #[error("commit {seq}: its hash is not the one recorded (the chain was altered there)")]
    Broken {
        /// The commit.
        seq: u64,
    },
    /// The chain's base (where verification starts) is at `seq`, but no
    /// retention run moved it there.
    #[error("the chain starts at commit {seq}, but no retention moved it there")]
    BaseUnjustified {
        /// The base's seq.
        seq: u64,
    },
    /// The chain's state record does not decrypt or decode.
    #[error("the chain's state record does not decrypt or decode")]
    StateUnreadable,
    /// The chain's state record is gone while chain records remain: the
    /// history was made to look as if written before the chain existed.
    #[error("the chain's state record is missing, but the history holds chain records")]
    StateMissing,
}

#[diversify]
impl ChainFault {
    /// The commit the finding is at, where known: findings are ordered by it.
    pub fn seq(&self) -> Option<u64> {
        match self {
            ChainFault::Rewritten(r)
            | ChainFault::Deleted(r)
            | ChainFault::Unchained(r)
            | ChainFault::Unreadable(r)
            | ChainFault::BeyondHead(r) => r.seq,
            ChainFault::DeletedEvents { .. } => None,
            ChainFault::MissingCommits { from: seq, .. }
            | ChainFault::Broken { seq }
            | ChainFault::BaseUnjustified { seq } => Some(*seq),
            ChainFault::StateUnreadable | ChainFault::StateMissing => Some(0),
        }
    }
}

/// How the history stands against a head known elsewhere.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HeadCheck {
    /// The history's chain passes through this head.
    Matches,
    /// The history's head is older than this one: an older copy was
    /// restored (rollback), or its newest commits were cut (truncation).
    /// `store` is the history's head (`None`: no chained commit at all).
    Behind {
        /// The history's head.
        store: Option<ChainHead>,
    },
    /// The history has a commit at this seq with another hash (or time):
    /// it was rewritten there or before.
    Diverged {
        /// The history's head at this seq.
        store: ChainHead,
    },
    /// The history no longer holds the commit at this seq (its records
    /// were deleted).
    Missing,
    /// Retention has moved the chain's start past this head: it can no
    /// longer be checked.
    BeforeBase {
        /// Where the retained chain starts.
        base: ChainHead,
    },
    /// The chain's state is unreadable: nothing to check against.
    Unchecked,
}

/// A known head and how the history stands against it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KnownHeadCheck {
    /// The head, as given.
    pub known: ChainHead,
    /// The verdict.
    pub check: HeadCheck,
}

/// Records no chain covers because they were written before it began
/// (seq 0): a history from before the chain existed opens, and its chain
/// starts at the writer's first commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Unchained {
    /// Events written before the chain began.
    pub events: u64,
    /// Blocks of samples written before the chain began (until retention
    /// removes them).
    pub sample_blocks: u64,
}

/// What [`Store::verify_chain`](crate::Store::verify_chain) found.
#[derive(Debug, Clone, PartialEq)]
pub struct ChainReport {
    /// The history's head, as stored (`None`: no chained commit yet).
    pub head: Option<ChainHead>,
    /// Where the verifiable chain starts: seq 0 (the chain's genesis)
    /// until retention deletes old samples, then the head of the last
    /// commit whose samples it deleted.
    pub base: Option<ChainHead>,
    /// Records written before the chain began.
    pub unchained: Unchained,
    /// Commits after the base whose hash was recomputed.
    pub commits: u64,
    /// Events checked against the event chain.
    pub events: u64,
    /// Blocks of samples checked against their links.
    pub sample_blocks: u64,
    /// Every finding, in chain order (by commit; findings with no known
    /// commit last).
    pub faults: Vec<ChainFault>,
    /// Findings beyond the first 1,000, not kept.
    pub faults_omitted: u64,
    /// One verdict per known head, in the order given.
    pub known: Vec<KnownHeadCheck>,
}

#[diversify]
impl ChainReport {
    /// No finding, and every known head matched (or predates the base).
    pub fn is_clean(&self) -> bool {
        self.faults.is_empty()
            && self.faults_omitted == 0
            && self
                .known
                .iter()
                .all(|k| matches!(k.check, HeadCheck::Matches | HeadCheck::BeforeBase { .. }))
    }

    /// The first record (in chain order) that does not fit.
    pub fn first_fault(&self) -> Option<&ChainFault> {
        self.faults.first()
    }
}

/// The tables verification reads (any may not exist yet).
struct Tables {
    samples: Option<ReadOnlyTable<u64, &'static [u8]>>,
    events: Option<ReadOnlyTable<u64, &'static [u8]>>,
    block_links: Option<ReadOnlyTable<u64, &'static [u8]>>,
    event_links: Option<ReadOnlyTable<u64, &'static [u8]>>,
    retention: Option<ReadOnlyTable<u64, &'static [u8]>>,
}

type Table = Option<ReadOnlyTable<u64, &'static [u8]>>;

#[diversify]
fn open(r: &ReadTransaction, t: redb::TableDefinition<u64, &[u8]>) -> Result<Table, StoreError> {
    match r.open_table(t) {
        Ok(t) => Ok(Some(t)),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(database_error(e)),
    }
}

/// The sealed bytes at `key`.
#[diversify]
fn get(t: &Table, key: u64) -> Result<Option<Vec<u8>>, StoreError> {
    let Some(t) = t else { return Ok(None) };
    Ok(t.get(key)
        .map_err(database_error)?
        .map(|v| v.value().to_vec()))
}

/// Every key of `t`, in order.
#[diversify]
fn keys(t: &Table) -> Result<Vec<u64>, StoreError> {
    let Some(t) = t else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for item in t.iter().map_err(database_error)? {
        out.push(item.map_err(database_error)?.0.value());
    }
    Ok(out)
}

/// The key after the last one of `t` (0 if empty).
#[diversify]
fn after_last(t: &Table) -> Result<u64, StoreError> {
    let Some(t) = t else { return Ok(0) };
    Ok(t.last()
        .map_err(database_error)?
        .map_or(0, |(k, _)| k.value().saturating_add(1)))
}

/// A block's start, seconds, from its key.
#[diversify]
fn key_time(key: u64) -> Option<f64> {
    Some(key as f64 / 1e6)
}

/// Verifies the history in `db` (see [`crate::Store::verify_chain`]).
#[diversify]
pub(crate) fn verify(
    db: &impl ReadableDatabase,
    keys: &Keys,
    known: &[ChainHead],
) -> Result<ChainReport, StoreError> {
    let r = db.begin_read().map_err(database_error)?;
    let t = Tables {
        samples: open(&r, SAMPLES)?,
        events: open(&r, EVENTS)?,
        block_links: open(&r, BLOCK_LINKS)?,
        event_links: open(&r, EVENT_LINKS)?,
        retention: open(&r, RETENTION_LINKS)?,
    };
    let mut v = Verifier::new(keys, known);
    let meta = match read_chain_meta(&r, keys) {
        Ok(Some(m)) => m,
        Ok(None) => return v.unstarted(&t),
        Err(StoreError::ChainDamaged) => {
            v.fault(ChainFault::StateUnreadable);
            v.report
                .known
                .iter_mut()
                .for_each(|k| k.check = HeadCheck::Unchecked);
            return Ok(v.finish());
        }
        Err(e) => return Err(e),
    };
    v.report.head = Some(meta.head);
    v.report.base = Some(meta.base);
    v.place_known(&meta);
    let order = v.scan_blocks(&t, &meta)?;
    let gaps = v.check_sequence(&meta, &order);
    let retention = v.retention(&t, &meta)?;
    let mut blocks = BlockStream {
        order: order.into(),
        items: VecDeque::new(),
    };
    let mut events = EventStream {
        next: meta.start.first_event,
        end: meta.next_event,
        prev: keys.chain.event_seed(meta.start.first_event),
    };
    v.replay(&t, &meta, (&retention, &gaps), &mut blocks, &mut events)?;
    Ok(v.finish())
}

/// A part of a block, as the replay consumes it.
struct Segment {
    /// The block's key.
    key: u64,
    seq: u64,
    digest: Hash,
    /// Latest stored time in the part (NaN if none).
    time: f64,
    /// The part's digest could not be recomputed (the block is altered).
    tainted: bool,
    /// The block's recorded head, on its last commit's part.
    reference: Option<ChainHead>,
}

/// A chained block, as the first pass found its link.
#[derive(Debug, Clone, Copy)]
struct Entry {
    number: u64,
    key: u64,
    /// First and last commit that wrote it (0 if the link lists none).
    first: u64,
    last: u64,
    prev: Option<(u64, u64)>,
}

/// Blocks in chain order, loaded one at a time.
struct BlockStream {
    order: VecDeque<Entry>,
    items: VecDeque<Segment>,
}

/// An event, as the replay consumes it.
struct EventItem {
    key: u64,
    seq: u64,
    /// The event chain's value after it (as recorded).
    ev: Hash,
    time: f64,
    tainted: bool,
    reference: ChainHead,
}

/// Events in key order, from the chain's first, stepping over gaps.
struct EventStream {
    next: u64,
    /// The key the chain's state says comes next: keys up to it must be
    /// there.
    end: u64,
    /// The event chain's value before `next`.
    prev: Hash,
}

/// The first key at or after `from` in `t`.
#[diversify]
fn first_from(t: &Table, from: u64) -> Result<Option<u64>, StoreError> {
    let Some(t) = t else { return Ok(None) };
    match t.range(from..).map_err(database_error)?.next() {
        Some(item) => Ok(Some(item.map_err(database_error)?.0.value())),
        None => Ok(None),
    }
}

/// Verification state: the keys, the report being built, the known heads
/// not placed yet (by seq).
struct Verifier<'k> {
    keys: &'k Keys,
    report: ChainReport,
    pending: BTreeMap<u64, Vec<usize>>,
}

#[diversify]
impl<'k> Verifier<'k> {
    fn new(keys: &'k Keys, known: &[ChainHead]) -> Self {
        Verifier {
            keys,
            report: ChainReport {
                head: None,
                base: None,
                unchained: Unchained::default(),
                commits: 0,
                events: 0,
                sample_blocks: 0,
                faults: Vec::new(),
                faults_omitted: 0,
                known: known
                    .iter()
                    .map(|k| KnownHeadCheck {
                        known: *k,
                        check: HeadCheck::Behind { store: None },
                    })
                    .collect(),
            },
            pending: BTreeMap::new(),
        }
    }

    fn fault(&mut self, f: ChainFault) {
        if self.report.faults.len() < MAX_FAULTS {
            self.report.faults.push(f);
        } else {
            self.report.faults_omitted = self.report.faults_omitted.saturating_add(1);
        }
    }

    fn finish(mut self) -> ChainReport {
        self.report
            .faults
            .sort_by_key(|f| f.seq().unwrap_or(u64::MAX));
        for i in self.pending.into_values().flatten() {
            if let Some(k) = self.report.known.get_mut(i) {
                k.check = HeadCheck::Missing;
            }
        }
        self.report
    }

    /// A history whose chain has not begun: everything is unchained (and
    /// no chain record may exist).
    fn unstarted(mut self, t: &Tables) -> Result<ChainReport, StoreError> {
        if [&t.block_links, &t.event_links, &t.retention]
            .into_iter()
            .map(after_last)
            .collect::<Result<Vec<_>, _>>()?
            .iter()
            .any(|n| *n > 0)
        {
            self.fault(ChainFault::StateMissing);
        }
        self.report.unchained = Unchained {
            events: keys(&t.events)?.len() as u64,
            sample_blocks: keys(&t.samples)?.len() as u64,
        };
        Ok(self.finish())
    }

    /// Decides the known heads outside the replayed commits; the rest wait
    /// for the replay.
    fn place_known(&mut self, meta: &Meta) {
        for (i, k) in self.report.known.iter_mut().enumerate() {
            k.check = if k.known.seq > meta.head.seq {
                HeadCheck::Behind {
                    store: Some(meta.head),
                }
            } else if k.known.seq < meta.base.seq {
                HeadCheck::BeforeBase { base: meta.base }
            } else if k.known.seq == meta.base.seq {
                compare(&k.known, &meta.base)
            } else {
                self.pending.entry(k.known.seq).or_default().push(i);
                continue;
            };
        }
    }

    /// Settles the known heads at `head.seq` against it.
    fn settle_known(&mut self, head: &ChainHead) {
        for i in self.pending.remove(&head.seq).unwrap_or_default() {
            if let Some(k) = self.report.known.get_mut(i) {
                k.check = compare(&k.known, head);
            }
        }
    }

    /// Opens a sealed record of `table`.
    fn open(&self, table: &str, key: u64, sealed: &[u8]) -> Option<zeroize::Zeroizing<Vec<u8>>> {
        self.keys.cipher.open(table, &key.to_le_bytes(), sealed)
    }

    /// A block's link, decoded.
    fn block_link(&self, t: &Tables, key: u64) -> Result<Option<BlockLink>, StoreError> {
        Ok(get(&t.block_links, key)?
            .and_then(|s| self.open("chain-blocks", key, &s))
            .and_then(|p| BlockLink::decode(&p)))
    }

    /// Classifies every block and link by key: blocks with a readable link
    /// go to the replay (returned in chain order); the others are
    /// unchained or findings.
    fn scan_blocks(&mut self, t: &Tables, meta: &Meta) -> Result<Vec<Entry>, StoreError> {
        let linked = keys(&t.block_links)?;
        let mut order = Vec::with_capacity(linked.len());
        for &key in &linked {
            match self.block_link(t, key)? {
                Some(l) => order.push(Entry {
                    number: l.number,
                    key,
                    first: l.commits.first().map_or(0, |c| c.0),
                    last: l.last_seq().unwrap_or(0),
                    prev: l.prev,
                }),
                None => self.fault(ChainFault::Unreadable(RecordRef {
                    table: ChainTable::SampleLinks,
                    key,
                    time: key_time(key),
                    seq: None,
                })),
            }
        }
        for key in keys(&t.samples)? {
            if linked.binary_search(&key).is_ok() {
                continue;
            }
            if meta.start.legacy_last_block.is_some_and(|l| key <= l) {
                let u = &mut self.report.unchained.sample_blocks;
                *u = u.saturating_add(1);
            } else {
                self.fault(ChainFault::Unchained(RecordRef {
                    table: ChainTable::Samples,
                    key,
                    time: key_time(key),
                    seq: None,
                }));
            }
        }
        order.sort_unstable_by_key(|e| (e.number, e.key));
        self.report.unchained.events = match &t.events {
            Some(e) => e
                .range(..meta.start.first_event)
                .map_err(database_error)?
                .count() as u64,
            None => 0,
        };
        Ok(order)
    }

    /// The retention records after the base (seq → the base it set), and
    /// whether the base is where the last of them moved it.
    fn retention(&mut self, t: &Tables, meta: &Meta) -> Result<BTreeMap<u64, u64>, StoreError> {
        let mut out = BTreeMap::new();
        for seq in keys(&t.retention)? {
            let base = get(&t.retention, seq)?
                .and_then(|s| self.open("chain-retention", seq, &s))
                .and_then(|p| chain::decode_retention(&p));
            let r = RecordRef {
                table: ChainTable::Retention,
                key: seq,
                time: None,
                seq: Some(seq),
            };
            match base {
                None => self.fault(ChainFault::Unreadable(r)),
                Some(b) if b >= seq => self.fault(ChainFault::Rewritten(r)),
                Some(_) if seq > meta.head.seq => self.fault(ChainFault::BeyondHead(r)),
                Some(b) if seq > meta.base.seq => {
                    out.insert(seq, b);
                }
                Some(_) => {}
            }
        }
        let justified = match out.last_key_value() {
            Some((_, b)) => *b == meta.base.seq,
            None => {
                meta.base.seq == 0
                    && meta.base.same(&ChainHead {
                        seq: 0,
                        hash: self.keys.chain.genesis(&meta.start),
                        time: 0.0,
                    })
            }
        };
        if !justified {
            self.fault(ChainFault::BaseUnjustified { seq: meta.base.seq });
        }
        Ok(out)
    }

    /// Each block's predecessor must be the block before it in chain
    /// order, and the newest the one the chain's state names, unless
    /// retention took them. Returns the commits a deleted block covered
    /// (from the block before it to its last commit): their hashes cannot
    /// be recomputed, and are not reported again.
    fn check_sequence(&mut self, meta: &Meta, order: &[Entry]) -> Vec<(u64, u64)> {
        let mut gaps = Vec::new();
        let mut previous: Option<&Entry> = None;
        let expected = order
            .iter()
            .map(|e| e.prev)
            .chain(std::iter::once(meta.last_block));
        for (i, want) in expected.enumerate() {
            let here = order.get(i);
            let prev_key = previous.map(|p| p.key);
            match want {
                Some((key, seq)) if prev_key != Some(key) && seq > meta.base.seq => {
                    self.fault(ChainFault::Deleted(RecordRef {
                        table: ChainTable::Samples,
                        key,
                        time: key_time(key),
                        seq: Some(seq),
                    }));
                    gaps.push((previous.map_or(meta.base.seq, |p| p.last), seq));
                }
                Some((key, seq))
                    if prev_key == Some(key) && previous.map(|p| p.last) != Some(seq) =>
                {
                    self.fault(ChainFault::Broken { seq });
                }
                None if previous.is_some() => self.fault(ChainFault::Broken {
                    seq: here.map_or(meta.head.seq, |e| e.first),
                }),
                _ => {}
            }
            previous = here.or(previous);
        }
        let next = order.last().map_or(0, |e| e.number.saturating_add(1));
        if !order.is_empty() && meta.next_block != next {
            self.fault(ChainFault::Broken { seq: meta.head.seq });
        }
        gaps
    }
}

/// A known head against the history's head at the same seq.
#[diversify]
fn compare(known: &ChainHead, store: &ChainHead) -> HeadCheck {
    if known.same(store) {
        HeadCheck::Matches
    } else {
        HeadCheck::Diverged { store: *store }
    }
}

#[diversify]
impl Verifier<'_> {
    /// Recomputes the hash of every commit after the base from the records
    /// it wrote, and checks it against the heads the chain recorded.
    fn replay(
        &mut self,
        t: &Tables,
        meta: &Meta,
        (retention, gaps): (&BTreeMap<u64, u64>, &[(u64, u64)]),
        blocks: &mut BlockStream,
        events: &mut EventStream,
    ) -> Result<(), StoreError> {
        let mut state = Replay {
            prev: meta.base,
            next_event: meta.start.first_event,
            ev: self.keys.chain.event_seed(meta.start.first_event),
            tainted: false,
        };
        let mut n = meta.base.seq.saturating_add(1);
        let mut next_event = self.next_event(t, events)?;
        while n <= meta.head.seq {
            let segs = self.take_segments(t, meta, blocks, n)?;
            let evs = self.take_events(t, meta, events, &mut next_event, &mut state, n)?;
            let cut = retention.get(&n).copied();
            state.tainted |= gaps.iter().any(|(a, b)| (*a..=*b).contains(&n));
            if segs.is_empty() && evs.is_empty() && cut.is_none() {
                // Nothing of commit `n` is left: skip to the next commit
                // anything names.
                let next = [
                    blocks.items.front().map(|s| s.seq),
                    blocks.order.front().map(|b| b.first),
                    next_event.as_ref().map(|e| e.seq),
                    retention.range(n..).next().map(|(s, _)| *s),
                ]
                .into_iter()
                .flatten()
                .filter(|s| *s > n)
                .min()
                .unwrap_or(u64::MAX)
                .min(meta.head.seq.saturating_add(1));
                let to = next.saturating_sub(1);
                self.fault(ChainFault::MissingCommits { from: n, to });
                state.tainted = true;
                n = next;
                continue;
            }
            self.commit(meta, &mut state, n, &segs, &evs, cut);
            n = n.saturating_add(1);
        }
        if state.next_event != meta.next_event || state.ev != meta.ev {
            self.fault(ChainFault::Broken { seq: meta.head.seq });
        }
        self.beyond_head(t, meta, blocks, events, next_event)
    }

    /// Hashes commit `n` from its parts, events and retention record, and
    /// resynchronises on the heads recorded for it.
    fn commit(
        &mut self,
        meta: &Meta,
        state: &mut Replay,
        n: u64,
        segs: &[Segment],
        evs: &[EventItem],
        cut: Option<u64>,
    ) {
        let mut time = state.prev.time;
        let mut refs: Vec<ChainHead> = Vec::new();
        for e in evs {
            state.ev = e.ev;
            state.next_event = e.key.saturating_add(1);
            time = latest(time, e.time);
            state.tainted |= e.tainted;
            refs.push(e.reference);
        }
        for s in segs {
            time = latest(time, s.time);
            state.tainted |= s.tainted;
            refs.extend(s.reference);
        }
        if n == meta.head.seq {
            refs.push(meta.head);
        }
        let digests: Vec<Hash> = segs.iter().map(|s| s.digest).collect();
        let computed = ChainHead {
            seq: n,
            hash: self.keys.chain.commit(&CommitInput {
                prev: &state.prev.hash,
                seq: n,
                start: &meta.start,
                time,
                next_event: state.next_event,
                ev: &state.ev,
                segments: &digests,
                base: cut,
            }),
            time,
        };
        let mut claimed = computed;
        if let Some(first) = refs.first() {
            let altered = refs.iter().any(|r| !r.same(&computed)) && !state.tainted;
            if altered || refs.iter().any(|r| !r.same(first)) {
                self.fault(ChainFault::Broken { seq: n });
            }
            claimed = *first;
            state.tainted = false;
        }
        state.prev = claimed;
        self.report.commits = self.report.commits.saturating_add(1);
        self.settle_known(&claimed);
    }

    /// The parts of blocks commit `n` wrote; parts of earlier commits
    /// still in the stream are out of order (before the base: skipped).
    fn take_segments(
        &mut self,
        t: &Tables,
        meta: &Meta,
        blocks: &mut BlockStream,
        n: u64,
    ) -> Result<Vec<Segment>, StoreError> {
        let mut out = Vec::new();
        loop {
            if blocks.items.is_empty() {
                // Load the next block only once its first commit is due.
                if blocks.order.front().is_none_or(|b| b.first > n) {
                    break;
                }
                let Some(e) = blocks.order.pop_front() else {
                    break;
                };
                blocks.items = self.load_block(t, e.key)?;
                continue;
            }
            let Some(seq) = blocks.items.front().map(|s| s.seq) else {
                break;
            };
            if seq > n {
                break;
            }
            let Some(s) = blocks.items.pop_front() else {
                break;
            };
            if seq == n {
                out.push(s);
            } else if seq > meta.base.seq {
                self.fault(ChainFault::Broken { seq });
            }
        }
        Ok(out)
    }
}

/// The replay's running state.
struct Replay {
    /// The head of the previous commit (as recorded, after a resync).
    prev: ChainHead,
    next_event: u64,
    ev: Hash,
    /// A record was altered since the last recorded head: its commit's
    /// hash is expected not to match, and is not reported again.
    tainted: bool,
}

/// The later of a running latest time and a record's time (ignoring
/// times that are not finite, as the writer does).
#[diversify]
fn latest(running: f64, t: f64) -> f64 {
    if t.is_finite() {
        running.max(t)
    } else {
        running
    }
}

#[diversify]
impl Verifier<'_> {
    /// Checks one block against its link and returns its parts in order.
    fn load_block(&mut self, t: &Tables, key: u64) -> Result<VecDeque<Segment>, StoreError> {
        let Some(link) = self.block_link(t, key)? else {
            return Ok(VecDeque::new());
        };
        self.report.sample_blocks = self.report.sample_blocks.saturating_add(1);
        let at = RecordRef {
            table: ChainTable::Samples,
            key,
            time: key_time(key),
            seq: link.last_seq(),
        };
        let block = match get(&t.samples, key)? {
            None => {
                self.fault(ChainFault::Deleted(at));
                None
            }
            Some(sealed) => {
                let b = self
                    .open("samples", key, &sealed)
                    .and_then(|mut p| BlockBytes::parse(std::mem::take(&mut *p)));
                if b.is_none() {
                    self.fault(ChainFault::Unreadable(at));
                }
                b
            }
        };
        let (mut parts, intact) = split(key, &link, block.as_ref());
        if block.is_some() && !intact {
            self.fault(ChainFault::Rewritten(at));
        }
        if !intact || block.is_none() {
            parts.iter_mut().for_each(|s| s.tainted = true);
        }
        if let Some(last) = parts.back_mut() {
            last.reference = Some(link.head);
        }
        Ok(parts)
    }
}

/// A block's parts as its link lists them, with their digests recomputed
/// from `block`, and whether the block is exactly what the link recorded.
#[diversify]
fn split(key: u64, link: &BlockLink, block: Option<&BlockBytes>) -> (VecDeque<Segment>, bool) {
    let mut parts = VecDeque::with_capacity(link.commits.len());
    let mut digest = chain::block_seed(key, link.number, link.prev);
    let mut from = 0u32;
    let mut intact = block.is_some();
    for &(seq, to) in &link.commits {
        let part = block.and_then(|b| chain::segment_digest(key, b, from, to).map(|d| (d, b)));
        let (d, time) = match part {
            Some((d, b)) => (d, b.latest(from, to)),
            None => {
                intact = false;
                ([0; 32], f64::NAN)
            }
        };
        digest = chain::fold(&digest, seq, &d);
        parts.push_back(Segment {
            key,
            seq,
            digest: d,
            time,
            tainted: false,
            reference: None,
        });
        from = to;
    }
    if block.is_some_and(|b| b.count() != from) || digest != link.digest {
        intact = false;
    }
    (parts, intact)
}

#[diversify]
impl Verifier<'_> {
    /// The next chained event (checked against the event chain), reporting
    /// the unchained, unreadable and missing ones on the way.
    fn next_event(
        &mut self,
        t: &Tables,
        s: &mut EventStream,
    ) -> Result<Option<EventItem>, StoreError> {
        loop {
            let present = [
                first_from(&t.events, s.next)?,
                first_from(&t.event_links, s.next)?,
            ]
            .into_iter()
            .flatten()
            .min();
            // Keys the chain's state says exist but neither table holds.
            let gap_end = present.unwrap_or(s.end.max(s.next)).min(s.end.max(s.next));
            if gap_end > s.next {
                self.missing_events(s.next, gap_end.saturating_sub(1));
            }
            let Some(key) = present else {
                s.next = s.next.max(s.end);
                return Ok(None);
            };
            s.next = key.saturating_add(1);
            let link = get(&t.event_links, key)?;
            let decoded = link
                .as_ref()
                .and_then(|l| self.open("chain-events", key, l))
                .and_then(|p| EventLink::decode(&p));
            let record = get(&t.events, key)?;
            let plain = record.as_ref().and_then(|r| self.open("events", key, r));
            let event = plain.as_ref().and_then(|p| codec::decode_event(p));
            let at = |seq: Option<u64>| RecordRef {
                table: ChainTable::Events,
                key,
                time: event.as_ref().map(|e| e.time),
                seq,
            };
            let Some(l) = decoded else {
                self.fault(match (&link, &event) {
                    (Some(_), _) => ChainFault::Unreadable(RecordRef {
                        table: ChainTable::EventLinks,
                        ..at(None)
                    }),
                    (None, None) => ChainFault::Unreadable(at(None)),
                    (None, Some(_)) => ChainFault::Unchained(at(None)),
                });
                continue;
            };
            self.report.events = self.report.events.saturating_add(1);
            let seq = Some(l.head.seq);
            match (&record, &plain, &event) {
                (None, _, _) => self.fault(ChainFault::Deleted(at(seq))),
                (Some(_), Some(p), Some(_)) => {
                    if self.keys.chain.event(&s.prev, key, l.head.seq, p) != l.ev {
                        self.fault(ChainFault::Rewritten(at(seq)));
                    }
                }
                _ => self.fault(ChainFault::Unreadable(at(seq))),
            }
            s.prev = l.ev;
            return Ok(Some(EventItem {
                key,
                seq: l.head.seq,
                ev: l.ev,
                time: event.as_ref().map_or(f64::NAN, |e| e.time),
                tainted: event.is_none(),
                reference: l.head,
            }));
        }
    }

    /// Events `from..=to` are gone with their chain records: one finding
    /// naming the key for a single event, one for the range otherwise.
    fn missing_events(&mut self, from: u64, to: u64) {
        self.fault(if from == to {
            ChainFault::Deleted(RecordRef {
                table: ChainTable::Events,
                key: from,
                time: None,
                seq: None,
            })
        } else {
            ChainFault::DeletedEvents { from, to }
        });
    }

    /// The events commit `n` wrote. Events of earlier commits (those at or
    /// before the base) only advance the event chain.
    fn take_events(
        &mut self,
        t: &Tables,
        meta: &Meta,
        s: &mut EventStream,
        next: &mut Option<EventItem>,
        state: &mut Replay,
        n: u64,
    ) -> Result<Vec<EventItem>, StoreError> {
        let mut out = Vec::new();
        while let Some(e) = next.take_if(|e| e.seq <= n) {
            if e.seq == n {
                out.push(e);
            } else {
                if e.seq > meta.base.seq {
                    self.fault(ChainFault::Broken { seq: e.seq });
                }
                state.ev = e.ev;
                state.next_event = e.key.saturating_add(1);
            }
            *next = self.next_event(t, s)?;
        }
        Ok(out)
    }

    /// Chained records the replay did not reach: after the head.
    fn beyond_head(
        &mut self,
        t: &Tables,
        meta: &Meta,
        blocks: &mut BlockStream,
        events: &mut EventStream,
        mut next: Option<EventItem>,
    ) -> Result<(), StoreError> {
        let beyond = |table, key, seq| {
            ChainFault::BeyondHead(RecordRef {
                table,
                key,
                time: None,
                seq: Some(seq),
            })
        };
        while let Some(e) = next.take() {
            if e.seq > meta.head.seq {
                self.fault(beyond(ChainTable::Events, e.key, e.seq));
            }
            next = self.next_event(t, events)?;
        }
        if let Some(s) = blocks.items.back()
            && s.seq > meta.head.seq
        {
            self.fault(beyond(ChainTable::SampleLinks, s.key, s.seq));
        }
        while let Some(e) = blocks.order.pop_front() {
            self.fault(beyond(ChainTable::SampleLinks, e.key, e.last));
        }
        Ok(())
    }
}
