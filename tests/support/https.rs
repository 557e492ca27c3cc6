//! A small blocking HTTPS client for the API tests: rustls, pinned to the
//! twin's own certificate (read from its state directory), one request per
//! connection; and a running twin with its API.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Accepts exactly one certificate (compared byte for byte) and checks the
/// handshake signatures with it.
#[derive(Debug)]
struct Pinned {
    cert: Vec<u8>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.cert.as_slice() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General("not the pinned certificate".into()))
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

/// The DER of the first certificate in a PEM file.
fn pem_cert(path: &Path) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::from_pem_file(path)
        .unwrap_or_else(|e| panic!("no certificate in {}: {e}", path.display()))
        .to_vec()
}

/// One reply.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Header lines, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// Body (for a stream: what arrived before the read stopped).
    pub body: String,
    /// The TLS version negotiated, if TLS.
    pub tls: Option<rustls::ProtocolVersion>,
}

impl Reply {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// A client of one twin's API.
#[derive(Clone)]
pub struct Client {
    addr: String,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl Client {
    /// A client of `https://addr` trusting only the certificate in
    /// `cert_pem`, offering the given TLS versions.
    pub fn https(
        addr: &str,
        cert_pem: &Path,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> Self {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = Arc::new(Pinned {
            cert: pem_cert(cert_pem),
            provider: provider.clone(),
        });
        let cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .expect("protocol versions")
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Client {
            addr: addr.to_owned(),
            tls: Some(Arc::new(cfg)),
        }
    }

    /// As [`Client::https`] (TLS 1.3), presenting a client certificate:
    /// makes a self-signed one, writes its PEM to `cert_out`, and returns
    /// the client.
    pub fn https_with_new_client_cert(addr: &str, cert_pem: &Path, cert_out: &Path) -> Self {
        let made = rcgen::generate_simple_self_signed(vec!["operator.example".to_owned()])
            .expect("client certificate");
        std::fs::write(cert_out, made.cert.pem()).expect("write client certificate");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = Arc::new(Pinned {
            cert: pem_cert(cert_pem),
            provider: provider.clone(),
        });
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(
            rustls::pki_types::PrivatePkcs8KeyDer::from(made.signing_key.serialize_der()),
        );
        let cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(rustls::DEFAULT_VERSIONS)
            .expect("protocol versions")
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_auth_cert(vec![made.cert.der().clone()], key)
            .expect("client auth");
        Client {
            addr: addr.to_owned(),
            tls: Some(Arc::new(cfg)),
        }
    }

    /// The same client (TLS settings and certificates) for another address.
    pub fn at(&self, addr: &str) -> Client {
        Client {
            addr: addr.to_owned(),
            tls: self.tls.clone(),
        }
    }

    /// A client of `http://addr`.
    pub fn http(addr: &str) -> Self {
        Client {
            addr: addr.to_owned(),
            tls: None,
        }
    }

    /// Sends `method path` with an optional bearer token, extra header
    /// lines and body; reads the reply (a stream: for at most `stream_for`).
    pub fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        extra: &[(&str, &str)],
        body: Option<&str>,
    ) -> Result<Reply, String> {
        let mut req =
            format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
        if let Some(t) = token {
            req.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        for (k, v) in extra {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        if let Some(b) = body {
            req.push_str(&format!("Content-Length: {}\r\n", b.len()));
        }
        req.push_str("\r\n");
        if let Some(b) = body {
            req.push_str(b);
        }
        let tcp = TcpStream::connect(&self.addr).map_err(|e| e.to_string())?;
        tcp.set_read_timeout(Some(Duration::from_millis(1500)))
            .map_err(|e| e.to_string())?;
        match &self.tls {
            Some(cfg) => {
                let conn = rustls::ClientConnection::new(
                    cfg.clone(),
                    ServerName::try_from("localhost").map_err(|e| e.to_string())?,
                )
                .map_err(|e| e.to_string())?;
                let mut s = rustls::StreamOwned::new(conn, tcp);
                s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
                let version = s.conn.protocol_version();
                let mut r = read_reply(&mut s)?;
                r.tls = version;
                Ok(r)
            }
            None => {
                let mut s = tcp;
                s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
                read_reply(&mut s)
            }
        }
    }

    /// `GET path` with `token`.
    pub fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.send("GET", path, token, &[], None)
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }
}

/// Reads a reply until the connection closes, the body is complete, or
/// (a stream) the read times out.
fn read_reply(s: &mut impl Read) -> Result<Reply, String> {
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).map_err(|e| e.to_string())?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|x| x.parse().ok())
        .ok_or_else(|| format!("no status line: {line:?}"))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        r.read_line(&mut line).map_err(|e| e.to_string())?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    let mut body = Vec::new();
    let len = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok());
    match len {
        Some(n) => {
            body.resize(n, 0);
            r.read_exact(&mut body).map_err(|e| e.to_string())?;
        }
        None => {
            // Chunked or a stream: whatever comes before close or timeout.
            let mut buf = [0u8; 4096];
            let start = Instant::now();
            while start.elapsed() < Duration::from_millis(1500) {
                match r.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => body.extend_from_slice(&buf[..n]),
                }
            }
        }
    }
    Ok(Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        tls: None,
    })
}

/// A running `twinshield run` with its API; killed on drop.
pub struct RunningTwin {
    child: Child,
    /// `HOST:PORT` of the API.
    pub api: String,
    /// What it printed before the API came up.
    pub banner: String,
}

impl Drop for RunningTwin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The API address in a line like `... dashboard https://HOST:PORT/ ...`.
fn api_addr(line: &str) -> Option<String> {
    let i = line.find("dashboard http")? + "dashboard ".len();
    let rest = line[i..].split("://").nth(1)?;
    Some(rest.split('/').next()?.to_owned())
}

impl RunningTwin {
    /// Starts the binary with `args` in `dir` and waits (at most 60 s) for
    /// a line containing `until`, having seen its API address.
    pub fn start(dir: &Path, args: &[&str], until: &str) -> Self {
        Self::start_env(dir, args, &[], until)
    }

    /// As [`RunningTwin::start`], with `env` set for the process.
    pub fn start_env(dir: &Path, args: &[&str], env: &[(&str, &str)], until: &str) -> Self {
        let mut child = Command::new(crate::twinshield())
            .current_dir(dir)
            .envs(env.iter().copied())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start twinshield: {e}"));
        let err = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        let until = until.to_owned();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(err).lines();
            let mut banner = String::new();
            let mut addr = None;
            while let Some(Ok(l)) = lines.next() {
                banner.push_str(&l);
                banner.push('\n');
                addr = addr.or_else(|| api_addr(&l));
                if l.contains(&until)
                    && let Some(a) = addr.clone()
                {
                    let _ = tx.send(Ok((a, banner.clone())));
                    // Keep draining so the child never blocks on stderr.
                    for _ in lines.by_ref() {}
                    return;
                }
            }
            let _ = tx.send(Err(banner));
        });
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Ok((api, banner))) => RunningTwin { child, api, banner },
            Ok(Err(banner)) => {
                let _ = child.kill();
                panic!("twinshield stopped before its API came up:\n{banner}")
            }
            Err(_) => {
                let _ = child.kill();
                panic!("no API line within 60 s")
            }
        }
    }

    /// `run` of a [`crate::Setup`]'s `q.bundle` for `seconds` with its API
    /// on a free loopback port (and `extra` arguments), against a plant of
    /// its own started here; returns both once the API is up.
    pub fn api(setup: &crate::Setup, seconds: &str, extra: &[&str]) -> (Self, crate::Plant) {
        let plant = crate::plant(&["--speed", "1"]);
        let mut args = crate::run_args("q.bundle", &plant.url, seconds).to_vec();
        args.extend_from_slice(&["--listen", "127.0.0.1:0"]);
        args.extend_from_slice(extra);
        let twin = Self::start(setup.dir.path(), &args, "API and dashboard");
        (twin, plant)
    }

    /// Waits (at most `limit`) for the process to end; its exit code.
    pub fn wait(&mut self, limit: Duration) -> Option<i32> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}
