//! The runtime's embedded secret, the root of the device-key derivation.
//!
//! Anyone holding the binary holds whatever it embeds, so the secret is not
//! embedded as bytes: it is the key of a white-box AES (the
//! `twinshield-whitebox` tables build.rs generated for this build), and a
//! derivation encrypts a digest of its context with it and expands the
//! encoded output. The plain AES output never exists either: the
//! white-box's output is under its external encoding, which depends on the
//! secret alone (not on the build seed), so every release with the same
//! secret derives the same keys.

use hkdf::Hkdf;
use sha2::{Digest, Sha256};
use twinshield_shield::{obf_bytes, protect};
use twinshield_shield_macros::diversify;
use zeroize::Zeroizing;

/// Derives 32-byte keys from the runtime's embedded secret.
pub trait RuntimeSecret {
    /// The key for `context` (a domain-separation label and inputs).
    fn derive(&self, context: &[u8]) -> Zeroizing<[u8; 32]>;
}

/// The runtime's embedded secret, computed by this build's white-box AES.
#[derive(Debug, Clone, Copy, Default)]
pub struct EmbeddedSecret;

#[diversify]
impl EmbeddedSecret {
    /// Whether this build embeds the public development secret (fine for
    /// development and tests, refused for a release).
    #[must_use]
    pub fn is_development(&self) -> bool {
        twinshield_whitebox::embedded::running_with_development_secret()
    }
}

#[diversify]
impl RuntimeSecret for EmbeddedSecret {
    #[protect]
    fn derive(&self, context: &[u8]) -> Zeroizing<[u8; 32]> {
        let digest = Sha256::new()
            .chain_update(obf_bytes!(b"twinshield/runtime-secret/white-box-input/v2").bytes())
            .chain_update(context)
            .finalize();
        let mut block = [0u8; 16];
        block.copy_from_slice(&digest[..16]);
        let encoded =
            Zeroizing::new(twinshield_whitebox::embedded::white_box().encrypt_encoded(&block));
        let hk = Hkdf::<Sha256>::new(
            Some(obf_bytes!(b"twinshield/runtime-secret/v2").bytes()),
            encoded.as_slice(),
        );
        let mut out = Zeroizing::new([0u8; 32]);
        // 32 bytes is always a valid HKDF-SHA256 output length.
        let _ = hk.expand(context, out.as_mut_slice());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derivation_is_deterministic_and_separates_contexts() {
        let a = EmbeddedSecret.derive(b"context a");
        assert_eq!(*a, *EmbeddedSecret.derive(b"context a"));
        assert_ne!(*a, *EmbeddedSecret.derive(b"context b"));
        assert_ne!(*a, [0u8; 32]);
    }
}
