//! Authenticated encryption for keys and payloads: ChaCha20-Poly1305 with a
//! random 96-bit nonce stored in front of the ciphertext.

use crate::SealError;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use twinshield_shield_macros::diversify;
use zeroize::Zeroizing;

/// Length of the nonce prefix.
pub(crate) const NONCE: usize = 12;

#[diversify]
pub(crate) fn random(buf: &mut [u8]) -> Result<(), SealError> {
    getrandom::fill(buf).map_err(|_| SealError::Random)
}

/// `nonce ‖ ciphertext ‖ tag` of `plaintext` under `key`, bound to `aad`.
#[diversify]
pub(crate) fn seal(key: &[u8; 32], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
    let cipher = ChaCha20Poly1305::new_from_slice(key).map_err(|_| SealError::Random)?;
    let mut nonce = [0u8; NONCE];
    random(&mut nonce)?;
    let ct = cipher
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| SealError::Decrypt)?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&ct);
    Ok(out)
}

/// Opens what [`seal`] produced; `None` if the key, the AAD or any byte is wrong.
#[diversify]
pub(crate) fn open(key: &[u8; 32], aad: &[u8], sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let (nonce, ct) = sealed.split_at_checked(NONCE)?;
    let nonce: [u8; NONCE] = nonce.try_into().ok()?;
    let cipher = ChaCha20Poly1305::new_from_slice(key).ok()?;
    cipher
        .decrypt(&Nonce::from(nonce), Payload { msg: ct, aad })
        .ok()
        .map(Zeroizing::new)
}
