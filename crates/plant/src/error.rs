//! Errors of the reference plants.

use thiserror::Error;

/// Why a plant refused a request. A refused request changes nothing in the
/// plant, so a host can log the error and go on stepping.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum PlantError {
    /// `step` was given a time step that is not finite, negative, or longer
    /// than [`crate::MAX_STEP`]; the host must split long steps itself.
    #[error("invalid time step {dt} s: must be finite and within 0..={max} s")]
    InvalidStep {
        /// The rejected step, in seconds.
        dt: f64,
        /// The longest step accepted, in seconds.
        max: f64,
    },
    /// An attack name that is not one of the known scenarios.
    #[error(
        "unknown attack `{name}`: expected one of bias, ramp, freeze, replay, actuator, dos, leak"
    )]
    UnknownAttack {
        /// The name as given.
        name: String,
    },
    /// An attack whose start time or magnitude cannot be applied.
    #[error("invalid attack: {reason}")]
    InvalidAttack {
        /// What is wrong with it.
        reason: String,
    },
}
