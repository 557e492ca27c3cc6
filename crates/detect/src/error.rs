//! The one error type of this crate.

use twinshield_shield_macros::diversify;

/// Why a detector, the alarm tracker or the detector bank refused a setting
/// or a call.
///
/// Detectors never fail on bad *samples* (NaN, infinite, negative standard
/// deviations): those are skipped and counted, as each detector documents.
/// Errors are for bad *settings*, caught at construction, and for calls whose
/// shape is wrong (slices of the wrong length).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DetectError {
    /// A setting that must be a finite number greater than zero was not.
    #[error("{name} must be a finite number greater than zero, got {value}")]
    NotPositive {
        /// Which setting.
        name: &'static str,
        /// The value given.
        value: f64,
    },
    /// A setting that must be a finite number of at least zero was not.
    #[error("{name} must be a finite number of at least zero, got {value}")]
    Negative {
        /// Which setting.
        name: &'static str,
        /// The value given.
        value: f64,
    },
    /// A setting that must lie in an open interval did not.
    #[error("{name} must lie strictly between {low} and {high}, got {value}")]
    OutOfRange {
        /// Which setting.
        name: &'static str,
        /// The value given.
        value: f64,
        /// Exclusive lower bound.
        low: f64,
        /// Exclusive upper bound.
        high: f64,
    },
    /// A count (window length, degrees of freedom) was below its minimum.
    #[error("{name} must be at least {min}, got {value}")]
    TooSmall {
        /// Which setting.
        name: &'static str,
        /// The value given.
        value: usize,
        /// The smallest value accepted.
        min: usize,
    },
    /// A count was so large that the detector could not be built sensibly.
    #[error("{name} must be at most {max}, got {value}")]
    TooLarge {
        /// Which setting.
        name: &'static str,
        /// The value given.
        value: usize,
        /// The largest value accepted.
        max: usize,
    },
    /// A slice passed per sample did not have one entry per channel.
    #[error("{name} has {got} entries, expected {expected}")]
    LengthMismatch {
        /// Which argument.
        name: &'static str,
        /// Its length.
        got: usize,
        /// The number of channels the bank was built for.
        expected: usize,
    },
    /// An alarm source id that this tracker did not hand out.
    #[error("unknown alarm source {0}")]
    UnknownSource(usize),
}

/// Checks that `value` is finite and greater than zero.
#[diversify]
pub(crate) fn positive(name: &'static str, value: f64) -> Result<f64, DetectError> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(DetectError::NotPositive { name, value })
    }
}

/// Checks that `value` is finite and at least zero.
#[diversify]
pub(crate) fn non_negative(name: &'static str, value: f64) -> Result<f64, DetectError> {
    if value.is_finite() && value >= 0.0 {
        Ok(value)
    } else {
        Err(DetectError::Negative { name, value })
    }
}

/// Checks that `low < value < high` (false for NaN).
#[diversify]
pub(crate) fn open_range(
    name: &'static str,
    value: f64,
    low: f64,
    high: f64,
) -> Result<f64, DetectError> {
    if value > low && value < high {
        Ok(value)
    } else {
        Err(DetectError::OutOfRange {
            name,
            value,
            low,
            high,
        })
    }
}

/// Checks that `min <= value <= max` for a count.
#[diversify]
pub(crate) fn count(
    name: &'static str,
    value: usize,
    min: usize,
    max: usize,
) -> Result<usize, DetectError> {
    if value < min {
        Err(DetectError::TooSmall { name, value, min })
    } else if value > max {
        Err(DetectError::TooLarge { name, value, max })
    } else {
        Ok(value)
    }
}
