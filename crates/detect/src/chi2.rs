//! Windowed chi-square test on the normalized innovation squared (NIS).

use crate::Status;
use crate::error::{DetectError, count, open_range};
use crate::quantile::chi_square_quantile;
use twinshield_entangle::{Keys, Sealed, Tampered, faults, seal_all};
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
///
/// **Tamper evidence.** The quantile tables, the sample cap, the window's
/// samples, its sum and the alarm state are [`Sealed`] cells; a sample
/// leaving the window carries any fault of its cell into the sum, and
/// [`verify`](Self::verify) checks the rest.
#[derive(Debug, Clone)]
pub struct ChiSquareDetector {
    ring: Vec<Sealed>,
    head: usize,
    filled: usize,
    sum: Sealed,
    thresholds: Vec<Sealed>,
    clear_levels: Vec<Sealed>,
    sample_cap: Sealed,
    /// 1.0 while alarming, else 0.0.
    alarming: Sealed,
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
            ring: seal_all(std::iter::repeat_n(0.0, window)),
            head: 0,
            filled: 0,
            sum: Sealed::new(0.0),
            thresholds: seal_all(thresholds),
            clear_levels: seal_all(clear_levels),
            sample_cap: Sealed::new(SAMPLE_CAP_FACTOR * full),
            alarming: Sealed::new(0.0),
            skipped: 0,
        })
    }

    /// `Err` if the tables, the cap, the sum or the alarm state were
    /// written from outside the detector (the window's samples are checked
    /// as they leave it, and all of them once per lap).
    pub fn verify(&self) -> Result<(), Tampered> {
        let state = [self.sum, self.sample_cap, self.alarming];
        twinshield_entangle::verify(
            faults(&self.thresholds) | faults(&self.clear_levels) | faults(&state),
            "the chi-square detector's tables or window",
        )
    }

    /// Feeds one NIS value; returns the decision.
    pub fn update(&mut self, nis: f64) -> Status {
        if !(nis.is_finite() && nis >= 0.0) {
            self.skipped = self.skipped.saturating_add(1);
            return self.status();
        }
        let keys = Keys::get();
        let x = nis.min(self.sample_cap.get_with(keys));
        let window = self.ring.len();
        let mut sum = self.sum.get_with(keys);
        let mut fault = 0;
        if let Some(slot) = self.ring.get_mut(self.head) {
            let old = slot.get_with(keys);
            fault = slot.fault_under(keys);
            slot.set_with(keys, x);
            if self.filled < window {
                self.filled += 1;
                sum += x;
            } else {
                sum += x - old;
            }
        }
        self.head += 1;
        if self.head >= window {
            self.head = 0;
            // Recompute exactly once per lap so rounding cannot accumulate.
            let cells = self.ring.iter().take(self.filled);
            sum = cells.clone().map(|c| c.get_with(keys)).sum();
            fault |= cells.fold(0, |acc, c| acc | c.fault());
        }
        let sum = sum.max(0.0);
        self.sum.set_carrying_with(keys, sum, fault);
        let (threshold, clear_level) = self.levels();
        let was = self.alarming.get_with(keys) != 0.0;
        let alarming = Status::step(was, sum, threshold, clear_level);
        if alarming != was {
            self.alarming
                .set_with(keys, if alarming { 1.0 } else { 0.0 });
        }
        Status {
            alarming,
            statistic: sum,
            threshold,
            clear_level,
        }
    }

    /// The current decision, without feeding a sample.
    pub fn status(&self) -> Status {
        let (threshold, clear_level) = self.levels();
        Status {
            alarming: self.alarming(),
            statistic: self.sum.get(),
            threshold,
            clear_level,
        }
    }

    /// Threshold and clear level for the current fill.
    fn levels(&self) -> (f64, f64) {
        let i = self.filled.max(1) - 1;
        (
            self.thresholds.get(i).map_or(f64::MAX, Sealed::get),
            self.clear_levels.get(i).map_or(0.0, Sealed::get),
        )
    }

    /// The threshold once the window is full.
    pub fn full_threshold(&self) -> f64 {
        self.thresholds.last().map_or(f64::MAX, Sealed::get)
    }

    /// The clear level once the window is full.
    pub fn full_clear_level(&self) -> f64 {
        self.clear_levels.last().map_or(0.0, Sealed::get)
    }

    /// The windowed NIS sum.
    pub fn statistic(&self) -> f64 {
        self.sum.get()
    }

    /// Samples currently in the window (`W` once warmed up).
    pub fn filled(&self) -> usize {
        self.filled
    }

    /// Whether the detector is in alarm.
    #[inline]
    pub fn alarming(&self) -> bool {
        self.alarming.get() != 0.0
    }

    /// Samples skipped because the NIS was NaN, infinite or negative.
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
        self.alarming.set(0.0);
    }
}
