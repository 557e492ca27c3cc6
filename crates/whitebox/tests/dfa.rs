//! Differential fault analysis (see `support/dfa.rs`) with the fault hook:
//! one byte of the state flipped at the start of round 9. It recovers the
//! textbook fixture's whole key, which proves the harness; against
//! twinshield's white-box, 200 faulty outputs recover no round-key byte.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::print_stderr
)]

#[path = "support/dfa.rs"]
mod dfa;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use twinshield_whitebox::aes_ref::expand_key;
use twinshield_whitebox::generate::generate;
use twinshield_whitebox::textbook::TextbookWhiteBox;
use twinshield_whitebox::{Fault, OutputEncoding, WhiteBox};

const FAULTS: usize = 200;

/// A random nonzero byte.
fn nonzero(rng: &mut ChaCha8Rng) -> u8 {
    rng.random_range(1..=255u8)
}

#[test]
fn dfa_recovers_the_textbook_key_from_faults_in_round_9() {
    let mut rng = ChaCha8Rng::seed_from_u64(0xdfa);
    let key: [u8; 16] = rng.random();
    let wb = TextbookWhiteBox::generate(&key, rng.random());
    // The harness needs only a few faults per column: use 40, not 200.
    let pairs: Vec<_> = (0..40)
        .map(|_| {
            let p: [u8; 16] = rng.random();
            let position = rng.random_range(0..16);
            (
                wb.encrypt(&p),
                wb.encrypt_faulted(&p, position, nonzero(&mut rng)),
            )
        })
        .collect();
    let result = dfa::dfa(&pairs);
    let k10 = expand_key(&key)[10];
    assert_eq!(result.usable_pairs, 40, "every fault shows in one column");
    assert_eq!(result.recovered_bytes(&k10), 16);
    assert_eq!(result.k10(), Some(k10));
    assert_eq!(dfa::master_key_from_k10(&k10), key);
}

/// Faults `FAULTS` evaluations of twinshield's white-box (random block,
/// position and flip; lanes as given) and attacks the decoded outputs.
fn attack(first_lane: bool, second_lane: bool) -> (dfa::DfaResult, [u8; 16]) {
    let mut rng = ChaCha8Rng::seed_from_u64(0xdfa + 1);
    let key: [u8; 16] = rng.random();
    let encoding_key: [u8; 16] = rng.random();
    let image = generate(&key, &encoding_key, rng.random());
    let wb = WhiteBox::new(&image).unwrap();
    let decoding = OutputEncoding::from_key(&encoding_key);
    let pairs: Vec<_> = (0..FAULTS)
        .map(|_| {
            let p: [u8; 16] = rng.random();
            let fault = Fault {
                position: rng.random_range(0..16),
                xor: nonzero(&mut rng),
                first_lane,
                second_lane,
            };
            let correct = decoding.decode(&wb.encrypt_encoded(&p));
            let faulty = decoding.decode(&wb.encrypt_faulted(&p, fault));
            (correct, faulty)
        })
        .collect();
    let result = dfa::dfa(&pairs);
    let k10 = expand_key(&key)[10];
    eprintln!(
        "faults in lanes ({first_lane}, {second_lane}): {FAULTS} faulty outputs, {} usable, \
         winners {:?}, votes of the true key per column {:?}, key bytes recovered {}",
        result.usable_pairs,
        result.columns,
        result.true_key_votes(&k10),
        result.recovered_bytes(&k10)
    );
    (result, k10)
}

/// A fault in one lane (what flipping one byte of memory does): the lanes
/// disagree, and the combine tables answer with random bytes in the
/// faulted column, which no key explains.
#[test]
fn dfa_with_200_faults_in_one_lane_recovers_no_round_key_byte() {
    for (first, second) in [(true, false), (false, true)] {
        let (result, k10) = attack(first, second);
        assert!(result.usable_pairs > FAULTS * 9 / 10, "{result:?}");
        assert_eq!(result.recovered_bytes(&k10), 0, "{:?}", result.columns);
        assert_eq!(result.true_key_votes(&k10), [0; 4]);
    }
}

/// The same flip in both lanes: their encodings differ, so the same
/// encoded flip is a different fault in each, and the lanes disagree
/// unless the two happen to coincide (about 1 in 255).
#[test]
fn dfa_with_200_faults_in_both_lanes_recovers_no_round_key_byte() {
    let (result, k10) = attack(true, true);
    assert_eq!(result.recovered_bytes(&k10), 0, "{:?}", result.columns);
    assert!(result.true_key_votes(&k10).iter().all(|&v| v <= 1));
}
