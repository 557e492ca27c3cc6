//! Publisher keys: the vendor's Ed25519 signing key (`NAME.key`, mode 0600)
//! and its public half (`NAME.pub`), as short text files.

use crate::SealError;
use crate::device::{hex, key_id};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use twinshield_shield_macros::diversify;
use zeroize::Zeroizing;

const KEY_HEADER: &str = "twinshield publisher key v1";
const PUB_HEADER: &str = "twinshield publisher public key v1";

/// A publisher's signing key (zeroized on drop).
pub struct PublisherKey(SigningKey);

/// A publisher's public key, as devices trust it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublisherPub(VerifyingKey);

#[diversify]
impl std::fmt::Debug for PublisherKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublisherKey({})", self.public().key_id_hex())
    }
}

#[diversify]
fn unhex32(s: &str) -> Option<Zeroizing<[u8; 32]>> {
    let s = s.trim();
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = Zeroizing::new([0u8; 32]);
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[diversify]
fn parse(text: &str, header: &str, what: &str) -> Result<Zeroizing<[u8; 32]>, SealError> {
    let mut lines = text.lines();
    if lines.next().map(str::trim) != Some(header) {
        return Err(SealError::Malformed(format!(
            "not a twinshield {what} file"
        )));
    }
    let key = lines
        .next()
        .and_then(unhex32)
        .ok_or_else(|| SealError::Malformed(format!("{what} file is corrupt")))?;
    if lines.any(|l| !l.trim().is_empty()) {
        return Err(SealError::Malformed(format!(
            "{what} file has trailing content"
        )));
    }
    Ok(key)
}

#[diversify]
impl PublisherKey {
    /// A fresh random key.
    pub fn generate() -> Result<Self, SealError> {
        let mut seed = Zeroizing::new([0u8; 32]);
        crate::random::fill(seed.as_mut_slice())?;
        Ok(PublisherKey(SigningKey::from_bytes(&seed)))
    }

    /// Parses a `NAME.key` file's text.
    pub fn from_text(text: &str) -> Result<Self, SealError> {
        let seed = parse(text, KEY_HEADER, "publisher key")?;
        Ok(PublisherKey(SigningKey::from_bytes(&seed)))
    }

    /// The `NAME.key` file's text (secret: write it with mode 0600).
    pub fn to_text(&self) -> Zeroizing<String> {
        let seed = Zeroizing::new(self.0.to_bytes());
        Zeroizing::new(format!("{KEY_HEADER}\n{}\n", hex(seed.as_slice())))
    }

    /// The public half.
    pub fn public(&self) -> PublisherPub {
        PublisherPub(self.0.verifying_key())
    }

    pub(crate) fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.0.sign(msg).to_bytes()
    }
}

#[diversify]
impl PublisherPub {
    /// Parses a `NAME.pub` file's text.
    pub fn from_text(text: &str) -> Result<Self, SealError> {
        let bytes = parse(text, PUB_HEADER, "publisher public key")?;
        VerifyingKey::from_bytes(&bytes)
            .map(PublisherPub)
            .map_err(|_| {
                SealError::Malformed("publisher public key file holds an invalid key".into())
            })
    }

    /// The `NAME.pub` file's text.
    pub fn to_text(&self) -> String {
        format!("{PUB_HEADER}\n{}\n", hex(&self.0.to_bytes()))
    }

    /// Short key id (hex), as bundles name their publisher.
    pub fn key_id_hex(&self) -> String {
        hex(&self.key_id())
    }

    pub(crate) fn key_id(&self) -> [u8; 8] {
        key_id(&[b"publisher", &self.0.to_bytes()])
    }

    pub(crate) fn verify(&self, msg: &[u8], sig: &[u8; 64]) -> bool {
        self.0
            .verify_strict(msg, &Signature::from_bytes(sig))
            .is_ok()
    }
}
