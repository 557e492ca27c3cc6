//! The release key: the vendor's Ed25519 key that signs the guard table
//! `harden` writes. The binary carries only its public half (under the
//! guards, masked); the private half stays on the build machine
//! (`twinshield-release.key`, see the crate's build script). So a patched
//! binary cannot be sealed again with the shipped tools: its table would
//! need a signature only the build machine can make.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use std::hint::black_box;
use twinshield_shield_macros::diversify;
use zeroize::Zeroizing;

include!(concat!(env!("OUT_DIR"), "/release_key.rs"));

/// The key file a build leaves beside the binaries of its profile, and
/// where `harden` looks for it by default.
pub const KEY_FILE: &str = "twinshield-release.key";

/// First line of a release key file.
const HEADER: &str = "twinshield release key v1";

/// Why a release key file is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReleaseKeyError {
    /// The first line is not the release key header.
    #[error("not a twinshield release key")]
    NotAKey,
    /// The key line is not 64 hex digits.
    #[error("the release key is not 64 hex digits")]
    Malformed,
}

/// The release key's private half (zeroized on drop; no `Debug`).
pub struct ReleaseKey(SigningKey);

#[diversify]
impl ReleaseKey {
    /// Reads a release key file's text: the header line, then the 32-byte
    /// seed in hex.
    ///
    /// # Errors
    /// [`ReleaseKeyError`] for anything else.
    pub fn from_text(text: &str) -> Result<Self, ReleaseKeyError> {
        let mut lines = text.lines();
        if lines.next() != Some(HEADER) {
            return Err(ReleaseKeyError::NotAKey);
        }
        let hex = lines.next().unwrap_or_default().trim();
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ReleaseKeyError::Malformed);
        }
        let mut seed = Zeroizing::new([0u8; 32]);
        for (i, b) in seed.iter_mut().enumerate() {
            *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
                .map_err(|_| ReleaseKeyError::Malformed)?;
        }
        Ok(ReleaseKey(SigningKey::from_bytes(&seed)))
    }

    /// A key file's text for `seed` (tests, and vendors making a key).
    #[must_use]
    pub fn text_for(seed: &[u8; 32]) -> Zeroizing<String> {
        let hex: String = seed.iter().map(|b| format!("{b:02x}")).collect();
        Zeroizing::new(format!("{HEADER}\n{hex}\n"))
    }

    /// Whether this is the key the running binary was built with.
    #[must_use]
    pub fn is_this_builds(&self) -> bool {
        self.0.verifying_key().to_bytes() == this_builds_public_key()
    }

    /// Signs `message`.
    pub(crate) fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.0.sign(message).to_bytes()
    }
}

/// The public release key this binary was built with.
#[must_use]
#[diversify]
pub fn this_builds_public_key() -> [u8; 32] {
    let mask = black_box(RELEASE_KEY_MASK);
    let mut key = black_box(MASKED_RELEASE_KEY);
    for (k, m) in key.iter_mut().zip(mask) {
        *k ^= m;
    }
    key
}

/// Whether `signature` over `message` verifies with this build's public
/// release key.
#[must_use]
#[diversify]
pub fn verify(message: &[u8], signature: &[u8; 64]) -> bool {
    VerifyingKey::from_bytes(&this_builds_public_key()).is_ok_and(|k| {
        k.verify_strict(message, &Signature::from_bytes(signature))
            .is_ok()
    })
}
