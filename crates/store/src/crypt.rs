//! Every value is sealed with ChaCha20-Poly1305 under the device-derived
//! key; the table name and the record's key are the associated data, so a
//! record moved to another key or table no longer opens.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use twinshield_shield_macros::diversify;
use zeroize::Zeroizing;

/// The store's cipher (the key is zeroized on drop with the cipher's copy).
pub(crate) struct Cipher {
    aead: ChaCha20Poly1305,
}

#[diversify]
fn aad(table: &str, key: &[u8]) -> Vec<u8> {
    let mut a = Vec::with_capacity(table.len() + key.len() + 1);
    a.extend_from_slice(table.as_bytes());
    a.push(0);
    a.extend_from_slice(key);
    a
}

#[diversify]
impl Cipher {
    pub fn new(key: &[u8; 32]) -> Option<Self> {
        ChaCha20Poly1305::new_from_slice(key)
            .ok()
            .map(|aead| Cipher { aead })
    }

    pub fn seal(&self, table: &str, key: &[u8], plaintext: &[u8]) -> Option<Vec<u8>> {
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).ok()?;
        let aad = aad(table, key);
        let ct = self
            .aead
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .ok()?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        Some(out)
    }

    pub fn open(&self, table: &str, key: &[u8], sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        let (nonce, ct) = sealed.split_at_checked(12)?;
        let nonce: [u8; 12] = nonce.try_into().ok()?;
        let aad = aad(table, key);
        self.aead
            .decrypt(&Nonce::from(nonce), Payload { msg: ct, aad: &aad })
            .ok()
            .map(Zeroizing::new)
    }
}
