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
//!
//! The estimator's and detectors' parameters and decisive state are kept
//! sealed (`twinshield-entangle`): masked in memory and redundantly
//! encoded. [`Twin::update`] checks them all at least every 0.5 twin
//! seconds (the estimator's state before every sample) and refuses the
//! sample with [`TwinError::Tampered`] when a write from outside broke one;
//! the host reports that as a tamper finding ([`TwinError::tampered`]).
//!
//! A twin of the shipped quadruple-tank model takes one sample at its
//! operating point: no alarm (it is still warming up), and the sample is in
//! the history:
//!
//! ```
//! use twinshield_model::Model;
//! use twinshield_twin::{Twin, TwinSettings};
//!
//! let model = Model::parse("quadtank.twin", include_str!("../../../models/quadtank.twin"))?;
//! let mut twin = Twin::new(&model, TwinSettings::default())?;
//! let levels = [12.263, 12.783, 1.634, 1.409];
//! let events = twin.update(0.0, &[3.0, 3.0], &levels)?;
//! assert!(events.is_empty());
//! assert_eq!(twin.samples(), 1);
//! assert_eq!(twin.history().latest().map(|r| r.outputs.clone()), Some(levels.to_vec()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

mod history;
mod twin;

pub use history::{History, QualityEvent, Record};
pub use twin::{Twin, TwinError, TwinSettings};
pub use twinshield_detect::{Alarm, AlarmEvent, DetectorKind};
