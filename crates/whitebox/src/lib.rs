//! twinshield's white-box AES-128.
//!
//! The runtime's embedded secret must never exist as plain bytes in the
//! binary or in memory: the key derivation runs as white-box AES, a network
//! of lookup tables that computes AES under the secret without holding it.
//!
//! - [`generate`]: the table generator (byte-wide encodings, redundant
//!   lanes, external output encoding), run by build.rs at build time with
//!   the secret and the build seed, and by tests;
//! - [`cipher`]: the evaluator ([`WhiteBox`]), with shuffled and dummy
//!   table reads;
//! - [`embedded`]: this build's tables and where their secret came from;
//! - [`aes_ref`]: plain AES-128, the reference the generators build from
//!   and the tests compare against;
//! - [`gf2`]: bit matrices over GF(2) and nibble bijections (the textbook
//!   fixture's mixing bijections and encodings);
//! - `textbook` (feature `textbook`, and in this crate's tests): the
//!   textbook Chow et al. (2002) white-box, **deliberately weak**, the
//!   fixture that proves the attack harness works;
//! - `Trace` and `Fault` (feature `trace`): every table value an evaluation
//!   reads, and a fault hook, for the attack harness, with `npy` and the
//!   `whitebox-trace` binary that writes traces for outside toolkits.
//!
//! Neither feature may be enabled in a shipped build.

pub mod aes_ref;
pub mod cipher;
pub mod embedded;
pub mod generate;
pub mod gf2;
pub mod layout;
#[cfg(feature = "trace")]
pub mod npy;
#[cfg(any(test, feature = "textbook"))]
pub mod textbook;
mod trace;

#[cfg(feature = "trace")]
pub use cipher::Fault;
pub use cipher::{TablesError, WhiteBox};
pub use generate::OutputEncoding;
#[cfg(feature = "trace")]
pub use trace::Trace;
