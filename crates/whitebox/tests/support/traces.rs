//! Trace collection for the DCA harness (`support/dca.rs`), shared by the
//! DCA checks (`tests/dca.rs`) and the DCA measurement
//! (`benches/dca_measure.rs`): random plaintexts through a white-box's
//! tracer, keeping the first round's samples.

use rand::{RngExt, SeedableRng as _};
use rand_chacha::ChaCha8Rng;
use twinshield_whitebox::Trace;
use twinshield_whitebox::WhiteBox;
use twinshield_whitebox::cipher::{FIRST_ROUND_SAMPLES, TRACE_LEN as HARDENED_TRACE_LEN};
use twinshield_whitebox::generate::generate;
use twinshield_whitebox::textbook::{Options, SAMPLES_PER_ROUND, TRACE_LEN, TextbookWhiteBox};

/// Traces `n` random plaintexts through `encrypt` (traces of `trace_len`
/// values) and keeps the first `window` samples of each: the window where
/// the first-round S-box outputs are computed, which is where the attack
/// looks.
pub fn collect_window(
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

/// The textbook fixture's first round.
pub fn collect(wb: &TextbookWhiteBox, n: usize, rng: &mut ChaCha8Rng) -> (Vec<u8>, Vec<[u8; 16]>) {
    collect_window(n, rng, (SAMPLES_PER_ROUND, TRACE_LEN), |p, t| {
        wb.encrypt_traced(p, t);
    })
}

/// Bit samples of the textbook fixture's first round (the attack's window).
pub const TEXTBOOK_WINDOW: usize = 8 * SAMPLES_PER_ROUND;

/// Bit samples of the hardened white-box's first round, both lanes.
pub const HARDENED_WINDOW: usize = 8 * FIRST_ROUND_SAMPLES;

/// One of the textbook fixtures the DCA figures are measured on: key and
/// generation seed drawn from `ChaCha8Rng::seed_from_u64(seed)`, which then
/// goes on to draw the plaintexts. Returns the key, the fixture and the rng.
pub fn textbook_fixture(seed: u64, options: Options) -> ([u8; 16], TextbookWhiteBox, ChaCha8Rng) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let key: [u8; 16] = rng.random();
    let wb = TextbookWhiteBox::generate_with(&key, rng.random(), options);
    (key, wb, rng)
}

/// Traces `n` random plaintexts through twinshield's white-box generated
/// for `key` and keeps the first round of both lanes.
pub fn collect_hardened(
    key: &[u8; 16],
    n: usize,
    rng: &mut ChaCha8Rng,
) -> (Vec<u8>, Vec<[u8; 16]>) {
    let encoding_key: [u8; 16] = rng.random();
    let image = generate(key, &encoding_key, rng.random());
    let wb = WhiteBox::new(&image)
        .unwrap()
        .with_read_order_seed(rng.random());
    collect_window(n, rng, (FIRST_ROUND_SAMPLES, HARDENED_TRACE_LEN), |p, t| {
        wb.encrypt_traced(p, t);
    })
}
