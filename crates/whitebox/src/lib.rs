//! twinshield's white-box AES-128.
//!
//! The runtime's embedded secret must never exist as plain bytes in the
//! binary or in memory: the key derivation runs as white-box AES, a network
//! of lookup tables that computes AES under the secret without holding it.
//!
//! What is here so far (issue 7, first part):
//!
//! - [`aes_ref`]: plain AES-128, the reference the table generators build
//!   from and the tests compare against;
//! - [`gf2`]: bit matrices over GF(2) and nibble bijections, the mixing
//!   bijections and encodings of the tables;
//! - `textbook` (feature `textbook`, and in this crate's tests): the
//!   textbook Chow et al. (2002) white-box, **deliberately weak**, the
//!   fixture that proves the attack harness works;
//! - `Trace` (feature `trace`): every table value an evaluation reads,
//!   what a binary-instrumentation tracer sees, for the attack harness,
//!   with `npy` and the `whitebox-trace` binary that writes traces for
//!   outside side-channel toolkits.
//!
//! Neither feature may be enabled in a shipped build. The hardened
//! twinshield white-box, the fault-analysis harness and the build-time
//! generation follow.

pub mod aes_ref;
pub mod gf2;
#[cfg(feature = "trace")]
pub mod npy;
#[cfg(any(test, feature = "textbook"))]
pub mod textbook;
// Only the textbook fixture evaluates tables so far; the hardened evaluator
// (next part of issue 7) will use the recorders in every build.
#[cfg_attr(not(any(test, feature = "textbook")), allow(dead_code))]
mod trace;

#[cfg(feature = "trace")]
pub use trace::Trace;
