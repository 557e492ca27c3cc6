//! Bounds-checked reading and writing of the binary formats (bundles,
//! device.fp, the state files): every length is explicit and checked, so
//! no input can index out of bounds or allocate without limit.

// A parser of outside input: no indexing that can panic, no unchecked
// arithmetic.
#![deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use crate::SealError;
use twinshield_shield_macros::diversify;

/// Appends fields to a byte buffer.
#[derive(Debug, Default)]
pub(crate) struct Writer {
    pub buf: Vec<u8>,
}

#[diversify]
impl Writer {
    pub fn bytes(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub fn u16(&mut self, v: u16) {
        self.bytes(&v.to_le_bytes());
    }
    pub fn u32(&mut self, v: u32) {
        self.bytes(&v.to_le_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }
    /// A byte string with a u32 length.
    pub fn blob(&mut self, b: &[u8]) {
        self.u32(u32::try_from(b.len()).unwrap_or(u32::MAX));
        self.bytes(b);
    }
    /// A UTF-8 string with a u16 length (truncated at 65535 bytes).
    pub fn str(&mut self, s: &str) {
        let b = s.as_bytes();
        let b = b.get(..b.len().min(usize::from(u16::MAX))).unwrap_or(b);
        self.u16(u16::try_from(b.len()).unwrap_or(u16::MAX));
        self.bytes(b);
    }
}

/// Reads fields from a byte slice; every read fails cleanly when the input
/// is too short.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
    what: &'static str,
}

#[diversify]
impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8], what: &'static str) -> Self {
        Reader { rest: bytes, what }
    }
    fn short(&self) -> SealError {
        SealError::Malformed(format!("{} is truncated", self.what))
    }
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], SealError> {
        let (head, tail) = self.rest.split_at_checked(n).ok_or_else(|| self.short())?;
        self.rest = tail;
        Ok(head)
    }
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], SealError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    pub fn u8(&mut self) -> Result<u8, SealError> {
        Ok(u8::from_le_bytes(self.array()?))
    }
    pub fn u16(&mut self) -> Result<u16, SealError> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    pub fn u32(&mut self) -> Result<u32, SealError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    pub fn u64(&mut self) -> Result<u64, SealError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    pub fn blob(&mut self) -> Result<&'a [u8], SealError> {
        let n = usize::try_from(self.u32()?).map_err(|_| self.short())?;
        self.take(n)
    }
    pub fn str(&mut self) -> Result<String, SealError> {
        let n = usize::from(self.u16()?);
        let b = self.take(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| {
            SealError::Malformed(format!("{} holds text that is not UTF-8", self.what))
        })
    }
    pub fn remaining(&self) -> usize {
        self.rest.len()
    }
    pub fn finish(&self) -> Result<(), SealError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(SealError::Malformed(format!(
                "{} has trailing bytes",
                self.what
            )))
        }
    }
}
