//! Stale and frozen sensor data on one channel's raw measured values.

use crate::Status;
use crate::error::{DetectError, count, non_negative, open_range, positive};
use twinshield_entangle::{Keys, Sealed, Tampered, faults};
use twinshield_shield_macros::diversify;

/// Largest variance window accepted, in samples.
const MAX_WINDOW: usize = 1 << 20;
/// The flatline statistic (declared noise std / observed std) is capped here,
/// so a perfectly constant window gives a finite statistic.
const FLAT_CAP: f64 = 1e6;
/// The unchanged-for statistic (seconds) is capped here.
const SECONDS_CAP: f64 = 1e15;

/// Settings of a [`FrozenDetector`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrozenSettings {
    /// Seconds without any change in the raw value after which the channel
    /// counts as frozen (default 30 s). Must be finite and positive.
    pub frozen_after: f64,
    /// Samples in the variance window, at least 2 (default 100: 10 s at
    /// 10 Hz; the bank uses 10 s worth of samples at its sample period).
    pub window: usize,
    /// The sensor's declared noise standard deviation, in the value's units
    /// (default 0). Zero disables the variance test: only exact repetition
    /// is detected. Should exceed the quantization step of the channel
    /// (0.01 units over Modbus), or a quiet but honest channel can look flat.
    pub noise_std: f64,
    /// The variance test raises when the window's std falls below
    /// `flat_ratio × noise_std`, in (1e-6, 1) (default 0.1).
    pub flat_ratio: f64,
    /// The variance test clears when the window's std is back above
    /// `clear_ratio × noise_std`, in (`flat_ratio`, 1) (default 0.2).
    pub clear_ratio: f64,
}

#[diversify]
impl Default for FrozenSettings {
    fn default() -> Self {
        Self {
            frozen_after: 30.0,
            window: 100,
            noise_std: 0.0,
            flat_ratio: 0.1,
            clear_ratio: 0.2,
        }
    }
}

/// The two decisions of a [`FrozenDetector`] after one sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrozenStatus {
    /// Exact repetition: statistic = seconds since the raw value last
    /// changed, threshold = `frozen_after`, clear level = `frozen_after / 2`
    /// (any change drops the statistic to 0, so it clears on the first
    /// change).
    pub unchanged: Status,
    /// Collapsed variance: statistic = `noise_std / window std` (capped at
    /// 1e6), threshold = `1 / flat_ratio` (10), clear level =
    /// `1 / clear_ratio` (5). Always quiet while the window is filling or
    /// when `noise_std` is 0.
    pub flatline: Status,
}

#[diversify]
impl FrozenStatus {
    /// Whether either test is in alarm.
    pub fn alarming(&self) -> bool {
        self.unchanged.alarming || self.flatline.alarming
    }
}

/// Detects a channel whose raw value stopped updating (a sensor, link or
/// replay freeze, a denial of service that leaves the last value in place).
///
/// Two tests, reported separately in [`FrozenStatus`]:
///
/// * **unchanged**: the value has been exactly equal to the previous one for
///   more than `frozen_after` seconds. Clears on the first change.
/// * **flatline**: over the last `window` samples the standard deviation is
///   below `flat_ratio × noise_std` (default: a tenth of the declared noise).
///   A live channel with noise std 0.05 quantized to 0.01 has a window std
///   near 0.05, far above 0.005; a frozen or replayed-constant one has 0.
///   Clears when the window's std recovers above `clear_ratio × noise_std`.
///   With a constant input this test fires once the window is full (10 s by
///   default), before the unchanged test.
///
/// Samples with a non-finite time or value are skipped (counted by
/// [`skipped`](Self::skipped)); they neither count as a change nor enter the
/// window. If time goes backwards, the time of the last change is moved back
/// with it, so the unchanged-for duration is never negative.
///
/// Cost per sample: O(1) amortized. The variance comes from running sums of
/// the values minus a recent reference value (so there is little
/// cancellation), recomputed exactly once per lap of the window; if those
/// sums overflow (values near ±1e308), an exact two-pass computation over
/// the window, scaled by its largest magnitude, takes over. No allocation.
///
/// **Tamper evidence.** The settings are [`Sealed`] cells, checked by
/// [`verify`](Self::verify); the window and its running sums are not (a
/// write there changes the flat-line statistic until the next lap's exact
/// recomputation, at most `window` samples).
#[derive(Debug, Clone)]
pub struct FrozenDetector {
    /// frozen after, noise std, flat threshold, flat clear level.
    settings: [Sealed; 4],
    ring: Vec<f64>,
    head: usize,
    filled: usize,
    shift: f64,
    sum: f64,
    sumsq: f64,
    last_value: Option<f64>,
    last_change: f64,
    unchanged_for: f64,
    flat_statistic: f64,
    unchanged_alarm: bool,
    flat_alarm: bool,
    skipped: u64,
}

#[diversify]
impl FrozenDetector {
    /// Builds a detector; see [`FrozenSettings`] for the valid ranges.
    pub fn new(settings: FrozenSettings) -> Result<Self, DetectError> {
        let frozen_after = positive("frozen after", settings.frozen_after)?;
        let window = count("frozen window", settings.window, 2, MAX_WINDOW)?;
        let noise_std = non_negative("noise std", settings.noise_std)?;
        // Below 1 / FLAT_CAP the threshold would exceed the capped statistic.
        let flat_ratio = open_range("flat ratio", settings.flat_ratio, 1.0 / FLAT_CAP, 1.0)?;
        let clear_ratio = open_range("flat clear ratio", settings.clear_ratio, flat_ratio, 1.0)?;
        Ok(Self {
            settings: [frozen_after, noise_std, 1.0 / flat_ratio, 1.0 / clear_ratio]
                .map(Sealed::new),
            ring: vec![0.0; window],
            head: 0,
            filled: 0,
            shift: 0.0,
            sum: 0.0,
            sumsq: 0.0,
            last_value: None,
            last_change: 0.0,
            unchanged_for: 0.0,
            flat_statistic: 0.0,
            unchanged_alarm: false,
            flat_alarm: false,
            skipped: 0,
        })
    }

    /// `Err` if a setting was written from outside the detector.
    pub fn verify(&self) -> Result<(), Tampered> {
        twinshield_entangle::verify(faults(&self.settings), "a frozen detector's settings")
    }

    /// The settings, unmasked: frozen after, noise std, flat threshold,
    /// flat clear level.
    #[inline]
    fn settings(&self) -> [f64; 4] {
        let keys = Keys::get();
        self.settings.map(|c| c.get_with(keys))
    }

    /// Feeds one raw measured value at `time` (seconds); returns both
    /// decisions.
    pub fn update(&mut self, time: f64, value: f64) -> FrozenStatus {
        if !(time.is_finite() && value.is_finite()) {
            self.skipped = self.skipped.saturating_add(1);
            return self.status();
        }
        let [frozen_after, noise_std, flat_threshold, flat_clear] = self.settings();
        match self.last_value {
            Some(last) if last == value => {
                if time < self.last_change {
                    self.last_change = time;
                }
            }
            _ => {
                self.last_value = Some(value);
                self.last_change = time;
            }
        }
        let since = time - self.last_change;
        self.unchanged_for = if since.is_finite() {
            since.clamp(0.0, SECONDS_CAP)
        } else {
            SECONDS_CAP
        };
        self.unchanged_alarm = Status::step(
            self.unchanged_alarm,
            self.unchanged_for,
            frozen_after,
            0.5 * frozen_after,
        );

        self.push(value);
        let window = self.ring.len();
        if self.filled == window && noise_std > 0.0 {
            let std = self.window_std();
            let ratio = noise_std / std;
            self.flat_statistic = if ratio.is_nan() {
                0.0
            } else {
                ratio.min(FLAT_CAP)
            };
            self.flat_alarm = Status::step(
                self.flat_alarm,
                self.flat_statistic,
                flat_threshold,
                flat_clear,
            );
        }
        self.status_with(frozen_after, flat_threshold, flat_clear)
    }

    /// Adds a value to the window and its running sums.
    fn push(&mut self, value: f64) {
        let window = self.ring.len();
        if self.filled == 0 {
            self.shift = value;
        }
        let d = value - self.shift;
        if let Some(slot) = self.ring.get_mut(self.head) {
            let old = std::mem::replace(slot, value);
            if self.filled == window {
                let o = old - self.shift;
                self.sum -= o;
                self.sumsq -= o * o;
            }
        }
        self.sum += d;
        self.sumsq += d * d;
        self.filled = (self.filled + 1).min(window);
        self.head += 1;
        if self.head >= window {
            self.head = 0;
            // Once per lap: re-center on the newest value and recompute
            // exactly, so rounding cannot accumulate.
            self.shift = value;
            self.sum = 0.0;
            self.sumsq = 0.0;
            for v in self.ring.iter().take(self.filled) {
                let d = v - value;
                self.sum += d;
                self.sumsq += d * d;
            }
        }
    }

    /// The standard deviation of the (full) window.
    fn window_std(&self) -> f64 {
        let n = self.filled as f64;
        let var = (self.sumsq - self.sum * self.sum / n) / (n - 1.0);
        if var.is_finite() {
            var.max(0.0).sqrt()
        } else {
            window_std(&self.ring)
        }
    }

    /// The current decisions, without feeding a sample.
    pub fn status(&self) -> FrozenStatus {
        let [frozen_after, _, flat_threshold, flat_clear] = self.settings();
        self.status_with(frozen_after, flat_threshold, flat_clear)
    }

    #[inline]
    fn status_with(&self, frozen_after: f64, flat_threshold: f64, flat_clear: f64) -> FrozenStatus {
        FrozenStatus {
            unchanged: Status {
                alarming: self.unchanged_alarm,
                statistic: self.unchanged_for,
                threshold: frozen_after,
                clear_level: 0.5 * frozen_after,
            },
            flatline: Status {
                alarming: self.flat_alarm,
                statistic: self.flat_statistic,
                threshold: flat_threshold,
                clear_level: flat_clear,
            },
        }
    }

    /// Seconds since the raw value last changed.
    pub fn unchanged_for(&self) -> f64 {
        self.unchanged_for
    }

    /// Whether either test is in alarm.
    pub fn alarming(&self) -> bool {
        self.unchanged_alarm || self.flat_alarm
    }

    /// Samples skipped because the time or value was not finite.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Forgets all history and clears both alarms (the skip count is kept).
    pub fn reset(&mut self) {
        self.ring.iter_mut().for_each(|x| *x = 0.0);
        self.head = 0;
        self.filled = 0;
        self.shift = 0.0;
        self.sum = 0.0;
        self.sumsq = 0.0;
        self.last_value = None;
        self.last_change = 0.0;
        self.unchanged_for = 0.0;
        self.flat_statistic = 0.0;
        self.unchanged_alarm = false;
        self.flat_alarm = false;
    }
}

/// Sample standard deviation of finite values, scaled by the largest
/// magnitude first so that no intermediate can overflow.
#[diversify]
fn window_std(values: &[f64]) -> f64 {
    let n = values.len();
    let scale = values.iter().fold(0.0_f64, |a, x| a.max(x.abs()));
    if n < 2 || scale == 0.0 || !scale.is_finite() {
        return 0.0;
    }
    let mean = values.iter().map(|x| x / scale).sum::<f64>() / n as f64;
    let ss: f64 = values
        .iter()
        .map(|x| {
            let d = x / scale - mean;
            d * d
        })
        .sum();
    let std = (ss / (n - 1) as f64).sqrt() * scale;
    if std.is_finite() { std.max(0.0) } else { 0.0 }
}
