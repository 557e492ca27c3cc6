//! What the loader reads and writes, sealed: the writable segments' bytes
//! as they are in the file (`.dynamic`, `.init_array`, `.fini_array`,
//! `.data.rel.ro`, the GOT before relocation, initial data), and the RELRO
//! range the loader makes read-only once it has relocated it (the GOT,
//! `.dynamic`, the init and fini arrays, `.data.rel.ro`). The code guards
//! cannot cover these (the loader rewrites them), so `harden` records a
//! keyed hash of their file bytes, checked against the running binary's
//! file at start-up, and the shield takes a hash of the relocated RELRO
//! range at start-up and compares it once a second: a patched `.dynamic`
//! in the file, or a GOT slot overwritten at run time, is a tamper finding.

use crate::elf::{ElfError, PT_GNU_RELRO, ProgramHeader, program_headers};
use crate::guard::{CAPACITY, SelfMemory, region_hash};
use twinshield_shield_macros::diversify;

/// What `harden` seals of the loader's data, in the guard table's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DataSeal {
    /// Keyed hash of the writable segments' bytes in the file.
    pub file_hash: u64,
    /// Start of the RELRO range, relative to the guard table.
    pub relro_offset: i64,
    /// Length of the RELRO range (0: none).
    pub relro_len: u64,
}

/// The keyed hash of the writable load segments of the file read through
/// `read`.
///
/// # Errors
/// [`ElfError`] if the file is not ELF or a segment lies outside it.
#[diversify]
pub fn writable_file_hash(
    key: u64,
    read: &mut dyn FnMut(u64, usize) -> Option<Vec<u8>>,
) -> Result<u64, ElfError> {
    let headers = program_headers(read)?;
    let mut h = key ^ 0x2545_f491_4f6c_dd1d;
    for (i, seg) in writable(&headers).enumerate() {
        let len = usize::try_from(seg.filesz).map_err(|_| ElfError::Malformed)?;
        let bytes = read(seg.offset, len).ok_or(ElfError::Malformed)?;
        h = h.rotate_left(23) ^ region_hash(key, CAPACITY + 1 + i, &bytes);
    }
    Ok(h)
}

fn writable(headers: &[ProgramHeader]) -> impl Iterator<Item = &ProgramHeader> {
    headers
        .iter()
        .filter(|h| h.kind == 1 && h.flags & 2 != 0 && h.filesz > 0)
}

/// The seal of `binary`'s loader data, with the RELRO range relative to
/// the table at `table_vaddr`.
///
/// # Errors
/// [`ElfError`] if the file is not ELF or is malformed.
#[diversify]
pub fn seal_of(binary: &[u8], key: u64, table_vaddr: u64) -> Result<DataSeal, ElfError> {
    let mut read = crate::elf::slice_reader(binary);
    let file_hash = writable_file_hash(key, &mut read)?;
    let relro = program_headers(&mut read)?
        .into_iter()
        .find(|h| h.kind == PT_GNU_RELRO);
    Ok(DataSeal {
        file_hash,
        relro_offset: relro.map_or(0, |r| r.vaddr.wrapping_sub(table_vaddr) as i64),
        relro_len: relro.map_or(0, |r| r.memsz),
    })
}

/// The hash of the running binary's file (`/proc/self/exe`), as
/// [`writable_file_hash`] computes it.
#[must_use]
#[diversify]
pub fn running_file_hash(key: u64) -> Option<u64> {
    use std::os::unix::fs::FileExt;
    let file = std::fs::File::open(&*crate::obf!("/proc/self/exe")).ok()?;
    let mut read = |at: u64, len: usize| {
        let mut buf = vec![0u8; len];
        file.read_exact_at(&mut buf, at).ok().map(|()| buf)
    };
    writable_file_hash(key, &mut read).ok()
}

/// The keyed hash of the relocated RELRO range in memory now, or `None`
/// when the seal names none or it cannot be read.
#[must_use]
#[diversify]
pub fn relro_hash(memory: &mut SelfMemory, key: u64, base: usize, seal: &DataSeal) -> Option<u64> {
    if seal.relro_len == 0 {
        return None;
    }
    let address = (base as i64).wrapping_add(seal.relro_offset) as usize;
    let len = usize::try_from(seal.relro_len).ok()?;
    let bytes = memory.read_range(address, len)?;
    Some(region_hash(key, CAPACITY + 64, bytes))
}
