//! The reference AES and the textbook fixture against the `aes` crate
//! (RustCrypto) on the FIPS-197 vectors and on random blocks.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

#[path = "support/reference.rs"]
mod reference;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use reference::{FIPS197, hex, oracle};
use twinshield_whitebox::aes_ref;
use twinshield_whitebox::textbook::TextbookWhiteBox;

#[test]
fn fips197_vectors() {
    for (key, pt, ct) in FIPS197 {
        let (key, pt, ct) = (hex::<16>(key), hex::<16>(pt), hex::<16>(ct));
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
    for _ in 0..10_000 {
        let block: [u8; 16] = rng.random();
        assert_eq!(wb.encrypt(&block), oracle(&key, &block));
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
