//! Every value is sealed with ChaCha20-Poly1305 (`twinshield-atrest`'s
//! [`AeadKey`]) under the device-derived key; the table name and the
//! record's key are the associated data, so a record moved to another key
//! or table no longer opens.

use twinshield_atrest::AeadKey;
use twinshield_shield_macros::diversify;
use zeroize::Zeroizing;

/// The store's cipher: the key (wiped on drop) and the store's associated
/// data for each record.
pub(crate) struct Cipher {
    key: AeadKey,
}

/// `table ‖ 0 ‖ key`: what binds a record to its place.
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
    pub fn new(key: &[u8; 32]) -> Self {
        Cipher {
            key: AeadKey::new(key),
        }
    }

    pub fn seal(
        &self,
        table: &str,
        key: &[u8],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, twinshield_atrest::EncryptError> {
        self.key.seal(&aad(table, key), plaintext)
    }

    pub fn open(&self, table: &str, key: &[u8], sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        self.key.open(&aad(table, key), sealed).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record sealed by the store's cipher before `twinshield-atrest`
    /// still opens (and only in its place): histories written by earlier
    /// releases keep opening.
    #[test]
    fn a_record_sealed_by_the_previous_cipher_still_opens_in_its_place() {
        let fixture = "392e461f6291e242ff29ac983f649ee023d25c47aa124e702c910546d7e9451d\
                       10d09f031edffd4bfce1cf64bd23";
        let bytes: Vec<u8> = (0..fixture.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&fixture[i..i + 2], 16).unwrap())
            .collect();
        let c = Cipher::new(&[0x22; 32]);
        let plain = c.open("samples", &7u64.to_be_bytes(), &bytes).unwrap();
        assert_eq!(plain.as_slice(), b"a block of samples");
        assert!(c.open("minutes", &7u64.to_be_bytes(), &bytes).is_none());
        assert!(c.open("samples", &8u64.to_be_bytes(), &bytes).is_none());
    }
}
