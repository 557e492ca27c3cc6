//! Where each table of twinshield's white-box lives in its table image.
//!
//! The image is one flat byte string, so that build.rs can write it to a
//! file, the binary can embed it with `include_bytes!`, and the evaluator
//! can check it with a single length comparison. Every table is a byte
//! table: type II tables are stored as four 256-byte tables (one per output
//! byte), XOR and combine tables as 65,536-byte tables indexed by two
//! encoded bytes (`(a << 8) | b`).
//!
//! Per lane (two redundant lanes), per round 1 to 9: 64 type II byte tables,
//! then the two XOR tables of the round. Then the lane's 16 last-round
//! tables. After both lanes, the 16 combine tables.

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

// The budget for the tables in the binary.
const _: () = assert!(TOTAL <= 4_000_000);

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
