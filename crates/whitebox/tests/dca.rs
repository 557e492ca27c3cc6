//! The DCA harness (see `support/dca.rs`) against the textbook Chow
//! fixture: it must recover all 16 key bytes with at most 500 traces, or the
//! harness is wrong (issue 7).
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

#[path = "support/dca.rs"]
mod dca;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use twinshield_whitebox::Trace;
use twinshield_whitebox::WhiteBox;
use twinshield_whitebox::aes_ref::SBOX;
use twinshield_whitebox::cipher::{FIRST_ROUND_SAMPLES, TRACE_LEN as HARDENED_TRACE_LEN};
use twinshield_whitebox::generate::generate;
use twinshield_whitebox::textbook::{Options, SAMPLES_PER_ROUND, TRACE_LEN, TextbookWhiteBox};

/// Traces `n` random plaintexts through `encrypt` (traces of `trace_len`
/// values) and keeps the first `window` samples of each: the window where
/// the first-round S-box outputs are computed, which is where the attack
/// looks.
fn collect_window(
    n: usize,
    rng: &mut ChaCha8Rng,
    (window, trace_len): (usize, usize),
    mut encrypt: impl FnMut(&[u8; 16], &mut Trace),
) -> (Vec<u8>, Vec<[u8; 16]>) {
    let mut traces = Vec::with_capacity(n * window);
    let mut plaintexts = Vec::with_capacity(n);
    let mut trace = Trace::new();
    for _ in 0..n {
        let p: [u8; 16] = rng.random();
        encrypt(&p, &mut trace);
        let values = trace.take();
        assert_eq!(values.len(), trace_len);
        traces.extend_from_slice(&values[..window]);
        plaintexts.push(p);
    }
    (traces, plaintexts)
}

/// The fixture's first round.
fn collect(wb: &TextbookWhiteBox, n: usize, rng: &mut ChaCha8Rng) -> (Vec<u8>, Vec<[u8; 16]>) {
    collect_window(n, rng, (SAMPLES_PER_ROUND, TRACE_LEN), |p, t| {
        wb.encrypt_traced(p, t);
    })
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

/// Traces `n` random plaintexts through twinshield's white-box generated
/// for `key` and keeps the first round of both lanes.
fn collect_hardened(key: &[u8; 16], n: usize, rng: &mut ChaCha8Rng) -> (Vec<u8>, Vec<[u8; 16]>) {
    let encoding_key: [u8; 16] = rng.random();
    let image = generate(key, &encoding_key, rng.random());
    let wb = WhiteBox::new(&image)
        .unwrap()
        .with_read_order_seed(rng.random());
    collect_window(n, rng, (FIRST_ROUND_SAMPLES, HARDENED_TRACE_LEN), |p, t| {
        wb.encrypt_traced(p, t);
    })
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
/// seeded, so the run is reproducible. `dca_measure_hardened` measures 10
/// keys.
#[test]
#[allow(clippy::print_stderr)]
fn dca_with_10000_traces_ranks_the_hardened_key_bytes_no_better_than_chance() {
    let mut rng = ChaCha8Rng::seed_from_u64(0xdca);
    let key: [u8; 16] = rng.random();
    let (traces, plaintexts) = collect_hardened(&key, 10_000, &mut rng);
    let result = dca::dca(&dca::to_bits(&traces), 8 * FIRST_ROUND_SAMPLES, &plaintexts);
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

/// Measures the attack on twinshield's white-box over several keys and
/// generation seeds: the ranks of the 16 key bytes with 10,000 traces, and
/// how they compare with chance (a rank is uniform on 0..=255 when the
/// traces say nothing about the key). Run with
/// `cargo test --release -p twinshield-whitebox --test dca -- --ignored --nocapture`.
#[test]
#[ignore = "measurement, not a check; run in release"]
#[allow(clippy::print_stderr)]
fn dca_measure_hardened() {
    let runs = 10u64;
    let (mut first, mut top4, mut sum, mut met) = (0usize, 0usize, 0usize, 0usize);
    let started = std::time::Instant::now();
    for run in 0..runs {
        let mut rng = ChaCha8Rng::seed_from_u64(2000 + run);
        let key: [u8; 16] = rng.random();
        let (traces, plaintexts) = collect_hardened(&key, 10_000, &mut rng);
        let result = dca::dca(&dca::to_bits(&traces), 8 * FIRST_ROUND_SAMPLES, &plaintexts);
        let ranks = result.ranks(&key);
        first += ranks.iter().filter(|&&r| r == 0).count();
        top4 += ranks.iter().filter(|&&r| r < 4).count();
        sum += ranks.iter().sum::<usize>();
        let strict = ranks.iter().all(|&r| r >= 4);
        met += usize::from(strict);
        eprintln!("run {run}: ranks {ranks:?}; issue target met: {strict}");
    }
    let bytes = 16 * runs as usize;
    eprintln!(
        "{bytes} key bytes: {first} ranked first (chance {:.1}), {top4} in the top 4 (chance {:.1}), \
         mean rank {:.1} (chance 127.5); strict target met for {met}/{runs} keys (chance 78%); {:.1} s",
        bytes as f64 / 256.0,
        bytes as f64 * 4.0 / 256.0,
        sum as f64 / bytes as f64,
        started.elapsed().as_secs_f64()
    );
}
