//! The server's TLS identity: given by the operator (PEM files), or a
//! self-signed certificate made on first run whose private key is stored
//! sealed (ChaCha20-Poly1305 under a key the caller derives from the
//! device key), so a copy of the state directory serves nothing elsewhere.

use crate::error::ApiError;
use crate::sealed;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Arc;
use zeroize::Zeroizing;

const CERT_FILE: &str = "tls.crt";
const KEY_FILE: &str = "tls.key.sealed";
const KEY_MAGIC: &[u8; 8] = b"TSTLSKY1";

/// A certificate chain and its private key.
pub struct TlsIdentity {
    chain: Vec<CertificateDer<'static>>,
    key: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TlsIdentity(sha256 {})", self.fingerprint())
    }
}

impl TlsIdentity {
    /// The identity in `dir`, or a new self-signed one for `names`
    /// (DNS names or IP addresses) stored there. A sealed key that does not
    /// open under `key` is an error, never silently replaced.
    pub fn load_or_create(
        dir: &Path,
        key: &Zeroizing<[u8; 32]>,
        names: &[String],
    ) -> Result<Self, ApiError> {
        let cert_path = dir.join(CERT_FILE);
        let key_path = dir.join(KEY_FILE);
        let io = |p: &Path, e: std::io::Error| ApiError::Io(format!("{}: {e}", p.display()));
        if cert_path.exists() || key_path.exists() {
            let pem = std::fs::read(&cert_path).map_err(|e| io(&cert_path, e))?;
            let stored = std::fs::read(&key_path).map_err(|e| io(&key_path, e))?;
            let der = sealed::open(key, KEY_MAGIC, &stored)
                .ok_or_else(|| ApiError::TlsKeySealed(key_path.display().to_string()))?;
            return Ok(TlsIdentity {
                chain: certs_from_pem(&pem)?,
                key: der,
            });
        }
        let made = rcgen::generate_simple_self_signed(names.to_vec())
            .map_err(|e| ApiError::Tls(format!("cannot make a certificate: {e}")))?;
        let der = Zeroizing::new(made.signing_key.serialize_der());
        let stored = sealed::seal(key, KEY_MAGIC, &der)
            .ok_or_else(|| ApiError::Tls("cannot seal the key".into()))?;
        sealed::write_private(&key_path, &stored).map_err(|e| io(&key_path, e))?;
        std::fs::write(&cert_path, made.cert.pem()).map_err(|e| io(&cert_path, e))?;
        Ok(TlsIdentity {
            chain: vec![made.cert.der().clone()],
            key: der,
        })
    }

    /// An identity from PEM files the operator gives (certificate chain,
    /// PKCS#8 private key).
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Self, ApiError> {
        let io = |p: &Path, e: std::io::Error| ApiError::Io(format!("{}: {e}", p.display()));
        let chain = certs_from_pem(&std::fs::read(cert).map_err(|e| io(cert, e))?)?;
        let pem = Zeroizing::new(std::fs::read(key).map_err(|e| io(key, e))?);
        let der = pem_blocks(&pem, "PRIVATE KEY")
            .into_iter()
            .next()
            .ok_or_else(|| ApiError::Tls(format!("{}: no PKCS#8 private key", key.display())))?;
        Ok(TlsIdentity { chain, key: der })
    }

    /// SHA-256 of the leaf certificate, hex: what a client pins.
    pub fn fingerprint(&self) -> String {
        self.chain
            .first()
            .map(|c| {
                Sha256::digest(c.as_ref())
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The leaf certificate, PEM (for clients that pin it).
    pub fn leaf_der(&self) -> Option<&[u8]> {
        self.chain.first().map(|c| c.as_ref())
    }

    /// A rustls server configuration: TLS 1.3 and 1.2 only, HTTP/1.1.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, ApiError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.to_vec()));
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| ApiError::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), key)
            .map_err(|e| ApiError::Tls(e.to_string()))?;
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(cfg))
    }
}

fn certs_from_pem(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, ApiError> {
    let certs: Vec<_> = pem_blocks(pem, "CERTIFICATE")
        .into_iter()
        .map(|d| CertificateDer::from(d.to_vec()))
        .collect();
    if certs.is_empty() {
        return Err(ApiError::Tls("no certificate in the PEM file".into()));
    }
    Ok(certs)
}

/// The base64 bodies of every `-----BEGIN <label>-----` block.
fn pem_blocks(pem: &[u8], label: &str) -> Vec<Zeroizing<Vec<u8>>> {
    use base64::Engine;
    let text = String::from_utf8_lossy(pem);
    let (begin, end) = (
        format!("-----BEGIN {label}-----"),
        format!("-----END {label}-----"),
    );
    let mut out = Vec::new();
    let mut rest = text.as_ref();
    while let Some(start) = rest.find(&begin) {
        let after = &rest[start + begin.len()..];
        let Some(stop) = after.find(&end) else { break };
        let b64: Zeroizing<String> = Zeroizing::new(
            after[..stop]
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect(),
        );
        if let Ok(der) = base64::engine::general_purpose::STANDARD.decode(b64.as_bytes()) {
            out.push(Zeroizing::new(der));
        }
        rest = &after[stop + end.len()..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_self_signed_identity_is_made_once_and_opens_only_under_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let key = Zeroizing::new([3u8; 32]);
        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        let a = TlsIdentity::load_or_create(dir.path(), &key, &names).unwrap();
        let b = TlsIdentity::load_or_create(dir.path(), &key, &names).unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        a.server_config().unwrap();
        let sealed = std::fs::read(dir.path().join(KEY_FILE)).unwrap();
        assert!(!sealed.windows(16).any(|w| a.key.windows(16).any(|k| k == w)));
        let other = Zeroizing::new([4u8; 32]);
        assert!(matches!(
            TlsIdentity::load_or_create(dir.path(), &other, &names),
            Err(ApiError::TlsKeySealed(_))
        ));
    }
}
