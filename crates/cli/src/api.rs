//! Wires the hardened API (`twinshield-api`) into `run` and `demo`: its
//! flags, its services over the history store and the shield, the state
//! directory's token file and TLS identity, and the sync loop's feed.

use anyhow::{Context, Result, bail};
use clap::Args;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;
use twinshield_api::{
    AlarmView, ApiConfig, ApiListener, AuditEntry, ChannelInfo, Feed, FindingView, HistoryPoint,
    SecurityView, ServiceError, TlsIdentity, TokenCheck, TokenStore, Transport, TwinInfo,
    TwinServices,
};
use twinshield_model::Model;
use twinshield_shield_macros::diversify;
use twinshield_store::{EventKind, StoreHandle};

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

/// Where the API's files live in a state directory.
#[diversify]
pub fn token_file(state: &Path) -> PathBuf {
    state.join("api").join("tokens")
}

#[diversify]
fn tls_dir(state: &Path) -> PathBuf {
    state.join("api")
}

/// The twin's public metadata for `model`.
#[diversify]
pub fn twin_info(model: &Model) -> TwinInfo {
    TwinInfo {
        name: model.name.clone(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        channels: model
            .outputs
            .iter()
            .map(|o| ChannelInfo {
                name: o.name.clone(),
                unit: o.unit.clone(),
            })
            .collect(),
    }
}

/// A feed for `model`, its residual bands three noise deviations wide
/// until the twin knows better.
#[diversify]
pub fn feed_for(model: &Model) -> Feed {
    let bands: Vec<f64> = model.outputs.iter().map(|o| 3.0 * o.noise).collect();
    Feed::new(twin_info(model), &bands)
}

/// Most audit entries kept in memory when there is no history (the demo).
const MEMORY_AUDIT: usize = 1000;

/// The API's services over the history store (when there is one) and the
/// shield.
pub struct Services {
    store: Option<StoreHandle>,
    /// Index of the first output channel in a stored sample.
    output_offset: usize,
    memory: Mutex<VecDeque<AuditEntry>>,
}

#[diversify]
impl Services {
    /// Services over `store` (stored samples put the model's inputs first),
    /// or over memory only.
    pub fn new(store: Option<StoreHandle>, model: &Model) -> Self {
        Services {
            store,
            output_offset: model.inputs.len(),
            memory: Mutex::new(VecDeque::new()),
        }
    }

    fn remember(&self, time_s: f64, kind: &str, what: &str) {
        if let Ok(mut m) = self.memory.lock() {
            if m.len() >= MEMORY_AUDIT {
                m.pop_front();
            }
            m.push_back(AuditEntry {
                time_s,
                kind: kind.to_owned(),
                what: what.to_owned(),
            });
        }
    }
}

#[diversify]
impl TwinServices for Services {
    fn history(
        &self,
        channel: usize,
        from: f64,
        to: f64,
        points: usize,
    ) -> Result<Vec<HistoryPoint>, ServiceError> {
        let store = self.store.as_ref().ok_or(ServiceError::Unavailable)?;
        let channel = channel + self.output_offset;
        let got = store
            .query(move |s| s.range(channel, from, to, points))
            .map_err(|_| ServiceError::Unavailable)?;
        Ok(got
            .into_iter()
            .map(|p| HistoryPoint {
                time_s: p.time,
                min: f64::from(p.min),
                mean: f64::from(p.mean),
                max: f64::from(p.max),
            })
            .collect())
    }

    fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>, ServiceError> {
        let Some(store) = &self.store else {
            let m = self.memory.lock().map_err(|_| ServiceError::Unavailable)?;
            return Ok(m.iter().rev().take(limit).cloned().collect());
        };
        let events = store
            .query(|s| s.events(f64::NEG_INFINITY, f64::INFINITY))
            .map_err(|_| ServiceError::Unavailable)?;
        Ok(events
            .into_iter()
            .rev()
            .filter(|e| {
                matches!(
                    e.kind,
                    EventKind::Audit | EventKind::Shield | EventKind::AlarmAcknowledged
                )
            })
            .take(limit)
            .map(|e| AuditEntry {
                time_s: e.time,
                kind: e.kind.name().to_owned(),
                what: e.text,
            })
            .collect())
    }

    fn audit(&self, time_s: f64, what: &str) {
        match &self.store {
            Some(s) => {
                if !s.event(EventKind::Audit, time_s, what) {
                    tracing::warn!("audit entry not stored (history queue full)");
                }
            }
            None => self.remember(time_s, "audit", what),
        }
    }

    fn acknowledged(&self, time_s: f64, alarm: &AlarmView, by: &str) {
        let what = format!("alarm {} acknowledged by {by}", alarm.id);
        match &self.store {
            Some(s) => {
                let _ = s.event(EventKind::AlarmAcknowledged, time_s, what);
            }
            None => self.remember(time_s, "alarm-acknowledged", &what),
        }
    }

    fn security(&self) -> SecurityView {
        let Some(s) = crate::shield::get() else {
            return SecurityView {
                protected: false,
                degraded: false,
                findings: Vec::new(),
            };
        };
        SecurityView {
            protected: s.guarded(),
            degraded: s.degraded(),
            findings: s
                .findings()
                .iter()
                .map(|(f, a)| FindingView {
                    class: f.class.name().to_owned(),
                    action: a.name().to_owned(),
                    what: f.evidence.clone(),
                })
                .collect(),
        }
    }

    fn writes_allowed(&self) -> bool {
        !crate::shield::degraded()
    }

    fn on_request(&self) {
        if let Some(s) = crate::shield::get() {
            s.check_on_request();
        }
    }
}

/// The TLS identity and token file keys of one API, derived before the
/// device keys are locked away.
pub struct ApiKeys {
    /// Seals the token file.
    pub tokens: zeroize::Zeroizing<[u8; 32]>,
    /// Seals the TLS private key.
    pub tls: zeroize::Zeroizing<[u8; 32]>,
}

/// A bound API, ready to serve.
pub struct BoundApi {
    listener: ApiListener,
    router: axum::Router,
    config: ApiConfig,
    /// The address it listens on.
    pub addr: SocketAddr,
    /// `https` or `http`.
    pub scheme: &'static str,
    /// SHA-256 of the TLS certificate, when HTTPS.
    pub fingerprint: Option<String>,
}

#[diversify]
impl BoundApi {
    /// Binds the API on `listen` with the token file and TLS identity of
    /// `state` (the identity is made on first use).
    pub async fn bind(
        listen: SocketAddr,
        args: &ApiArgs,
        state: &Path,
        keys: &ApiKeys,
        feed: Feed,
        services: Arc<dyn TwinServices>,
    ) -> Result<BoundApi> {
        let config = args.config()?;
        let tokens = TokenCheck::new(TokenStore::new(&token_file(state), keys.tokens.clone()))?;
        if !tokens.any() {
            eprintln!(
                "warning: no API token yet: create one with `twinshield token new --role viewer` \
                 (every API request is refused until then)"
            );
        }
        let (transport, fingerprint) = if args.insecure_http {
            (Transport::PlainLoopback, None)
        } else {
            let identity = match (&args.tls_cert, &args.tls_key) {
                (Some(c), Some(k)) => TlsIdentity::from_pem_files(c, k)?,
                _ => {
                    let mut names = vec!["localhost".to_owned()];
                    let ip = listen.ip();
                    if !ip.is_unspecified() {
                        names.push(ip.to_string());
                    }
                    names.push("127.0.0.1".to_owned());
                    names.dedup();
                    TlsIdentity::load_or_create(&tls_dir(state), &keys.tls, &names)?
                }
            };
            let fp = identity.fingerprint();
            let clients = match &args.client_certs {
                Some(list) => Some(Arc::new(twinshield_api::ClientCerts::from_file(list)?)),
                None => None,
            };
            (
                Transport::Tls(identity.server_config(clients.clone())?, clients),
                Some(fp),
            )
        };
        let https = matches!(transport, Transport::Tls(..));
        let listener = ApiListener::bind(listen, transport).await?;
        let addr = listener
            .local_addr()
            .context("the API's listening address")?;
        let router =
            twinshield_api::router(feed, services, Arc::new(tokens), https, config.clone());
        Ok(BoundApi {
            listener,
            router,
            config,
            addr,
            scheme: if https { "https" } else { "http" },
            fingerprint,
        })
    }

    /// The dashboard's address.
    pub fn url(&self) -> String {
        format!("{}://{}/", self.scheme, self.addr)
    }

    /// Serves until `stop` turns true.
    pub fn spawn(self, stop: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move { self.listener.serve(self.router, &self.config, stop).await })
    }
}
