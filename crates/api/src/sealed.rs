//! Small files sealed under a device-derived key (ChaCha20-Poly1305,
//! `twinshield-atrest`'s [`AeadKey`]): `magic ‖ nonce ‖ ciphertext ‖ tag`,
//! the magic bound in as associated data. The token file and the TLS key
//! are stored this way.

use crate::error::ApiError;
use std::path::Path;
use twinshield_atrest::AeadKey;
use twinshield_shield_macros::diversify;
use zeroize::Zeroizing;

/// Seals `plain` under `key`, tagged with `magic`.
#[diversify]
pub(crate) fn seal(
    key: &AeadKey,
    magic: &[u8; 8],
    plain: &[u8],
) -> Result<Vec<u8>, twinshield_atrest::EncryptError> {
    let sealed = key.seal(magic, plain)?;
    Ok([magic.as_slice(), &sealed].concat())
}

/// Opens what [`seal`] made; `None` if the magic, the key or any byte is
/// wrong.
#[diversify]
pub(crate) fn open(key: &AeadKey, magic: &[u8; 8], sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let body = sealed.strip_prefix(magic.as_slice())?;
    key.open(magic, body).ok()
}

/// Writes `bytes` to `path` readable by the owner only, whole or not at
/// all (`twinshield-atrest`'s [`write_atomic`](twinshield_atrest::write_atomic)),
/// creating its directory if needed.
#[diversify]
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> Result<(), ApiError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| ApiError::io(dir, e))?;
        // The API's directory holds its token hashes and TLS key: the owner's
        // only, as the state directory around it.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| ApiError::io(dir, e))?;
    }
    twinshield_atrest::write_atomic(path, bytes, 0o600).map_err(|e| ApiError::io(path, e.source))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A token file or TLS key sealed before `twinshield-atrest` still
    /// opens: the layout did not change.
    #[test]
    fn what_the_previous_wrapper_sealed_still_opens() {
        let fixture = "54534d4147494331d8c113b1696be12c56fc9c90c9cf40e420f220dc1c8e1f03\
                       c27062a3e77d1eea0a34ad1e31d75133e3";
        let bytes: Vec<u8> = (0..fixture.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&fixture[i..i + 2], 16).unwrap())
            .collect();
        let key = AeadKey::new(&[0x33; 32]);
        let plain = open(&key, b"TSMAGIC1", &bytes).unwrap();
        assert_eq!(plain.as_slice(), b"{\"tokens\":[]}");
        assert!(open(&key, b"TSMAGIC2", &bytes).is_none());
        let again = seal(&key, b"TSMAGIC1", b"x").unwrap();
        assert_eq!(&again[..8], b"TSMAGIC1");
        assert_eq!(open(&key, b"TSMAGIC1", &again).unwrap().as_slice(), b"x");
    }
}
