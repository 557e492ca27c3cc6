//! Small files sealed under a device-derived key (ChaCha20-Poly1305):
//! `magic ‖ nonce ‖ ciphertext`, the magic bound in as associated data.
//! The token file and the TLS key are stored this way.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use std::path::Path;
use twinshield_shield_macros::diversify;
use zeroize::Zeroizing;

#[diversify]
fn cipher(key: &[u8; 32]) -> Option<ChaCha20Poly1305> {
    ChaCha20Poly1305::new_from_slice(key).ok()
}

/// Seals `plain` under `key`, tagged with `magic`.
#[diversify]
pub(crate) fn seal(key: &[u8; 32], magic: &[u8; 8], plain: &[u8]) -> Option<Vec<u8>> {
    let mut nonce = [0u8; 12];
    getrandom::fill(&mut nonce).ok()?;
    let ct = cipher(key)?
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: plain,
                aad: magic,
            },
        )
        .ok()?;
    let mut out = Vec::with_capacity(8 + 12 + ct.len());
    out.extend_from_slice(magic);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    Some(out)
}

/// Opens what [`seal`] made; `None` if the magic, the key or any byte is
/// wrong.
#[diversify]
pub(crate) fn open(key: &[u8; 32], magic: &[u8; 8], sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let body = sealed.strip_prefix(magic.as_slice())?;
    let (nonce, ct) = body.split_at_checked(12)?;
    let nonce: [u8; 12] = nonce.try_into().ok()?;
    cipher(key)?
        .decrypt(
            &Nonce::from(nonce),
            Payload {
                msg: ct,
                aad: magic,
            },
        )
        .ok()
        .map(Zeroizing::new)
}

/// Writes `bytes` to `path` readable by the owner only, through a
/// temporary file and a rename: a crash leaves the old file or the new.
#[diversify]
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}
