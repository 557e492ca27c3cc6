//! The DCA harness (see `support/dca.rs`) against the textbook Chow
//! fixture: it must recover all 16 key bytes with at most 500 traces, or the
//! harness is wrong (issue 7).
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

#[path = "support/dca.rs"]
mod dca;
#[path = "support/traces.rs"]
mod traces;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use traces::{HARDENED_WINDOW, TEXTBOOK_WINDOW, collect, collect_hardened, textbook_fixture};
use twinshield_whitebox::aes_ref::SBOX;
use twinshield_whitebox::textbook::Options;

/// Traces `n` encryptions of the fixture drawn from `seed` and attacks the
/// first round.
fn attack(seed: u64, n: usize, options: Options) -> ([u8; 16], dca::DcaResult) {
    let (key, wb, mut rng) = textbook_fixture(seed, options);
    let (traces, plaintexts) = collect(&wb, n, &mut rng);
    (
        key,
        dca::dca(&dca::to_bits(&traces), TEXTBOOK_WINDOW, &plaintexts),
    )
}

/// Nibble encodings alone (Chow's internal encodings, as Bos et al. analyse
/// them): all 16 key bytes ranked first with 500 traces. Measured over 20
/// keys and seeds (`cargo bench -p twinshield-whitebox --bench dca_measure
/// -- textbook`): 16/16 bytes for 20/20 keys from 200 traces on, 318/320
/// bytes at 100 traces.
#[test]
fn dca_recovers_the_nibble_encoded_textbook_key_with_500_traces() {
    let (key, result) = attack(
        0xdca,
        500,
        Options {
            mixing_bijections: false,
        },
    );
    assert_eq!(result.ranks(&key), [0; 16], "ranks of the key bytes");
    assert_eq!(result.best_guesses(), key);
}

/// The measurement's figure "16/16 key bytes for 20/20 keys from 200 traces
/// on" (above), checked on the first two of its 20 fixtures (seeds 1000 and
/// 1001, the same keys, tables and plaintexts): with 200 traces every key
/// byte ranks first. Two fixtures, not 20, because each attack costs a few
/// seconds in a debug build whatever the trace count; the measurement runs
/// all 20 in release.
#[test]
fn dca_recovers_every_nibble_encoded_key_byte_from_200_traces() {
    for seed in [1000, 1001] {
        let (key, result) = attack(
            seed,
            200,
            Options {
                mixing_bijections: false,
            },
        );
        assert_eq!(result.ranks(&key), [0; 16], "fixture {seed}: ranks");
    }
}

/// The full textbook construction, with the 32×32 mixing bijections on the
/// type II outputs: first-order DCA on the S-box output bits recovers most
/// key bytes but not all. A type II output nibble is a nibble encoding of a
/// random 4×8 linear image of the S-box output; a bit of it correlates with
/// an S-box output bit only when that bit's unit vector lies in the image's
/// row space, and then often weakly (a Walsh coefficient of 1/4), below the
/// ghost peaks of wrong guesses (about 0.3 with the max over samples and
/// predictions). Measured over 20 keys and seeds (`cargo bench -p
/// twinshield-whitebox --bench dca_measure -- textbook`): 276/320 key bytes
/// at 500 traces (11 to 15 per key, no full key), 263/320 at 200, 277/320
/// at 300 (one full key in 20); in a one-off run on 4 keys, 3,000 traces
/// still left 1 to 3 bytes of each key ranked 1 to 8. It is structural, not
/// noise: the exact leakage of the same 20 fixtures' first-round type II
/// tables (`textbook::tests::first_round_leakage_of_the_measured_fixtures`)
/// is a best |correlation| of 0.5 or more for 263 of the 320 key bytes,
/// 0.25 for 51 and none at all for 6 (without the mixing bijections: 0.5 or
/// more for all 320). This test pins the floor; the nibble-only test above
/// is the "the fixture falls".
#[test]
fn dca_recovers_most_of_the_mixed_textbook_key_with_500_traces() {
    let (key, result) = attack(0xdca, 500, Options::default());
    let recovered = result.recovered(&key);
    assert!(
        recovered >= 12,
        "{recovered}/16 key bytes ranked first; ranks {:?}",
        result.ranks(&key)
    );
}

/// The harness itself on synthetic traces: a trace that holds the S-box
/// outputs in plain gives the key away; random traces give nothing.
#[test]
fn dca_sanity_on_synthetic_traces() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let key: [u8; 16] = rng.random();
    let n = 100;
    let plaintexts: Vec<[u8; 16]> = (0..n).map(|_| rng.random()).collect();
    let leaky: Vec<u8> = plaintexts
        .iter()
        .flat_map(|p| {
            let noise: [u8; 8] = rng.random();
            let mut row: Vec<u8> = (0..16).map(|j| SBOX[usize::from(p[j] ^ key[j])]).collect();
            row.extend_from_slice(&noise);
            row
        })
        .collect();
    assert_eq!(dca::dca(&leaky, 24, &plaintexts).ranks(&key), [0; 16]);

    let random: Vec<u8> = (0..n * 24).map(|_| rng.random()).collect();
    assert!(dca::dca(&random, 24, &plaintexts).recovered(&key) <= 2);
}

/// DCA with 10,000 traces of twinshield's white-box, the attack that takes
/// the textbook fixture apart in 200 traces, on the first round of both
/// lanes (every sample in which a first-round S-box output is computed).
///
/// The target is that the correct guess ranks first for none of
/// the 16 key bytes and within the top 4 for none. When the traces say
/// nothing about the key, each rank is uniform on 0..=255, and then that
/// holds for a given key only with probability (252/256)^16 = 78%: no
/// implementation can meet it for every key. So this test asserts what
/// chance allows (each bound is exceeded by uniform ranks with probability
/// under 0.5%): at most one byte first, at most two in the top 4, and a
/// mean rank within two standard deviations of chance; and it prints
/// whether the strict target held for this key. The read order is
/// seeded, so the run is reproducible. `cargo bench -p twinshield-whitebox
/// --bench dca_measure -- hardened` measures 10 keys.
#[test]
#[allow(clippy::print_stderr)]
fn dca_with_10000_traces_ranks_the_hardened_key_bytes_no_better_than_chance() {
    let mut rng = ChaCha8Rng::seed_from_u64(0xdca);
    let key: [u8; 16] = rng.random();
    let (traces, plaintexts) = collect_hardened(&key, 10_000, &mut rng);
    let result = dca::dca(&dca::to_bits(&traces), HARDENED_WINDOW, &plaintexts);
    let ranks = result.ranks(&key);
    let first = ranks.iter().filter(|&&r| r == 0).count();
    let top4 = ranks.iter().filter(|&&r| r < 4).count();
    let mean = ranks.iter().sum::<usize>() as f64 / 16.0;
    eprintln!(
        "ranks of the key bytes (0 = first): {ranks:?}; first {first}, top 4 {top4}, \
         mean {mean:.1}; issue target (0 first, 0 in the top 4) {}",
        if first == 0 && top4 == 0 {
            "met"
        } else {
            "missed"
        }
    );
    assert!(first <= 1, "ranks {ranks:?}");
    assert!(top4 <= 2, "ranks {ranks:?}");
    // Uniform ranks: mean 127.5, standard deviation of a mean of 16: 18.5.
    assert!((90.5..=164.5).contains(&mean), "ranks {ranks:?}");
}
