//! What `run` runs: a bundle opened on this device ([`DeviceTwin`]) polling
//! its plant over Modbus TCP in wall time, recording its history, with the
//! API and the backend publisher where asked, until its time is up or it
//! is stopped; then the [`RunSummary`] outside scripts read.

use crate::api::{ApiOptions, feed_for};
use crate::device::DeviceTwin;
use crate::host::{ApiHosting, HostError, Hosting, host};
use crate::recorder::Recorder;
use crate::session::{SampleTime, Session, SessionObserver};
use crate::summary::RunSummary;
use crate::wiring::{Wiring, WiringError, modbus_map};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use twinshield_connect::{ClientConfig, ModbusClient, PlantSource};
use twinshield_shield_macros::diversify;
use twinshield_twin::{Twin, TwinError, TwinSettings};

/// Why a plant address or a run could not be used.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The plant's URL is not `modbus://HOST:PORT`.
    #[error("--plant `{0}` must be modbus://HOST:PORT")]
    PlantScheme(String),
    /// The plant's host and port do not resolve.
    #[error("--plant `{url}`: `{host_port}` is not a reachable HOST:PORT")]
    PlantAddress {
        /// The URL given.
        url: String,
        /// Its HOST:PORT part.
        host_port: String,
    },
    /// The model and the plant do not fit together.
    #[error(transparent)]
    Wiring(#[from] WiringError),
    /// The twin refused the model or its settings.
    #[error(transparent)]
    Twin(#[from] TwinError),
    /// The API or the publisher did not start.
    #[error(transparent)]
    Host(#[from] HostError),
}

/// The address of a `modbus://HOST:PORT` plant.
#[diversify]
pub fn plant_addr(url: &str) -> Result<SocketAddr, RunError> {
    let rest = url
        .strip_prefix("modbus://")
        .ok_or_else(|| RunError::PlantScheme(url.to_owned()))?;
    rest.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| RunError::PlantAddress {
            url: url.to_owned(),
            host_port: rest.to_owned(),
        })
}

/// Seconds since 1970, the history's time base.
#[diversify]
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// How a device twin runs.
pub struct RunPlan {
    /// The plant's Modbus TCP address.
    pub plant: SocketAddr,
    /// Seconds between polls of the plant.
    pub period: f64,
    /// Wall seconds to run; `None` runs until stopped.
    pub seconds: Option<f64>,
    /// The API's address and options, if it runs.
    pub api: Option<(SocketAddr, ApiOptions)>,
    /// The state directory (the API's token file and TLS identity).
    pub state: PathBuf,
    /// The shield's verdict.
    pub shield: crate::gate::ShieldHandle,
}

/// Runs `twin` as `plan` says until its time is up or `stop` turns true,
/// with the start and the stop in the audit log, and returns the summary.
#[diversify]
pub async fn run_device(
    twin: DeviceTwin,
    plan: RunPlan,
    stop: (watch::Sender<bool>, watch::Receiver<bool>),
    observer: &mut dyn SessionObserver,
) -> Result<RunSummary, RunError> {
    audit_start(&twin);
    let DeviceTwin {
        model,
        header,
        recorder,
        api_keys,
        backend,
        backend_tls,
        binding,
        ..
    } = twin;
    let mut session = session_of(&plan, &model)?;
    session.recorder = Some(recorder);
    let shield = session.shield.clone();
    let api = match (plan.api, api_keys) {
        (Some((listen, options)), Some(keys)) => Some(ApiHosting {
            listen,
            options,
            state: plan.state.clone(),
            keys,
            binding: Some(binding),
        }),
        _ => None,
    };
    let hosting = Hosting {
        api,
        backend,
        backend_tls,
    };
    let hosted = host(session, hosting, wall_clock(plan.seconds), stop, observer).await?;
    let outcome = hosted.outcome;
    let mut recorder = outcome.recorder;
    let samples = outcome.twin.samples();
    if let Some(r) = recorder.as_mut() {
        r.audit(unix_now(), &format!("twin stopped after {samples} samples"));
        r.flush(unix_now());
    }
    Ok(RunSummary {
        alarms: outcome.alarms,
        backend: hosted.backend,
        data_quality_events: outcome.quality,
        model: model.name.clone(),
        release: header.release,
        samples,
        shield: shield.status(),
        storage_faults: recorder.as_ref().map(Recorder::faults),
        stored_samples: recorder.as_ref().map(Recorder::acknowledged),
    })
}

/// Unix time from now on, until `seconds` have passed (the history is
/// kept in Unix time).
#[diversify]
fn wall_clock(seconds: Option<f64>) -> impl FnMut() -> Option<f64> {
    let started = Instant::now();
    let epoch = unix_now();
    move || {
        let elapsed = started.elapsed().as_secs_f64();
        seconds
            .is_none_or(|end| elapsed < end)
            .then_some(epoch + elapsed)
    }
}

/// Says in the audit log what runs, from whom, on which device.
#[diversify]
fn audit_start(twin: &DeviceTwin) {
    let (model, header) = (&twin.model, &twin.header);
    twin.recorder.audit(
        unix_now(),
        &format!(
            "twin started: `{}` {} release {} from publisher {} on device {} \
             ({} of {} components match; {} hardware-resident needed)",
            model.name,
            model.version,
            header.release,
            header.publisher,
            twin.device_key_id,
            twin.components.0,
            twin.components.1,
            twin.binding.hardware_needed,
        ),
    );
}

/// The twin polling the plant over Modbus TCP (the recorder is added by
/// the caller, which holds it until then).
#[diversify]
fn session_of<'m>(
    plan: &RunPlan,
    model: &'m twinshield_model::Model,
) -> Result<Session<'m, ModbusClient>, RunError> {
    let settings = TwinSettings {
        sample_period: plan.period,
        ..TwinSettings::default()
    };
    let twin = Twin::new(model, settings)?;
    let source = ModbusClient::new(ClientConfig::new(plan.plant), modbus_map(model)?);
    Ok(Session {
        model,
        wiring: Wiring::new(model, &source.describe())?,
        source,
        twin,
        period: Duration::from_secs_f64(plan.period),
        feed: plan.api.as_ref().map(|_| feed_for(model)),
        attack: None,
        recorder: None,
        publisher: None,
        shield: plan.shield.clone(),
        time: SampleTime::Poll,
    })
}
