//! Windowed chi-square test on the normalized innovation squared (NIS).

use crate::Status;
use crate::error::{DetectError, count, open_range};
use crate::quantile::chi_square_quantile;
use twinshield_shield_macros::diversify;

/// Largest window accepted, in samples (the ring buffer is allocated up front).
const MAX_WINDOW: usize = 1 << 20;
/// Largest number of degrees of freedom per sample accepted.
const MAX_DOF: usize = 1 << 16;
/// One NIS sample is capped at this multiple of the full-window threshold,
/// so the windowed sum stays finite whatever the input.
const SAMPLE_CAP_FACTOR: f64 = 10.0;

/// Settings of a [`ChiSquareDetector`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChiSquareSettings {
    /// Samples in the window, `W` (default 20).
    pub window: usize,
    /// Degrees of freedom per sample, `m`: the number of outputs in the NIS
    /// (default 1; the runtime sets the number of outputs).
    pub dof_per_sample: usize,
    /// Target false-alarm probability per window, `p` in (0, 1)
    /// (default 1e-4): the threshold is the `1 − p` quantile of chi-square
    /// with `W · m` degrees of freedom.
    pub false_alarm: f64,
    /// Clear level, as a tail probability in (`false_alarm`, 1) (default
    /// 0.1): a raised alarm clears once the windowed sum falls below the
    /// `1 − clear_false_alarm` quantile (the 90 % quantile by default).
    pub clear_false_alarm: f64,
}

#[diversify]
impl Default for ChiSquareSettings {
    fn default() -> Self {
        Self {
            window: 20,
            dof_per_sample: 1,
            false_alarm: 1e-4,
            clear_false_alarm: 0.1,
        }
    }
}

/// Sum of the last `W` NIS values, tested against the chi-square quantile.
///
/// When plant and model agree, each NIS is chi-square with `m` degrees of
/// freedom and the windowed sum is chi-square with `W · m` (if the samples
/// are independent, which the Kalman filter's innovations are when the
/// model is right). The test raises when the sum exceeds the `1 − p`
/// quantile and clears when it falls below the `1 − clear_false_alarm`
/// quantile. Quantiles are computed once at construction (Wilson–Hilferty,
/// see [`chi_square_quantile`]).
///
/// **Warm-up.** Before the window has filled, the sum of the `n < W` samples
/// seen so far is tested against the quantiles for `n · m` degrees of
/// freedom, so the test is valid from the first sample.
///
/// **How fast it clears.** Once the residuals are back to normal, the sum
/// forgets the anomaly when the anomalous samples leave the window: at most
/// `W` samples after the attack ends.
///
/// NIS values that are NaN, infinite or negative are skipped (they do not
/// enter the window; counted by [`skipped`](Self::skipped)). A single NIS is
/// capped at 10 × the full-window threshold (one such sample alarms anyway).
#[derive(Debug, Clone)]
pub struct ChiSquareDetector {
    ring: Vec<f64>,
    head: usize,
    filled: usize,
    sum: f64,
    thresholds: Vec<f64>,
    clear_levels: Vec<f64>,
    sample_cap: f64,
    alarming: bool,
    skipped: u64,
}

#[diversify]
impl ChiSquareDetector {
    /// Builds a detector. `window` and `dof_per_sample` must be at least 1
    /// (at most 2^20 and 2^16), `false_alarm` in (0, 1), `clear_false_alarm`
    /// in (`false_alarm`, 1).
    pub fn new(settings: ChiSquareSettings) -> Result<Self, DetectError> {
        let window = count("chi-square window", settings.window, 1, MAX_WINDOW)?;
        let m = count(
            "chi-square degrees of freedom",
            settings.dof_per_sample,
            1,
            MAX_DOF,
        )?;
        let p = open_range("chi-square false alarm", settings.false_alarm, 0.0, 1.0)?;
        let pc = open_range(
            "chi-square clear false alarm",
            settings.clear_false_alarm,
            p,
            1.0,
        )?;
        let mut thresholds = Vec::with_capacity(window);
        let mut clear_levels = Vec::with_capacity(window);
        for n in 1..=window {
            let dof = n as f64 * m as f64;
            thresholds.push(chi_square_quantile(1.0 - p, dof)?);
            clear_levels.push(chi_square_quantile(1.0 - pc, dof)?);
        }
        let full = thresholds.last().copied().unwrap_or(1.0);
        Ok(Self {
            ring: vec![0.0; window],
            head: 0,
            filled: 0,
            sum: 0.0,
            thresholds,
            clear_levels,
            sample_cap: SAMPLE_CAP_FACTOR * full,
            alarming: false,
            skipped: 0,
        })
    }

    /// Feeds one NIS value; returns the decision.
    pub fn update(&mut self, nis: f64) -> Status {
        if !(nis.is_finite() && nis >= 0.0) {
            self.skipped = self.skipped.saturating_add(1);
            return self.status();
        }
        let x = nis.min(self.sample_cap);
        let window = self.ring.len();
        if let Some(slot) = self.ring.get_mut(self.head) {
            let old = std::mem::replace(slot, x);
            if self.filled < window {
                self.filled += 1;
                self.sum += x;
            } else {
                self.sum += x - old;
            }
        }
        self.head += 1;
        if self.head >= window {
            self.head = 0;
            // Recompute exactly once per lap so rounding cannot accumulate.
            self.sum = self.ring.iter().take(self.filled).sum();
        }
        self.sum = self.sum.max(0.0);
        let (threshold, clear) = self.levels();
        self.alarming = Status::step(self.alarming, self.sum, threshold, clear);
        self.status()
    }

    /// The current decision, without feeding a sample.
    pub fn status(&self) -> Status {
        let (threshold, clear_level) = self.levels();
        Status {
            alarming: self.alarming,
            statistic: self.sum,
            threshold,
            clear_level,
        }
    }

    /// Threshold and clear level for the current fill.
    fn levels(&self) -> (f64, f64) {
        let i = self.filled.max(1) - 1;
        (
            self.thresholds.get(i).copied().unwrap_or(f64::MAX),
            self.clear_levels.get(i).copied().unwrap_or(0.0),
        )
    }

    /// The threshold once the window is full.
    pub fn full_threshold(&self) -> f64 {
        self.thresholds.last().copied().unwrap_or(f64::MAX)
    }

    /// The clear level once the window is full.
    pub fn full_clear_level(&self) -> f64 {
        self.clear_levels.last().copied().unwrap_or(0.0)
    }

    /// The windowed NIS sum.
    pub fn statistic(&self) -> f64 {
        self.sum
    }

    /// Samples currently in the window (`W` once warmed up).
    pub fn filled(&self) -> usize {
        self.filled
    }

    /// Whether the detector is in alarm.
    pub fn alarming(&self) -> bool {
        self.alarming
    }

    /// Samples skipped because the NIS was NaN, infinite or negative.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Empties the window and clears the alarm (the skip count is kept).
    pub fn reset(&mut self) {
        self.ring.iter_mut().for_each(|x| *x = 0.0);
        self.head = 0;
        self.filled = 0;
        self.sum = 0.0;
        self.alarming = false;
    }
}
