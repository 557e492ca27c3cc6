//! The API's flags, shared by `run` and `demo`, checked before anything
//! is opened and turned into the session's [`ApiOptions`].

use anyhow::{Result, bail};
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use twinshield_api::ApiConfig;
use twinshield_runtime::api::ApiOptions;
use twinshield_shield_macros::diversify;

/// How the API is served (flags shared by `run` and `demo`).
#[derive(Args, Clone, Debug)]
pub struct ApiArgs {
    /// Serve plain HTTP instead of HTTPS (loopback addresses only; for
    /// development and local tests).
    #[arg(long)]
    pub insecure_http: bool,
    /// TLS certificate chain (PEM) to serve instead of the device's
    /// self-signed one; needs --tls-key.
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PKCS#8 PEM) of --tls-cert.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Client certificates admitted in place of tokens (mutual TLS): a
    /// file of `ROLE CERT.pem` lines.
    #[arg(long, value_name = "FILE")]
    pub client_certs: Option<PathBuf>,
    /// Sustained requests per second allowed per token and per client
    /// address (bursts of twice it).
    #[arg(long, default_value_t = 50.0, value_name = "N")]
    pub rate_limit: f64,
}

#[diversify]
impl ApiArgs {
    /// Checks the flags against the address before anything is opened, so
    /// a refused command line changes nothing.
    pub fn check(&self, listen: SocketAddr) -> Result<()> {
        if self.insecure_http && !listen.ip().is_loopback() {
            bail!("--insecure-http serves plain HTTP on loopback addresses only, not {listen}");
        }
        if self.insecure_http && (self.tls_cert.is_some() || self.client_certs.is_some()) {
            bail!("--insecure-http goes with neither --tls-cert nor --client-certs");
        }
        if let Some(list) = &self.client_certs {
            twinshield_api::ClientCerts::from_file(list)?;
        }
        self.config().map(|_| ())
    }

    /// The session's API options.
    pub fn options(&self) -> Result<ApiOptions> {
        Ok(ApiOptions {
            config: self.config()?,
            insecure_http: self.insecure_http,
            tls_files: self.tls_cert.clone().zip(self.tls_key.clone()),
            client_certs: self.client_certs.clone(),
        })
    }

    /// The API's configuration, or why the flags are unusable.
    pub fn config(&self) -> Result<ApiConfig> {
        if !(self.rate_limit.is_finite() && self.rate_limit >= 1.0 && self.rate_limit <= 1e7) {
            bail!("--rate-limit must be between 1 and 10000000 requests per second");
        }
        Ok(ApiConfig {
            rate_limit: self.rate_limit,
            ..ApiConfig::default()
        })
    }
}
