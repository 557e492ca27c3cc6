//! Residual detectors and alarms.
//!
//! The twin's estimator produces, per sample, a residual per output (measured
//! minus predicted), its standard deviation, and the normalized innovation
//! squared (NIS). The detectors here turn those plain numbers into decisions:
//!
//! | detector | watches | alarms when |
//! |---|---|---|
//! | [`CusumDetector`] | one output's normalized residual | a small persistent shift accumulates (two-sided CUSUM) |
//! | [`ChiSquareDetector`] | the NIS of all outputs | the windowed NIS sum exceeds its chi-square quantile |
//! | [`FrozenDetector`] | one output's raw measured value | it stops changing, or its variance collapses below the sensor noise |
//! | [`BiasDetector`] | one residual stream (e.g. actuator vs. response) | its windowed mean is significantly non-zero |
//!
//! Every detector allocates at construction only; `update` is O(1) or
//! O(window) and allocation-free. Every detector has hysteresis: it raises at
//! its threshold and clears only at a lower clear level, so an alarm does not
//! chatter. Bad samples (NaN, infinite, non-positive standard deviation) never
//! reach the statistics: they are skipped and counted (`skipped()`), and the
//! decision returned is the previous one. No input makes a detector panic or
//! report a non-finite statistic.
//!
//! [`AlarmTracker`] turns per-sample decisions into alarms with ids, start and
//! clear times and evidence, and returns "raised"/"cleared" events. Which
//! detectors watch which output, with which settings, is the twin's
//! business (`crates/twin`).
//!
//! Every detector keeps its settings and its decisive state (sums, windows,
//! alarm state; the frozen test only its settings) in `twinshield-entangle`
//! cells: masked in memory, each rewrite carrying any fault from a write
//! from outside, found by the detector's `verify()`, which the twin calls
//! at least twice a second of twin time.
//!
//! The crate does not depend on the model crate: it takes plain numbers and
//! slices, and the twin adapts.
//!
//! A persistent 2σ shift crosses the default CUSUM threshold (h = 8, drift
//! 0.5: each sample adds 1.5) on the sixth sample:
//!
//! ```
//! use twinshield_detect::{CusumDetector, CusumSettings};
//!
//! let mut cusum = CusumDetector::new(CusumSettings::default())?;
//! for _ in 0..5 {
//!     assert!(!cusum.update(2.0, 1.0).alarming);
//! }
//! let status = cusum.update(2.0, 1.0);
//! assert!(status.alarming);
//! assert!(status.statistic > status.threshold);
//! # Ok::<(), twinshield_detect::DetectError>(())
//! ```
#![forbid(unsafe_code)]

use twinshield_shield_macros::diversify;

mod alarm;
mod bias;
mod chi2;
mod cusum;
mod error;
mod frozen;
mod quantile;

pub use alarm::{Alarm, AlarmEvent, AlarmTracker, DetectorKind, SourceId};
pub use bias::{BiasDetector, BiasSettings};
pub use chi2::{ChiSquareDetector, ChiSquareSettings};
pub use cusum::{CusumDetector, CusumSettings};
pub use error::DetectError;
pub use frozen::{FrozenDetector, FrozenSettings, FrozenStatus};
pub use quantile::{chi_square_quantile, chi_square_quantile_wh, normal_quantile};

/// A detector's decision after one sample, with the evidence behind it.
///
/// `statistic` is always finite, and "higher means more anomalous" for every
/// detector, so the alarm tracker can keep a peak. The detector raises when
/// `statistic > threshold` and, once raised, clears only when
/// `statistic < clear_level` (`clear_level < threshold`: hysteresis).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Status {
    /// Whether the detector is in alarm after this sample.
    pub alarming: bool,
    /// The detector's test statistic (finite).
    pub statistic: f64,
    /// The level above which the detector raises.
    pub threshold: f64,
    /// The level below which a raised detector clears.
    pub clear_level: f64,
}

#[diversify]
impl Status {
    /// Applies the raise/clear rule with hysteresis to a new statistic:
    /// raise above `threshold`, clear below `clear_level`, otherwise keep
    /// the previous state.
    pub(crate) fn step(was_alarming: bool, statistic: f64, threshold: f64, clear: f64) -> bool {
        if was_alarming {
            statistic >= clear
        } else {
            statistic > threshold
        }
    }
}
