//! A program's constants as a running twin holds them: each one's bits
//! XOR a random mask, the masks in an allocation of their own, so that no
//! constant (a parameter, or what the compiler folded parameters into)
//! sits in plain in a long-lived buffer. The VM decodes them into its
//! registers for one evaluation and wipes them after it. Decoding is one
//! XOR per constant: the VM pays little for it.

use twinshield_shield_macros::diversify;

/// Masked constants (see the module).
#[derive(Clone)]
pub(crate) struct Constants {
    words: Vec<u64>,
    masks: Vec<u64>,
}

/// Mask `i` of a program whose masks are drawn from `key`: SplitMix64's
/// output function over the key and the index.
fn mask(key: u64, i: usize) -> u64 {
    let mut z = key.wrapping_add((i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A fresh key: std's randomly seeded hasher, so the model crate needs no
/// random number generator of its own.
fn fresh_key() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0x7477_696e_7368_6c64);
    h.finish()
}

#[diversify]
impl Constants {
    /// Masks the bit patterns `bits` (an iterator, so that a decoder can
    /// mask each constant as it reads it and never holds them in plain).
    pub(crate) fn from_bits(bits: impl IntoIterator<Item = u64>) -> Self {
        let key = fresh_key();
        let (words, masks) = bits
            .into_iter()
            .enumerate()
            .map(|(i, b)| (b ^ mask(key, i), mask(key, i)))
            .unzip();
        Constants { words, masks }
    }

    /// Masks `values`.
    pub(crate) fn new(values: &[f64]) -> Self {
        Self::from_bits(values.iter().map(|v| v.to_bits()))
    }

    /// How many there are.
    pub(crate) fn len(&self) -> usize {
        self.words.len()
    }

    /// Constant `i`, decoded; `None` past the end.
    #[inline]
    pub(crate) fn get(&self, i: usize) -> Option<f64> {
        let (w, m) = (self.words.get(i)?, self.masks.get(i)?);
        Some(f64::from_bits(w ^ m))
    }

    /// Every constant, decoded one at a time.
    pub(crate) fn iter(&self) -> impl Iterator<Item = f64> + '_ {
        (0..self.words.len()).filter_map(|i| self.get(i))
    }

    /// Decodes every constant into `slots` (as many as there are).
    #[inline]
    pub(crate) fn load_into(&self, slots: &mut [f64]) {
        for (slot, (w, m)) in slots.iter_mut().zip(self.words.iter().zip(&self.masks)) {
            *slot = f64::from_bits(w ^ m);
        }
    }
}

impl PartialEq for Constants {
    /// Equal when they decode to the same bit patterns, whatever the keys.
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len()
            && self
                .iter()
                .map(f64::to_bits)
                .eq(other.iter().map(f64::to_bits))
    }
}

impl std::fmt::Debug for Constants {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Constants({} masked)", self.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_decode_to_what_was_masked_and_are_not_stored_plain() {
        let values = [0.071, 28.0, -3.5e-7, f64::MAX];
        let c = Constants::new(&values);
        assert_eq!(c.iter().collect::<Vec<_>>(), values);
        for (w, v) in c.words.iter().zip(values) {
            assert_ne!(*w, v.to_bits());
        }
        let mut slots = [0.0; 4];
        c.load_into(&mut slots);
        assert_eq!(slots, values);
        // Two maskings of the same values differ, and compare equal.
        let d = Constants::new(&values);
        assert_ne!(c.words, d.words);
        assert_eq!(c, d);
    }
}
