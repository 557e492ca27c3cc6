//! The history's hash chain: what each commit adds, how it is hashed, and
//! the records that keep the chain on disk (all sealed like every other
//! value, in tables of their own).
//!
//! Each commit of the writer is one link, numbered from 1 (seq 0 is the
//! chain's genesis, the state when the chain began). Its hash is
//! HMAC-SHA256 under a key derived from the store key, over the previous
//! link's hash, the seq, the history's latest time, the event chain's
//! position and value, a SHA-256 digest of each part of a block of samples
//! the commit wrote, and the chain base retention moved to, if any. Events
//! carry a chain of their own (each one's HMAC over the one before), so
//! they stay verifiable for as long as they are kept (forever), while
//! retention cuts the oldest samples and their links away behind a base.
//! Minute aggregates are not chained: docs/history.md, "Tamper evidence".

// A parser of stored (possibly damaged or forged) records: no indexing
// that can panic, no unchecked arithmetic.
#![deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use crate::codec::{BlockBytes, R};
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use twinshield_shield_macros::diversify;
use zeroize::Zeroizing;

/// A 32-byte hash: SHA-256 or HMAC-SHA256.
pub(crate) type Hash = [u8; 32];

/// Tables of the chain's records. Keys: a block's key, an event's key, a
/// commit's seq.
pub(crate) const BLOCK_LINKS: redb::TableDefinition<u64, &[u8]> =
    redb::TableDefinition::new("chain-blocks");
pub(crate) const EVENT_LINKS: redb::TableDefinition<u64, &[u8]> =
    redb::TableDefinition::new("chain-events");
pub(crate) const RETENTION_LINKS: redb::TableDefinition<u64, &[u8]> =
    redb::TableDefinition::new("chain-retention");
/// The chain's state, in the `meta` table.
pub(crate) const META_KEY: &str = "chain";

/// Format version of every chain record (its first byte).
const VERSION: u8 = 1;

/// The history's chain head after a commit: what the device signs and
/// sends to the backend, which keeps the heads it received so a later
/// [`Store::verify_chain`](crate::Store::verify_chain) can tell whether
/// this history still extends them.
///
/// `seq` counts the writer's commits since the chain began (0: the
/// chain's genesis, nothing chained yet); `hash` commits to every chained
/// record up to and including commit `seq` and to its predecessor's
/// hash; `time` is the latest record time (seconds, the samples' and
/// events' own clock) the history had reached, or 0 before any.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ChainHead {
    /// Commits since the chain began.
    pub seq: u64,
    /// The chain's hash after commit `seq`.
    pub hash: [u8; 32],
    /// Latest record time the history had reached, seconds.
    pub time: f64,
}

/// Domain prefix of [`ChainHead::signing_bytes`].
const SIGNING_DOMAIN: &[u8; 28] = b"twinshield history head v1\0\0";

#[diversify]
impl ChainHead {
    /// Length of [`ChainHead::signing_bytes`].
    pub const SIGNING_LEN: usize = 76;

    /// The bytes to sign, fixed for this version: the 28-byte domain
    /// `twinshield history head v1` followed by two zero bytes, then `seq`
    /// as a big-endian u64, the 32 bytes of `hash`, and `time`'s IEEE 754
    /// bits as a big-endian u64: 76 bytes in all. A signature over them
    /// cannot be taken for one over any other twinshield message.
    pub fn signing_bytes(&self) -> [u8; Self::SIGNING_LEN] {
        let mut out = [0u8; Self::SIGNING_LEN];
        let (domain, rest) = out.split_at_mut(SIGNING_DOMAIN.len());
        domain.copy_from_slice(SIGNING_DOMAIN);
        let (seq, rest) = rest.split_at_mut(8);
        seq.copy_from_slice(&self.seq.to_be_bytes());
        let (hash, time) = rest.split_at_mut(32);
        hash.copy_from_slice(&self.hash);
        time.copy_from_slice(&self.time.to_bits().to_be_bytes());
        out
    }

    /// Same seq, hash and time (times compared bit for bit).
    pub(crate) fn same(&self, other: &ChainHead) -> bool {
        self.seq == other.seq
            && self.hash == other.hash
            && self.time.to_bits() == other.time.to_bits()
    }
}

/// The keyed hash of the chain: HMAC-SHA256 under a key derived from the
/// store key (so only the device computes heads), keyed once and cloned
/// for each use.
pub(crate) struct ChainKey {
    mac: Hmac<Sha256>,
}

/// HMAC-SHA256 keyed with a 32-byte key. HMAC pads a key shorter than the
/// hash's 64-byte block with zeros, so this is HMAC under `key` itself.
#[diversify]
fn hmac_with(key: &[u8; 32]) -> Hmac<Sha256> {
    let mut block = Zeroizing::new([0u8; 64]);
    if let Some(k) = block.get_mut(..32) {
        k.copy_from_slice(key);
    }
    Hmac::<Sha256>::new(&(*block).into())
}

#[diversify]
impl ChainKey {
    /// The chain's key: HMAC-SHA256(store key, "twinshield-store chain key v1").
    pub(crate) fn derive(store_key: &[u8; 32]) -> Self {
        let mut m = hmac_with(store_key);
        m.update(b"twinshield-store chain key v1");
        let key = Zeroizing::new(<[u8; 32]>::from(m.finalize().into_bytes()));
        let chain = ChainKey {
            mac: hmac_with(&key),
        };
        // HMAC's key setup left copies of the store key in its frames.
        twinshield_atrest::scrub_stack();
        chain
    }

    /// HMAC over `tag ‖ 0 ‖ parts…`.
    fn mac(&self, tag: &[u8], parts: &[&[u8]]) -> Hash {
        let mut m = self.mac.clone();
        m.update(tag);
        m.update(&[0]);
        for p in parts {
            m.update(p);
        }
        m.finalize().into_bytes().into()
    }

    /// Seq 0's hash: where the chain began.
    pub(crate) fn genesis(&self, start: &Start) -> Hash {
        let legacy = start.legacy_last_block;
        self.mac(
            b"genesis",
            &[
                &start.first_event.to_le_bytes(),
                &[u8::from(legacy.is_some())],
                &legacy.unwrap_or(0).to_le_bytes(),
            ],
        )
    }

    /// The event chain's value before its first event, `first_event`.
    pub(crate) fn event_seed(&self, first_event: u64) -> Hash {
        self.mac(b"events", &[&first_event.to_le_bytes()])
    }

    /// The event chain's value after event `key` (its plaintext), written
    /// by commit `seq`.
    pub(crate) fn event(&self, prev: &Hash, key: u64, seq: u64, plaintext: &[u8]) -> Hash {
        self.mac(
            b"event",
            &[prev, &key.to_le_bytes(), &seq.to_le_bytes(), plaintext],
        )
    }

    /// A commit's hash.
    pub(crate) fn commit(&self, c: &CommitInput<'_>) -> Hash {
        let mut m = self.mac.clone();
        m.update(b"commit\0");
        m.update(c.prev);
        m.update(&c.seq.to_le_bytes());
        m.update(&c.start.first_event.to_le_bytes());
        m.update(&[u8::from(c.start.legacy_last_block.is_some())]);
        m.update(&c.start.legacy_last_block.unwrap_or(0).to_le_bytes());
        m.update(&c.time.to_bits().to_le_bytes());
        m.update(&c.next_event.to_le_bytes());
        m.update(c.ev);
        m.update(&(c.segments.len() as u64).to_le_bytes());
        for s in c.segments {
            m.update(s);
        }
        m.update(&[u8::from(c.base.is_some())]);
        m.update(&c.base.unwrap_or(0).to_le_bytes());
        m.finalize().into_bytes().into()
    }
}

/// What a commit's hash covers.
pub(crate) struct CommitInput<'a> {
    /// The previous commit's hash (or the genesis).
    pub prev: &'a Hash,
    /// This commit's seq.
    pub seq: u64,
    /// Where the chain began (bound into every commit, so it cannot be
    /// moved once retention has cut the genesis away).
    pub start: &'a Start,
    /// The history's latest record time after this commit.
    pub time: f64,
    /// The key the next event will take.
    pub next_event: u64,
    /// The event chain's value after this commit's events.
    pub ev: &'a Hash,
    /// The digest of each part of a block this commit wrote, in order.
    pub segments: &'a [Hash],
    /// The seq retention moved the chain's base to in this commit.
    pub base: Option<u64>,
}

/// The SHA-256 digest of samples `from..to` of the block at `key` (with
/// the block's start and channel count), or `None` if the block does not
/// hold them.
#[diversify]
pub(crate) fn segment_digest(key: u64, block: &BlockBytes, from: u32, to: u32) -> Option<Hash> {
    let entries = block.entries(from, to)?;
    let mut h = Sha256::new();
    h.update(b"twinshield-store segment v1\0");
    h.update(key.to_le_bytes());
    h.update(from.to_le_bytes());
    h.update(to.to_le_bytes());
    h.update(block.fixed_header());
    h.update(entries);
    Some(h.finalize().into())
}

/// A block's digest before its first part: SHA-256 over its key, number
/// and predecessor, so its link's every field but the head is covered.
#[diversify]
pub(crate) fn block_seed(key: u64, number: u64, prev: Option<(u64, u64)>) -> Hash {
    let mut h = Sha256::new();
    h.update(b"block\0");
    h.update(key.to_le_bytes());
    h.update(number.to_le_bytes());
    let mut p = Vec::with_capacity(17);
    prev.put(&mut p);
    h.update(p);
    h.finalize().into()
}

/// A block's digest after one more part, written by commit `seq`:
/// SHA-256(prev ‖ seq ‖ part).
#[diversify]
pub(crate) fn fold(prev: &Hash, seq: u64, segment: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update(b"part\0");
    h.update(prev);
    h.update(seq.to_le_bytes());
    h.update(segment);
    h.finalize().into()
}

/// A history's state when its chain began.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Start {
    /// The first event key in the chain; events below it are unchained.
    pub first_event: u64,
    /// The newest block of samples written before the chain began;
    /// unlinked blocks up to it are unchained, not inserted.
    pub legacy_last_block: Option<u64>,
}

/// The chain's state, stored with every commit (`meta`/`chain`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Meta {
    pub start: Start,
    /// Where verification starts: seq 0 until retention moves it.
    pub base: ChainHead,
    /// The last commit.
    pub head: ChainHead,
    /// The key the next event takes.
    pub next_event: u64,
    /// The event chain's value after the last chained event.
    pub ev: Hash,
    /// The newest block (its key and the last commit that wrote it).
    pub last_block: Option<(u64, u64)>,
    /// The number the next block takes (blocks are numbered in order).
    pub next_block: u64,
}

/// The chain record of one block of samples (`chain-blocks`, at the
/// block's key).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BlockLink {
    /// The block's number: blocks are written in this order.
    pub number: u64,
    /// The block before it (its key, and the last commit that wrote it).
    pub prev: Option<(u64, u64)>,
    /// SHA-256 fold, from [`block_seed`], of each part's commit and digest.
    pub digest: Hash,
    /// The chain head after the last commit that wrote the block.
    pub head: ChainHead,
    /// Per commit that wrote to the block: its seq and the block's sample
    /// count after it (both strictly increasing).
    pub commits: Vec<(u64, u32)>,
}

/// The chain record of one event (`chain-events`, at the event's key).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct EventLink {
    /// The commit that wrote the event; `head.seq` is the same.
    pub head: ChainHead,
    /// The event chain's value after this event.
    pub ev: Hash,
}

/// Writes `v` to the end of `out`.
trait Put {
    fn put(&self, out: &mut Vec<u8>);
}

#[diversify]
impl Put for u64 {
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}

/// LEB128: seven bits a byte, low first, the high bit set on all but the
/// last.
#[diversify]
fn put_varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v & 0x7f) as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[diversify]
impl Put for ChainHead {
    fn put(&self, out: &mut Vec<u8>) {
        self.seq.put(out);
        out.extend_from_slice(&self.hash);
        out.extend_from_slice(&self.time.to_le_bytes());
    }
}

#[diversify]
impl Put for Option<(u64, u64)> {
    fn put(&self, out: &mut Vec<u8>) {
        out.push(u8::from(self.is_some()));
        let (a, b) = self.unwrap_or((0, 0));
        a.put(out);
        b.put(out);
    }
}

#[diversify]
impl R<'_> {
    fn hash(&mut self) -> Option<Hash> {
        self.take()
    }
    fn head(&mut self) -> Option<ChainHead> {
        Some(ChainHead {
            seq: self.u64()?,
            hash: self.hash()?,
            time: self.f64()?,
        })
    }
    /// An optional pair: a flag, then both values (zeros when absent: one
    /// meaning, one encoding).
    fn pair(&mut self) -> Option<Option<(u64, u64)>> {
        let flag = self.u8()?;
        let pair = (self.u64()?, self.u64()?);
        match flag {
            0 if pair == (0, 0) => Some(None),
            1 => Some(Some(pair)),
            _ => None,
        }
    }
    fn version(&mut self) -> Option<()> {
        (self.u8()? == VERSION).then_some(())
    }
    /// A LEB128 number in its shortest form (one value, one encoding).
    fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for i in 0..10u32 {
            let b = self.u8()?;
            let bits = u64::from(b & 0x7f);
            if i == 9 && bits > 1 {
                return None;
            }
            v |= bits.checked_shl(i.checked_mul(7)?)?;
            if b & 0x80 == 0 {
                return (i == 0 || b != 0).then_some(v);
            }
        }
        None
    }
}

#[diversify]
impl Meta {
    /// A new chain over a history in state `start`: seq 0, its genesis.
    pub(crate) fn fresh(start: Start, key: &ChainKey) -> Meta {
        let genesis = ChainHead {
            seq: 0,
            hash: key.genesis(&start),
            time: 0.0,
        };
        Meta {
            start,
            base: genesis,
            head: genesis,
            next_event: start.first_event,
            ev: key.event_seed(start.first_event),
            last_block: None,
            next_block: 0,
        }
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = vec![VERSION];
        self.start.first_event.put(&mut out);
        self.start.legacy_last_block.map(|k| (k, 0)).put(&mut out);
        self.base.put(&mut out);
        self.head.put(&mut out);
        self.next_event.put(&mut out);
        out.extend_from_slice(&self.ev);
        self.last_block.put(&mut out);
        self.next_block.put(&mut out);
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Option<Meta> {
        let mut r = R(bytes);
        r.version()?;
        let first_event = r.u64()?;
        let legacy = r.pair()?;
        if legacy.is_some_and(|(_, zero)| zero != 0) {
            return None;
        }
        let start = Start {
            first_event,
            legacy_last_block: legacy.map(|(k, _)| k),
        };
        let m = Meta {
            start,
            base: r.head()?,
            head: r.head()?,
            next_event: r.u64()?,
            ev: r.hash()?,
            last_block: r.pair()?,
            next_block: r.u64()?,
        };
        r.done().then_some(m)
    }
}

#[diversify]
impl BlockLink {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.commits.len().saturating_mul(4).saturating_add(128));
        out.push(VERSION);
        self.number.put(&mut out);
        self.prev.put(&mut out);
        out.extend_from_slice(&self.digest);
        self.head.put(&mut out);
        out.extend_from_slice(
            &u32::try_from(self.commits.len())
                .unwrap_or(u32::MAX)
                .to_le_bytes(),
        );
        // Each commit as the step from the one before (both grow by at
        // least 1), equal steps in runs: committing every 200 ms at a
        // steady rate, a block's 136 commits are one run of 3 bytes.
        let mut runs: Vec<(u64, u64, u64)> = Vec::new();
        let (mut seq, mut count) = (0u64, 0u32);
        for &(s, c) in &self.commits {
            let step = (s.wrapping_sub(seq), u64::from(c.wrapping_sub(count)));
            match runs.last_mut() {
                Some(run) if (run.0, run.1) == step => run.2 = run.2.saturating_add(1),
                _ => runs.push((step.0, step.1, 1)),
            }
            (seq, count) = (s, c);
        }
        for (ds, dc, len) in runs {
            put_varint(ds, &mut out);
            put_varint(dc, &mut out);
            put_varint(len, &mut out);
        }
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Option<BlockLink> {
        let mut r = R(bytes);
        r.version()?;
        let number = r.u64()?;
        let prev = r.pair()?;
        let digest = r.hash()?;
        let head = r.head()?;
        let n = usize::try_from(r.u32()?).ok()?;
        let commits = commit_runs(&mut r, n)?;
        if !r.done() {
            return None;
        }
        Some(BlockLink {
            number,
            prev,
            digest,
            head,
            commits,
        })
    }

    /// The last commit that wrote the block.
    pub(crate) fn last_seq(&self) -> Option<u64> {
        self.commits.last().map(|c| c.0)
    }
}

/// Most commits a block link may list: each adds a sample to the block,
/// which holds a few hundred (a bound before allocating).
const MAX_COMMITS: usize = 1 << 16;

/// `n` commits as runs of equal steps, in their one encoding: no step or
/// run of 0, no two runs in a row with the same step.
#[diversify]
fn commit_runs(r: &mut R<'_>, n: usize) -> Option<Vec<(u64, u32)>> {
    if n > MAX_COMMITS {
        return None;
    }
    let mut commits = Vec::with_capacity(n);
    let (mut seq, mut count) = (0u64, 0u32);
    let mut last: Option<(u64, u32)> = None;
    while commits.len() < n {
        let (ds, dc, len) = (r.varint()?, u32::try_from(r.varint()?).ok()?, r.varint()?);
        let len = usize::try_from(len).ok()?;
        if ds == 0 || dc == 0 || len == 0 || last == Some((ds, dc)) {
            return None;
        }
        if len > n.checked_sub(commits.len())? {
            return None;
        }
        for _ in 0..len {
            (seq, count) = (seq.checked_add(ds)?, count.checked_add(dc)?);
            commits.push((seq, count));
        }
        last = Some((ds, dc));
    }
    Some(commits)
}

#[diversify]
impl EventLink {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = vec![VERSION];
        self.head.put(&mut out);
        out.extend_from_slice(&self.ev);
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Option<EventLink> {
        let mut r = R(bytes);
        r.version()?;
        let l = EventLink {
            head: r.head()?,
            ev: r.hash()?,
        };
        r.done().then_some(l)
    }
}

/// A retention record (`chain-retention`, at the commit's seq): the seq
/// that commit moved the chain's base to.
#[diversify]
pub(crate) fn encode_retention(base: u64) -> Vec<u8> {
    let mut out = vec![VERSION];
    base.put(&mut out);
    out
}

#[diversify]
pub(crate) fn decode_retention(bytes: &[u8]) -> Option<u64> {
    let mut r = R(bytes);
    r.version()?;
    let base = r.u64()?;
    r.done().then_some(base)
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]
mod tests {
    use super::*;

    fn head(seq: u64) -> ChainHead {
        ChainHead {
            seq,
            hash: [seq as u8; 32],
            time: 1.5,
        }
    }

    #[test]
    fn records_round_trip_and_refuse_every_truncation() {
        let meta = Meta {
            start: Start {
                first_event: 3,
                legacy_last_block: Some(9),
            },
            base: head(0),
            head: head(7),
            next_event: 12,
            ev: [4; 32],
            last_block: Some((100, 7)),
            next_block: 5,
        };
        let link = BlockLink {
            number: 4,
            prev: Some((90, 6)),
            digest: [1; 32],
            head: head(7),
            commits: vec![(6, 10), (7, 30)],
        };
        let ev = EventLink {
            head: head(7),
            ev: [2; 32],
        };
        let (m, l, e) = (meta.encode(), link.encode(), ev.encode());
        // The sizes docs/history.md gives (before the 28 bytes of sealing).
        assert_eq!((m.len(), l.len(), e.len()), (187, 110 + 2 * 3, 81));
        assert_eq!(encode_retention(5).len(), 9);
        assert_eq!(Meta::decode(&m), Some(meta));
        assert_eq!(BlockLink::decode(&l), Some(link));
        assert_eq!(EventLink::decode(&e), Some(ev));
        assert_eq!(decode_retention(&encode_retention(5)), Some(5));
        for cut in 0..m.len() {
            assert!(Meta::decode(&m[..cut]).is_none());
        }
        for cut in 0..l.len() {
            assert!(BlockLink::decode(&l[..cut]).is_none());
        }
        for cut in 0..e.len() {
            assert!(EventLink::decode(&e[..cut]).is_none());
        }
        assert!(Meta::decode(&[&m[..], &[0]].concat()).is_none());
        assert!(BlockLink::decode(&[&l[..], &[0]].concat()).is_none());
    }

    /// Commit lists of every shape round trip; steps of zero and
    /// over-long numbers do not decode.
    #[test]
    fn commit_lists_are_compact_and_strict() {
        let link = |commits: Vec<(u64, u32)>| BlockLink {
            number: 1,
            prev: None,
            digest: [0; 32],
            head: head(1),
            commits,
        };
        for commits in [
            vec![],
            vec![(1, 1)],
            vec![(u64::MAX - 1, 1), (u64::MAX, u32::MAX)],
            (1..=136).map(|i| (i * 3, i as u32 * 2)).collect(),
        ] {
            let l = link(commits);
            assert_eq!(BlockLink::decode(&l.encode()), Some(l));
        }
        let steady = link((1..=136).map(|i| (i, i as u32 * 2)).collect());
        assert_eq!(steady.encode().len(), 110 + 4, "one run (of 136: 2 bytes)");
        // A link's commit count is at bytes 106..110, its runs after.
        let with = |n: u32, runs: &[u8]| {
            let mut b = link(vec![]).encode();
            b[106..110].copy_from_slice(&n.to_le_bytes());
            b.extend_from_slice(runs);
            BlockLink::decode(&b)
        };
        assert!(with(1, &[5, 3, 1]).is_some());
        assert!(with(1, &[5, 0, 1]).is_none(), "a step of 0");
        assert!(with(1, &[5, 3, 0]).is_none(), "a run of 0");
        assert!(with(1, &[0x85, 0x00, 3, 1]).is_none(), "5 over two bytes");
        assert!(
            with(2, &[1, 1, 1, 1, 1, 1]).is_none(),
            "two runs of one step"
        );
        assert!(with(2, &[1, 1, 3]).is_none(), "a run past the count");
        assert!(with(u32::MAX, &[1, 1, 0xff, 0xff, 0x03]).is_none());
    }

    /// The signed bytes of a head are fixed: a change to them is a change
    /// of format that every backend must learn.
    #[test]
    fn signing_bytes_are_stable() {
        let h = ChainHead {
            seq: 0x0102_0304_0506_0708,
            hash: [0xab; 32],
            time: 1.0,
        };
        let b = h.signing_bytes();
        assert_eq!(&b[..26], b"twinshield history head v1");
        assert_eq!(&b[26..28], &[0, 0]);
        assert_eq!(&b[28..36], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&b[36..68], &[0xab; 32]);
        assert_eq!(&b[68..], &1.0f64.to_bits().to_be_bytes());
    }
}
