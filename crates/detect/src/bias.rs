//! Windowed-mean (bias) test on one residual stream.

use crate::Status;
use crate::error::{DetectError, count, open_range, positive};
use twinshield_entangle::{Keys, Sealed, Tampered, faults, seal_all};
use twinshield_shield_macros::diversify;

/// Largest window accepted, in samples.
const MAX_WINDOW: usize = 1 << 20;
/// Normalized residuals are clamped to ±this before entering the window.
const Z_CLAMP: f64 = 1e6;

/// Settings of a [`BiasDetector`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BiasSettings {
    /// Samples in the window, `N`, at least 1 (default 50).
    pub window: usize,
    /// Alarm threshold on the statistic, in standard errors of the mean
    /// (default 5.0: a two-sided tail of 6e-7 per independent window).
    pub threshold: f64,
    /// Clear level as a fraction of the threshold, in (0, 1) (default 0.5).
    pub clear_fraction: f64,
    /// Effective-samples divisor `τ ≥ 1` (default 1): the window counts as
    /// `N_eff = N / τ` independent samples. For autocorrelated residuals,
    /// such as open-loop prediction errors, set `τ` to their integrated
    /// autocorrelation time, `1 + 2 Σ ρ(lag)`; for an AR(1) stream with
    /// lag-one correlation `φ`, `τ = (1 + φ) / (1 − φ)`.
    pub correlation_time: f64,
}

#[diversify]
impl Default for BiasSettings {
    fn default() -> Self {
        Self {
            window: 50,
            threshold: 5.0,
            clear_fraction: 0.5,
            correlation_time: 1.0,
        }
    }
}

/// Tests whether a residual stream has a non-zero mean: what the runtime uses
/// for actuator-vs-response plausibility (e.g. the plant responds as if a
/// pump ran at another voltage than it reports).
///
/// Each sample brings a residual `r` and its standard deviation `σ`; the
/// detector keeps the last `N` normalized residuals `z = r / σ` and computes
///
/// `statistic = |mean(z)| · √N_eff`, with `N_eff = N / τ`,
///
/// i.e. the mean in units of its standard error. For independent N(0, 1)
/// residuals, the statistic is |N(0, 1)|; `τ` corrects the standard error for
/// autocorrelation (see [`BiasSettings::correlation_time`]). It raises above
/// the threshold and clears below `clear_fraction × threshold`.
///
/// **Warm-up.** The test is only evaluated once the window is full (the
/// autocorrelation correction is asymptotic in `N`); before that the
/// statistic is 0.
///
/// **How fast it clears.** After the bias ends, the biased samples leave the
/// window within `N` samples; the alarm clears when enough of them have.
///
/// Samples with a non-finite residual or a standard deviation that is not
/// finite and positive are skipped (counted by [`skipped`](Self::skipped)).
/// Normalized residuals are clamped to ±1e6.
///
/// **Tamper evidence.** The settings, the window's samples, its sum, the
/// statistic and the alarm state are [`Sealed`] cells. A sample leaving the
/// window carries any fault of its cell into the sum, so a write into the
/// window is found when it would first count; [`verify`](Self::verify)
/// checks the rest.
#[derive(Debug, Clone)]
pub struct BiasDetector {
    /// threshold, clear level, scale.
    settings: [Sealed; 3],
    ring: Vec<Sealed>,
    head: usize,
    filled: usize,
    sum: Sealed,
    statistic: Sealed,
    /// 1.0 while alarming, else 0.0.
    alarming: Sealed,
    skipped: u64,
}

#[diversify]
impl BiasDetector {
    /// Builds a detector; see [`BiasSettings`] for the valid ranges.
    pub fn new(settings: BiasSettings) -> Result<Self, DetectError> {
        let window = count("bias window", settings.window, 1, MAX_WINDOW)?;
        let threshold = positive("bias threshold", settings.threshold)?;
        let clear_fraction = open_range("bias clear fraction", settings.clear_fraction, 0.0, 1.0)?;
        let tau = settings.correlation_time;
        if !(tau.is_finite() && tau >= 1.0) {
            return Err(DetectError::OutOfRange {
                name: "bias correlation time",
                value: tau,
                low: 1.0,
                high: f64::INFINITY,
            });
        }
        let n = window as f64;
        Ok(Self {
            settings: [
                threshold,
                threshold * clear_fraction,
                // |Σz| / √(N τ) = |mean z| · √(N / τ)
                1.0 / (n * tau).sqrt(),
            ]
            .map(Sealed::new),
            ring: seal_all(std::iter::repeat_n(0.0, window)),
            head: 0,
            filled: 0,
            sum: Sealed::new(0.0),
            statistic: Sealed::new(0.0),
            alarming: Sealed::new(0.0),
            skipped: 0,
        })
    }

    /// `Err` if a setting, the sum, the statistic or the alarm state was
    /// written from outside the detector (the window's samples are checked
    /// as they leave it, and all of them once per lap).
    pub fn verify(&self) -> Result<(), Tampered> {
        let state = [self.sum, self.statistic, self.alarming];
        twinshield_entangle::verify(
            faults(&self.settings) | faults(&state),
            "a bias detector's settings or window",
        )
    }

    /// The settings, unmasked: threshold, clear level, scale.
    #[inline]
    fn settings(&self, keys: &Keys) -> [f64; 3] {
        self.settings.map(|c| c.get_with(keys))
    }

    /// Feeds one residual and its standard deviation; returns the decision.
    pub fn update(&mut self, residual: f64, std: f64) -> Status {
        if !(residual.is_finite() && std.is_finite() && std > 0.0) {
            self.skipped = self.skipped.saturating_add(1);
            return self.status();
        }
        let z = (residual / std).clamp(-Z_CLAMP, Z_CLAMP);
        let z = if z.is_nan() { 0.0 } else { z };
        let window = self.ring.len();
        let keys = Keys::get();
        if let Some(slot) = self.ring.get_mut(self.head) {
            let (old, fault) = (slot.get_with(keys), slot.fault_under(keys));
            slot.set_with(keys, z);
            let sum = self.sum.get_with(keys) + z - old;
            self.sum.set_carrying_with(keys, sum, fault);
        }
        self.head += 1;
        if self.head >= window {
            self.head = 0;
            // Recompute exactly once per lap so rounding cannot accumulate.
            let sum = self.ring.iter().map(|c| c.get_with(keys)).sum();
            self.sum.set_carrying(sum, faults(&self.ring));
        }
        self.filled = (self.filled + 1).min(window);
        let [threshold, clear_level, scale] = self.settings(keys);
        let mut alarming = self.alarming.get_with(keys) != 0.0;
        let mut statistic = self.statistic.get_with(keys);
        if self.filled == window {
            let s = self.sum.get_with(keys).abs() * scale;
            statistic = if s.is_finite() { s } else { 0.0 };
            self.statistic.set_with(keys, statistic);
            let was = alarming;
            alarming = Status::step(was, statistic, threshold, clear_level);
            if alarming != was {
                self.alarming
                    .set_with(keys, if alarming { 1.0 } else { 0.0 });
            }
        }
        Status {
            alarming,
            statistic,
            threshold,
            clear_level,
        }
    }

    /// The current decision, without feeding a sample.
    pub fn status(&self) -> Status {
        let [threshold, clear_level, _] = self.settings(Keys::get());
        Status {
            alarming: self.alarming(),
            statistic: self.statistic.get(),
            threshold,
            clear_level,
        }
    }

    /// The mean normalized residual over the window (signed; 0 while
    /// warming up).
    pub fn mean(&self) -> f64 {
        if self.filled == 0 {
            0.0
        } else {
            self.sum.get() / self.filled as f64
        }
    }

    /// The current statistic, `|mean(z)| · √N_eff`.
    pub fn statistic(&self) -> f64 {
        self.statistic.get()
    }

    /// Whether the detector is in alarm.
    #[inline]
    pub fn alarming(&self) -> bool {
        self.alarming.get() != 0.0
    }

    /// Samples skipped because the residual or its standard deviation was bad.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Empties the window and clears the alarm (the skip count is kept).
    pub fn reset(&mut self) {
        let fault = faults(&self.ring);
        self.ring.iter_mut().for_each(|x| x.set(0.0));
        self.head = 0;
        self.filled = 0;
        self.sum.set_carrying(0.0, fault);
        self.statistic.set(0.0);
        self.alarming.set(0.0);
    }
}

#[cfg(test)]
mod tamper_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_written_window_sample_is_found_when_it_leaves_the_window() {
        let settings = BiasSettings {
            window: 10,
            ..BiasSettings::default()
        };
        let mut b = BiasDetector::new(settings).unwrap();
        for _ in 0..12 {
            b.update(0.1, 1.0);
        }
        let mut w = b.ring[5].words();
        w[0] ^= 1 << 62;
        b.ring[5] = Sealed::from_words(w);
        // Not yet counted: nothing the detector decided changed.
        assert!(b.verify().is_ok());
        for _ in 0..10 {
            b.update(0.1, 1.0);
        }
        assert!(b.verify().is_err());
    }
}
