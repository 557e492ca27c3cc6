//! Randomness for keys, salts and seeds, from the operating system.

use crate::SealError;
use twinshield_shield_macros::diversify;

/// Fills `buf` from the system's random number generator.
#[diversify]
pub(crate) fn fill(buf: &mut [u8]) -> Result<(), SealError> {
    getrandom::fill(buf).map_err(SealError::Random)
}

#[cfg(test)]
mod tests {
    use twinshield_atrest::AeadKey;

    /// Device keys, share slots and release counters sealed by the code
    /// before `twinshield-atrest` (its own ChaCha20-Poly1305 wrapper) still
    /// open: the layout `nonce ‖ ciphertext ‖ tag` did not change.
    #[test]
    fn what_the_previous_wrapper_sealed_still_opens() {
        let fixture = "f4eea624776aa9862169d6e369a7dfcfe6db23879fcc40e418b7bf43c830003d\
                       2becf9a2e0c2e29d30163a5c53dcd9";
        let bytes: Vec<u8> = (0..fixture.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&fixture[i..i + 2], 16).unwrap())
            .collect();
        let key = AeadKey::new(&[0x11; 32]);
        let plain = key.open(b"seal-aad", &bytes).unwrap();
        assert_eq!(plain.as_slice(), b"device key material");
    }
}
