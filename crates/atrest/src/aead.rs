//! ChaCha20-Poly1305 with a random nonce in front of the ciphertext.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use twinshield_shield_macros::diversify;
use zeroize::Zeroizing;

use crate::MaskedKey;

/// Length of a key, bytes.
pub const KEY_LEN: usize = 32;
/// Length of the nonce stored in front of every ciphertext, bytes.
pub const NONCE_LEN: usize = 12;
/// Length of the authentication tag after every ciphertext, bytes.
pub const TAG_LEN: usize = 16;

/// Why [`AeadKey::seal`] could not encrypt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EncryptError {
    /// The system's random number generator gave no nonce.
    #[error("no randomness for a nonce")]
    Random(#[source] getrandom::Error),
    /// The plaintext is longer than ChaCha20-Poly1305 can encrypt under
    /// one nonce (256 GiB).
    #[error("the plaintext is too long to encrypt")]
    TooLong,
}

/// Why [`AeadKey::open`] refused a ciphertext.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// Shorter than a nonce and a tag: truncated, or never sealed.
    #[error("the sealed data is truncated")]
    Truncated,
    /// The tag does not verify: another key, other associated data, or a
    /// changed byte.
    #[error("the sealed data does not open (another key, or changed)")]
    Refused,
}

/// A ChaCha20-Poly1305 key, kept split under a random mask
/// ([`MaskedKey`]) and wiped when dropped; it is put together only for the
/// length of one call. What it seals is `nonce ‖ ciphertext ‖ tag`, the
/// nonce fresh from the system's random number generator every time.
pub struct AeadKey {
    key: MaskedKey,
}

#[diversify]
impl std::fmt::Debug for AeadKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AeadKey(..)")
    }
}

#[diversify]
impl AeadKey {
    /// A key holding a masked copy of `key` (wiped on drop).
    pub fn new(key: &[u8; KEY_LEN]) -> Self {
        AeadKey {
            key: MaskedKey::new(key),
        }
    }

    /// Runs `f` with the cipher for one call. The cipher wipes its own copy
    /// of the key on drop, and [`MaskedKey::with`] the stack its rounds ran
    /// on (ChaCha20's state holds the key).
    fn with_cipher<R>(&self, f: impl FnOnce(&ChaCha20Poly1305) -> R) -> R {
        self.key
            .with(|key| f(&ChaCha20Poly1305::new(<&chacha20poly1305::Key>::from(key))))
    }

    /// `nonce ‖ ciphertext ‖ tag` of `plaintext`, bound to `aad`: it opens
    /// only under this key and with the same `aad`.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, EncryptError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(EncryptError::Random)?;
        let ct = self
            .with_cipher(|c| {
                c.encrypt(
                    &Nonce::from(nonce),
                    Payload {
                        msg: plaintext,
                        aad,
                    },
                )
            })
            .map_err(|_| EncryptError::TooLong)?;
        let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// The plaintext of what [`AeadKey::seal`] made under this key and
    /// `aad`; refused if the key, the associated data or any byte differs.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, OpenError> {
        if sealed.len() < NONCE_LEN + TAG_LEN {
            return Err(OpenError::Truncated);
        }
        let (nonce, ct) = sealed
            .split_at_checked(NONCE_LEN)
            .ok_or(OpenError::Truncated)?;
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| OpenError::Truncated)?;
        self.with_cipher(|c| c.decrypt(&Nonce::from(nonce), Payload { msg: ct, aad }))
            .map(Zeroizing::new)
            .map_err(|_| OpenError::Refused)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn a_sealed_message_opens_under_its_key_and_associated_data() {
        let key = AeadKey::new(&[3; 32]);
        let sealed = key.seal(b"aad", b"plain text").unwrap();
        assert_eq!(sealed.len(), NONCE_LEN + 10 + TAG_LEN);
        assert_eq!(key.open(b"aad", &sealed).unwrap().as_slice(), b"plain text");
        // Nonces are fresh: the same message seals differently each time.
        assert_ne!(key.seal(b"aad", b"plain text").unwrap(), sealed);
        // The empty message too.
        let empty = key.seal(b"", b"").unwrap();
        assert_eq!(key.open(b"", &empty).unwrap().as_slice(), b"");
    }

    #[test]
    fn every_changed_byte_is_refused() {
        let key = AeadKey::new(&[3; 32]);
        let sealed = key.seal(b"aad", b"plain text").unwrap();
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert_eq!(key.open(b"aad", &bad), Err(OpenError::Refused), "byte {i}");
        }
        let mut longer = sealed.clone();
        longer.push(0);
        assert_eq!(key.open(b"aad", &longer), Err(OpenError::Refused));
        for n in 0..NONCE_LEN + TAG_LEN {
            assert_eq!(key.open(b"aad", &sealed[..n]), Err(OpenError::Truncated));
        }
    }

    #[test]
    fn another_key_or_associated_data_is_refused() {
        let key = AeadKey::new(&[3; 32]);
        let sealed = key.seal(b"table\0record", b"plain text").unwrap();
        assert_eq!(key.open(b"table\0other", &sealed), Err(OpenError::Refused));
        assert_eq!(key.open(b"", &sealed), Err(OpenError::Refused));
        assert_eq!(
            AeadKey::new(&[4; 32]).open(b"table\0record", &sealed),
            Err(OpenError::Refused)
        );
    }

    #[test]
    fn the_layout_is_nonce_ciphertext_tag_as_in_rfc_8439() {
        // RFC 8439 §2.8.2: the AEAD test vector, stored as nonce ‖ ct ‖ tag.
        let key: [u8; 32] =
            hex("808182838485868788898a8b8c8d8e8f 909192939495969798999a9b9c9d9e9f")
                .try_into()
                .unwrap();
        let nonce = hex("070000004041424344454647");
        let aad = hex("50515253c0c1c2c3c4c5c6c7");
        let plain = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.";
        let ct = hex(
            "d31a8d34648e60db7b86afbc53ef7ec2 a4aded51296e08fea9e2b5a736ee62d6
             3dbea45e8ca9671282fafb69da92728b 1a71de0a9e060b2905d6a5b67ecd3b36
             92ddbd7f2d778b8c9803aee328091b58 fab324e4fad675945585808b4831d7bc
             3ff4def08e4b7a9de576d26586cec64b 6116",
        );
        let tag = hex("1ae10b594f09e26a7e902ecbd0600691");
        let stored = [nonce, ct, tag].concat();
        let key = AeadKey::new(&key);
        assert_eq!(key.open(&aad, &stored).unwrap().as_slice(), plain);
    }

    #[test]
    fn debug_shows_no_key() {
        assert_eq!(format!("{:?}", AeadKey::new(&[0x41; 32])), "AeadKey(..)");
    }
}
