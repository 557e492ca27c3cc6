//! Integrity guards: the table of expected checksums that `harden` writes
//! into the binary, and the checks of the running code against it.
//!
//! The table is a static of [`TABLE_LEN`] bytes in the binary's read-only
//! data, found by `harden` through its [`marker`]. It holds up to
//! [`CAPACITY`] regions of executable code and read-only data (overlapping:
//! every byte is in at least two), each as its address relative to the
//! table, its length and its keyed checksum, all XORed with a keystream of
//! the table's key: nothing in it reads as a plain constant. A build that
//! was never hardened has a zero table. The table is signed with the
//! release key ([`crate::release`]): its key sits in it, so anyone could
//! recompute its checksums, but only the build machine can sign them.
//!
//! The running code is read back through `/proc/self/mem` (no `unsafe`, and
//! an unmapped address is an error, not a crash), so software breakpoints
//! and in-memory patches are seen, not only changes to the file.

use crate::protect;
use std::hint::black_box;
use twinshield_shield_macros::diversify;

use rustix::fd::OwnedFd;

use crate::finding::{Finding, FindingClass};

/// The 16 bytes that start the table, XOR [`MARKER_MASK`]: the plain
/// marker must exist once in the binary (in the table), so code that needs
/// it derives it at run time with [`marker`].
const MASKED_MARKER: [u8; 16] = [
    0xd1, 0x45, 0x88, 0x36, 0x60, 0xbd, 0x0f, 0xca, 0x57, 0xee, 0x23, 0x9b, 0x74, 0xa9, 0x1c, 0xf2,
];
const MARKER_MASK: u8 = 0x5a;

/// The marker that starts the table (random bytes, meaningless otherwise).
#[must_use]
#[diversify]
pub fn marker() -> [u8; 16] {
    let mask = black_box(MARKER_MASK);
    MASKED_MARKER.map(|b| b ^ mask)
}
/// Regions the table can hold.
pub const CAPACITY: usize = 4096;
/// Bytes of one encoded region.
pub const RECORD: usize = 24;
/// Where the table's release signature sits in the header.
const SIGNATURE: std::ops::Range<usize> = 40..104;
/// Bytes before the first region: marker, state, key, count, reserved,
/// the release key's signature over the whole table (taken with the
/// signature's own bytes zero), and the loader data's seal (file hash,
/// RELRO offset and length).
pub const HEADER: usize = 16 + 8 + 8 + 4 + 4 + 64 + 24;
/// Where the loader data's seal sits in the header.
const DATA_SEAL: usize = 104;
/// Bytes of the table.
pub const TABLE_LEN: usize = HEADER + CAPACITY * RECORD;

/// What the state word holds, XOR the rotated key, once hardened.
const HARDENED: u64 = 0x5d0c_e1a7_93b2_4f68;

const fn initial_table() -> [u8; TABLE_LEN] {
    let mut t = [0u8; TABLE_LEN];
    let mut i = 0;
    while i < MASKED_MARKER.len() {
        t[i] = MASKED_MARKER[i] ^ MARKER_MASK;
        i += 1;
    }
    t
}

/// The table, as `harden` leaves it. Read only through [`black_box`], so
/// the compiler cannot fold the build-time zeros into the code.
#[used]
static TABLE: [u8; TABLE_LEN] = initial_table();

/// One region: where it is relative to the table, how long, its checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    /// Address of the region minus the address of the table.
    pub offset: i64,
    /// Length in bytes.
    pub len: u32,
    /// Keyed checksum of the region's bytes.
    pub hash: u64,
}

/// A decoded table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// The table's key (checksums and keystream).
    pub key: u64,
    /// The regions.
    pub regions: Vec<Region>,
    /// The loader's data, sealed (see [`crate::loader`]).
    pub data: crate::loader::DataSeal,
}

#[diversify]
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Keystream word `j` of record `i`.
#[protect]
fn keystream(key: u64, i: usize, j: usize) -> u64 {
    mix(key ^ (((i as u64) << 2) | j as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

/// The keyed checksum of region `index`'s bytes. Each 8-byte word goes
/// through a bijection of the running state, so changing any one word
/// always changes the result.
#[must_use]
#[protect]
pub fn region_hash(key: u64, index: usize, bytes: &[u8]) -> u64 {
    let mut h = mix(key ^ (index as u64).wrapping_mul(0xd6e8_feb8_6659_fd93)) ^ bytes.len() as u64;
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        let mut word = [0u8; 8];
        word.copy_from_slice(w);
        h = (h ^ u64::from_le_bytes(word)).wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 32;
    }
    for (k, &b) in words.remainder().iter().enumerate() {
        h = (h ^ (u64::from(b) << (8 * k))).wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^= h >> 29;
    }
    mix(h)
}

#[diversify]
fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    if let Some(s) = bytes.get(at..at + 8) {
        w.copy_from_slice(s);
    }
    u64::from_le_bytes(w)
}

/// Encodes `table` into the [`TABLE_LEN`] bytes `harden` writes.
///
/// # Errors
/// [`TableError::TooManyRegions`] past [`CAPACITY`].
#[diversify]
pub fn encode(table: &Table) -> Result<[u8; TABLE_LEN], TableError> {
    if table.regions.len() > CAPACITY {
        return Err(TableError::TooManyRegions(table.regions.len()));
    }
    // Not `initial_table()`: that would put a second copy of the table,
    // marker and all, into the binary's read-only data.
    let mut out = [0u8; TABLE_LEN];
    out[..16].copy_from_slice(&marker());
    let key = table.key;
    out[16..24].copy_from_slice(&(HARDENED ^ key.rotate_left(17)).to_le_bytes());
    out[24..32].copy_from_slice(&(key ^ mix(HARDENED)).to_le_bytes());
    let count = table.regions.len() as u32;
    out[32..36].copy_from_slice(&(count ^ (keystream(key, CAPACITY, 0) as u32)).to_le_bytes());
    let d = &table.data;
    let seal = [d.file_hash, d.relro_offset as u64, d.relro_len];
    for (j, w) in seal.iter().enumerate() {
        let at = DATA_SEAL + 8 * j;
        out[at..at + 8].copy_from_slice(&(w ^ keystream(key, CAPACITY, j + 1)).to_le_bytes());
    }
    for (i, r) in table.regions.iter().enumerate() {
        let at = HEADER + i * RECORD;
        let words = [r.offset as u64, u64::from(r.len), r.hash];
        for (j, w) in words.iter().enumerate() {
            out[at + 8 * j..at + 8 * j + 8]
                .copy_from_slice(&(w ^ keystream(key, i, j)).to_le_bytes());
        }
    }
    Ok(out)
}

/// Signs an encoded table with the release key (what `harden` does last).
#[diversify]
pub fn sign(table: &mut [u8; TABLE_LEN], key: &crate::release::ReleaseKey) {
    table[SIGNATURE].fill(0);
    let signature = key.sign(table);
    table[SIGNATURE].copy_from_slice(&signature);
}

/// Whether an encoded table carries a signature of this build's release
/// key over its contents.
#[must_use]
#[diversify]
pub fn signed_by_release_key(table: &[u8]) -> bool {
    let (Some(sig), true) = (table.get(SIGNATURE), table.len() == TABLE_LEN) else {
        return false;
    };
    let mut signature = [0u8; 64];
    signature.copy_from_slice(sig);
    let mut message = table.to_vec();
    message[SIGNATURE].fill(0);
    crate::release::verify(&message, &signature)
}

/// Why a table could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    /// The table does not start with the marker.
    #[error("no guard table marker")]
    NoMarker,
    /// The table was never hardened.
    #[error("this twinshield binary was never hardened")]
    NotHardened,
    /// More regions than fit.
    #[error("{0} regions do not fit the guard table ({CAPACITY} at most)")]
    TooManyRegions(usize),
    /// The table is not signed by this build's release key: sealed again
    /// by someone else, or altered.
    #[error("the guard table is not signed by this build's release key")]
    Unsigned,
}

/// Decodes a table (as encoded by [`encode`]).
///
/// # Errors
/// [`TableError`] if it is not a table, never hardened, or inconsistent.
#[protect]
pub fn decode(bytes: &[u8]) -> Result<Table, TableError> {
    if bytes.get(..16) != Some(&marker()[..]) || bytes.len() < TABLE_LEN {
        return Err(TableError::NoMarker);
    }
    let key = u64_at(bytes, 24) ^ mix(HARDENED);
    if u64_at(bytes, 16) != HARDENED ^ key.rotate_left(17) {
        return Err(TableError::NotHardened);
    }
    let mut count = [0u8; 4];
    count.copy_from_slice(&bytes[32..36]);
    let count = (u32::from_le_bytes(count) ^ keystream(key, CAPACITY, 0) as u32) as usize;
    if count > CAPACITY {
        return Err(TableError::TooManyRegions(count));
    }
    let regions = (0..count)
        .map(|i| {
            let at = HEADER + i * RECORD;
            let w = |j: usize| u64_at(bytes, at + 8 * j) ^ keystream(key, i, j);
            Region {
                offset: w(0) as i64,
                len: w(1) as u32,
                hash: w(2),
            }
        })
        .collect();
    let w = |j: usize| u64_at(bytes, DATA_SEAL + 8 * j) ^ keystream(key, CAPACITY, j + 1);
    let data = crate::loader::DataSeal {
        file_hash: w(0),
        relro_offset: w(1) as i64,
        relro_len: w(2),
    };
    Ok(Table { key, regions, data })
}

/// The running binary's guard table, as `harden` left it.
///
/// # Errors
/// [`TableError::NotHardened`] for a build that was never hardened.
#[diversify]
pub fn embedded_table() -> Result<Table, TableError> {
    let bytes = black_box(&TABLE);
    let table = decode(bytes)?;
    if !signed_by_release_key(bytes) {
        return Err(TableError::Unsigned);
    }
    Ok(table)
}

/// The address of the running binary's table: regions are relative to it.
#[must_use]
#[diversify]
pub fn table_address() -> usize {
    std::ptr::from_ref(black_box(&TABLE)) as usize
}

/// Reads the running process's own memory.
pub struct SelfMemory {
    fd: OwnedFd,
    buf: Vec<u8>,
}

#[diversify]
impl SelfMemory {
    /// Opens `/proc/self/mem` (before the process makes itself
    /// non-dumpable, after which some kernels refuse the open).
    ///
    /// # Errors
    /// The open's error.
    pub fn open() -> std::io::Result<Self> {
        use rustix::fs::{Mode, OFlags};
        let fd = rustix::fs::open(
            &*crate::obf!("/proc/self/mem"),
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Self {
            fd,
            buf: Vec::new(),
        })
    }

    /// The `len` bytes at `address`, or `None` if they are not all readable.
    pub(crate) fn read_range(&mut self, address: usize, len: usize) -> Option<&[u8]> {
        self.read(address, len)
    }

    /// The `len` bytes at `address`, or `None` if they are not all readable.
    fn read(&mut self, address: usize, len: usize) -> Option<&[u8]> {
        self.buf.resize(len, 0);
        let mut done = 0;
        while done < len {
            let at = (address as u64).checked_add(done as u64)?;
            match rustix::io::pread(&self.fd, &mut self.buf[done..], at) {
                Ok(0) | Err(_) => return None,
                Ok(n) => done += n,
            }
        }
        Some(&self.buf)
    }
}

/// A table over the running process's own code and read-only data, with
/// checksums taken from memory now: what a benchmark or test process
/// (which no `harden` ever touched) can guard itself with. Regions of about
/// `region_len` bytes, two staggered tilings, as `harden` lays them out.
#[must_use]
#[diversify]
pub fn running_code_table(memory: &mut SelfMemory, key: u64, region_len: usize) -> Option<Table> {
    let exe = rustix::fs::readlink(&*crate::obf!("/proc/self/exe"), Vec::new()).ok()?;
    let exe = exe.to_string_lossy().into_owned();
    let maps = crate::probe::read_proc(&crate::obf!("/proc/self/maps"))?;
    let maps = String::from_utf8_lossy(&maps);
    let base = table_address();
    let table_end = base + TABLE_LEN;
    let mut spans = Vec::new();
    for line in maps.lines() {
        let mut f = line.split_whitespace();
        let (Some(range), Some(perms)) = (f.next(), f.next()) else {
            continue;
        };
        if f.nth(3) != Some(exe.as_str()) || perms.contains('w') {
            continue;
        }
        let (a, b) = range.split_once('-')?;
        let (a, b) = (
            usize::from_str_radix(a, 16).ok()?,
            usize::from_str_radix(b, 16).ok()?,
        );
        // Leave out the table itself, as `harden` does.
        if table_end <= a || base >= b {
            spans.push((a, b));
        } else {
            spans.extend(
                [(a, base), (table_end, b)]
                    .into_iter()
                    .filter(|(x, y)| x < y),
            );
        }
    }
    let len = region_len.max(64);
    let mut pieces = Vec::new();
    for (a, b) in spans {
        for stagger in [0, len / 2] {
            let mut at = a;
            if stagger > 0 {
                pieces.push((at, (at + stagger).min(b)));
                at = (at + stagger).min(b);
            }
            while at < b {
                pieces.push((at, (at + len).min(b)));
                at += len;
            }
        }
    }
    pieces.truncate(CAPACITY);
    let mut regions = Vec::with_capacity(pieces.len());
    for (index, (a, b)) in pieces.into_iter().enumerate() {
        let bytes = memory.read(a, b - a)?;
        regions.push(Region {
            offset: (a as i64).wrapping_sub(base as i64),
            len: (b - a) as u32,
            hash: region_hash(key, index, bytes),
        });
    }
    Some(Table {
        key,
        regions,
        data: crate::loader::DataSeal::default(),
    })
}

/// Checks region `index` of `table` against the running code. Inlined at
/// every call site, so that each checker is its own copy of the comparison
/// and no single function holds "the check".
#[inline(always)]
pub fn check_region(
    memory: &mut SelfMemory,
    table: &Table,
    base: usize,
    index: usize,
) -> Result<(), Finding> {
    let Some(r) = table.regions.get(index) else {
        return Ok(());
    };
    let address = (base as i64).wrapping_add(r.offset) as usize;
    let expected = r.hash;
    let Some(bytes) = memory.read(address, r.len as usize) else {
        return Err(Finding::new(
            FindingClass::Tamper,
            format!("guard region {index} is not readable"),
        ));
    };
    if black_box(region_hash(table.key, index, bytes)) != black_box(expected) {
        return Err(Finding::new(
            FindingClass::Tamper,
            format!("guard region {index} ({} bytes) was modified", r.len),
        ));
    }
    Ok(())
}

/// The checksum of region `index` as it reads from the running code now
/// (what the watchdog's challenges ask for), or `None` when it is not
/// readable. Separate from [`check_region`], so a patch that silences one
/// does not also forge the other.
#[inline(always)]
pub fn region_digest(
    memory: &mut SelfMemory,
    table: &Table,
    base: usize,
    index: usize,
) -> Option<u64> {
    let r = table.regions.get(index)?;
    let address = (base as i64).wrapping_add(r.offset) as usize;
    let bytes = memory.read(address, r.len as usize)?;
    Some(black_box(region_hash(table.key, index, bytes)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn tables_round_trip_and_hide_their_values() {
        let table = Table {
            key: 0x1234_5678_9abc_def0,
            regions: vec![
                Region {
                    offset: -4096,
                    len: 8192,
                    hash: 42,
                },
                Region {
                    offset: 1 << 20,
                    len: 65536,
                    hash: u64::MAX,
                },
            ],
            data: crate::loader::DataSeal {
                file_hash: 0x0bad_cafe,
                relro_offset: -77,
                relro_len: 4096,
            },
        };
        let bytes = encode(&table).unwrap();
        assert_eq!(decode(&bytes).unwrap(), table);
        // No field appears as a plain little-endian constant.
        for needle in [
            8192u64.to_le_bytes(),
            65536u64.to_le_bytes(),
            42u64.to_le_bytes(),
        ] {
            assert!(!bytes.windows(8).any(|w| w == needle));
        }
    }

    /// The key this build's binaries embed (the test process is one): the
    /// build left it in the profile directory, `deps/..` of this test.
    fn build_key() -> crate::release::ReleaseKey {
        let exe = std::env::current_exe().unwrap();
        let profile = exe.parent().and_then(std::path::Path::parent).unwrap();
        let text = std::fs::read_to_string(profile.join(crate::release::KEY_FILE)).unwrap();
        let key = crate::release::ReleaseKey::from_text(&text).unwrap();
        assert!(key.is_this_builds());
        key
    }

    #[test]
    fn only_the_release_key_signs_a_table_that_verifies() {
        let table = Table {
            key: 7,
            regions: vec![Region {
                offset: 64,
                len: 4096,
                hash: 99,
            }],
            data: crate::loader::DataSeal::default(),
        };
        let mut signed = encode(&table).unwrap();
        assert!(!signed_by_release_key(&signed), "an unsigned table");
        sign(&mut signed, &build_key());
        assert!(signed_by_release_key(&signed));
        // Any change to the table, its regions or its signature breaks it.
        for at in [0, 20, HEADER + 3, SIGNATURE.start, TABLE_LEN - 1] {
            let mut t = signed;
            t[at] ^= 1;
            assert!(!signed_by_release_key(&t), "byte {at}");
        }
        let other =
            crate::release::ReleaseKey::from_text(&crate::release::ReleaseKey::text_for(&[3; 32]))
                .unwrap();
        assert!(!other.is_this_builds());
        let mut forged = encode(&table).unwrap();
        sign(&mut forged, &other);
        assert!(!signed_by_release_key(&forged));
        assert!(!signed_by_release_key(&signed[..TABLE_LEN - 1]));
    }

    #[test]
    fn the_unhardened_table_says_so() {
        assert_eq!(decode(&initial_table()), Err(TableError::NotHardened));
        assert_eq!(embedded_table(), Err(TableError::NotHardened));
        assert_eq!(decode(&[0u8; 16]), Err(TableError::NoMarker));
    }

    #[test]
    fn every_single_byte_change_changes_the_hash() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
        let h = region_hash(9, 3, &data);
        for i in 0..data.len() {
            for flip in [1u8, 0x80, 0xff] {
                let mut d = data.clone();
                d[i] ^= flip;
                assert_ne!(region_hash(9, 3, &d), h, "byte {i}");
            }
        }
        assert_ne!(region_hash(9, 4, &data), h);
        assert_ne!(region_hash(10, 3, &data), h);
    }

    #[test]
    fn a_table_of_the_running_code_checks_out() {
        let mut m = SelfMemory::open().unwrap();
        let table = running_code_table(&mut m, 5, 1 << 16).unwrap();
        assert!(table.regions.len() > 10);
        for i in 0..table.regions.len() {
            assert_eq!(
                check_region(&mut m, &table, table_address(), i),
                Ok(()),
                "region {i}"
            );
        }
        // A table whose checksum is wrong is caught.
        let mut bad = table.clone();
        bad.regions[3].hash ^= 1;
        assert!(check_region(&mut m, &bad, table_address(), 3).is_err());
    }

    #[test]
    fn reads_its_own_memory() {
        let mut m = SelfMemory::open().unwrap();
        let here = table_address();
        assert_eq!(m.read(here, 16).unwrap(), &marker());
        assert!(m.read(0, 16).is_none());
    }
}
