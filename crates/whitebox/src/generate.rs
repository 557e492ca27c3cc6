//! Generation of twinshield's white-box AES-128 tables (construction v3).
//!
//! Runs at build time (build.rs includes this module and its dependencies,
//! [`crate::aes_ref`], [`crate::gf2`] and [`crate::layout`], by path) and in
//! tests. The construction starts from Chow et al. (2002) and answers the
//! red team's break of v2 (issue 18):
//!
//! - **no shared encoding.** Every table output has its own encoding: each
//!   round-1 type II table, each XOR table, each state byte of each round
//!   and lane. No two tables compose into a translation by a key-byte
//!   difference (the v2 break), and no encoding is the conjugate of another
//!   by a known MixColumns coefficient.
//! - **external input encoding.** The block first goes through 16 byte
//!   bijections drawn from the secret's encoding key ([`InputEncoding`]);
//!   round 1's tables read the encoded byte. (The encoding's tables are in
//!   the image: an attacker who reads them composes them away; see
//!   docs/whitebox.md.)
//! - **round 1 byte-wide**: type II tables (T-box, round key, the
//!   MixColumns coefficient) whose outputs are random byte bijections, and
//!   per output byte three byte-wide XOR tables (64 KiB each), each with its
//!   own encodings: the first-round values DCA looks at are random functions
//!   of one S-box output.
//! - **rounds 2 to 9 as Chow**: type II tables with the 32×32 mixing
//!   bijection `MB` of their column, type III tables that undo `MB` and
//!   apply the next round's 8×8 mixing bijections `L`, nibble XOR tables,
//!   every table with its own nibble encodings (byte-wide XOR tables for all
//!   nine rounds would take 27 MB a lane, over the 16 MB budget).
//! - **two redundant lanes** and **combine tables** (against fault
//!   attacks), and the **external output encoding**, as in v2.
//!
//! The external encodings are drawn from the encoding key alone (not the
//! build seed), so keys derived from the output stay the same across
//! releases; the internal ones from ChaCha8 keyed by the encoding key and
//! the build seed.

use rand::{Rng, RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use twinshield_shield_macros::diversify;

use crate::aes_ref::{MIX, RoundKeys, SBOX, SHIFT_ROWS_SRC, expand_key, gmul};
use crate::gf2::{BitMatrix, Nibble};
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

    /// The decoding as a table.
    #[must_use]
    pub fn dec_table(&self) -> Decode {
        self.dec
    }
}

/// A byte decoding as a table: what the next table must apply to its input.
pub type Decode = [u8; 256];

/// The external input encoding: one byte bijection per input byte, drawn
/// from the secret's encoding key alone (the evaluator applies it to the
/// plain block, from the image's input tables).
#[derive(Clone)]
pub struct InputEncoding {
    bytes: [ByteBijection; 16],
}

#[diversify]
impl InputEncoding {
    /// The input encoding of `encoding_key`.
    #[must_use]
    pub fn from_key(encoding_key: &[u8; 16]) -> Self {
        Self {
            bytes: keyed_bijections(encoding_key, b"input encoding v1"),
        }
    }

    /// Encodes a plain block.
    #[must_use]
    pub fn encode(&self, block: &[u8; 16]) -> [u8; 16] {
        std::array::from_fn(|i| self.bytes[i].enc(block[i]))
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
        Self {
            bytes: keyed_bijections(encoding_key, b"output encoding v1"),
        }
    }

    /// Decodes an encoded output block to the plain AES output (test and
    /// harness use: the runtime consumes the encoded output as it is).
    #[must_use]
    pub fn decode(&self, block: &[u8; 16]) -> [u8; 16] {
        std::array::from_fn(|i| self.bytes[i].dec(block[i]))
    }
}

/// Sixteen byte bijections drawn from the encoding key alone (no build
/// seed: an external encoding is the same in every release).
#[diversify]
fn keyed_bijections(encoding_key: &[u8; 16], purpose: &[u8]) -> [ByteBijection; 16] {
    let mut rng = ChaCha8Rng::from_seed(stream_seed(encoding_key, purpose, 0));
    std::array::from_fn(|_| ByteBijection::random(&mut rng))
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
/// AES-128 under `aes_key`, with the input and output under the external
/// encodings of `encoding_key`, diversified by `seed`.
#[must_use]
#[diversify]
pub fn generate(aes_key: &[u8; 16], encoding_key: &[u8; 16], seed: u64) -> Vec<u8> {
    let round_keys = expand_key(aes_key);
    let mut rng = ChaCha8Rng::from_seed(stream_seed(encoding_key, b"internal encodings v3", seed));
    let mut image = vec![0u8; layout::TOTAL];
    let input = InputEncoding::from_key(encoding_key);
    for (i, byte) in input.bytes.iter().enumerate() {
        let at = layout::input(i);
        for (x, entry) in (0u8..=255).zip(image[at..at + layout::BYTE_TABLE].iter_mut()) {
            *entry = byte.enc(x);
        }
    }
    let input_dec: [Decode; 16] = std::array::from_fn(|i| input.bytes[i].dec_table());
    let mut lane_out: Vec<[ByteBijection; 16]> = Vec::with_capacity(layout::LANES);
    for lane in 0..layout::LANES {
        let mut state = first_round(&mut image, lane, &round_keys[0], &input_dec, &mut rng);
        for r in 0..layout::MIDDLE_ROUNDS {
            let at = Round { lane, r };
            state = middle_round(&mut image, at, &round_keys[r + 1], &state, &mut rng);
        }
        let at = |i: usize| layout::last(lane, i);
        lane_out.push(last_round(&mut image, at, &round_keys, &state, &mut rng));
    }
    combine(
        &mut image,
        layout::combine,
        &lane_out,
        encoding_key,
        &mut rng,
    );
    image
}

/// Round 1 of `lane`: byte-wide type II and XOR tables, every output under
/// its own byte encoding. Returns the decodings of the round's output bytes.
#[diversify]
fn first_round(
    image: &mut [u8],
    lane: usize,
    round_key: &[u8; 16],
    input_dec: &[Decode; 16],
    rng: &mut ChaCha8Rng,
) -> [Decode; 16] {
    let enc: Vec<[ByteBijection; 4]> = (0..16)
        .map(|_| std::array::from_fn(|_| ByteBijection::random(rng)))
        .collect();
    for (i, &src) in SHIFT_ROWS_SRC.iter().enumerate() {
        for (m, mix_row) in MIX.iter().enumerate() {
            let at = layout::r1_type2(lane, i, m);
            let table = &mut image[at..at + layout::BYTE_TABLE];
            for (e, entry) in (0u8..=255).zip(table.iter_mut()) {
                let s = SBOX[usize::from(input_dec[src][usize::from(e)] ^ round_key[src])];
                *entry = enc[i][m].enc(gmul(mix_row[i % 4], s));
            }
        }
    }
    std::array::from_fn(|p| {
        let (c, m) = (p / 4, p % 4);
        let w = |k: usize| &enc[4 * c + k][m];
        let [a, b, d] = [(); 3].map(|()| ByteBijection::random(rng));
        pair_table(image, layout::r1_xor(lane, p, 0), |u, v| {
            a.enc(w(0).dec(u) ^ w(1).dec(v))
        });
        pair_table(image, layout::r1_xor(lane, p, 1), |u, v| {
            b.enc(w(2).dec(u) ^ w(3).dec(v))
        });
        pair_table(image, layout::r1_xor(lane, p, 2), |u, v| {
            d.enc(a.dec(u) ^ b.dec(v))
        });
        d.dec_table()
    })
}

/// A middle round of a lane.
#[derive(Clone, Copy)]
struct Round {
    lane: usize,
    /// Middle-round index (AES round `r + 2`).
    r: usize,
}

/// Eight random nibble encodings (one per nibble of a word).
#[diversify]
fn random_nibbles(rng: &mut ChaCha8Rng) -> [Nibble; 8] {
    std::array::from_fn(|_| Nibble::random(rng))
}

/// Encodes the eight nibbles of `word` (nibble `n` is bits `4n..4n+4`).
#[diversify]
fn encode_word(word: u32, encodings: &[Nibble; 8]) -> u32 {
    encodings.iter().enumerate().fold(0, |acc, (n, e)| {
        acc | (u32::from(e.enc((word >> (4 * n)) as u8)) << (4 * n))
    })
}

/// Writes the 32-bit table at `at` as `f(index)`, little-endian.
#[diversify]
fn word_table(image: &mut [u8], at: usize, f: impl Fn(u8) -> u32) {
    let table = &mut image[at..at + layout::WORD_TABLE];
    for (e, entry) in (0u8..=255).zip(table.chunks_exact_mut(4)) {
        entry.copy_from_slice(&f(e).to_le_bytes());
    }
}

/// A middle round (AES round `r + 2`) of Chow's construction, every table
/// with its own encodings: type II (T-box, Tyi, the column's 32×32 `MB`),
/// nibble XOR tree, type III (undo `MB`, the next round's 8×8 `L`), nibble
/// XOR tree. Returns the decodings of the round's output bytes.
#[diversify]
fn middle_round(
    image: &mut [u8],
    at: Round,
    round_key: &[u8; 16],
    state: &[Decode; 16],
    rng: &mut ChaCha8Rng,
) -> [Decode; 16] {
    let mixing: [(BitMatrix, BitMatrix); 4] =
        std::array::from_fn(|_| BitMatrix::random_invertible(32, rng));
    let ty2_enc: Vec<[Nibble; 8]> = SHIFT_ROWS_SRC
        .iter()
        .enumerate()
        .map(|(i, &src)| {
            let encodings = random_nibbles(rng);
            word_table(image, layout::mid_type2(at.lane, at.r, i), |e| {
                let s = SBOX[usize::from(state[src][usize::from(e)] ^ round_key[src])];
                let tyi = MIX.iter().enumerate().fold(0u32, |acc, (m, mix_row)| {
                    acc | (u32::from(gmul(mix_row[i % 4], s)) << (8 * m))
                });
                encode_word(mixing[i / 4].0.apply(tyi), &encodings)
            });
            encodings
        })
        .collect();
    let column_enc = xor_stage(image, layout::mid_xor(at.lane, at.r, 0), &ty2_enc, rng);
    let (next_l, next_l_inv): (Vec<BitMatrix>, Vec<BitMatrix>) = (0..16)
        .map(|_| BitMatrix::random_invertible(8, rng))
        .unzip();
    let ty3_enc: Vec<[Nibble; 8]> = (0..16)
        .map(|i| {
            let (m, column) = (i % 4, i / 4);
            let encodings = random_nibbles(rng);
            let (lo, hi) = (&column_enc[column][2 * m], &column_enc[column][2 * m + 1]);
            word_table(image, layout::mid_type3(at.lane, at.r, i), |e| {
                let b = (hi.dec(e >> 4) << 4) | lo.dec(e);
                let share = mixing[column].1.apply(u32::from(b) << (8 * m));
                let mixed = (0..4).fold(0u32, |acc, q| {
                    let byte = (share >> (8 * q)) & 0xff;
                    acc | (next_l[4 * column + q].apply(byte) << (8 * q))
                });
                encode_word(mixed, &encodings)
            });
            encodings
        })
        .collect();
    let column_enc = xor_stage(image, layout::mid_xor(at.lane, at.r, 1), &ty3_enc, rng);
    std::array::from_fn(|pos| {
        let (q, column) = (pos % 4, pos / 4);
        let (lo, hi) = (&column_enc[column][2 * q], &column_enc[column][2 * q + 1]);
        let mut dec = [0u8; 256];
        for (e, d) in (0u8..=255).zip(dec.iter_mut()) {
            let x = (hi.dec(e >> 4) << 4) | lo.dec(e);
            *d = next_l_inv[pos].apply(u32::from(x)) as u8;
        }
        dec
    })
}

/// Writes the nibble XOR trees of one stage (four columns) at `at`, adding
/// the four words of each column whose nibble encodings are
/// `inputs[4c..4c+4]`; returns each column's output nibble encodings.
#[diversify]
fn xor_stage(
    image: &mut [u8],
    at: usize,
    inputs: &[[Nibble; 8]],
    rng: &mut ChaCha8Rng,
) -> [[Nibble; 8]; 4] {
    std::array::from_fn(|column| {
        std::array::from_fn(|n| {
            let word = |k: usize| &inputs[4 * column + k][n];
            let [a, b, out] = [(); 3].map(|()| Nibble::random(rng));
            let t = at + (column * 8 + n) * 3 * layout::BYTE_TABLE;
            nibble_xor(image, t, (word(0), word(1)), &a);
            nibble_xor(image, t + layout::BYTE_TABLE, (word(2), word(3)), &b);
            nibble_xor(image, t + 2 * layout::BYTE_TABLE, (&a, &b), &out);
            out
        })
    })
}

/// Writes the nibble XOR table at `at`: entry `(u << 4) | v` is
/// `out(x(u) ^ y(v))` for the decodings of `x` and `y`.
#[diversify]
fn nibble_xor(image: &mut [u8], at: usize, (x, y): (&Nibble, &Nibble), out: &Nibble) {
    for (i, entry) in (0u8..=255).zip(image[at..at + layout::BYTE_TABLE].iter_mut()) {
        *entry = out.enc(x.dec(i >> 4) ^ y.dec(i));
    }
}

/// The last round of a lane, the table of output byte `i` at `at(i)`
/// (decode, `S(x ^ k_9)`, add `k_10`, the lane's output encoding). Returns
/// the lane's output encodings.
#[diversify]
pub(crate) fn last_round(
    image: &mut [u8],
    at: impl Fn(usize) -> usize,
    round_keys: &RoundKeys,
    state: &[Decode; 16],
    rng: &mut ChaCha8Rng,
) -> [ByteBijection; 16] {
    let out: [ByteBijection; 16] = std::array::from_fn(|_| ByteBijection::random(rng));
    for (i, &src) in SHIFT_ROWS_SRC.iter().enumerate() {
        let at = at(i);
        let table = &mut image[at..at + layout::BYTE_TABLE];
        for (e, entry) in (0u8..=255).zip(table.iter_mut()) {
            let s = SBOX[usize::from(state[src][usize::from(e)] ^ round_keys[9][src])];
            *entry = out[i].enc(s ^ round_keys[10][i]);
        }
    }
    out
}

/// The combine tables, the one of output byte `i` at `at(i)`: both lanes'
/// encoded output bytes in, the output byte under the external encoding out
/// when they agree, a random byte when they do not (a fault in one lane).
#[diversify]
pub(crate) fn combine(
    image: &mut [u8],
    at: impl Fn(usize) -> usize,
    lane_out: &[[ByteBijection; 16]],
    encoding_key: &[u8; 16],
    rng: &mut ChaCha8Rng,
) {
    let external = OutputEncoding::from_key(encoding_key);
    if let [first, second] = lane_out {
        for i in 0..16 {
            let at = at(i);
            for (index, entry) in image[at..at + layout::PAIR_TABLE].iter_mut().enumerate() {
                let (u, v) = ((index >> 8) as u8, index as u8);
                let (x, y) = (first[i].dec(u), second[i].dec(v));
                let value = if x == y { x } else { rng.random::<u8>() };
                *entry = external.bytes[i].enc(value);
            }
        }
    }
}

/// Fills the pair table at `at` with `f(u, v)` at index `(u << 8) | v`.
#[diversify]
fn pair_table(image: &mut [u8], at: usize, f: impl Fn(u8, u8) -> u8) {
    for (index, entry) in image[at..at + layout::PAIR_TABLE].iter_mut().enumerate() {
        *entry = f((index >> 8) as u8, index as u8);
    }
}
