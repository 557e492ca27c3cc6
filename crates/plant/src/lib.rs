//! Reference plants.
#![forbid(unsafe_code)]
