//! `harden`: seals a built binary's integrity. It computes keyed checksums
//! over many overlapping regions of the executable code and read-only data
//! and writes them, encoded, into the guard table reserved in the binary
//! (see [`crate::guard`]).

use rand::{Rng, RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use twinshield_shield_macros::diversify;

use crate::elf::{ElfError, Segment, load_segments};
use crate::guard::{self, CAPACITY, Region, TABLE_LEN, Table, TableError};
use crate::release::ReleaseKey;

/// Why a binary cannot be hardened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HardenError {
    /// Not an ELF executable.
    #[error(transparent)]
    Elf(#[from] ElfError),
    /// No guard table: not a twinshield binary.
    #[error("no guard table found: not a twinshield binary")]
    NoTable,
    /// More than one marker: ambiguous.
    #[error("{0} guard table markers found: ambiguous binary")]
    Ambiguous(usize),
    /// The table is not inside read-only data.
    #[error("the guard table is not in a read-only segment")]
    Misplaced,
    /// The table cannot hold the regions.
    #[error(transparent)]
    Table(#[from] TableError),
    /// The binary was hardened already: hardening again would seal
    /// whatever was patched since.
    #[error("already hardened: a hardened binary is never sealed again (harden a fresh build)")]
    AlreadyHardened,
}

/// What `harden` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HardenReport {
    /// Regions written.
    pub regions: usize,
    /// Bytes of code and read-only data covered (each at least twice).
    pub covered: u64,
    /// Sum of the regions' lengths.
    pub checked: u64,
}

/// Where `needle` occurs in `hay`.
#[diversify]
fn occurrences(hay: &[u8], needle: &[u8]) -> Vec<usize> {
    hay.windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect()
}

/// Whether `binary` can be hardened: a twinshield ELF executable with one
/// guard table in read-only data, never hardened before.
///
/// # Errors
/// What [`harden`] would refuse it with, before any key is needed.
#[diversify]
pub fn check_hardenable(binary: &[u8]) -> Result<(), HardenError> {
    let segments = load_segments(binary)?;
    let (table_at, _) = locate_table(binary, &segments)?;
    if guard::decode(&binary[table_at..table_at + TABLE_LEN]).is_ok() {
        return Err(HardenError::AlreadyHardened);
    }
    Ok(())
}

/// Hardens `binary` in place with the seed's layout and table key, and
/// signs its table with the release key.
///
/// # Errors
/// [`HardenError`] if it is not a twinshield ELF executable, or was
/// hardened already.
#[diversify]
pub fn harden(binary: &mut [u8], seed: u64, key: &ReleaseKey) -> Result<HardenReport, HardenError> {
    let segments = load_segments(binary)?;
    let (table_at, table_vaddr) = locate_table(binary, &segments)?;
    let table_end = table_at + TABLE_LEN;
    if guard::decode(&binary[table_at..table_end]).is_ok() {
        return Err(HardenError::AlreadyHardened);
    }
    let spans = spans_around(&segments, table_at as u64, table_end as u64);
    let covered: u64 = spans.iter().map(|(_, a, b)| b - a).sum();

    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut pieces = tile(&spans, covered, &mut rng);
    shuffle(&mut pieces, &mut rng);
    let table_key: u64 = rng.random();
    let regions = pieces
        .iter()
        .enumerate()
        .map(|(index, &(seg, a, b))| {
            let vaddr = seg.vaddr + (a - seg.offset);
            Region {
                offset: vaddr.wrapping_sub(table_vaddr) as i64,
                len: (b - a) as u32,
                hash: guard::region_hash(table_key, index, &binary[a as usize..b as usize]),
            }
        })
        .collect::<Vec<_>>();
    let checked = regions.iter().map(|r| u64::from(r.len)).sum();
    let report = HardenReport {
        regions: regions.len(),
        covered,
        checked,
    };
    let data = crate::loader::seal_of(binary, table_key, table_vaddr)?;
    let mut encoded = guard::encode(&Table {
        key: table_key,
        regions,
        data,
    })?;
    guard::sign(&mut encoded, key);
    binary[table_at..table_end].copy_from_slice(&encoded);
    Ok(report)
}

/// The guard table's file offset and virtual address: exactly one marker,
/// inside a segment that is neither writable nor executable.
#[diversify]
fn locate_table(binary: &[u8], segments: &[Segment]) -> Result<(usize, u64), HardenError> {
    let found = occurrences(binary, &guard::marker());
    let table_at = match found.as_slice() {
        [] => return Err(HardenError::NoTable),
        [one] => *one,
        many => return Err(HardenError::Ambiguous(many.len())),
    };
    let table_end = table_at + TABLE_LEN;
    let home = segments
        .iter()
        .find(|s| s.offset as usize <= table_at && table_end as u64 <= s.offset + s.filesz)
        .ok_or(HardenError::Misplaced)?;
    if home.writable || home.executable {
        return Err(HardenError::Misplaced);
    }
    Ok((table_at, home.vaddr + (table_at as u64 - home.offset)))
}

/// The file ranges of the non-writable segments, less the table at
/// `t0..t1` (it holds the checksums, so it cannot be checksummed).
#[diversify]
fn spans_around(segments: &[Segment], t0: u64, t1: u64) -> Vec<(Segment, u64, u64)> {
    let mut spans = Vec::new();
    for s in segments.iter().filter(|s| !s.writable && s.filesz > 0) {
        let (start, end) = (s.offset, s.offset + s.filesz);
        if t1 <= start || t0 >= end {
            spans.push((*s, start, end));
        } else {
            if start < t0 {
                spans.push((*s, start, t0));
            }
            if t1 < end {
                spans.push((*s, t1, end));
            }
        }
    }
    spans
}

/// Two staggered tilings of `spans` by random-length regions: every byte
/// is in at least two regions, and region boundaries differ from one seed
/// to the next. The length adapts to `covered` so the regions fit the table.
#[diversify]
fn tile(
    spans: &[(Segment, u64, u64)],
    covered: u64,
    rng: &mut ChaCha8Rng,
) -> Vec<(Segment, u64, u64)> {
    let budget = (CAPACITY - 2 * spans.len() - 16) as u64;
    let target = ((2 * covered).div_ceil(budget) * 11 / 10).max(4096);
    let mut pieces = Vec::new();
    for &(seg, start, end) in spans {
        for stagger in [0, target / 2] {
            let mut at = start;
            let first = stagger.min(end - start);
            if first > 0 {
                pieces.push((seg, at, at + first));
                at += first;
            }
            while at < end {
                let len = rng
                    .random_range(target * 3 / 4..=target * 5 / 4)
                    .min(end - at);
                pieces.push((seg, at, at + len));
                at += len;
            }
        }
    }
    pieces
}

#[diversify]
fn shuffle<T, R: Rng>(v: &mut [T], rng: &mut R) {
    for i in (1..v.len()).rev() {
        let j = rng.random_range(0..=i);
        v.swap(i, j);
    }
}
