//! The little of ELF that `harden` needs: the loadable segments of a 64-bit
//! little-endian executable. Every read is bounds-checked: a hostile file
//! gets an error, never a panic.
#![deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use twinshield_shield_macros::diversify;

/// A loadable segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// File offset of its bytes.
    pub offset: u64,
    /// Virtual address it is loaded at (before the load bias).
    pub vaddr: u64,
    /// Bytes it takes in the file.
    pub filesz: u64,
    /// Executable.
    pub executable: bool,
    /// Writable (at load time; such segments hold relocated data).
    pub writable: bool,
}

/// Why a file is not an executable `harden` can work on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ElfError {
    /// Not ELF, not 64-bit, or not little-endian.
    #[error("not a 64-bit little-endian ELF executable")]
    NotElf,
    /// A header or segment lies outside the file.
    #[error("truncated or malformed ELF file")]
    Malformed,
}

#[diversify]
fn field(bytes: &[u8], at: usize, len: usize) -> Result<u64, ElfError> {
    let end = at.checked_add(len).ok_or(ElfError::Malformed)?;
    let s = bytes.get(at..end).ok_or(ElfError::Malformed)?;
    let mut w = [0u8; 8];
    w.get_mut(..len)
        .ok_or(ElfError::Malformed)?
        .copy_from_slice(s);
    Ok(u64::from_le_bytes(w))
}

/// The loadable segments of `bytes`.
///
/// # Errors
/// [`ElfError`] if the file is not a 64-bit little-endian ELF file or is
/// malformed.
#[diversify]
pub fn load_segments(bytes: &[u8]) -> Result<Vec<Segment>, ElfError> {
    if bytes.get(..6) != Some(&[0x7f, b'E', b'L', b'F', 2, 1][..]) {
        return Err(ElfError::NotElf);
    }
    let phoff = usize::try_from(field(bytes, 0x20, 8)?).map_err(|_| ElfError::Malformed)?;
    let phentsize = usize::try_from(field(bytes, 0x36, 2)?).map_err(|_| ElfError::Malformed)?;
    let phnum = usize::try_from(field(bytes, 0x38, 2)?).map_err(|_| ElfError::Malformed)?;
    if phentsize < 56 {
        return Err(ElfError::Malformed);
    }
    let mut segments = Vec::new();
    for i in 0..phnum {
        let at = i
            .checked_mul(phentsize)
            .and_then(|o| o.checked_add(phoff))
            .ok_or(ElfError::Malformed)?;
        let at_plus = |k: usize| at.checked_add(k).ok_or(ElfError::Malformed);
        if field(bytes, at, 4)? != 1 {
            continue; // not PT_LOAD
        }
        let flags = field(bytes, at_plus(4)?, 4)?;
        let s = Segment {
            offset: field(bytes, at_plus(8)?, 8)?,
            vaddr: field(bytes, at_plus(16)?, 8)?,
            filesz: field(bytes, at_plus(32)?, 8)?,
            executable: flags & 1 != 0,
            writable: flags & 2 != 0,
        };
        let end = s.offset.checked_add(s.filesz).ok_or(ElfError::Malformed)?;
        if end > bytes.len() as u64 || s.vaddr.checked_add(s.filesz).is_none() {
            return Err(ElfError::Malformed);
        }
        segments.push(s);
    }
    if segments.is_empty() {
        return Err(ElfError::Malformed);
    }
    Ok(segments)
}

/// One program header, as the loader reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProgramHeader {
    /// `p_type` (1 load, 2 dynamic, 3 interpreter, `0x6474e552` RELRO).
    pub kind: u32,
    /// `p_flags` (1 execute, 2 write, 4 read).
    pub flags: u32,
    /// File offset.
    pub offset: u64,
    /// Virtual address (before the load bias).
    pub vaddr: u64,
    /// Bytes in the file.
    pub filesz: u64,
    /// Bytes in memory.
    pub memsz: u64,
}

/// `PT_GNU_RELRO`: the range the loader makes read-only after relocation.
pub const PT_GNU_RELRO: u32 = 0x6474_e552;

/// The program headers of an ELF file read through `read(offset, len)`.
///
/// # Errors
/// [`ElfError`] if the file is not a 64-bit little-endian ELF file or its
/// headers lie outside it.
#[diversify]
pub fn program_headers(
    read: &mut dyn FnMut(u64, usize) -> Option<Vec<u8>>,
) -> Result<Vec<ProgramHeader>, ElfError> {
    let head = read(0, 64).ok_or(ElfError::Malformed)?;
    if head.get(..6) != Some(&[0x7f, b'E', b'L', b'F', 2, 1][..]) {
        return Err(ElfError::NotElf);
    }
    let (phoff, phnum) = (field(&head, 0x20, 8)?, field(&head, 0x38, 2)?);
    let table_len = phnum
        .checked_mul(56)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or(ElfError::Malformed)?;
    let headers = read(phoff, table_len).ok_or(ElfError::Malformed)?;
    headers
        .chunks_exact(56)
        .map(|h| {
            Ok(ProgramHeader {
                kind: field(h, 0, 4)? as u32,
                flags: field(h, 4, 4)? as u32,
                offset: field(h, 8, 8)?,
                vaddr: field(h, 16, 8)?,
                filesz: field(h, 32, 8)?,
                memsz: field(h, 40, 8)?,
            })
        })
        .collect()
}

/// A reader over bytes in memory, for [`program_headers`] and
/// [`needed_libraries`].
pub fn slice_reader(bytes: &[u8]) -> impl FnMut(u64, usize) -> Option<Vec<u8>> + '_ {
    |at, len| {
        let at = usize::try_from(at).ok()?;
        bytes.get(at..at.checked_add(len)?).map(<[u8]>::to_vec)
    }
}

/// The libraries an ELF file names to the loader: its `DT_NEEDED` entries
/// and the basename of its `PT_INTERP`, read through `read(offset, len)`
/// (a few small reads, not the whole file).
///
/// # Errors
/// [`ElfError`] if the file is not a 64-bit little-endian ELF file or its
/// dynamic section is malformed.
#[diversify]
pub fn needed_libraries(
    read: &mut dyn FnMut(u64, usize) -> Option<Vec<u8>>,
) -> Result<Vec<String>, ElfError> {
    let headers = program_headers(read)?;
    let mut names = Vec::new();
    for h in headers.iter().filter(|h| h.kind == 3) {
        names.push(interpreter(read, h.offset, h.filesz)?);
    }
    let Some(dynamic) = headers.iter().find(|h| h.kind == 2) else {
        return Ok(names);
    };
    let size = usize::try_from(dynamic.filesz.min(1 << 16)).map_err(|_| ElfError::Malformed)?;
    let entries = read(dynamic.offset, size).ok_or(ElfError::Malformed)?;
    let (mut needed, mut strtab, mut strsz) = (Vec::new(), None, 0);
    for e in entries.chunks_exact(16) {
        match (field(e, 0, 8)?, field(e, 8, 8)?) {
            (0, _) => break,
            (1, at) => needed.push(at),
            (5, vaddr) => strtab = Some(vaddr),
            (10, n) => strsz = n.min(1 << 20),
            _ => {}
        }
    }
    let vaddr = strtab.ok_or(ElfError::Malformed)?;
    let load = headers
        .iter()
        .find(|h| h.kind == 1 && h.vaddr <= vaddr && vaddr < h.vaddr.saturating_add(h.filesz))
        .ok_or(ElfError::Malformed)?;
    let strsz = usize::try_from(strsz).map_err(|_| ElfError::Malformed)?;
    let at = vaddr
        .checked_sub(load.vaddr)
        .and_then(|d| d.checked_add(load.offset))
        .ok_or(ElfError::Malformed)?;
    let strings = read(at, strsz).ok_or(ElfError::Malformed)?;
    for at in needed {
        let at = usize::try_from(at).map_err(|_| ElfError::Malformed)?;
        let rest = strings.get(at..).ok_or(ElfError::Malformed)?;
        let end = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or(ElfError::Malformed)?;
        names.push(String::from_utf8_lossy(rest.get(..end).unwrap_or_default()).into_owned());
    }
    Ok(names)
}

/// The basename of the `PT_INTERP` path at `offset`.
fn interpreter(
    read: &mut dyn FnMut(u64, usize) -> Option<Vec<u8>>,
    offset: u64,
    size: u64,
) -> Result<String, ElfError> {
    let size = usize::try_from(size.min(4096)).map_err(|_| ElfError::Malformed)?;
    let path = read(offset, size).ok_or(ElfError::Malformed)?;
    let path = path.split(|&b| b == 0).next().unwrap_or_default();
    let name = path.rsplit(|&b| b == b'/').next().unwrap_or_default();
    Ok(String::from_utf8_lossy(name).into_owned())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn reads_this_test_binarys_segments() {
        let bytes = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let segs = load_segments(&bytes).unwrap();
        assert!(segs.iter().any(|s| s.executable && !s.writable));
        assert!(segs.iter().any(|s| !s.executable && !s.writable));
    }

    #[test]
    fn names_this_test_binarys_libraries() {
        let bytes = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let mut read = |at: u64, len: usize| {
            bytes
                .get(at as usize..at as usize + len)
                .map(<[u8]>::to_vec)
        };
        let names = needed_libraries(&mut read).unwrap();
        assert!(names.iter().any(|n| n == "libc.so.6"), "{names:?}");
        assert!(names.iter().any(|n| n.starts_with("ld-linux")), "{names:?}");
        let mut short = |at: u64, len: usize| {
            bytes
                .get(at as usize..(at as usize + len).min(300))
                .map(<[u8]>::to_vec)
        };
        assert!(needed_libraries(&mut short).is_err());
        let mut text = |_: u64, _: usize| Some(b"#!/bin/sh\n".to_vec());
        assert_eq!(needed_libraries(&mut text), Err(ElfError::NotElf));
    }

    #[test]
    fn refuses_what_is_not_elf_without_panicking() {
        assert_eq!(load_segments(b"#!/bin/sh\n"), Err(ElfError::NotElf));
        let bytes = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        for cut in [6, 0x20, 0x3a, 64, 200] {
            assert!(load_segments(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }
}
