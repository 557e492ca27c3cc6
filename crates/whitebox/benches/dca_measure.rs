//! Measures first-order DCA (the harness in `tests/support/dca.rs`): how
//! many key bytes it ranks first, over several keys and generation seeds.
//! A measurement of the attack's success, not of time: it prints the
//! figures the README's white-box table and `tests/dca.rs` quote, and the
//! checks in `tests/dca.rs` hold the properties they rest on.
//!
//! - `textbook`: the textbook Chow fixture over 20 keys (seeds 1000 to
//!   1019), with nibble encodings alone and with the mixing bijections; key
//!   bytes ranked first and full keys at 25 to 500 traces.
//! - `hardened`: twinshield's white-box over 10 keys (seeds 2000 to 2009),
//!   10,000 traces each; key-byte ranks against chance (a rank is uniform on
//!   0..=255 when the traces say nothing about the key).
//!
//! Run with `cargo bench -p twinshield-whitebox --bench dca_measure` (both,
//! about a minute in release), or with `-- textbook` or `-- hardened` for
//! one. Under `cargo test --benches` it measures nothing.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::print_stdout)]

#[allow(dead_code)] // the measurement does not use every helper
#[path = "../tests/support/dca.rs"]
mod dca;
#[path = "../tests/support/traces.rs"]
mod traces;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Instant;
use traces::{HARDENED_WINDOW, TEXTBOOK_WINDOW, collect, collect_hardened, textbook_fixture};
use twinshield_whitebox::textbook::Options;

fn textbook() {
    const COUNTS: [usize; 6] = [25, 50, 100, 200, 300, 500];
    let runs = 20;
    for mixing_bijections in [false, true] {
        let mut totals = [0usize; COUNTS.len()];
        let mut full = [0usize; COUNTS.len()];
        let started = Instant::now();
        for run in 0..runs {
            let (key, wb, mut rng) = textbook_fixture(1000 + run, Options { mixing_bijections });
            let (traces, plaintexts) = collect(&wb, 500, &mut rng);
            let bits = dca::to_bits(&traces);
            let mut line = Vec::new();
            for (k, &n) in COUNTS.iter().enumerate() {
                let r = dca::dca(
                    &bits[..n * TEXTBOOK_WINDOW],
                    TEXTBOOK_WINDOW,
                    &plaintexts[..n],
                );
                let rec = r.recovered(&key);
                totals[k] += rec;
                full[k] += usize::from(rec == 16);
                line.push(format!("{n}:{rec}"));
            }
            println!("mixing {mixing_bijections} run {run}: {}", line.join(" "));
        }
        for (k, &n) in COUNTS.iter().enumerate() {
            println!(
                "mixing {mixing_bijections}, {n} traces: {}/{} key bytes, {}/{runs} full keys",
                totals[k],
                16 * runs,
                full[k]
            );
        }
        println!("({:.1} s)", started.elapsed().as_secs_f64());
    }
}

fn hardened() {
    let runs = 10u64;
    let (mut first, mut top4, mut sum, mut met) = (0usize, 0usize, 0usize, 0usize);
    let started = Instant::now();
    for run in 0..runs {
        let mut rng = ChaCha8Rng::seed_from_u64(2000 + run);
        let key: [u8; 16] = rng.random();
        let (traces, plaintexts) = collect_hardened(&key, 10_000, &mut rng);
        let result = dca::dca(&dca::to_bits(&traces), HARDENED_WINDOW, &plaintexts);
        let ranks = result.ranks(&key);
        first += ranks.iter().filter(|&&r| r == 0).count();
        top4 += ranks.iter().filter(|&&r| r < 4).count();
        sum += ranks.iter().sum::<usize>();
        let strict = ranks.iter().all(|&r| r >= 4);
        met += usize::from(strict);
        println!("run {run}: ranks {ranks:?}; issue target met: {strict}");
    }
    let bytes = 16 * runs as usize;
    println!(
        "{bytes} key bytes: {first} ranked first (chance {:.1}), {top4} in the top 4 (chance {:.1}), \
         mean rank {:.1} (chance 127.5); strict target met for {met}/{runs} keys (chance 78%); {:.1} s",
        bytes as f64 / 256.0,
        bytes as f64 * 4.0 / 256.0,
        sum as f64 / bytes as f64,
        started.elapsed().as_secs_f64()
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not, and
    // an unoptimised run would take many minutes.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.iter().any(|a| a == "--bench") {
        println!("dca_measure: a measurement; run it with `cargo bench`");
        return;
    }
    let chosen: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wants = |name: &str| chosen.is_empty() || chosen.contains(&name);
    if wants("textbook") {
        textbook();
    }
    if wants("hardened") {
        hardened();
    }
}
