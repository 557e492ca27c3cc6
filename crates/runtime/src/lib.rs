//! The twin's sync pipeline, with no I/O: each sample goes through the
//! estimator, the residual detectors and the alarm logic, and into the
//! history. Hosts (the CLI's sync loop, `eval`, the benchmarks) feed it.
#![forbid(unsafe_code)]

mod history;

pub use history::{History, QualityEvent, Record};
