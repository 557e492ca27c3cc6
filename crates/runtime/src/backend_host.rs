//! `backend`: the reference receiver of what twins publish, served over
//! HTTPS with the operator's certificate, or plain HTTP on a loopback
//! address only (tests, or behind a local TLS terminator).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::watch;
use twinshield_api::{ApiConfig, ApiError, ApiListener, TlsIdentity, Transport};
use twinshield_backend::{
    BackendError, HeadList, MAX_BODY, MessageStore, Receiver, ReceiverEvent, Verifier,
};
use twinshield_shield_macros::diversify;

/// Why the backend could not start.
#[derive(Debug, thiserror::Error)]
pub enum BackendHostError {
    /// Plain HTTP was asked for on an address that is not loopback.
    #[error(
        "plain HTTP is served only on a loopback address, not {0}; give --tls-cert and --tls-key to serve HTTPS"
    )]
    PlainNotLoopback(SocketAddr),
    /// The certificate, its key or the listener.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The enrolled devices or the store.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// Not a device key id.
    #[error(
        "`{0}` is not a device ID (16 lowercase hex digits, as `twinshield fingerprint` prints it)"
    )]
    BadDevice(String),
    /// The store holds no head of the device.
    #[error("no history heads of device {device} in {}", store.display())]
    NoHeads {
        /// The device.
        device: String,
        /// The store's directory.
        store: PathBuf,
    },
}

/// The signed history heads the store in `store` keeps for `device` (the
/// newest 100 and the last of each hour of 30 days, in the order
/// received), read without changing anything: what `history verify
/// --heads` checks a device's history against.
#[diversify]
pub fn export_heads(store: &std::path::Path, device: &str) -> Result<HeadList, BackendHostError> {
    let hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
    if device.len() != 16 || !device.bytes().all(hex) {
        return Err(BackendHostError::BadDevice(device.to_owned()));
    }
    let list = MessageStore::read_only(store)?.heads(device);
    if list.heads.is_empty() {
        return Err(BackendHostError::NoHeads {
            device: device.to_owned(),
            store: store.to_path_buf(),
        });
    }
    Ok(list)
}

/// How the backend serves.
pub struct BackendPlan {
    /// Where it listens.
    pub listen: SocketAddr,
    /// The directory of enrolled devices' `*.fp` files.
    pub devices: PathBuf,
    /// The store's directory.
    pub store: PathBuf,
    /// The certificate chain and key (PEM) to serve HTTPS with.
    pub tls: Option<(PathBuf, PathBuf)>,
}

/// What the backend says once it listens.
pub struct BackendReady {
    /// Its URL.
    pub url: String,
    /// Devices enrolled.
    pub devices: usize,
    /// Messages already stored.
    pub stored: usize,
    /// The served certificate's SHA-256 fingerprint, for HTTPS.
    pub fingerprint: Option<String>,
}

/// Serves the backend as `plan` says until `stop` turns true, telling
/// `on_event` of every request and `ready` once it listens.
#[diversify]
pub async fn serve_backend(
    plan: &BackendPlan,
    on_event: impl Fn(&ReceiverEvent<'_>) + Send + Sync + 'static,
    ready: impl FnOnce(BackendReady),
    stop: watch::Receiver<bool>,
) -> Result<(), BackendHostError> {
    let identity = match &plan.tls {
        Some((cert, key)) => Some(TlsIdentity::from_pem_files(cert, key)?),
        None if !plan.listen.ip().is_loopback() => {
            return Err(BackendHostError::PlainNotLoopback(plan.listen));
        }
        None => None,
    };
    let transport = match &identity {
        Some(id) => Transport::Tls(id.server_config(None)?, None),
        None => Transport::PlainLoopback,
    };
    let verifier = Verifier::from_dir(&plan.devices)?;
    let devices = verifier.devices();
    let store = MessageStore::open(&plan.store)?;
    let stored = store.len();
    let receiver = Arc::new(Receiver::new(verifier, store).on_event(on_event));
    let listener = ApiListener::bind(plan.listen, transport).await?;
    let scheme = if listener.is_tls() { "https" } else { "http" };
    let addr = listener.local_addr().unwrap_or(plan.listen);
    ready(BackendReady {
        url: format!("{scheme}://{addr}"),
        devices,
        stored,
        fingerprint: identity.as_ref().map(TlsIdentity::fingerprint),
    });
    let config = ApiConfig {
        max_body: MAX_BODY,
        ..ApiConfig::default()
    };
    listener.serve(receiver.router(), &config, stop).await;
    Ok(())
}
