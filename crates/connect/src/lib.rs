//! Plant protocols.
#![forbid(unsafe_code)]
