//! Hosting a device session: the API bound beside it, the backend
//! publisher started and shut down around it, and what they delivered.
//! What an operator should read goes to the session's observer.

use crate::api::{ApiKeys, ApiOptions, BoundApi, Services};
use crate::backend_link::BackendLink;
use crate::device::Backend;
use crate::session::{Session, SessionObserver, SessionOutcome};
use crate::summary::BackendReport;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use twinshield_api::ApiError;
use twinshield_backend::{BackendError, BackendTls, Publisher, PublisherConfig, PublisherHandle};
use twinshield_connect::PlantSource;
use twinshield_shield_macros::diversify;

/// Seconds the publisher gets at the end to deliver what waits.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Why a hosted session could not start.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The API could not be bound.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The publisher could not be started.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// The API beside a device session.
pub struct ApiHosting {
    /// Where it listens.
    pub listen: SocketAddr,
    /// How it serves.
    pub options: ApiOptions,
    /// The state directory of its token file and TLS identity.
    pub state: PathBuf,
    /// The keys of both, derived from the device key.
    pub keys: ApiKeys,
    /// How the device's keys are bound, for `/security`.
    pub binding: Option<twinshield_api::BindingView>,
}

/// What a session is hosted with.
pub struct Hosting {
    /// The API, if it runs.
    pub api: Option<ApiHosting>,
    /// The bundle's backend, if it names one.
    pub backend: Option<Backend>,
    /// The TLS client for an `https://` backend.
    pub backend_tls: Option<BackendTls>,
}

/// What a hosted session left behind.
pub struct Hosted {
    /// The session's outcome.
    pub outcome: SessionOutcome,
    /// What the backend publisher delivered, if there was one.
    pub backend: Option<BackendReport>,
}

/// Runs `session` with its API and publisher until `clock` ends or `stop`
/// turns true (which this also sends when the session ends, so the API
/// winds down with it).
#[diversify]
pub async fn host<S: PlantSource>(
    mut session: Session<'_, S>,
    hosting: Hosting,
    clock: impl FnMut() -> Option<f64>,
    stop: (watch::Sender<bool>, watch::Receiver<bool>),
    observer: &mut dyn SessionObserver,
) -> Result<Hosted, HostError> {
    let (stop_tx, stop_rx) = stop;
    let page = match hosting.api {
        Some(api) => start_api(api, &session, stop_rx.clone(), observer).await?,
        None => None,
    };
    let head_signer = hosting.backend.as_ref().map(|b| b.signer.clone());
    let publisher = match hosting.backend {
        Some(b) => Some(start_publisher(b, hosting.backend_tls, observer)?),
        None => None,
    };
    let history = session.recorder.as_ref().map(|r| r.store_handle());
    session.publisher = publisher.clone().map(|h| {
        let link = BackendLink::new(h, session.shield.gate());
        match (history.clone(), head_signer.clone()) {
            (Some(history), Some(signer)) => link.with_heads(history, signer),
            _ => link,
        }
    });
    let outcome = session.run(clock, stop_rx, observer).await;
    let _ = stop_tx.send(true);
    if let Some(p) = page {
        let _ = p.await;
    }
    let backend = match &publisher {
        Some(p) => Some(shut_down(p, observer).await),
        None => None,
    };
    Ok(Hosted { outcome, backend })
}

/// Binds the API over the session's history and feed; its keys go when
/// this returns (the API holds what it derived from them).
#[diversify]
async fn start_api<S: PlantSource>(
    api: ApiHosting,
    session: &Session<'_, S>,
    stop: watch::Receiver<bool>,
    observer: &mut dyn SessionObserver,
) -> Result<Option<tokio::task::JoinHandle<()>>, HostError> {
    let (Some(feed), Some(recorder)) = (&session.feed, &session.recorder) else {
        return Ok(None);
    };
    let services = Arc::new(
        Services::new(
            Some(recorder.store_handle()),
            session.model,
            session.shield.clone(),
        )
        .with_binding(api.binding.clone()),
    );
    let bound = BoundApi::bind(
        api.listen,
        &api.options,
        &api.state,
        &api.keys,
        feed.clone(),
        services,
    )
    .await?;
    if !bound.has_tokens {
        observer.notice(
            "warning: no API token yet: create one with `twinshield token new --role viewer` \
             (every API request is refused until then)",
        );
    }
    let certificate = bound
        .fingerprint
        .as_deref()
        .map_or(String::new(), |f| format!(" (certificate sha256 {f})"));
    observer.notice(&format!("API and dashboard {}{certificate}", bound.url()));
    Ok(Some(bound.spawn(stop)))
}

/// Starts the publisher for the bundle's backend.
#[diversify]
fn start_publisher(
    backend: Backend,
    tls: Option<BackendTls>,
    observer: &mut dyn SessionObserver,
) -> Result<PublisherHandle, HostError> {
    let config = PublisherConfig {
        tls,
        ..PublisherConfig::default()
    };
    let Backend {
        url,
        signer,
        outbox,
    } = backend;
    let handle = Publisher::start_with(&url, signer, outbox, config)?;
    observer.notice(&format!("publishing alarms and summaries to {url}"));
    Ok(handle)
}

/// Gives the publisher [`SHUTDOWN_GRACE`] to deliver what waits, and says
/// how it went.
#[diversify]
async fn shut_down(p: &PublisherHandle, observer: &mut dyn SessionObserver) -> BackendReport {
    let r = p.shutdown(SHUTDOWN_GRACE).await;
    let last = p
        .last_error()
        .filter(|_| r.failed_attempts > 0)
        .map_or(String::new(), |e| {
            format!("; {} failed attempt(s), the last: {e}", r.failed_attempts)
        });
    observer.notice(&format!(
        "backend: {} message(s) delivered, {} waiting in the outbox{last}",
        r.sent, r.pending
    ));
    BackendReport {
        dropped: r.dropped,
        failed_attempts: r.failed_attempts,
        pending: r.pending,
        sent: r.sent,
    }
}
