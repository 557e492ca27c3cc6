//! The server's TLS identity: given by the operator (PEM files), or a
//! self-signed certificate made on first run whose private key is stored
//! sealed (ChaCha20-Poly1305 under a key the caller derives from the
//! device key), so a copy of the state directory serves nothing elsewhere.

use crate::error::ApiError;
use crate::sealed;
use crate::token::Role;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use twinshield_shield_macros::diversify;
use zeroize::Zeroizing;

const CERT_FILE: &str = "tls.crt";
const KEY_FILE: &str = "tls.key.sealed";
const KEY_MAGIC: &[u8; 8] = b"TSTLSKY1";

/// A certificate chain and its private key.
pub struct TlsIdentity {
    chain: Vec<CertificateDer<'static>>,
    key: Zeroizing<Vec<u8>>,
}

#[diversify]
impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TlsIdentity(sha256 {})", self.fingerprint())
    }
}

#[diversify]
impl TlsIdentity {
    /// The identity in `dir`, or a new self-signed one for `names`
    /// (DNS names or IP addresses) stored there. A sealed key that does not
    /// open under `key` is an error, never silently replaced.
    pub fn load_or_create(
        dir: &Path,
        key: &Zeroizing<[u8; 32]>,
        names: &[String],
    ) -> Result<Self, ApiError> {
        let key = &twinshield_atrest::AeadKey::new(key);
        let cert_path = dir.join(CERT_FILE);
        let key_path = dir.join(KEY_FILE);
        let io = |p: &Path, e: std::io::Error| ApiError::io(p, e);
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
            .map_err(|e| ApiError::tls(format!("cannot make a certificate: {e}"), e))?;
        let der = Zeroizing::new(made.signing_key.serialize_der());
        let stored = sealed::seal(key, KEY_MAGIC, &der)
            .map_err(|e| ApiError::tls("cannot seal the key", e))?;
        sealed::write_private(&key_path, &stored)?;
        twinshield_atrest::write_atomic(&cert_path, made.cert.pem().as_bytes(), 0o644)
            .map_err(|e| io(&cert_path, e.source))?;
        Ok(TlsIdentity {
            chain: vec![made.cert.der().clone()],
            key: der,
        })
    }

    /// An identity from PEM files the operator gives (certificate chain,
    /// PKCS#8 private key).
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Self, ApiError> {
        let io = |p: &Path, e: std::io::Error| ApiError::io(p, e);
        let chain = certs_from_pem(&std::fs::read(cert).map_err(|e| io(cert, e))?)?;
        let pem = Zeroizing::new(std::fs::read(key).map_err(|e| io(key, e))?);
        let der = PrivatePkcs8KeyDer::from_pem_slice(&pem)
            .map_err(|e| ApiError::tls(format!("{}: no PKCS#8 private key", key.display()), e))?;
        Ok(TlsIdentity {
            chain,
            key: Zeroizing::new(der.secret_pkcs8_der().to_vec()),
        })
    }

    /// SHA-256 of the leaf certificate, hex: what a client pins.
    pub fn fingerprint(&self) -> String {
        self.chain
            .first()
            .map(|c| {
                sha256(c.as_ref())
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

    /// A rustls server configuration: TLS 1.3 and 1.2 only, HTTP/1.1;
    /// with `clients`, a client may present one of those certificates
    /// instead of a token (mutual TLS; optional, tokens still work).
    pub fn server_config(
        &self,
        clients: Option<Arc<ClientCerts>>,
    ) -> Result<Arc<rustls::ServerConfig>, ApiError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.to_vec()));
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| ApiError::tls(e.to_string(), e))?;
        let builder = match clients {
            Some(c) => {
                builder.with_client_cert_verifier(Arc::new(PinnedClients { certs: c, provider }))
            }
            None => builder.with_no_client_auth(),
        };
        let mut cfg = builder
            .with_single_cert(self.chain.clone(), key)
            .map_err(|e| ApiError::tls(e.to_string(), e))?;
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(cfg))
    }
}

/// Client certificates admitted in place of a token, each mapped to a
/// role (mutual TLS). Pinned by SHA-256, like SSH's authorized keys: no
/// certificate authority is trusted wholesale.
#[derive(Debug, Default)]
pub struct ClientCerts {
    roles: HashMap<[u8; 32], Role>,
}

#[diversify]
impl ClientCerts {
    /// Reads a list of `ROLE PATH` lines (`#` comments, blank lines
    /// allowed); each PATH is a PEM certificate, relative paths from the
    /// list's directory.
    pub fn from_file(list: &Path) -> Result<Self, ApiError> {
        let text = std::fs::read_to_string(list).map_err(|e| ApiError::io(list, e))?;
        let base = list.parent().unwrap_or(Path::new("."));
        let mut roles = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let what = |why: &str| format!("{} line {}: {why}", list.display(), n + 1);
            let bad = |why: &str| ApiError::tls_only(what(why));
            let (role, path) = line
                .split_once(char::is_whitespace)
                .ok_or_else(|| bad("expected `ROLE PATH`"))?;
            let role: Role = role.parse().map_err(|_| bad("unknown role"))?;
            let pem = std::fs::read(base.join(path.trim()))
                .map_err(|e| ApiError::tls(what(&format!("{}: {e}", path.trim())), e))?;
            for cert in certs_from_pem(&pem)? {
                roles.insert(sha256(cert.as_ref()), role);
            }
        }
        if roles.is_empty() {
            return Err(ApiError::tls_only(format!(
                "{}: no certificates",
                list.display()
            )));
        }
        Ok(ClientCerts { roles })
    }

    /// The role of a presented certificate, if it is listed.
    pub fn role_of(&self, der: &[u8]) -> Option<Role> {
        self.roles.get(&sha256(der)).copied()
    }
}

/// SHA-256 of some bytes.
#[diversify]
pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Accepts exactly the listed client certificates and checks the
/// handshake signatures made with them.
#[derive(Debug)]
struct PinnedClients {
    certs: Arc<ClientCerts>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

#[diversify]
impl ClientCertVerifier for PinnedClients {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        match self.certs.role_of(end_entity.as_ref()) {
            Some(_) => Ok(ClientCertVerified::assertion()),
            None => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[diversify]
fn certs_from_pem(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, ApiError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ApiError::tls(format!("not a PEM certificate file: {e}"), e))?;
    if certs.is_empty() {
        return Err(ApiError::tls_only("no certificate in the PEM file"));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_operator_identity_loads_from_pem_files_and_junk_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let made = rcgen::generate_simple_self_signed(vec!["twin.example".to_owned()]).unwrap();
        let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        std::fs::write(&cert, made.cert.pem()).unwrap();
        std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
        let id = TlsIdentity::from_pem_files(&cert, &key).unwrap();
        assert_eq!(id.leaf_der(), Some(made.cert.der().as_ref()));
        id.server_config(None).unwrap();
        std::fs::write(&key, "not a key").unwrap();
        assert!(matches!(
            TlsIdentity::from_pem_files(&cert, &key),
            Err(ApiError::Tls {
                source: Some(_),
                ..
            })
        ));
        assert!(matches!(
            TlsIdentity::from_pem_files(&key, &key),
            Err(ApiError::Tls { .. })
        ));
    }

    #[test]
    fn a_self_signed_identity_is_made_once_and_opens_only_under_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let key = Zeroizing::new([3u8; 32]);
        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        let a = TlsIdentity::load_or_create(dir.path(), &key, &names).unwrap();
        let b = TlsIdentity::load_or_create(dir.path(), &key, &names).unwrap();
        assert_eq!(a.fingerprint(), b.fingerprint());
        a.server_config(None).unwrap();
        let sealed = std::fs::read(dir.path().join(KEY_FILE)).unwrap();
        assert!(
            !sealed
                .windows(16)
                .any(|w| a.key.windows(16).any(|k| k == w))
        );
        let other = Zeroizing::new([4u8; 32]);
        assert!(matches!(
            TlsIdentity::load_or_create(dir.path(), &other, &names),
            Err(ApiError::TlsKeySealed(_))
        ));
    }
}
