//! A minimal writer of NPY v1.0 files (NumPy's array format) for 2-D
//! `uint8` arrays: the attack harness's traces, plaintexts and ciphertexts,
//! for outside side-channel toolkits. Only with the `trace` feature.

use std::io::{self, Write};
use twinshield_shield_macros::diversify;

/// The NPY magic string and version 1.0.
const MAGIC: &[u8] = b"\x93NUMPY\x01\x00";

/// Errors of [`write_u8_matrix`].
#[derive(Debug, thiserror::Error)]
pub enum NpyError {
    /// The data is not `rows * cols` bytes long.
    #[error("matrix data is {len} bytes, expected {rows} x {cols}")]
    Shape {
        /// Rows.
        rows: usize,
        /// Columns.
        cols: usize,
        /// Bytes given.
        len: usize,
    },
    /// The header does not fit NPY v1.0's 16-bit header length.
    #[error("NPY header too long")]
    HeaderTooLong,
    /// Writing failed.
    #[error("writing NPY data: {0}")]
    Io(#[from] io::Error),
}

/// The NPY v1.0 header of a C-order `rows × cols` `uint8` array: magic,
/// version, header length, and the header dictionary padded with spaces and
/// a final newline to a multiple of 64 bytes in all.
///
/// # Errors
///
/// [`NpyError::HeaderTooLong`] if the header length exceeds 65,535 bytes
/// (it cannot for any shape of two `usize`s).
#[diversify]
pub fn header_u8_matrix(rows: usize, cols: usize) -> Result<Vec<u8>, NpyError> {
    let dict = format!("{{'descr': '|u1', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    let unpadded = MAGIC.len() + 2 + dict.len() + 1;
    let padding = (64 - unpadded % 64) % 64;
    let header_len =
        u16::try_from(dict.len() + padding + 1).map_err(|_| NpyError::HeaderTooLong)?;
    let mut out = Vec::with_capacity(unpadded + padding);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&header_len.to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.resize(out.len() + padding, b' ');
    out.push(b'\n');
    Ok(out)
}

/// Writes `data`, row-major `rows × cols` bytes, as an NPY v1.0 `uint8`
/// array.
///
/// # Errors
///
/// [`NpyError::Shape`] if `data` is not `rows * cols` bytes, or the write's
/// error.
#[diversify]
pub fn write_u8_matrix<W: Write>(
    out: &mut W,
    rows: usize,
    cols: usize,
    data: &[u8],
) -> Result<(), NpyError> {
    if rows.checked_mul(cols) != Some(data.len()) {
        return Err(NpyError::Shape {
            rows,
            cols,
            len: data.len(),
        });
    }
    out.write_all(&header_u8_matrix(rows, cols)?)?;
    out.write_all(data)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
    use super::*;

    #[test]
    fn header_is_aligned_and_parsable() {
        for (rows, cols) in [(1, 1), (500, 2896), (10_000, 16), (usize::MAX, usize::MAX)] {
            let h = header_u8_matrix(rows, cols).unwrap();
            assert_eq!(h.len() % 64, 0);
            assert_eq!(&h[..8], MAGIC);
            let len = usize::from(u16::from_le_bytes([h[8], h[9]]));
            assert_eq!(len + 10, h.len());
            let dict = std::str::from_utf8(&h[10..]).unwrap();
            assert!(dict.ends_with('\n'));
            assert!(dict.contains(&format!("'shape': ({rows}, {cols})")));
        }
    }

    #[test]
    fn writes_header_then_data_and_checks_shape() {
        let mut out = Vec::new();
        write_u8_matrix(&mut out, 2, 3, &[1, 2, 3, 4, 5, 6]).unwrap();
        let header = header_u8_matrix(2, 3).unwrap();
        assert_eq!(header.len(), 128);
        assert_eq!(&out[..128], header.as_slice());
        assert_eq!(&out[128..], &[1, 2, 3, 4, 5, 6]);
        assert!(matches!(
            write_u8_matrix(&mut Vec::new(), 2, 3, &[1, 2]),
            Err(NpyError::Shape { .. })
        ));
    }
}
