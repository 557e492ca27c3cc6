//! A 32-byte key kept split in two: a random mask and the key XOR the mask,
//! in two separate heap allocations. No place in memory holds the key
//! between uses, so a scan of the process for the key's bytes finds
//! nothing; the key is put together on the stack only inside
//! [`MaskedKey::with`] and wiped when the closure returns.

use twinshield_shield_macros::diversify;
use zeroize::{Zeroize, Zeroizing};

/// A key split into a random mask and the masked key (see the module).
pub struct MaskedKey {
    mask: Box<[u8; 32]>,
    masked: Box<[u8; 32]>,
}

#[diversify]
impl std::fmt::Debug for MaskedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MaskedKey(..)")
    }
}

#[diversify]
impl MaskedKey {
    /// `key`, split under a fresh random mask. Should the system's random
    /// number generator fail, the mask is derived from the allocation's
    /// address and the time: the key is still split, if less well.
    pub fn new(key: &[u8; 32]) -> Self {
        let mut mask = Box::new([0u8; 32]);
        if getrandom::fill(mask.as_mut_slice()).is_err() {
            fallback_mask(&mut mask);
        }
        let mut masked = Box::new([0u8; 32]);
        for ((m, k), r) in masked.iter_mut().zip(key).zip(mask.iter()) {
            *m = k ^ r;
        }
        MaskedKey { mask, masked }
    }

    /// Runs `f` with the key put together in a buffer that is wiped when
    /// `f` returns, and then wipes the stack `f` ran on: a cipher's or a
    /// KDF's frames keep copies of what they computed from the key.
    pub fn with<R>(&self, f: impl FnOnce(&[u8; 32]) -> R) -> R {
        let out = {
            let mut key = Zeroizing::new([0u8; 32]);
            for ((k, m), r) in key.iter_mut().zip(self.masked.iter()).zip(self.mask.iter()) {
                *k = m ^ r;
            }
            f(&key)
        };
        scrub_stack();
        out
    }
}

/// Bytes of stack [`scrub_stack`] overwrites: deeper than the key
/// derivations and ciphers it runs after (ChaCha20, HKDF, Ed25519 signing),
/// whose frames in an unoptimised build run past 16 KiB.
const SCRUBBED: usize = 64 * 1024;

/// Overwrites the stack below the caller's frame with zeros: the frames of
/// the functions the caller has just returned from, and the copies of keys
/// they left there. Never inlined, so its buffer lies where they lay.
#[inline(never)]
pub fn scrub_stack() {
    // Initialised in full (one memset) and handed to `black_box`, which
    // the compiler must assume reads all of it: the zeros are written.
    let frame = [0u8; SCRUBBED];
    std::hint::black_box(&frame);
}

/// A mask of last resort, from what the process has without randomness.
fn fallback_mask(mask: &mut [u8; 32]) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let seed = (now as u64) ^ (std::ptr::from_ref(mask) as usize as u64);
    let mut x = seed | 1;
    for b in mask.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
}

impl Drop for MaskedKey {
    fn drop(&mut self) {
        self.mask.zeroize();
        self.masked.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_put_together_only_inside_a_use() {
        let key = [0x5au8; 32];
        let m = MaskedKey::new(&key);
        assert_eq!(m.with(|k| *k), key);
        assert_ne!(*m.mask, key);
        assert_ne!(*m.masked, key);
        // Two splits of one key share neither half.
        let n = MaskedKey::new(&key);
        assert_ne!(*m.mask, *n.mask);
        assert_eq!(n.with(|k| *k), key);
    }
}
