//! Differential computation analysis (Bos, Hubain, Michiels, Teuwen, "Differential
//! Computation Analysis: Hiding your White-Box Designs is Not Enough", CHES 2016).
//!
//! First-order correlation DCA on software traces (one byte per table value
//! read): for each key byte `j` and each guess `g` of it, the Pearson
//! correlation between every trace sample and, over the traces, each of
//! nine predictions of the first-round S-box output `SBOX[p[j] ^ g]`: its
//! Hamming weight and each of its eight bits. A guess scores the largest
//! `|correlation|` over all samples and predictions; guesses rank by score.
//!
//! The correlations are computed without a pass over the traces per guess.
//! Every prediction depends on the trace only through `v = p[j]`, so per
//! sample `s` the sum `sum_t y_g(t) * x_t[s]` is
//! `sum_v f(v ^ g) * H[v][s]` with `H[v][s]` the sum of `x_t[s]` over the
//! traces with `p[j] = v`: an XOR-convolution of `f` (a bit, or the Hamming
//! weight, of the S-box output) with `H[.][s]`, which the Walsh-Hadamard
//! transform computes for all 256 guesses at once in `O(256 * 8)`. One pass
//! over the traces per key byte builds `H` (256 x samples sums); the
//! Hamming-weight sums are the sums of the eight bit sums.
//!
//! Memory is 256 x samples x 8 bytes for `H` (2.5 MB for 1,280 samples), so
//! callers restrict the samples to the window the attack looks at: the
//! first round, where the S-box output under the first round key is
//! computed.

use twinshield_whitebox::aes_ref::SBOX;

/// The outcome of an attack on all 16 key bytes.
#[derive(Clone, Debug)]
pub struct DcaResult {
    /// Per key byte, per guess: max |correlation| over samples and predictions.
    pub scores: Vec<[f64; 256]>,
}

impl DcaResult {
    /// The best guess of each key byte.
    pub fn best_guesses(&self) -> [u8; 16] {
        std::array::from_fn(|j| {
            let s = &self.scores[j];
            let mut best = 0u8;
            for g in 0..=255u8 {
                if s[usize::from(g)] > s[usize::from(best)] {
                    best = g;
                }
            }
            best
        })
    }

    /// The rank of each byte of `key` among the guesses (0: ranked first;
    /// ties count against the key).
    pub fn ranks(&self, key: &[u8; 16]) -> [usize; 16] {
        std::array::from_fn(|j| {
            let s = &self.scores[j];
            let right = s[usize::from(key[j])];
            (0..256)
                .filter(|&g| g != usize::from(key[j]) && s[g] >= right)
                .count()
        })
    }

    /// How many key bytes are ranked first.
    pub fn recovered(&self, key: &[u8; 16]) -> usize {
        self.ranks(key).iter().filter(|&&r| r == 0).count()
    }
}

/// In-place (unnormalised) fast Walsh-Hadamard transform of 256 values.
fn fwht(a: &mut [f64; 256]) {
    let mut h = 1;
    while h < 256 {
        for i in (0..256).step_by(2 * h) {
            for k in i..i + h {
                let (x, y) = (a[k], a[k + h]);
                a[k] = x + y;
                a[k + h] = x - y;
            }
        }
        h *= 2;
    }
}

/// XOR-convolution `out[g] = sum_v f(v ^ g) * h[v]`, given the transform of
/// `f` (`wf`) and of `h` (`wh`).
fn xor_convolve(wf: &[f64; 256], wh: &[f64; 256]) -> [f64; 256] {
    let mut out: [f64; 256] = std::array::from_fn(|i| wf[i] * wh[i]);
    fwht(&mut out);
    for o in &mut out {
        *o /= 256.0;
    }
    out
}

fn transform(f: impl Fn(usize) -> f64) -> [f64; 256] {
    let mut a: [f64; 256] = std::array::from_fn(f);
    fwht(&mut a);
    a
}

/// Expands each byte sample into eight one-bit samples (bit 0 first), as
/// Bos et al. do with software traces: a byte read is two encoded nibbles,
/// and as a whole integer its high nibble drowns the low one (weight 16 to
/// 1), while each bit on its own correlates with whatever it depends on.
pub fn to_bits(traces: &[u8]) -> Vec<u8> {
    traces
        .iter()
        .flat_map(|&x| (0..8).map(move |b| (x >> b) & 1))
        .collect()
}

/// Runs the attack. `traces` is row-major, `plaintexts.len()` rows of
/// `samples` bytes each (already restricted to the window of interest).
pub fn dca(traces: &[u8], samples: usize, plaintexts: &[[u8; 16]]) -> DcaResult {
    let n_traces = plaintexts.len();
    assert_eq!(traces.len(), n_traces * samples, "trace matrix shape");
    let n = n_traces as f64;

    // Per-sample sums, shared by every key byte.
    let mut sx = vec![0f64; samples];
    let mut sxx = vec![0f64; samples];
    for row in traces.chunks_exact(samples) {
        for (s, &x) in row.iter().enumerate() {
            let x = f64::from(x);
            sx[s] += x;
            sxx[s] += x * x;
        }
    }

    // Transforms of the predictions: bit b of SBOX[v] (b < 8), and HW^2.
    let bit_t: Vec<[f64; 256]> = (0..8)
        .map(|b| transform(|v| f64::from((SBOX[v] >> b) & 1)))
        .collect();
    let hw2_t = transform(|v| f64::from(SBOX[v].count_ones().pow(2)));

    let mut scores = Vec::with_capacity(16);
    for j in 0..16 {
        // H[s][v]: sum of sample s over the traces with p[j] = v.
        let mut h = vec![[0f64; 256]; samples];
        let mut count = [0f64; 256];
        for (row, p) in traces.chunks_exact(samples).zip(plaintexts) {
            let v = usize::from(p[j]);
            count[v] += 1.0;
            for (hs, &x) in h.iter_mut().zip(row) {
                hs[v] += f64::from(x);
            }
        }
        fwht(&mut count);
        // Per guess: sums of the predictions and of their squares.
        let sy_bits: Vec<[f64; 256]> = bit_t.iter().map(|t| xor_convolve(t, &count)).collect();
        let sy_hw: [f64; 256] = std::array::from_fn(|g| sy_bits.iter().map(|s| s[g]).sum());
        let syy_hw = xor_convolve(&hw2_t, &count);

        let mut best = [0f64; 256];
        for (s, hs) in h.iter_mut().enumerate() {
            let var_x = n * sxx[s] - sx[s] * sx[s];
            if var_x <= 1e-9 {
                continue; // constant sample: no information
            }
            fwht(hs);
            let sxy_bits: Vec<[f64; 256]> = bit_t.iter().map(|t| xor_convolve(t, hs)).collect();
            for g in 0..256 {
                let mut sxy_hw = 0.0;
                for (sxy, sy) in sxy_bits.iter().zip(&sy_bits) {
                    sxy_hw += sxy[g];
                    // Bits: sum y^2 = sum y.
                    let corr = pearson(n, sx[s], var_x, sxy[g], sy[g], sy[g]);
                    best[g] = best[g].max(corr.abs());
                }
                let corr = pearson(n, sx[s], var_x, sxy_hw, sy_hw[g], syy_hw[g]);
                best[g] = best[g].max(corr.abs());
            }
        }
        scores.push(best);
    }
    DcaResult { scores }
}

fn pearson(n: f64, sx: f64, var_x: f64, sxy: f64, sy: f64, syy: f64) -> f64 {
    let var_y = n * syy - sy * sy;
    if var_y <= 1e-9 {
        return 0.0;
    }
    (n * sxy - sx * sy) / (var_x * var_y).sqrt()
}
