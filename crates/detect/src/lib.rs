//! Residual detectors and alarms.
#![forbid(unsafe_code)]
