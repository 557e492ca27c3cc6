//! A deterministic random source for the statistical tests: SplitMix64 and
//! Box–Muller, so the tests need no extra crates and never flake.
#![allow(dead_code)]

/// SplitMix64 with a cached second Box–Muller normal.
pub struct Rng {
    state: u64,
    spare: Option<f64>,
}

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Self {
            state: seed,
            spare: None,
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1], never 0 (safe for `ln`).
    pub fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }

    /// Standard normal.
    pub fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        let r = (-2.0 * self.uniform().ln()).sqrt();
        let t = 2.0 * std::f64::consts::PI * self.uniform();
        self.spare = Some(r * t.sin());
        r * t.cos()
    }

    /// Chi-square with `m` degrees of freedom (sum of `m` squared normals).
    pub fn chi2(&mut self, m: usize) -> f64 {
        (0..m).map(|_| self.normal().powi(2)).sum()
    }
}

/// Rounds to the 0.01-unit quantum of the plant's Modbus registers.
pub fn quantize(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
