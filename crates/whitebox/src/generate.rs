//! Generation of twinshield's white-box AES-128 tables.
//!
//! Runs at build time (build.rs includes this module and its two
//! dependencies, [`crate::aes_ref`] and [`crate::layout`], by path) and in
//! tests. The construction, from Chow et al. (2002) with the textbook's
//! known failures answered:
//!
//! - **byte-wide encodings.** Every value the evaluator reads is a random
//!   bijection of a whole byte; no value is two concatenated nibble
//!   encodings (the property differential computation analysis exploits in
//!   the textbook design). A first-round value is then a random function of
//!   one S-box output, which correlates with the right key guess no more
//!   than with any wrong one.
//! - **T-boxes merged with the round key and MixColumns (Tyi)**, one type II
//!   byte table per input byte and output row, whose outputs feed byte-wide
//!   XOR tables (two encoded bytes in, one out). The XOR tables are shared by
//!   the positions of a round: byte-wide XOR tables are 64 KiB each, and one
//!   per position would not fit the 4 MB budget.
//! - **two redundant lanes** with independent encodings, each computing the
//!   whole cipher; **combine tables** take both lanes' encoded output bytes
//!   and return the output byte only when the lanes agree, and a random byte
//!   when they do not, so a fault in one lane yields garbage rather than the
//!   faulty ciphertext that differential fault analysis needs.
//! - **external output encoding.** The combine tables return the output
//!   under 16 byte bijections drawn from the secret's encoding key (not from
//!   the build seed, so keys derived from the output stay the same across
//!   releases); the AES output never appears in plain.
//!
//! All internal encodings and the combine tables' garbage are drawn from
//! ChaCha8 keyed by the encoding key and the build seed: every release gets
//! different tables, and knowing the seed alone gives nothing.

use rand::{Rng, RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use twinshield_shield_macros::diversify;

use crate::aes_ref::{MIX, SBOX, SHIFT_ROWS_SRC, expand_key, gmul};
use crate::layout;

/// A bijection on bytes, with its inverse.
#[derive(Clone, PartialEq, Eq)]
pub struct ByteBijection {
    enc: [u8; 256],
    dec: [u8; 256],
}

#[diversify]
impl ByteBijection {
    /// The identity.
    #[must_use]
    pub fn identity() -> Self {
        let mut enc = [0u8; 256];
        for (i, e) in (0u8..=255).zip(enc.iter_mut()) {
            *e = i;
        }
        Self { enc, dec: enc }
    }

    /// A uniformly random bijection (Fisher-Yates).
    pub fn random<R: Rng + ?Sized>(rng: &mut R) -> Self {
        let mut enc = Self::identity().enc;
        for i in (1..256).rev() {
            let j = rng.random_range(0..=i);
            enc.swap(i, j);
        }
        let mut dec = [0u8; 256];
        for (i, &e) in (0u8..=255).zip(enc.iter()) {
            dec[usize::from(e)] = i;
        }
        Self { enc, dec }
    }

    /// Encodes `x`.
    #[must_use]
    pub fn enc(&self, x: u8) -> u8 {
        self.enc[usize::from(x)]
    }

    /// Decodes `x`.
    #[must_use]
    pub fn dec(&self, x: u8) -> u8 {
        self.dec[usize::from(x)]
    }
}

/// The external output encoding: one byte bijection per output byte, drawn
/// from the secret's encoding key alone.
#[derive(Clone)]
pub struct OutputEncoding {
    bytes: [ByteBijection; 16],
}

#[diversify]
impl OutputEncoding {
    /// The output encoding of `encoding_key`.
    #[must_use]
    pub fn from_key(encoding_key: &[u8; 16]) -> Self {
        let mut rng = ChaCha8Rng::from_seed(stream_seed(encoding_key, b"output encoding v1", 0));
        Self {
            bytes: std::array::from_fn(|_| ByteBijection::random(&mut rng)),
        }
    }

    /// Decodes an encoded output block to the plain AES output (test and
    /// harness use: the runtime consumes the encoded output as it is).
    #[must_use]
    pub fn decode(&self, block: &[u8; 16]) -> [u8; 16] {
        std::array::from_fn(|i| self.bytes[i].dec(block[i]))
    }
}

/// A ChaCha8 seed for one purpose: the encoding key, a purpose label and
/// the build seed.
#[diversify]
fn stream_seed(encoding_key: &[u8; 16], purpose: &[u8], seed: u64) -> [u8; 32] {
    let mut out = [0u8; 32];
    out[..16].copy_from_slice(encoding_key);
    out[16..24].copy_from_slice(&seed.to_le_bytes());
    // The purpose separates streams: fold it into the last 8 bytes.
    for (k, &b) in purpose.iter().enumerate() {
        out[24 + k % 8] = out[24 + k % 8].rotate_left(3) ^ b;
    }
    out
}

/// Generates the table image ([`layout::TOTAL`] bytes) that computes
/// AES-128 under `aes_key`, with the output under the external encoding of
/// `encoding_key`, diversified by `seed`.
#[must_use]
#[diversify]
pub fn generate(aes_key: &[u8; 16], encoding_key: &[u8; 16], seed: u64) -> Vec<u8> {
    let round_keys = expand_key(aes_key);
    let mut rng = ChaCha8Rng::from_seed(stream_seed(encoding_key, b"internal encodings v1", seed));
    let mut image = vec![0u8; layout::TOTAL];
    let mut lane_out: Vec<[ByteBijection; 16]> = Vec::with_capacity(layout::LANES);

    for lane in 0..layout::LANES {
        // The first round reads the plain input block.
        let mut state = ByteBijection::identity();
        for (r, round_key) in round_keys.iter().take(layout::MIXING_ROUNDS).enumerate() {
            // Type II outputs of even and odd words of a column are encoded
            // by `a` and `b`; the first-level sums by `c`; the round's output
            // (the next state) by `d`.
            let [a, b, c, d] = [(); 4].map(|()| ByteBijection::random(&mut rng));
            for (i, &src) in SHIFT_ROWS_SRC.iter().enumerate() {
                let k = i % 4;
                let enc = if k % 2 == 0 { &a } else { &b };
                for (m, mix_row) in MIX.iter().enumerate() {
                    let at = layout::type2(lane, r, i, m);
                    let table = &mut image[at..at + layout::BYTE_TABLE];
                    for (e, entry) in (0u8..=255).zip(table.iter_mut()) {
                        let s = SBOX[usize::from(state.dec(e) ^ round_key[src])];
                        *entry = enc.enc(gmul(mix_row[k], s));
                    }
                }
            }
            pair_table(&mut image, layout::xor1(lane, r), |u, v| {
                c.enc(a.dec(u) ^ b.dec(v))
            });
            pair_table(&mut image, layout::xor2(lane, r), |u, v| {
                d.enc(c.dec(u) ^ c.dec(v))
            });
            state = d;
        }
        let out: [ByteBijection; 16] = std::array::from_fn(|_| ByteBijection::random(&mut rng));
        for (i, &src) in SHIFT_ROWS_SRC.iter().enumerate() {
            let at = layout::last(lane, i);
            let table = &mut image[at..at + layout::BYTE_TABLE];
            for (e, entry) in (0u8..=255).zip(table.iter_mut()) {
                let s = SBOX[usize::from(state.dec(e) ^ round_keys[9][src])];
                *entry = out[i].enc(s ^ round_keys[10][i]);
            }
        }
        lane_out.push(out);
    }

    let external = OutputEncoding::from_key(encoding_key);
    if let [first, second] = lane_out.as_slice() {
        for i in 0..16 {
            let at = layout::combine(i);
            for (index, entry) in image[at..at + layout::PAIR_TABLE].iter_mut().enumerate() {
                let (u, v) = ((index >> 8) as u8, index as u8);
                let (x, y) = (first[i].dec(u), second[i].dec(v));
                // On disagreement (a fault in one lane), a byte unrelated to
                // either lane's value.
                let value = if x == y { x } else { rng.random::<u8>() };
                *entry = external.bytes[i].enc(value);
            }
        }
    }
    image
}

/// Fills the pair table at `at` with `f(u, v)` at index `(u << 8) | v`.
#[diversify]
fn pair_table(image: &mut [u8], at: usize, f: impl Fn(u8, u8) -> u8) {
    for (index, entry) in image[at..at + layout::PAIR_TABLE].iter_mut().enumerate() {
        *entry = f((index >> 8) as u8, index as u8);
    }
}
