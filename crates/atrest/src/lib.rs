//! Data at rest: what every crate that keeps something on disk shares.
//!
//! - [`write_atomic`] and [`AtomicFile`]: a file is replaced whole or not
//!   at all. The bytes go to a temporary file beside the target
//!   (`NAME.partial-PID-N`, created exclusively with the final mode), which
//!   is synced, renamed over the target, and the directory synced; a crash
//!   at any point leaves the old file or the new one, never a mix, and a
//!   failed write removes its temporary.
//! - [`AeadKey`]: the one authenticated cipher of everything encrypted on
//!   disk (bundles' payloads, device keys, the history, the outbox, the
//!   token file, the TLS key): ChaCha20-Poly1305 under a 256-bit key, a
//!   fresh random 96-bit nonce per message, stored as
//!   `nonce ‖ ciphertext ‖ tag`, bound to associated data the caller
//!   chooses. Callers keep their own framing around it (a magic in front,
//!   the table and record key as associated data). It keeps its key as a
//!   [`MaskedKey`]: split under a random mask, put together only inside
//!   one call.
//!
//! ```
//! use twinshield_atrest::{AeadKey, write_atomic};
//!
//! let dir = std::env::temp_dir().join(format!("atrest-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let key = AeadKey::new(&[7; 32]);
//! let sealed = key.seal(b"example/v1", b"the plant's secret")?;
//! write_atomic(&dir.join("secret.bin"), &sealed, 0o600)?;
//!
//! let stored = std::fs::read(dir.join("secret.bin"))?;
//! let plain = key.open(b"example/v1", &stored)?;
//! assert_eq!(plain.as_slice(), b"the plant's secret");
//! assert!(key.open(b"another/v1", &stored).is_err());
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

mod aead;
mod file;
mod masked;

pub use aead::{AeadKey, EncryptError, KEY_LEN, NONCE_LEN, OpenError, TAG_LEN};
pub use file::{AtomicFile, WriteError, WriteStep, write_atomic};
pub use masked::{MaskedKey, scrub_stack};
