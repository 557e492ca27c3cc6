//! The reference the white-box tests compare against: the `aes` crate
//! (RustCrypto) and the FIPS-197 vectors.
#![allow(dead_code)]

use aes::Aes128;
use aes::cipher::{BlockCipherEncrypt, KeyInit};

/// FIPS-197 Appendix B and Appendix C.1: (key, plaintext, ciphertext).
pub const FIPS197: [(&str, &str, &str); 2] = [
    (
        "2b7e151628aed2a6abf7158809cf4f3c",
        "3243f6a8885a308d313198a2e0370734",
        "3925841d02dc09fbdc118597196a0b32",
    ),
    (
        "000102030405060708090a0b0c0d0e0f",
        "00112233445566778899aabbccddeeff",
        "69c4e0d86a7b0430d8cdb78070b4c55a",
    ),
];

/// AES-128 of `block` under `key`, by the `aes` crate.
pub fn oracle(key: &[u8; 16], block: &[u8; 16]) -> [u8; 16] {
    let cipher = Aes128::new(&(*key).into());
    let mut b = (*block).into();
    cipher.encrypt_block(&mut b);
    b.into()
}

/// `N` bytes from `2 * N` hex digits.
pub fn hex<const N: usize>(s: &str) -> [u8; N] {
    std::array::from_fn(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
}
