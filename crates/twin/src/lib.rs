//! The twin's sync pipeline, with no I/O: each sample goes through the
//! estimator, the residual detectors and the alarm logic, and into the
//! history. Hosts (the CLI's sync loop, `eval`, the benchmarks) feed it.
//!
//! Residuals are normalized by the estimator's innovation standard
//! deviation, then a slow baseline (the model's persistent mismatch with
//! the real plant) is subtracted before the tests: a two-sided CUSUM and a
//! windowed bias test per output, frozen and flat-line tests on the raw
//! values, and a windowed chi-square test on the normalized innovation
//! squared.
#![forbid(unsafe_code)]

mod history;
mod twin;

pub use history::{History, QualityEvent, Record};
pub use twin::{Twin, TwinError, TwinSettings};
pub use twinshield_detect::{Alarm, AlarmEvent, DetectorKind};
