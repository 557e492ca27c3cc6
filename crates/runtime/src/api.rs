//! The API's side of a session: the twin's services over the history
//! store and the shield, the feed the sync loop publishes to, and the
//! bound listener with the state directory's token file and TLS identity.

use crate::gate::{Gate, ShieldHandle};
use crate::recorder::schema;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;
use twinshield_api::{
    AlarmView, ApiConfig, ApiError, ApiListener, AuditEntry, BindingView, ChannelInfo, Feed,
    FindingView, HistoryPoint, SecurityView, Series, ServiceError, TlsIdentity, TokenCheck,
    TokenStore, Transport, TwinInfo, TwinServices,
};
use twinshield_atrest::MaskedKey;
use twinshield_model::Model;
use twinshield_shield_macros::diversify;
use twinshield_store::{EventKind, StoreHandle};
use twinshield_twin::Twin;

/// How the API is served.
#[derive(Debug, Clone, Default)]
pub struct ApiOptions {
    /// Limits and timeouts.
    pub config: ApiConfig,
    /// Plain HTTP (the caller checked the address is loopback).
    pub insecure_http: bool,
    /// The operator's own certificate chain and key (PEM files), instead
    /// of the device's self-signed identity.
    pub tls_files: Option<(PathBuf, PathBuf)>,
    /// A file of `ROLE CERT.pem` lines admitted in place of tokens.
    pub client_certs: Option<PathBuf>,
}

/// Why the API's flags are unusable.
#[derive(Debug, thiserror::Error)]
pub enum ApiOptionsError {
    /// Plain HTTP on an address that is not loopback.
    #[error("--insecure-http serves plain HTTP on loopback addresses only, not {0}")]
    PlainNotLoopback(SocketAddr),
    /// Plain HTTP with certificates.
    #[error("--insecure-http goes with neither --tls-cert nor --client-certs")]
    PlainWithCertificates,
    /// A rate limit out of range.
    #[error("--rate-limit must be between 1 and 10000000 requests per second")]
    RateLimit,
    /// The client-certificate list does not load.
    #[error(transparent)]
    ClientCerts(#[from] ApiError),
}

#[diversify]
impl ApiOptions {
    /// The options to serve on `listen` with `rate_limit` requests per
    /// second, checked before anything is opened, so refused flags change
    /// nothing.
    pub fn checked(self, listen: SocketAddr, rate_limit: f64) -> Result<Self, ApiOptionsError> {
        if self.insecure_http && !listen.ip().is_loopback() {
            return Err(ApiOptionsError::PlainNotLoopback(listen));
        }
        if self.insecure_http && (self.tls_files.is_some() || self.client_certs.is_some()) {
            return Err(ApiOptionsError::PlainWithCertificates);
        }
        if let Some(list) = &self.client_certs {
            twinshield_api::ClientCerts::from_file(list)?;
        }
        if !(rate_limit.is_finite() && (1.0..=1e7).contains(&rate_limit)) {
            return Err(ApiOptionsError::RateLimit);
        }
        let config = ApiConfig {
            rate_limit,
            ..self.config
        };
        Ok(ApiOptions { config, ..self })
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
    /// Per output: where its measurement and its residual sit in a stored
    /// sample.
    stored: Vec<(usize, usize)>,
    memory: Mutex<VecDeque<AuditEntry>>,
    gate: Gate,
    shield: ShieldHandle,
    binding: Option<BindingView>,
}

#[diversify]
impl Services {
    /// Services over `store` (samples laid out as the recorder's
    /// [`schema`] for `model`), or over memory only, writing while
    /// `shield`'s gate allows it.
    pub fn new(store: Option<StoreHandle>, model: &Model, shield: ShieldHandle) -> Self {
        // Found by name in the recorder's own layout, so the two cannot
        // drift apart.
        let layout = schema(model);
        let at = |name: &str| layout.iter().position(|c| c == name).unwrap_or(usize::MAX);
        let stored = model
            .outputs
            .iter()
            .map(|o| (at(&o.name), at(&format!("res:{}", o.name))))
            .collect();
        Services {
            gate: shield.gate(),
            shield,
            store,
            stored,
            memory: Mutex::new(VecDeque::new()),
            binding: None,
        }
    }

    /// The same services, showing how the device's keys are bound in
    /// `/security`.
    #[must_use]
    pub fn with_binding(mut self, binding: Option<BindingView>) -> Self {
        self.binding = binding;
        self
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
        series: Series,
        from: f64,
        to: f64,
        points: usize,
    ) -> Result<Vec<HistoryPoint>, ServiceError> {
        let store = self.store.as_ref().ok_or(ServiceError::Unavailable)?;
        let &(measured, residual) = self.stored.get(channel).ok_or(ServiceError::Unavailable)?;
        let channel = match series {
            Series::Measured => measured,
            Series::Residual => residual,
        };
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
        let Some(s) = self.shield.shield() else {
            return SecurityView {
                protected: false,
                degraded: !self.gate.allows_writes(),
                findings: Vec::new(),
                binding: self.binding.clone(),
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
            binding: self.binding.clone(),
        }
    }

    fn writes_allowed(&self) -> bool {
        self.gate.allows_writes()
    }

    fn on_request(&self) {
        if let Some(s) = self.shield.shield() {
            s.check_on_request();
        }
    }
}

/// The TLS identity and token file keys of one API, derived before the
/// device keys are locked away; kept masked until the API takes them.
pub struct ApiKeys {
    /// Seals the token file.
    pub tokens: MaskedKey,
    /// Seals the TLS private key.
    pub tls: MaskedKey,
}

#[diversify]
impl ApiKeys {
    /// Both keys, masked at once (the plain copies are wiped on return).
    pub fn new(tokens: &[u8; 32], tls: &[u8; 32]) -> Self {
        ApiKeys {
            tokens: MaskedKey::new(tokens),
            tls: MaskedKey::new(tls),
        }
    }
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
    /// Whether any token exists (without one every request is refused).
    pub has_tokens: bool,
}

/// The names a self-signed certificate for `listen` is made for.
#[diversify]
fn names(listen: SocketAddr) -> Vec<String> {
    let mut names = vec!["localhost".to_owned()];
    let ip = listen.ip();
    if !ip.is_unspecified() {
        names.push(ip.to_string());
    }
    names.push("127.0.0.1".to_owned());
    names.dedup();
    names
}

#[diversify]
impl BoundApi {
    /// Binds the API on `listen` with the token file and TLS identity of
    /// `state` (the identity is made on first use).
    pub async fn bind(
        listen: SocketAddr,
        options: &ApiOptions,
        state: &Path,
        keys: &ApiKeys,
        feed: Feed,
        services: Arc<dyn TwinServices>,
    ) -> Result<BoundApi, ApiError> {
        let config = options.config.clone();
        let store = keys
            .tokens
            .with(|k| TokenStore::new(&token_file(state), zeroize::Zeroizing::new(*k)));
        let tokens = TokenCheck::new(store)?;
        let has_tokens = tokens.any();
        let (transport, fingerprint) = if options.insecure_http {
            (Transport::PlainLoopback, None)
        } else {
            let identity = match &options.tls_files {
                Some((c, k)) => TlsIdentity::from_pem_files(c, k)?,
                None => keys.tls.with(|k| {
                    let k = zeroize::Zeroizing::new(*k);
                    TlsIdentity::load_or_create(&tls_dir(state), &k, &names(listen))
                })?,
            };
            let fp = identity.fingerprint();
            let clients = match &options.client_certs {
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
        let addr = listener.local_addr().map_err(|source| ApiError::Listen {
            addr: listen,
            source,
        })?;
        let router =
            twinshield_api::router(feed, services, Arc::new(tokens), https, config.clone());
        Ok(BoundApi {
            listener,
            router,
            config,
            addr,
            scheme: if https { "https" } else { "http" },
            fingerprint,
            has_tokens,
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

/// The twin's latest state as the API shows it: per output, what the
/// plant reported, what the twin expected (the report minus the residual)
/// and the residual's band (three innovation deviations, from the
/// normalised residual; the feed's noise-based band until it is known).
#[diversify]
pub fn state_view(model: &Model, twin: &Twin, t: f64) -> twinshield_api::StateView {
    let latest = twin.history().latest();
    let z = twin.normalized_residuals();
    let channels = model
        .outputs
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let measured = latest.and_then(|r| r.outputs.get(i)).copied();
            let residual = latest.and_then(|r| r.residual.get(i)).copied();
            let sigma = match (residual, z.get(i)) {
                (Some(r), Some(&zi)) if zi.abs() > 1e-9 && (r / zi).is_finite() => (r / zi).abs(),
                _ => o.noise,
            };
            twinshield_api::ChannelState {
                name: o.name.clone(),
                unit: o.unit.clone(),
                measured,
                estimate: measured.zip(residual).map(|(m, r)| m - r),
                residual,
                threshold: 3.0 * sigma,
            }
        })
        .collect();
    twinshield_api::StateView {
        time_s: t,
        samples: twin.samples(),
        active_alarms: twin.alarms().active_count() as u64,
        channels,
    }
}

/// One alarm as the API shows it (the feed keeps its acknowledgement).
#[diversify]
pub fn alarm_view(a: &twinshield_detect::Alarm) -> twinshield_api::AlarmView {
    twinshield_api::AlarmView {
        id: a.id,
        detector: a.kind.name().to_owned(),
        channels: a.channels.clone(),
        raised_at_s: a.start,
        cleared_at_s: a.clear,
        acknowledged: false,
    }
}
