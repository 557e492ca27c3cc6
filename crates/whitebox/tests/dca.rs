//! The DCA harness (see `support/dca.rs`) against the textbook Chow
//! fixture: it must recover all 16 key bytes with at most 500 traces, or the
//! harness is wrong (issue 7).
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

#[path = "support/dca.rs"]
mod dca;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use twinshield_whitebox::Trace;
use twinshield_whitebox::aes_ref::SBOX;
use twinshield_whitebox::textbook::{Options, SAMPLES_PER_ROUND, TRACE_LEN, TextbookWhiteBox};

/// Traces `n` random plaintexts through the fixture and keeps the first
/// round's samples: the window where the first-round S-box outputs are
/// computed, which is where the attack looks.
fn collect(wb: &TextbookWhiteBox, n: usize, rng: &mut ChaCha8Rng) -> (Vec<u8>, Vec<[u8; 16]>) {
    let mut traces = Vec::with_capacity(n * SAMPLES_PER_ROUND);
    let mut plaintexts = Vec::with_capacity(n);
    let mut trace = Trace::new();
    for _ in 0..n {
        let p: [u8; 16] = rng.random();
        wb.encrypt_traced(&p, &mut trace);
        let values = trace.take();
        assert_eq!(values.len(), TRACE_LEN);
        traces.extend_from_slice(&values[..SAMPLES_PER_ROUND]);
        plaintexts.push(p);
    }
    (traces, plaintexts)
}

/// Traces 500 encryptions of the fixture and attacks the first round.
fn attack(options: Options) -> ([u8; 16], dca::DcaResult) {
    let mut rng = ChaCha8Rng::seed_from_u64(0xdca);
    let key: [u8; 16] = rng.random();
    let wb = TextbookWhiteBox::generate_with(&key, rng.random(), options);
    let (traces, plaintexts) = collect(&wb, 500, &mut rng);
    let window = 8 * SAMPLES_PER_ROUND;
    (key, dca::dca(&dca::to_bits(&traces), window, &plaintexts))
}

/// Nibble encodings alone (Chow's internal encodings, as Bos et al. analyse
/// them): all 16 key bytes ranked first with 500 traces. Measured over 20
/// keys and seeds (`dca_measure_textbook`): 16/16 bytes for 20/20 keys from
/// 200 traces on, 318/320 bytes at 100 traces.
#[test]
fn dca_recovers_the_nibble_encoded_textbook_key_with_500_traces() {
    let (key, result) = attack(Options {
        mixing_bijections: false,
    });
    assert_eq!(result.ranks(&key), [0; 16], "ranks of the key bytes");
    assert_eq!(result.best_guesses(), key);
}

/// The full textbook construction, with the 32×32 mixing bijections on the
/// type II outputs: first-order DCA on the S-box output bits recovers most
/// key bytes but not all. A type II output nibble is a nibble encoding of a
/// random 4×8 linear image of the S-box output; a bit of it correlates with
/// an S-box output bit only when that bit's unit vector lies in the image's
/// row space, and then often weakly (a Walsh coefficient of 1/4), below the
/// ghost peaks of wrong guesses (about 0.3 with the max over samples and
/// predictions). Measured over 20 keys and seeds: 276/320 key bytes at 500
/// traces (11 to 16 per key, one full key in 20), 263/320 at 200, 277/320
/// at 300; in a one-off run on 4 keys, 3,000 traces still left 1 to 3 bytes
/// of each key ranked 1 to 8. It is structural, not noise: the exact
/// leakage of the same 20 fixtures' first-round type II tables (the ignored
/// `textbook::tests::first_round_leakage`) is a best |correlation| of 0.5 or
/// more for 263 of the 320 key bytes, 0.25 for 51 and none at all for 6
/// (without the mixing bijections: 0.5 or more for all 320). This test pins
/// the floor; the nibble-only test above is the "the fixture falls".
#[test]
fn dca_recovers_most_of_the_mixed_textbook_key_with_500_traces() {
    let (key, result) = attack(Options::default());
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

/// Measures the attack: key bytes ranked first against the number of
/// traces, over several keys and generation seeds, with and without the
/// mixing bijections. Run with
/// `cargo test --release -p twinshield-whitebox --test dca -- --ignored --nocapture`.
#[test]
#[ignore = "measurement, not a check; run in release"]
#[allow(clippy::print_stderr)]
fn dca_measure_textbook() {
    const COUNTS: [usize; 6] = [25, 50, 100, 200, 300, 500];
    let runs = 20;
    for mixing_bijections in [false, true] {
        let mut totals = [0usize; COUNTS.len()];
        let mut full = [0usize; COUNTS.len()];
        let started = std::time::Instant::now();
        for run in 0..runs {
            let mut rng = ChaCha8Rng::seed_from_u64(1000 + run);
            let key: [u8; 16] = rng.random();
            let options = Options { mixing_bijections };
            let wb = TextbookWhiteBox::generate_with(&key, rng.random(), options);
            let (traces, plaintexts) = collect(&wb, 500, &mut rng);
            let bits = dca::to_bits(&traces);
            let mut line = Vec::new();
            for (k, &n) in COUNTS.iter().enumerate() {
                let window = 8 * SAMPLES_PER_ROUND;
                let r = dca::dca(&bits[..n * window], window, &plaintexts[..n]);
                let rec = r.recovered(&key);
                totals[k] += rec;
                full[k] += usize::from(rec == 16);
                line.push(format!("{n}:{rec}"));
            }
            eprintln!("mixing {mixing_bijections} run {run}: {}", line.join(" "));
        }
        for (k, &n) in COUNTS.iter().enumerate() {
            eprintln!(
                "mixing {mixing_bijections}, {n} traces: {}/{} key bytes, {}/{runs} full keys",
                totals[k],
                16 * runs,
                full[k]
            );
        }
        eprintln!("({:.1} s)", started.elapsed().as_secs_f64());
    }
}
