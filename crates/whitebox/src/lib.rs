//! twinshield's white-box AES-128.
//!
//! The runtime's embedded secret must never exist as plain bytes in the
//! binary or in memory: the key derivation runs as white-box AES, a network
//! of lookup tables that computes AES under the secret without holding it.
//!
//! - [`generate`]: the table generator (construction v3: every table its
//!   own encodings, external input and output encodings, round 1 byte-wide,
//!   rounds 2 to 9 as Chow with 32×32 and 8×8 mixing bijections, redundant
//!   lanes), run by build.rs at build time with the secret and the build
//!   seed, and by tests;
//! - [`cipher`]: the evaluator ([`WhiteBox`]), with shuffled and dummy
//!   table reads;
//! - [`embedded`]: this build's tables and where their secret came from;
//! - [`aes_ref`]: plain AES-128, the reference the generators build from
//!   and the tests compare against;
//! - [`gf2`]: bit matrices over GF(2) and nibble bijections (the textbook
//!   fixture's mixing bijections and encodings);
//! - `textbook` (feature `textbook`, and in this crate's tests): the
//!   textbook Chow et al. (2002) white-box, **deliberately weak**, the
//!   fixture that proves the attack harness works, and `legacy`, the v2
//!   construction the red team broke (tables only), the translation
//!   attack's fixture;
//! - `Trace` and `Fault` (feature `trace`): every table value an evaluation
//!   reads, and a fault hook, for the attack harness, with `npy` and the
//!   `whitebox-trace` binary that writes traces for outside toolkits.
//!
//! Neither feature may be enabled in a shipped build.
//!
//! Tables generated for a key encrypt the FIPS-197 Appendix C.1 block to
//! the standard's ciphertext, once the external output encoding is taken
//! off (the runtime never takes it off: it consumes the encoded output):
//!
//! ```
//! use twinshield_whitebox::{OutputEncoding, WhiteBox, aes_ref, generate::generate};
//!
//! let key: [u8; 16] = std::array::from_fn(|i| i as u8); // 000102…0f
//! let block: [u8; 16] = std::array::from_fn(|i| (i as u8) * 0x11); // 001122…ff
//! let fips197 = [
//!     0x69, 0xc4, 0xe0, 0xd8, 0x6a, 0x7b, 0x04, 0x30,
//!     0xd8, 0xcd, 0xb7, 0x80, 0x70, 0xb4, 0xc5, 0x5a,
//! ];
//! let encoding_key = [7u8; 16];
//! let image = generate(&key, &encoding_key, 1);
//! let encoded = WhiteBox::new(&image)?.encrypt_encoded(&block);
//! assert_ne!(encoded, fips197);
//! let plain = OutputEncoding::from_key(&encoding_key).decode(&encoded);
//! assert_eq!(plain, fips197);
//! assert_eq!(plain, aes_ref::encrypt(&key, &block));
//! # Ok::<(), twinshield_whitebox::TablesError>(())
//! ```

pub mod aes_ref;
pub mod cipher;
pub mod embedded;
pub mod generate;
pub mod gf2;
pub mod layout;
#[cfg(any(test, feature = "textbook"))]
pub mod legacy;
#[cfg(feature = "trace")]
pub mod npy;
#[cfg(any(test, feature = "textbook"))]
pub mod textbook;
mod trace;

#[cfg(feature = "trace")]
pub use cipher::Fault;
pub use cipher::{TablesError, WhiteBox};
pub use generate::{InputEncoding, OutputEncoding};
#[cfg(feature = "trace")]
pub use trace::Trace;
