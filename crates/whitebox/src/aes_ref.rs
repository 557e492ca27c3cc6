//! Plain AES-128 (FIPS-197): the reference the table generators build from
//! and the tests compare against.
//!
//! This module computes with the key in plain. It is for the table
//! generators (which run at build time) and for tests; the runtime's
//! white-box evaluation never calls it with the embedded secret.
//!
//! State layout is FIPS-197's: byte `i` of a block is row `i % 4`, column
//! `i / 4` of the state.

use twinshield_shield_macros::diversify;

/// Number of round keys of AES-128 (the initial key and ten rounds).
pub const ROUND_KEYS: usize = 11;

/// The expanded key: round key `r` is `round_keys[r]`, laid out as a block.
pub type RoundKeys = [[u8; 16]; ROUND_KEYS];

/// Multiplication by `x` in GF(2^8) modulo the AES polynomial
/// `x^8 + x^4 + x^3 + x + 1`.
#[must_use]
pub const fn xtime(a: u8) -> u8 {
    let reduce = if a & 0x80 != 0 { 0x1b } else { 0 };
    (a << 1) ^ reduce
}

/// Multiplication in GF(2^8) modulo the AES polynomial.
#[must_use]
pub const fn gmul(a: u8, b: u8) -> u8 {
    let mut a = a;
    let mut b = b;
    let mut product = 0u8;
    while b != 0 {
        if b & 1 != 0 {
            product ^= a;
        }
        a = xtime(a);
        b >>= 1;
    }
    product
}

/// Multiplicative inverse in GF(2^8) (`a^254`), with 0 mapped to 0.
const fn ginv(a: u8) -> u8 {
    // a^254 = a^(2+4+8+16+32+64+128)
    let mut result = 1u8;
    let mut square = a;
    let mut i = 0;
    while i < 7 {
        square = gmul(square, square);
        result = gmul(result, square);
        i += 1;
    }
    result
}

const fn build_sbox() -> [u8; 256] {
    let mut sbox = [0u8; 256];
    let mut i = 0usize;
    while i < 256 {
        let b = ginv(i as u8);
        sbox[i] =
            b ^ b.rotate_left(1) ^ b.rotate_left(2) ^ b.rotate_left(3) ^ b.rotate_left(4) ^ 0x63;
        i += 1;
    }
    sbox
}

const fn build_inv_sbox() -> [u8; 256] {
    let mut inv = [0u8; 256];
    let mut i = 0usize;
    while i < 256 {
        inv[SBOX[i] as usize] = i as u8;
        i += 1;
    }
    inv
}

/// The AES S-box (SubBytes).
pub const SBOX: [u8; 256] = build_sbox();

/// The inverse AES S-box (for fault analysis and tests).
pub const INV_SBOX: [u8; 256] = build_inv_sbox();

/// The MixColumns matrix: output row `m` of a column is
/// `sum over k of MIX[m][k] * input[k]`.
pub const MIX: [[u8; 4]; 4] = [[2, 3, 1, 1], [1, 2, 3, 1], [1, 1, 2, 3], [3, 1, 1, 2]];

/// ShiftRows as a gather: after ShiftRows, byte `i` of the state is byte
/// `SHIFT_ROWS_SRC[i]` of the state before it.
pub const SHIFT_ROWS_SRC: [usize; 16] = build_shift_rows_src();

const fn build_shift_rows_src() -> [usize; 16] {
    let mut src = [0usize; 16];
    let mut i = 0;
    while i < 16 {
        let row = i % 4;
        let col = i / 4;
        src[i] = row + 4 * ((col + row) % 4);
        i += 1;
    }
    src
}

const RCON: [u8; 10] = [0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0x1b, 0x36];

/// AES-128 key expansion.
#[must_use]
#[diversify]
pub fn expand_key(key: &[u8; 16]) -> RoundKeys {
    let mut words = [[0u8; 4]; 44];
    for (i, word) in words.iter_mut().take(4).enumerate() {
        word.copy_from_slice(&key[4 * i..4 * i + 4]);
    }
    for i in 4..44 {
        let mut temp = words[i - 1];
        if i % 4 == 0 {
            temp.rotate_left(1);
            for b in &mut temp {
                *b = SBOX[usize::from(*b)];
            }
            temp[0] ^= RCON[i / 4 - 1];
        }
        for (k, t) in temp.iter().enumerate() {
            words[i][k] = words[i - 4][k] ^ t;
        }
    }
    let mut round_keys = [[0u8; 16]; ROUND_KEYS];
    for (r, rk) in round_keys.iter_mut().enumerate() {
        for c in 0..4 {
            rk[4 * c..4 * c + 4].copy_from_slice(&words[4 * r + c]);
        }
    }
    round_keys
}

/// AddRoundKey.
#[diversify]
pub fn add_round_key(state: &mut [u8; 16], round_key: &[u8; 16]) {
    for (s, k) in state.iter_mut().zip(round_key) {
        *s ^= k;
    }
}

/// SubBytes.
#[diversify]
pub fn sub_bytes(state: &mut [u8; 16]) {
    for s in state.iter_mut() {
        *s = SBOX[usize::from(*s)];
    }
}

/// ShiftRows.
#[diversify]
pub fn shift_rows(state: &mut [u8; 16]) {
    let before = *state;
    for (s, &src) in state.iter_mut().zip(&SHIFT_ROWS_SRC) {
        *s = before[src];
    }
}

/// MixColumns of one column.
#[must_use]
#[diversify]
pub fn mix_column(column: [u8; 4]) -> [u8; 4] {
    let mut out = [0u8; 4];
    for (o, row) in out.iter_mut().zip(&MIX) {
        *o = row
            .iter()
            .zip(&column)
            .fold(0, |acc, (&m, &c)| acc ^ gmul(m, c));
    }
    out
}

/// MixColumns.
#[diversify]
pub fn mix_columns(state: &mut [u8; 16]) {
    for chunk in state.chunks_exact_mut(4) {
        let column = [chunk[0], chunk[1], chunk[2], chunk[3]];
        chunk.copy_from_slice(&mix_column(column));
    }
}

/// AES-128 encryption of one block under an expanded key.
#[must_use]
#[diversify]
pub fn encrypt_with_round_keys(round_keys: &RoundKeys, block: &[u8; 16]) -> [u8; 16] {
    let mut state = *block;
    add_round_key(&mut state, &round_keys[0]);
    for round_key in &round_keys[1..10] {
        sub_bytes(&mut state);
        shift_rows(&mut state);
        mix_columns(&mut state);
        add_round_key(&mut state, round_key);
    }
    sub_bytes(&mut state);
    shift_rows(&mut state);
    add_round_key(&mut state, &round_keys[10]);
    state
}

/// AES-128 encryption of one block.
#[must_use]
#[diversify]
pub fn encrypt(key: &[u8; 16], block: &[u8; 16]) -> [u8; 16] {
    encrypt_with_round_keys(&expand_key(key), block)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
    use super::*;

    fn hex16(s: &str) -> [u8; 16] {
        let mut out = [0u8; 16];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }

    #[test]
    fn sbox_known_values() {
        assert_eq!(SBOX[0x00], 0x63);
        assert_eq!(SBOX[0x01], 0x7c);
        assert_eq!(SBOX[0x53], 0xed);
        assert_eq!(SBOX[0xff], 0x16);
        for x in 0..=255u8 {
            assert_eq!(INV_SBOX[usize::from(SBOX[usize::from(x)])], x);
        }
    }

    #[test]
    fn mix_column_known_value() {
        // FIPS-197 Appendix B, round 1, first column.
        assert_eq!(
            mix_column([0xd4, 0xbf, 0x5d, 0x30]),
            [0x04, 0x66, 0x81, 0xe5]
        );
    }

    #[test]
    fn fips197_appendix_a1_key_expansion() {
        let rk = expand_key(&hex16("2b7e151628aed2a6abf7158809cf4f3c"));
        assert_eq!(rk[1], hex16("a0fafe1788542cb123a339392a6c7605"));
        assert_eq!(rk[10], hex16("d014f9a8c9ee2589e13f0cc8b6630ca6"));
    }

    #[test]
    fn fips197_appendix_b() {
        let key = hex16("2b7e151628aed2a6abf7158809cf4f3c");
        let pt = hex16("3243f6a8885a308d313198a2e0370734");
        assert_eq!(
            encrypt(&key, &pt),
            hex16("3925841d02dc09fbdc118597196a0b32")
        );
    }

    #[test]
    fn fips197_appendix_c1() {
        let key = hex16("000102030405060708090a0b0c0d0e0f");
        let pt = hex16("00112233445566778899aabbccddeeff");
        assert_eq!(
            encrypt(&key, &pt),
            hex16("69c4e0d86a7b0430d8cdb78070b4c55a")
        );
    }
}
