//! The runtime's embedded secret, the root of the device-key derivation.
//! Anyone holding the binary holds it; the white-box issue replaces
//! [`EmbeddedSecret`] with a white-box AES implementation of the same trait,
//! so that the secret never exists as plain bytes.

use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

/// Derives 32-byte keys from the runtime's embedded secret.
pub trait RuntimeSecret {
    /// The key for `context` (a domain-separation label and inputs).
    fn derive(&self, context: &[u8]) -> Zeroizing<[u8; 32]>;
}

/// The plain embedded secret: a constant in the binary, expanded with
/// HKDF-SHA256. A placeholder until the white-box lands; documented as such.
#[derive(Debug, Clone, Copy, Default)]
pub struct EmbeddedSecret;

// Not a secret from anyone with the binary (see the type's documentation).
const EMBEDDED: [u8; 32] = *b"twinshield-embedded-secret-v1\x00\x00\x00";

impl RuntimeSecret for EmbeddedSecret {
    fn derive(&self, context: &[u8]) -> Zeroizing<[u8; 32]> {
        let hk = Hkdf::<Sha256>::new(Some(b"twinshield/runtime-secret/v1"), &EMBEDDED);
        let mut out = Zeroizing::new([0u8; 32]);
        // 32 bytes is always a valid HKDF-SHA256 output length.
        let _ = hk.expand(context, out.as_mut_slice());
        out
    }
}
