//! The run-time half of `obf!` and `obf_bytes!` (crate
//! `twinshield-shield-macros`): decrypting a site's bytes into a buffer
//! that zeroizes on drop.

use std::hint::black_box;
use std::ops::Deref;
use twinshield_shield_macros::diversify;

use zeroize::Zeroizing;

/// A revealed literal: the plain bytes, wiped when dropped.
pub struct Revealed(Zeroizing<Vec<u8>>);

#[diversify]
impl Revealed {
    /// The plain bytes.
    #[must_use]
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

#[diversify]
impl Deref for Revealed {
    type Target = str;

    /// The plain text (empty if the bytes were not a string literal's).
    fn deref(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("")
    }
}

#[diversify]
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Decrypts `enc` under `key`. Both pass through [`black_box`]: the
/// optimiser must not fold the decryption back into the plain constant.
#[must_use]
#[inline(never)]
pub fn reveal(enc: &[u8], key: u64) -> Revealed {
    let enc = black_box(enc);
    let mut state = black_box(key);
    let mut out = Zeroizing::new(Vec::with_capacity(enc.len()));
    for chunk in enc.chunks(8) {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let word = mix(state).to_le_bytes();
        out.extend(chunk.iter().zip(word).map(|(c, k)| c ^ k));
    }
    Revealed(out)
}

#[cfg(test)]
mod tests {
    use crate::{obf, obf_bytes, protect};

    #[protect]
    fn with_literals(x: u32) -> (u32, u8, i64, usize) {
        let table = [7u8; 4];
        let mut acc = 0u32;
        for k in 0..3 {
            acc += x * 2 + k;
        }
        (acc, table[1] + 248, -5 - 1_000_000_000_000, usize::MAX - 1)
    }

    #[test]
    fn protected_functions_compute_what_they_did() {
        assert_eq!(
            with_literals(10),
            (63, 255, -1_000_000_000_005, usize::MAX - 1)
        );
    }

    #[test]
    fn reveals_what_was_written() {
        assert_eq!(&*obf!("/proc/self/status"), "/proc/self/status");
        assert_eq!(&*obf!(""), "");
        assert_eq!(obf_bytes!(b"label\x00\xff").bytes(), b"label\x00\xff");
        let long = "a string longer than one keystream word, with unicode: é∑";
        assert_eq!(
            &*obf!("a string longer than one keystream word, with unicode: é∑"),
            long
        );
    }
}
