//! The publisher's TLS client for `https://` backends: rustls with the
//! ring provider, TLS 1.3 and 1.2 only, HTTP/1.1 by ALPN, the server name
//! taken from the URL's host. It trusts the anchors the bundle pins (a
//! private CA, or the backend's own certificate), or, for a bundle that
//! pins none, the system's certificate store read from its fixed
//! location and the certificates the operator adds. The environment
//! never changes what it trusts: `SSL_CERT_FILE` and `SSL_CERT_DIR` are
//! ignored. Built once, when the publisher starts.

use crate::{BackendError, NoTrustRoots, TlsSetupError, TransportError};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use twinshield_shield_macros::diversify;

/// The TLS client configuration the publisher connects with: trust roots
/// and protocol settings, built once. Cheap to clone.
#[derive(Clone)]
pub struct BackendTls {
    connector: tokio_rustls::TlsConnector,
    roots: usize,
}

#[diversify]
impl std::fmt::Debug for BackendTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BackendTls({} trust roots)", self.roots)
    }
}

#[diversify]
impl BackendTls {
    /// A TLS client trusting the system's certificate store (when
    /// `system_roots`: the first of [`SYSTEM_CA_FILES`] that exists, else
    /// the directory [`SYSTEM_CA_DIR`]; never where `SSL_CERT_FILE` or
    /// `SSL_CERT_DIR` point) and every certificate in `extra_pem` (PEM
    /// `CERTIFICATE` blocks: a private CA, or the backend's own
    /// certificate, pinned). Refused when no trust root is left, or when
    /// `extra_pem` holds no certificate or one that cannot be a root.
    pub fn new(system_roots: bool, extra_pem: Option<&[u8]>) -> Result<Self, BackendError> {
        let mut store = rustls::RootCertStore::empty();
        let mut system_problem = None;
        if system_roots {
            let found = system_certs();
            if let Some(e) = found.errors.into_iter().next() {
                tracing::warn!(error = %e, "some of the system's trust roots could not be read");
                system_problem = Some(e);
            }
            let (added, ignored) = store.add_parsable_certificates(found.certs);
            tracing::debug!(added, ignored, "system trust roots");
        }
        if let Some(pem) = extra_pem {
            for cert in extra_certs(pem)? {
                store
                    .add(cert)
                    .map_err(|e| BackendError::Tls(TlsSetupError::NotARoot(e)))?;
            }
        }
        if store.is_empty() {
            let why = match (system_roots, system_problem) {
                (false, _) => NoTrustRoots::NoneGiven,
                (true, None) => NoTrustRoots::SystemStoreEmpty,
                (true, Some(e)) => NoTrustRoots::SystemStoreUnreadable(e),
            };
            return Err(BackendError::NoTrustRoots(why));
        }
        let roots = store.len();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| BackendError::Tls(TlsSetupError::Rustls(e)))?
            .with_root_certificates(store)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(BackendTls {
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
            roots,
        })
    }

    /// How many trust roots it holds.
    pub fn roots(&self) -> usize {
        self.roots
    }

    /// The TLS server name of `host` (a DNS name or an IP address).
    pub(crate) fn server_name(host: &str) -> Result<ServerName<'static>, BackendError> {
        ServerName::try_from(host.to_owned())
            .map_err(|_| BackendError::Url("the host is not a valid TLS server name"))
    }

    /// Runs the TLS handshake over `stream`, checking the certificate
    /// against the trust roots and `name`.
    pub(crate) async fn connect(
        &self,
        name: ServerName<'static>,
        stream: TcpStream,
    ) -> Result<TlsStream<TcpStream>, BackendError> {
        self.connector
            .connect(name, stream)
            .await
            .map_err(|e| BackendError::Transport(TransportError::Tls(e)))
    }
}

/// Where the system's CA bundle is read from, in the order of the common
/// distributions (Debian and Ubuntu, Fedora and RHEL, openSUSE, older
/// RHEL, Alpine): the first that exists. Fixed: the environment
/// (`SSL_CERT_FILE`) cannot point the twin at another.
pub const SYSTEM_CA_FILES: [&str; 5] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/tls/cacert.pem",
    "/etc/ssl/cert.pem",
];
/// The system's CA directory, read when none of [`SYSTEM_CA_FILES`]
/// exists (fixed: `SSL_CERT_DIR` cannot point the twin at another).
pub const SYSTEM_CA_DIR: &str = "/etc/ssl/certs";

/// The environment variables that would change TLS trust elsewhere and
/// are set, though ignored here (`SSL_CERT_FILE`, `SSL_CERT_DIR`): for a
/// warning.
#[diversify]
pub fn ignored_trust_variables() -> Vec<&'static str> {
    ["SSL_CERT_FILE", "SSL_CERT_DIR"]
        .into_iter()
        .filter(|v| std::env::var_os(v).is_some())
        .collect()
}

/// The system's trust roots from their fixed location, whatever
/// `SSL_CERT_FILE` and `SSL_CERT_DIR` say.
#[diversify]
fn system_certs() -> rustls_native_certs::CertificateResult {
    for var in ignored_trust_variables() {
        tracing::warn!(
            var,
            "ignored: the backend's trust roots do not come from the environment"
        );
    }
    let file = SYSTEM_CA_FILES
        .iter()
        .map(std::path::Path::new)
        .find(|p| p.is_file());
    match file {
        Some(f) => rustls_native_certs::load_certs_from_paths(Some(f), None),
        None => {
            let dir = std::path::Path::new(SYSTEM_CA_DIR);
            rustls_native_certs::load_certs_from_paths(None, dir.is_dir().then_some(dir))
        }
    }
}

/// The certificates of a PEM file the operator gave.
#[diversify]
fn extra_certs(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, BackendError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| BackendError::Tls(TlsSetupError::NotPem(e)))?;
    if certs.is_empty() {
        return Err(BackendError::Tls(TlsSetupError::NoCertificate));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    use tokio::net::TcpListener;

    /// A CA named `name`, and a leaf for `localhost`/`127.0.0.1` it
    /// signed: (CA PEM, leaf DER, leaf key DER).
    fn ca_and_leaf(name: &str) -> (String, Vec<u8>, Vec<u8>) {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.distinguished_name.push(DnType::CommonName, name);
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
            .unwrap()
            .signed_by(&leaf_key, &issuer)
            .unwrap();
        (ca_cert.pem(), leaf.der().to_vec(), leaf_key.serialize_der())
    }

    /// Serves one TLS handshake with `cert`/`key`; the client's result.
    async fn handshake(
        tls: &BackendTls,
        host: &str,
        cert: Vec<u8>,
        key: Vec<u8>,
    ) -> Result<(), BackendError> {
        let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert)],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.into()),
        )
        .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
        let server = tokio::spawn(async move {
            let (s, _) = listener.accept().await.unwrap();
            let _ = acceptor.accept(s).await;
        });
        let stream = TcpStream::connect(addr).await.unwrap();
        let got = tls
            .connect(BackendTls::server_name(host)?, stream)
            .await
            .map(|_| ());
        server.abort();
        got
    }

    #[test]
    fn without_any_root_or_with_a_bad_pem_the_client_is_refused() {
        assert!(matches!(
            BackendTls::new(false, None),
            Err(BackendError::NoTrustRoots(_))
        ));
        for bad in [
            &b""[..],
            b"not a certificate",
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        ] {
            let e = BackendTls::new(false, Some(bad)).unwrap_err();
            assert!(e.to_string().contains("no PEM certificate"), "{bad:?}: {e}");
        }
        let broken = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert!(matches!(
            BackendTls::new(false, Some(broken)),
            Err(BackendError::Tls(_))
        ));
        let (ca, _, _) = ca_and_leaf("test CA");
        assert_eq!(
            BackendTls::new(false, Some(ca.as_bytes())).unwrap().roots(),
            1
        );
    }

    #[test]
    fn server_names_come_from_dns_names_and_ip_addresses() {
        assert!(BackendTls::server_name("historian.example.com").is_ok());
        assert!(BackendTls::server_name("127.0.0.1").is_ok());
        assert!(BackendTls::server_name("::1").is_ok());
        assert!(BackendTls::server_name("a..b").is_err());
    }

    #[tokio::test]
    async fn the_handshake_needs_the_ca_and_the_right_name() {
        let (ca, leaf, key) = ca_and_leaf("test CA");
        let trusting = BackendTls::new(false, Some(ca.as_bytes())).unwrap();
        handshake(&trusting, "localhost", leaf.clone(), key.clone())
            .await
            .unwrap();
        handshake(&trusting, "127.0.0.1", leaf.clone(), key.clone())
            .await
            .unwrap();
        // Another name than the certificate's.
        let e = handshake(&trusting, "backend.example", leaf.clone(), key.clone())
            .await
            .unwrap_err();
        assert!(e.to_string().contains("not valid for name"), "{e}");
        // Another CA only.
        let (other_ca, _, _) = ca_and_leaf("another CA");
        let stranger = BackendTls::new(false, Some(other_ca.as_bytes())).unwrap();
        let e = handshake(&stranger, "localhost", leaf, key)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("UnknownIssuer"), "{e}");
    }

    #[tokio::test]
    async fn a_self_signed_backend_certificate_can_be_pinned() {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["localhost".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let pinned = BackendTls::new(false, Some(cert.pem().as_bytes())).unwrap();
        handshake(
            &pinned,
            "localhost",
            cert.der().to_vec(),
            key.serialize_der(),
        )
        .await
        .unwrap();
    }
}
