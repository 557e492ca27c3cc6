//! Two-sided CUSUM on one output's normalized residual.

use crate::Status;
use crate::error::{DetectError, open_range, positive};
use twinshield_entangle::{Keys, Sealed, Tampered, faults};
use twinshield_shield_macros::diversify;

/// Normalized residuals are clamped to ±this before entering the sums, so a
/// residual of 1e308 over a standard deviation of 1e-308 stays finite.
const Z_CLAMP: f64 = 1e6;

/// Settings of a [`CusumDetector`], in standard deviations of the residual.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CusumSettings {
    /// Drift allowance `k` (default 0.5): shifts smaller than `k` are
    /// absorbed; CUSUM is tuned to detect a shift of about `2k`.
    pub drift: f64,
    /// Alarm threshold `h` (default 8.0).
    pub threshold: f64,
    /// Clear level as a fraction of `h`, in (0, 1) (default 0.5): a raised
    /// alarm clears once `max(S+, S−) < clear_fraction · h`.
    pub clear_fraction: f64,
    /// The statistics are capped at `cap_factor · h`, `cap_factor > 1`
    /// (default 10), so they cannot grow without bound during a long attack
    /// and the alarm can clear in bounded time after it ends.
    pub cap_factor: f64,
}

#[diversify]
impl Default for CusumSettings {
    fn default() -> Self {
        Self {
            drift: 0.5,
            threshold: 8.0,
            clear_fraction: 0.5,
            cap_factor: 10.0,
        }
    }
}

/// Two-sided CUSUM on the normalized residual `z = residual / std`.
///
/// Per sample: `S+ = min(cap, max(0, S+ + z − k))`,
/// `S− = min(cap, max(0, S− − z − k))`; the statistic is `max(S+, S−)`.
/// It raises when the statistic exceeds `h` and clears when it falls below
/// `clear_fraction · h`.
///
/// **How fast it clears.** When the residual returns to zero mean, each sum
/// falls by `k` per sample on average (never faster than `k + |z|`), so from
/// the cap `10h` to the clear level `h/2` takes about `9.5 h / k` samples:
/// 152 samples with the defaults; from just above `h`, about `h / (2k)` = 8.
/// Call [`reset`](Self::reset) to clear at once (e.g. after an operator
/// acknowledged the cause).
///
/// **False alarms.** With the defaults (k = 0.5, h = 8) on N(0, 1)
/// residuals, Siegmund's approximation gives an in-control average run
/// length of about 19 000 samples per side, about 9 600 two-sided: at 10 Hz,
/// one false alarm per channel every ~16 minutes if the residuals were
/// exactly N(0, 1). A 1σ mean shift is detected in about 16 samples.
///
/// Samples with a non-finite residual or a standard deviation that is not
/// finite and positive are skipped (counted by [`skipped`](Self::skipped)).
///
/// **Tamper evidence.** The settings, both sums and the alarm state are
/// [`Sealed`] cells: masked in memory, each rewrite carrying any earlier
/// fault; [`verify`](Self::verify) finds a write from outside.
#[derive(Debug, Clone)]
pub struct CusumDetector {
    /// drift, threshold, clear level, cap.
    settings: [Sealed; 4],
    plus: Sealed,
    minus: Sealed,
    /// 1.0 while alarming, else 0.0.
    alarming: Sealed,
    skipped: u64,
}

#[diversify]
impl CusumDetector {
    /// Builds a detector; every setting must be finite, `drift` and
    /// `threshold` positive, `clear_fraction` in (0, 1), `cap_factor` > 1.
    pub fn new(settings: CusumSettings) -> Result<Self, DetectError> {
        let drift = positive("cusum drift", settings.drift)?;
        let threshold = positive("cusum threshold", settings.threshold)?;
        let clear_fraction = open_range("cusum clear fraction", settings.clear_fraction, 0.0, 1.0)?;
        let cap_factor = open_range("cusum cap factor", settings.cap_factor, 1.0, 1e12)?;
        let cap = threshold * cap_factor;
        if !cap.is_finite() {
            return Err(DetectError::NotPositive {
                name: "cusum threshold × cap factor",
                value: cap,
            });
        }
        Ok(Self {
            settings: [drift, threshold, threshold * clear_fraction, cap].map(Sealed::new),
            plus: Sealed::new(0.0),
            minus: Sealed::new(0.0),
            alarming: Sealed::new(0.0),
            skipped: 0,
        })
    }

    /// `Err` if a setting or the state was written from outside the
    /// detector since it was last set.
    pub fn verify(&self) -> Result<(), Tampered> {
        let state = [self.plus, self.minus, self.alarming];
        twinshield_entangle::verify(
            faults(&self.settings) | faults(&state),
            "a CUSUM detector's settings or sums",
        )
    }

    /// The settings, unmasked: drift, threshold, clear level, cap.
    #[inline]
    fn settings(&self, keys: &Keys) -> [f64; 4] {
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
        let keys = Keys::get();
        let [drift, threshold, clear_level, cap] = self.settings(keys);
        // max-then-min, not clamp: a tampered cap must not panic.
        let plus = (self.plus.get_with(keys) + z - drift).max(0.0).min(cap);
        let minus = (self.minus.get_with(keys) - z - drift).max(0.0).min(cap);
        self.plus.set_with(keys, plus);
        self.minus.set_with(keys, minus);
        let statistic = plus.max(minus);
        let was = self.alarming.get_with(keys) != 0.0;
        let alarming = Status::step(was, statistic, threshold, clear_level);
        // Rewritten only when it changes; a broken cell stays broken anyway.
        if alarming != was {
            self.alarming
                .set_with(keys, if alarming { 1.0 } else { 0.0 });
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
        let [_, threshold, clear_level, _] = self.settings(Keys::get());
        Status {
            alarming: self.alarming(),
            statistic: self.statistic(),
            threshold,
            clear_level,
        }
    }

    /// `max(S+, S−)`, in standard deviations.
    pub fn statistic(&self) -> f64 {
        self.plus.get().max(self.minus.get())
    }

    /// The upper sum `S+` (evidence of a positive shift: measured above model).
    pub fn upper(&self) -> f64 {
        self.plus.get()
    }

    /// The lower sum `S−` (evidence of a negative shift: measured below model).
    pub fn lower(&self) -> f64 {
        self.minus.get()
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

    /// Zeroes both sums and clears the alarm (the skip count is kept).
    pub fn reset(&mut self) {
        self.plus.set(0.0);
        self.minus.set(0.0);
        self.alarming.set(0.0);
    }
}

#[cfg(test)]
mod tamper_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// One word of `cell` replaced, as a write into memory would.
    fn hit(cell: &mut Sealed, word: usize, value: u64) {
        let mut w = cell.words();
        w[word] = value;
        *cell = Sealed::from_words(w);
    }

    #[test]
    fn a_written_threshold_or_sum_is_found_and_survives_updates() {
        for (field, word) in [(0usize, 0usize), (1, 1), (4, 0), (5, 1), (6, 0)] {
            let mut c = CusumDetector::new(CusumSettings::default()).unwrap();
            c.update(1.0, 1.0);
            assert!(c.verify().is_ok());
            let cell = match field {
                0..=3 => &mut c.settings[field],
                4 => &mut c.plus,
                5 => &mut c.minus,
                _ => &mut c.alarming,
            };
            hit(cell, word, 0x4141_4141_4141_4141);
            for _ in 0..10 {
                c.update(2.0, 1.0);
            }
            assert!(c.verify().is_err(), "field {field} word {word}");
        }
    }
}
