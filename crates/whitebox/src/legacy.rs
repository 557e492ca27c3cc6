//! The previous construction (v2), broken by the red team (issue 18): kept
//! as the attack harness's second fixture. **Deliberately weak: a test
//! fixture, never shipped** (feature `textbook`).
//!
//! Byte-wide encodings, type II tables per input byte and row, but only
//! four byte encodings per round and lane, shared by all positions (the XOR
//! tables are shared), and no input encoding: round 1 reads the plain byte.
//! Two round-1 tables with the same output encoding and coefficient, one
//! composed with the other's inverse, are a translation by the difference of
//! two key bytes. Only the tables are kept (the attacks read them); the
//! image is [`layout::TOTAL`] bytes in the layout below.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::aes_ref::{MIX, SBOX, SHIFT_ROWS_SRC, expand_key, gmul};
use crate::generate::{ByteBijection, Decode, combine, last_round};

/// Where each table of the v2 image lives.
pub mod layout {
    /// Redundant lanes: each computes the whole cipher under its own encodings.
    pub const LANES: usize = 2;
    /// Rounds computed with type II and XOR tables (AES rounds 1 to 9).
    pub const MIXING_ROUNDS: usize = 9;
    /// Bytes of a table indexed by one byte.
    pub const BYTE_TABLE: usize = 256;
    /// Bytes of a table indexed by two bytes.
    pub const PAIR_TABLE: usize = 256 * 256;
    /// Bytes of one round's type II tables (16 input bytes × 4 output bytes).
    pub const TYPE2_ROUND: usize = 16 * 4 * BYTE_TABLE;
    /// Bytes of one round of one lane.
    pub const ROUND: usize = TYPE2_ROUND + 2 * PAIR_TABLE;
    /// Bytes of one lane's last-round tables.
    pub const LAST: usize = 16 * BYTE_TABLE;
    /// Bytes of one lane.
    pub const LANE: usize = MIXING_ROUNDS * ROUND + LAST;
    /// Bytes of the combine tables.
    pub const COMBINE: usize = 16 * PAIR_TABLE;
    /// Bytes of the whole table image.
    pub const TOTAL: usize = LANES * LANE + COMBINE;

    /// Type II table of `lane`, round index `r` (0 to 8), output word `i`
    /// (ShiftRows position), output byte `m` (MixColumns row).
    #[must_use]
    pub const fn type2(lane: usize, r: usize, i: usize, m: usize) -> usize {
        lane * LANE + r * ROUND + (i * 4 + m) * BYTE_TABLE
    }

    /// First-level XOR table of `lane`, round index `r`.
    #[must_use]
    pub const fn xor1(lane: usize, r: usize) -> usize {
        lane * LANE + r * ROUND + TYPE2_ROUND
    }

    /// Second-level XOR table of `lane`, round index `r`.
    #[must_use]
    pub const fn xor2(lane: usize, r: usize) -> usize {
        xor1(lane, r) + PAIR_TABLE
    }

    /// Last-round table of `lane` for output byte `i`.
    #[must_use]
    pub const fn last(lane: usize, i: usize) -> usize {
        lane * LANE + MIXING_ROUNDS * ROUND + i * BYTE_TABLE
    }

    /// Combine table of output byte `i`.
    #[must_use]
    pub const fn combine(i: usize) -> usize {
        LANES * LANE + i * PAIR_TABLE
    }
}

/// Generates the v2 table image ([`layout::TOTAL`] bytes) for `aes_key`,
/// the output under the external encoding of `encoding_key`, the internal
/// encodings drawn from `seed`.
#[must_use]
pub fn generate_v2(aes_key: &[u8; 16], encoding_key: &[u8; 16], seed: u64) -> Vec<u8> {
    let round_keys = expand_key(aes_key);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
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
        let decode: [Decode; 16] = std::array::from_fn(|_| state.dec_table());
        let at = |i: usize| layout::last(lane, i);
        lane_out.push(last_round(&mut image, at, &round_keys, &decode, &mut rng));
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

/// Fills the pair table at `at` with `f(u, v)` at index `(u << 8) | v`.
fn pair_table(image: &mut [u8], at: usize, f: impl Fn(u8, u8) -> u8) {
    for (index, entry) in image[at..at + layout::PAIR_TABLE].iter_mut().enumerate() {
        *entry = f((index >> 8) as u8, index as u8);
    }
}
