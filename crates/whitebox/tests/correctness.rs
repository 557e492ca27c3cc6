//! The reference AES and the textbook fixture against the `aes` crate
//! (RustCrypto) on the FIPS-197 vectors and on random blocks.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use aes::Aes128;
use aes::cipher::{BlockCipherEncrypt, KeyInit};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use twinshield_whitebox::aes_ref;
use twinshield_whitebox::textbook::TextbookWhiteBox;

fn hex16(s: &str) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

fn oracle(key: &[u8; 16], block: &[u8; 16]) -> [u8; 16] {
    let cipher = Aes128::new(&(*key).into());
    let mut b = (*block).into();
    cipher.encrypt_block(&mut b);
    b.into()
}

/// FIPS-197 Appendix B and Appendix C.1: (key, plaintext, ciphertext).
const FIPS197: [(&str, &str, &str); 2] = [
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

#[test]
fn fips197_vectors() {
    for (key, pt, ct) in FIPS197 {
        let (key, pt, ct) = (hex16(key), hex16(pt), hex16(ct));
        assert_eq!(oracle(&key, &pt), ct);
        assert_eq!(aes_ref::encrypt(&key, &pt), ct);
        for seed in [0, 1] {
            assert_eq!(TextbookWhiteBox::generate(&key, seed).encrypt(&pt), ct);
        }
    }
}

#[test]
fn reference_equals_aes_crate_on_random_blocks() {
    let mut rng = ChaCha8Rng::seed_from_u64(0x5eed);
    for _ in 0..100 {
        let key: [u8; 16] = rng.random();
        let round_keys = aes_ref::expand_key(&key);
        for _ in 0..100 {
            let block: [u8; 16] = rng.random();
            assert_eq!(
                aes_ref::encrypt_with_round_keys(&round_keys, &block),
                oracle(&key, &block)
            );
        }
    }
}

#[test]
fn textbook_equals_aes_crate_on_10000_random_blocks() {
    let mut rng = ChaCha8Rng::seed_from_u64(0xc40);
    let key: [u8; 16] = rng.random();
    let wb = TextbookWhiteBox::generate(&key, rng.random());
    let cipher = Aes128::new(&key.into());
    for _ in 0..10_000 {
        let block: [u8; 16] = rng.random();
        let mut expected = block.into();
        cipher.encrypt_block(&mut expected);
        assert_eq!(wb.encrypt(&block), <[u8; 16]>::from(expected));
    }
}

#[test]
fn traced_evaluation_equals_untraced_and_has_fixed_length() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let key: [u8; 16] = rng.random();
    let wb = TextbookWhiteBox::generate(&key, 9);
    let mut trace = twinshield_whitebox::Trace::new();
    for _ in 0..10 {
        let block: [u8; 16] = rng.random();
        assert_eq!(wb.encrypt_traced(&block, &mut trace), wb.encrypt(&block));
        let values = trace.take();
        assert_eq!(values.len(), twinshield_whitebox::textbook::TRACE_LEN);
        assert!(trace.as_slice().is_empty());
    }
}
