//! Values that show tampering: the twin's parameters and decisive state
//! kept only in a masked, redundant form, so that a write into the
//! process's memory (root through `/proc/PID/mem`, a debugger's poke)
//! either changes nothing the twin decides or is found.
//!
//! Two shapes, for two kinds of data:
//!
//! - [`Sealed`]: one `f64` held as two words, `masked = bits ⊕ K₀` and
//!   `tag = (masked ⊕ K₁) · M` (wrapping, `M` odd), under keys drawn from
//!   the operating system once per process ([`Keys`]). The plain bit
//!   pattern of the value is never stored, so scanning memory for a known
//!   parameter (a variance, a threshold) finds nothing. Any change of one
//!   word (one aligned 8-byte write) breaks `tag = T(masked)` for certain,
//!   because `x ↦ (x ⊕ K₁) · M` is a bijection; a write straddling both
//!   words matches only by chance (about 2⁻⁶⁴ for unknown keys).
//!   A broken cell stays broken when it is rewritten: [`Sealed::set`]
//!   carries the old cell's *fault* (`tag ⊕ T(masked)`, zero when intact)
//!   into the new one, so state rewritten every step cannot launder a
//!   write before the next check. Reads on the hot path ([`Sealed::get`])
//!   only unmask (one XOR); [`Sealed::check`] and [`faults`] verify, and the
//!   owners verify their groups once per step or at least once a second.
//! - [`Digest`]: a keyed checksum over plain slices that are rewritten
//!   whole every step (the estimator's state and covariance), sealed at the
//!   end of each step and verified at the start of the next. It is
//!   `K₁ + Σᵢ (bitsᵢ ⊕ K₀) · (M + 2i)`: each term is an odd multiple,
//!   so changing any one word (or the digest itself) changes the sum for
//!   certain.
//!
//! A failed check is a [`Tampered`] error, which the twin refuses the
//! sample with and the runtime turns into a shield tamper finding.
//!
//! What this does not stop: an attacker who reads the keys from this
//! process's memory (they sit in one static, [`Keys::get`]) and rewrites
//! value and tag together, or who patches the code that checks. It turns
//! "overwrite one double" into "find the keys, understand the encoding,
//! and write both words of every value consistently".
//!
//! ```
//! use twinshield_entangle::Sealed;
//!
//! let mut threshold = Sealed::new(14.0);
//! assert_eq!(threshold.get(), 14.0);
//! assert_eq!(threshold.check(), Ok(14.0));
//! threshold.set(8.0);
//! assert_eq!(threshold.check(), Ok(8.0));
//! ```
#![forbid(unsafe_code)]

use std::sync::OnceLock;
use thiserror::Error;
use twinshield_shield_macros::diversify;

/// A value or group that was changed from outside the code that owns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("{what} changed in memory outside the twin's code")]
pub struct Tampered {
    /// Which group (e.g. `"cusum parameters"`); never a value.
    pub what: &'static str,
}

/// The per-process keys of every [`Sealed`] cell and [`Digest`].
#[derive(Clone, Copy)]
pub struct Keys {
    mask: u64,
    tweak: u64,
    mul: u64,
}

static KEYS: OnceLock<Keys> = OnceLock::new();

// The hot helpers carry no `#[diversify]` guards: they inline into every
// read and write of a cell, inside callers that carry their own.
impl Keys {
    /// The process's keys, drawn on first use: from the operating system's
    /// random source, or, should that fail, from std's randomly keyed
    /// hasher (itself seeded from the operating system).
    #[inline(always)]
    pub fn get() -> &'static Keys {
        match KEYS.get() {
            Some(keys) => keys,
            None => Keys::init(),
        }
    }

    /// The tag a cell whose masked word is `masked` must carry.
    #[inline(always)]
    pub fn tag(&self, masked: u64) -> u64 {
        (masked ^ self.tweak).wrapping_mul(self.mul)
    }

    /// The masked word of `value`.
    #[inline(always)]
    pub fn mask(&self, value: f64) -> u64 {
        value.to_bits() ^ self.mask
    }

    /// The value of a masked word.
    #[inline(always)]
    pub fn unmask(&self, masked: u64) -> f64 {
        f64::from_bits(masked ^ self.mask)
    }
}

#[diversify]
impl Keys {
    #[cold]
    #[inline(never)]
    fn init() -> &'static Keys {
        KEYS.get_or_init(Keys::draw)
    }

    fn draw() -> Keys {
        let mut raw = [0u8; 24];
        if getrandom::fill(&mut raw).is_err() {
            use std::hash::{BuildHasher, Hasher};
            let state = std::collections::hash_map::RandomState::new();
            for (i, chunk) in raw.chunks_mut(8).enumerate() {
                let mut h = state.build_hasher();
                h.write_usize(i);
                chunk.copy_from_slice(&h.finish().to_le_bytes());
            }
        }
        let word = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(raw.get(i * 8..i * 8 + 8).unwrap_or(&[0; 8]));
            u64::from_le_bytes(w)
        };
        Keys {
            mask: word(0),
            tweak: word(1),
            mul: word(2) | 1,
        }
    }

    /// Keys from three words, for tests that need a fixed encoding (the
    /// running process always uses [`Keys::get`]).
    pub fn from_words(mask: u64, tweak: u64, mul: u64) -> Keys {
        Keys {
            mask,
            tweak,
            mul: mul | 1,
        }
    }
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(..)")
    }
}

/// One `f64` kept masked with a redundant tag (see the crate's
/// documentation). Sixteen bytes, 16-aligned, so one cell never spans two
/// cache lines.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(C, align(16))]
pub struct Sealed {
    masked: u64,
    tag: u64,
}

impl Sealed {
    /// A cell holding `value`.
    #[inline]
    pub fn new(value: f64) -> Sealed {
        Sealed::with_keys(Keys::get(), value)
    }

    /// A cell holding `value` under `keys`.
    #[inline(always)]
    pub fn with_keys(keys: &Keys, value: f64) -> Sealed {
        let masked = keys.mask(value);
        Sealed {
            masked,
            tag: keys.tag(masked),
        }
    }

    /// The value, unmasked but not verified (one XOR): for the hot path,
    /// whose owner verifies the cell with [`faults`] at least once a
    /// second and before anything it decides leaves the twin.
    #[inline(always)]
    pub fn get(&self) -> f64 {
        Keys::get().unmask(self.masked)
    }

    /// [`Sealed::get`] under `keys` (from [`Keys::get`]), for loops that
    /// fetch the keys once.
    #[inline(always)]
    pub fn get_with(&self, keys: &Keys) -> f64 {
        keys.unmask(self.masked)
    }

    /// Zero if the cell is intact, non-zero if either word was changed
    /// from outside (or was rewritten while broken).
    #[inline(always)]
    pub fn fault(&self) -> u64 {
        self.fault_with(Keys::get())
    }

    #[inline(always)]
    fn fault_with(&self, keys: &Keys) -> u64 {
        self.tag ^ keys.tag(self.masked)
    }

    /// The value if the cell is intact.
    #[inline]
    pub fn check(&self) -> Result<f64, Tampered> {
        let keys = Keys::get();
        if self.fault_with(keys) == 0 {
            Ok(keys.unmask(self.masked))
        } else {
            Err(Tampered {
                what: "a sealed value",
            })
        }
    }

    /// Stores `value`, carrying the cell's fault: a broken cell stays
    /// broken.
    #[inline(always)]
    pub fn set(&mut self, value: f64) {
        self.set_with(Keys::get(), value);
    }

    /// [`Sealed::set`] under `keys` (from [`Keys::get`]).
    #[inline(always)]
    pub fn set_with(&mut self, keys: &Keys, value: f64) {
        self.set_carrying_with(keys, value, 0);
    }

    /// Stores `value`, carrying the cell's own fault and `fault` (another
    /// cell's, whose value went into this one).
    #[inline(always)]
    pub fn set_carrying(&mut self, value: f64, fault: u64) {
        self.set_carrying_with(Keys::get(), value, fault);
    }

    /// [`Sealed::set_carrying`] under `keys` (from [`Keys::get`]).
    #[inline(always)]
    pub fn set_carrying_with(&mut self, keys: &Keys, value: f64, fault: u64) {
        let fault = self.fault_with(keys) | fault;
        self.masked = keys.mask(value);
        self.tag = keys.tag(self.masked) ^ fault;
    }

    /// The cell's fault under `keys` (from [`Keys::get`]).
    #[inline(always)]
    pub fn fault_under(&self, keys: &Keys) -> u64 {
        self.fault_with(keys)
    }

    /// The two stored words (masked value, tag): what a memory scanner sees.
    pub fn words(&self) -> [u64; 2] {
        [self.masked, self.tag]
    }

    /// A cell from two stored words, for tests that model a write into
    /// memory.
    pub fn from_words(words: [u64; 2]) -> Sealed {
        Sealed {
            masked: words[0],
            tag: words[1],
        }
    }
}

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.fault() == 0 {
            write!(f, "Sealed({})", self.get())
        } else {
            f.write_str("Sealed(<tampered>)")
        }
    }
}

/// Cells holding `values`, in order.
pub fn seal_all(values: impl IntoIterator<Item = f64>) -> Vec<Sealed> {
    let keys = Keys::get();
    values
        .into_iter()
        .map(|v| Sealed::with_keys(keys, v))
        .collect()
}

/// The OR of the cells' faults: zero iff every cell is intact.
#[inline]
pub fn faults(cells: &[Sealed]) -> u64 {
    let keys = Keys::get();
    cells.iter().fold(0, |acc, c| acc | c.fault_with(keys))
}

/// `Ok` if `fault` (from [`Sealed::fault`] or [`faults`]) is zero, else
/// [`Tampered`] naming `what`.
#[inline]
pub fn verify(fault: u64, what: &'static str) -> Result<(), Tampered> {
    if fault == 0 {
        Ok(())
    } else {
        Err(Tampered { what })
    }
}

/// A keyed checksum over plain slices (see the crate's documentation).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Digest {
    word: u64,
}

impl Digest {
    /// The digest of `parts`, taken as one sequence.
    #[inline]
    pub fn of(parts: &[&[f64]]) -> Digest {
        Digest {
            word: digest_with(Keys::get(), parts),
        }
    }

    /// Seals `parts`: the next [`Digest::verify`] compares against them.
    #[inline]
    pub fn seal(&mut self, parts: &[&[f64]]) {
        *self = Digest::of(parts);
    }

    /// `Ok` if `parts` are what was sealed, else [`Tampered`] naming `what`.
    #[inline]
    pub fn verify(&self, parts: &[&[f64]], what: &'static str) -> Result<(), Tampered> {
        verify(self.word ^ digest_with(Keys::get(), parts), what)
    }
}

impl std::fmt::Debug for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Digest(..)")
    }
}

/// `K₁ + Σᵢ (bitsᵢ ⊕ K₀) · (M + 2i)`, wrapping; `M` is odd, so every
/// multiplier is, and changing one word changes its term for certain.
#[inline]
fn digest_with(keys: &Keys, parts: &[&[f64]]) -> u64 {
    let mut multiplier = keys.mul;
    let mut sum = keys.tweak;
    for part in parts {
        for v in *part {
            sum = sum.wrapping_add((v.to_bits() ^ keys.mask).wrapping_mul(multiplier));
            multiplier = multiplier.wrapping_add(2);
        }
    }
    sum
}

#[cfg(test)]
mod tests;
