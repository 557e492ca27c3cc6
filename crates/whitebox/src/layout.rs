//! Where each table of twinshield's white-box lives in its table image.
//!
//! The image is one flat byte string, so that build.rs can write it to a
//! file, the binary can embed it with `include_bytes!`, and the evaluator
//! can check it with a single length comparison.
//!
//! - the 16 input-encoding tables (256 bytes each);
//! - per lane (two redundant lanes):
//!   - round 1: 64 byte-wide type II tables (one per input byte and
//!     MixColumns row), then per output byte three byte-wide XOR tables
//!     (65,536 bytes each, indexed `(a << 8) | b`);
//!   - rounds 2 to 9 (Chow): 16 type II tables of 256 little-endian 32-bit
//!     words, 96 nibble XOR tables (256 bytes, indexed `(a << 4) | b`), 16
//!     type III tables of 256 words, 96 nibble XOR tables;
//!   - the 16 last-round tables (256 bytes);
//! - the 16 combine tables (65,536 bytes each).

/// Redundant lanes: each computes the whole cipher under its own encodings.
pub const LANES: usize = 2;
/// Rounds computed with Chow's type II / XOR / type III / XOR tables (AES
/// rounds 2 to 9).
pub const MIDDLE_ROUNDS: usize = 8;
/// Bytes of a table indexed by one byte.
pub const BYTE_TABLE: usize = 256;
/// Bytes of a table indexed by two bytes.
pub const PAIR_TABLE: usize = 256 * 256;
/// Bytes of a table of 256 32-bit words.
pub const WORD_TABLE: usize = 4 * 256;
/// Bytes of the input-encoding tables.
pub const INPUT: usize = 16 * BYTE_TABLE;
/// Bytes of round 1's type II tables (16 input bytes × 4 rows).
pub const R1_TYPE2: usize = 16 * 4 * BYTE_TABLE;
/// Bytes of round 1's XOR tables (16 output bytes × 3).
pub const R1_XOR: usize = 16 * 3 * PAIR_TABLE;
/// Nibble XOR tables of one stage of a middle round (4 columns × 8 nibbles
/// × 3).
pub const XOR_STAGE_TABLES: usize = 96;
/// Bytes of one stage of nibble XOR tables.
pub const XOR_STAGE: usize = XOR_STAGE_TABLES * BYTE_TABLE;
/// Bytes of one middle round of one lane.
pub const MIDDLE_ROUND: usize = 2 * (16 * WORD_TABLE + XOR_STAGE);
/// Bytes of one lane's last-round tables.
pub const LAST: usize = 16 * BYTE_TABLE;
/// Bytes of one lane.
pub const LANE: usize = R1_TYPE2 + R1_XOR + MIDDLE_ROUNDS * MIDDLE_ROUND + LAST;
/// Bytes of the combine tables.
pub const COMBINE: usize = 16 * PAIR_TABLE;
/// Bytes of the whole table image.
pub const TOTAL: usize = INPUT + LANES * LANE + COMBINE;

// The budget for the tables in the binary (16 MB).
const _: () = assert!(TOTAL <= 16_000_000);

/// Input-encoding table of input byte `i`.
#[must_use]
pub const fn input(i: usize) -> usize {
    i * BYTE_TABLE
}

const fn lane_base(lane: usize) -> usize {
    INPUT + lane * LANE
}

/// Round-1 type II table of `lane`, ShiftRows position `i`, row `m`.
#[must_use]
pub const fn r1_type2(lane: usize, i: usize, m: usize) -> usize {
    lane_base(lane) + (i * 4 + m) * BYTE_TABLE
}

/// Round-1 XOR table `level` (0: words 0 and 1, 1: words 2 and 3, 2: the
/// two sums) of `lane` for output byte `p`.
#[must_use]
pub const fn r1_xor(lane: usize, p: usize, level: usize) -> usize {
    lane_base(lane) + R1_TYPE2 + (p * 3 + level) * PAIR_TABLE
}

const fn middle_base(lane: usize, r: usize) -> usize {
    lane_base(lane) + R1_TYPE2 + R1_XOR + r * MIDDLE_ROUND
}

/// Type II word table of `lane`, middle round `r` (AES round `r + 2`),
/// ShiftRows position `i`.
#[must_use]
pub const fn mid_type2(lane: usize, r: usize, i: usize) -> usize {
    middle_base(lane, r) + i * WORD_TABLE
}

/// First nibble XOR table of `stage` (0: after type II, 1: after type
/// III) of `lane`, middle round `r`; table `t` of the stage is at
/// `+ t * BYTE_TABLE`.
#[must_use]
pub const fn mid_xor(lane: usize, r: usize, stage: usize) -> usize {
    middle_base(lane, r) + 16 * WORD_TABLE + stage * (XOR_STAGE + 16 * WORD_TABLE)
}

/// Type III word table of `lane`, middle round `r`, byte `i` of the sum.
#[must_use]
pub const fn mid_type3(lane: usize, r: usize, i: usize) -> usize {
    middle_base(lane, r) + 16 * WORD_TABLE + XOR_STAGE + i * WORD_TABLE
}

/// Last-round table of `lane` for output byte `i`.
#[must_use]
pub const fn last(lane: usize, i: usize) -> usize {
    middle_base(lane, MIDDLE_ROUNDS) + i * BYTE_TABLE
}

/// Combine table of output byte `i`.
#[must_use]
pub const fn combine(i: usize) -> usize {
    INPUT + LANES * LANE + i * PAIR_TABLE
}
