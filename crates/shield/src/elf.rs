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
    fn refuses_what_is_not_elf_without_panicking() {
        assert_eq!(load_segments(b"#!/bin/sh\n"), Err(ElfError::NotElf));
        let bytes = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        for cut in [6, 0x20, 0x3a, 64, 200] {
            assert!(load_segments(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }
}
