//! The API's flags, shared by `run` and `demo`, checked before anything is opened and turned into
//! the session's [`ApiOptions`].

use anyhow::Result;
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use twinshield_api::ApiConfig;
use twinshield_runtime::api::ApiOptions;
use twinshield_shield_macros::diversify;

/// How the API is served (flags shared by `run` and `demo`).
#[derive(Args, Clone, Debug)]
pub struct ApiArgs {
    /// Serve plain HTTP instead of HTTPS (loopback addresses only; for development and local
    /// tests).
    #[arg(long)]
    pub insecure_http: bool,
    /// TLS certificate chain (PEM) to serve instead of the device's self-signed one; needs
    /// --tls-key.
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PKCS#8 PEM) of --tls-cert.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Client certificates admitted in place of tokens (mutual TLS): a file of `ROLE CERT.pem`
    /// lines.
    #[arg(long, value_name = "FILE")]
    pub client_certs: Option<PathBuf>,
    /// Sustained requests per second allowed per token and per client address (bursts of twice it).
    #[arg(long, default_value_t = 50.0, value_name = "N")]
    pub rate_limit: f64,
}

#[diversify]
impl ApiArgs {
    /// The API's options on `listen`, checked before anything is opened.
    pub fn options(&self, listen: SocketAddr) -> Result<ApiOptions> {
        let options = ApiOptions {
            config: ApiConfig::default(),
            insecure_http: self.insecure_http,
            tls_files: self.tls_cert.clone().zip(self.tls_key.clone()),
            client_certs: self.client_certs.clone(),
        };
        Ok(options.checked(listen, self.rate_limit)?)
    }
}
