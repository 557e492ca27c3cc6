//! What `demo` runs on one machine with no set-up: the model sealed for
//! this machine and opened again, the reference plant served on a loopback
//! port, a history and an API in temporary directories under keys drawn
//! for this run, and the session that watches the plant.

use crate::api::{ApiKeys, ApiOptions, BoundApi, Services, feed_for, token_file};
use crate::eval::PLANT_STEP;
use crate::gate::ShieldHandle;
use crate::plant_host;
use crate::recorder::{Recorder, schema};
use crate::session::{SampleTime, Session, SessionObserver};
use crate::summary::{AttackSummary, DemoSummary, round1};
use crate::wiring::{Wiring, modbus_map, reference_plant_clock};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use twinshield_api::{ApiError, Feed, IssuedToken, Role, TokenStore};
use twinshield_connect::{ClientConfig, ModbusClient, PlantSource, PointMap};
use twinshield_model::Model;
use twinshield_plant::{Attack, PlantError, QuadTank};
use twinshield_seal::{DeviceIdentity, EmbeddedSecret, PublisherKey, SealError, SealRequest};
use twinshield_shield_macros::diversify;
use twinshield_store::{StoreError, WriterConfig};
use twinshield_twin::{Twin, TwinError, TwinSettings};
use zeroize::Zeroizing;

/// Full-rate samples the demo's history keeps, plant seconds: the
/// dashboard reads the last 10 minutes, and a long demo at high speed
/// must not fill the temporary directory (minute aggregates keep the rest).
const DEMO_FULL_RATE_S: f64 = 3600.0;

/// Why the demo could not set itself up.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// No randomness for this run's keys.
    #[error("randomness: {0}")]
    Random(#[source] getrandom::Error),
    /// A temporary directory could not be made.
    #[error("cannot create a temporary directory: {0}")]
    TempDir(#[source] std::io::Error),
    /// Sealing the model for this machine or opening it again failed.
    #[error("cannot seal the demo model for this machine: {0}")]
    Seal(#[source] SealError),
    /// The history did not open.
    #[error("cannot open the demo's history: {0}")]
    History(#[source] StoreError),
    /// The API could not be set up.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// No loopback port for the plant.
    #[error("cannot open a loopback port for the plant: {0}")]
    PlantPort(#[source] std::io::Error),
    /// The model and the plant do not fit together.
    #[error(transparent)]
    Wiring(#[from] crate::wiring::WiringError),
    /// The twin refused the model.
    #[error(transparent)]
    Twin(#[from] TwinError),
}

/// A temporary directory `twinshield-demo-WHAT-…` of the system's, removed
/// when dropped (the demo's API identity and token file, or its history).
pub fn temp_dir(what: &str) -> Result<tempfile::TempDir, DemoError> {
    tempfile::Builder::new()
        .prefix(&format!("twinshield-demo-{what}-"))
        .tempdir()
        .map_err(DemoError::TempDir)
}

/// A key drawn for this run only: the demo has no device key to derive
/// one from, and nothing it writes must outlive it.
#[diversify]
fn run_key() -> Result<Zeroizing<[u8; 32]>, DemoError> {
    let mut k = Zeroizing::new([0u8; 32]);
    getrandom::fill(k.as_mut()).map_err(DemoError::Random)?;
    Ok(k)
}

/// Seals `model` for this machine on the fly (a throw-away device identity
/// in a temporary state directory and a throw-away publisher key) and opens
/// the bundle again, so the demo runs what `run` would: the model as it
/// comes out of a verified, device-bound bundle, never from source. Returns
/// the model and the bundle's size.
#[diversify]
pub fn sealed_for_this_machine(
    model: &Model,
    shield: &ShieldHandle,
) -> Result<(Model, usize), DemoError> {
    let state = temp_dir("state")?;
    shield.check_before_key_use();
    let (device, _) =
        DeviceIdentity::open_or_create(state.path(), &EmbeddedSecret).map_err(DemoError::Seal)?;
    let publisher = PublisherKey::generate().map_err(DemoError::Seal)?;
    let bundle = twinshield_seal::seal(&SealRequest {
        model,
        devices: &[device.fingerprint().clone()],
        publisher: &publisher,
        release: 1,
        secrets: &[],
        shield_policy: None,
        backend: None,
        backend_ca: None,
    })
    .map_err(DemoError::Seal)?;
    let opened =
        twinshield_seal::open(&bundle, &publisher.public(), &device).map_err(DemoError::Seal)?;
    Ok((opened.model, bundle.len()))
}

/// The demo's history, as `run` records one: an encrypted store in `dir`
/// under a key drawn for this run, and a recorder over it.
#[diversify]
pub fn recorder(model: &Model, dir: &Path, shield: ShieldHandle) -> Result<Recorder, DemoError> {
    let store = twinshield_store::Store::open(dir, &run_key()?, Some(&schema(model)))
        .map_err(DemoError::History)?;
    let writer = store
        .into_writer(WriterConfig {
            full_rate: DEMO_FULL_RATE_S,
            ..WriterConfig::default()
        })
        .map_err(DemoError::History)?;
    Ok(Recorder::new(writer, None, shield))
}

/// The demo's API: keys drawn for this run, an admin token issued into a
/// token file in `dir`, bound on `listen`, its services reading the
/// history through `recorder`'s store.
#[diversify]
pub async fn api(
    listen: SocketAddr,
    options: &ApiOptions,
    model: &Model,
    dir: &Path,
    (feed, recorder, shield): (Feed, &Recorder, ShieldHandle),
) -> Result<(BoundApi, IssuedToken), DemoError> {
    let (tokens, tls) = (run_key()?, run_key()?);
    let keys = ApiKeys::new(&tokens, &tls);
    let store = keys
        .tokens
        .with(|k| TokenStore::new(&token_file(dir), Zeroizing::new(*k)));
    let (_, token) = store.issue(Role::Admin, Some(1))?;
    let services = Arc::new(Services::new(Some(recorder.store_handle()), model, shield));
    let api = BoundApi::bind(listen, options, dir, &keys, feed, services).await?;
    Ok((api, token))
}

/// The reference plant, served on a loopback port.
pub struct ServedPlant {
    /// Where it serves Modbus TCP.
    pub addr: SocketAddr,
    /// The plant time, as the plant publishes it.
    pub clock: watch::Receiver<f64>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    stepping: tokio::task::JoinHandle<Result<QuadTank, PlantError>>,
}

#[diversify]
impl ServedPlant {
    /// Serves `plant` over Modbus TCP on a loopback port the system
    /// chooses, stepping it at `speed` until `stop` turns true.
    pub async fn start(
        plant: QuadTank,
        speed: f64,
        stop: &watch::Receiver<bool>,
    ) -> Result<ServedPlant, DemoError> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(DemoError::PlantPort)?;
        let addr = listener.local_addr().map_err(DemoError::PlantPort)?;
        let bank = plant_host::new_bank(&plant);
        let server = plant_host::spawn_server(listener, &bank, stop);
        let (clock_tx, clock) = watch::channel(0.0);
        let stepping = tokio::spawn(plant_host::drive(
            plant,
            bank,
            speed,
            None,
            clock_tx,
            stop.clone(),
        ));
        Ok(ServedPlant {
            addr,
            clock,
            server,
            stepping,
        })
    }

    /// Waits for the plant and its server to stop (after `stop`).
    pub async fn stopped(self) {
        let _ = self.stepping.await;
        let _ = self.server.await;
    }
}

/// What the demo's session is made of besides the model.
pub struct DemoParts {
    /// The plant's address.
    pub plant: SocketAddr,
    /// The model's point map, with the plant's clock as its timestamp.
    pub map: PointMap,
    /// Plant time runs this many times faster than wall time.
    pub speed: f64,
    /// The API's feed.
    pub feed: Feed,
    /// The attack (name, start) the demo injects, if any.
    pub attack: Option<(&'static str, f64)>,
    /// The history recorder.
    pub recorder: Recorder,
    /// The shield.
    pub shield: ShieldHandle,
}

/// The demo's session: polls the plant over Modbus TCP at the plant's
/// rate, stamps samples with the plant's clock, feeds the API and records
/// the history.
#[diversify]
pub fn session(model: &Model, parts: DemoParts) -> Result<Session<'_, ModbusClient>, DemoError> {
    let mut cfg = ClientConfig::new(parts.plant);
    cfg.timeout = Duration::from_millis(500);
    let source = ModbusClient::new(cfg, parts.map);
    let settings = TwinSettings {
        sample_period: PLANT_STEP,
        ..TwinSettings::default()
    };
    Ok(Session {
        model,
        wiring: Wiring::new(model, &source.describe())?,
        source,
        twin: Twin::new(model, settings)?,
        period: Duration::from_secs_f64(PLANT_STEP / parts.speed),
        feed: Some(parts.feed),
        attack: parts.attack,
        recorder: Some(parts.recorder),
        publisher: None,
        shield: parts.shield,
        time: SampleTime::Source,
    })
}

/// How the demo runs.
pub struct DemoPlan<'m> {
    /// The model, as opened from its bundle.
    pub model: &'m Model,
    /// The reference plant, with the attack it injects.
    pub plant: QuadTank,
    /// The attack the plant injects, for the summary.
    pub attack: Option<Attack>,
    /// Plant seconds to run.
    pub seconds: f64,
    /// Plant time runs this many times faster than wall time.
    pub speed: f64,
    /// Where the API and dashboard listen.
    pub listen: SocketAddr,
    /// How the API serves.
    pub options: ApiOptions,
    /// The shield's verdict.
    pub shield: ShieldHandle,
}

/// What the demo tells its user once everything listens.
pub struct DemoReady {
    /// Where the plant serves Modbus TCP.
    pub plant: SocketAddr,
    /// The dashboard's address.
    pub url: String,
    /// The admin token of this run (the token file is gone with the run).
    pub token: IssuedToken,
}

/// Runs the demo: serves the plant and the API, calls `ready` once both
/// listen, and watches the plant until its time is up or `stop` turns true.
#[diversify]
pub async fn run_demo(
    plan: DemoPlan<'_>,
    stop: (watch::Sender<bool>, watch::Receiver<bool>),
    ready: impl FnOnce(DemoReady),
    observer: &mut dyn SessionObserver,
) -> Result<DemoSummary, DemoError> {
    let (model, shield) = (plan.model, plan.shield.clone());
    let (api_dir, history_dir) = (temp_dir("api")?, temp_dir("history")?);
    let (stop_tx, stop_rx) = stop;
    let plant = ServedPlant::start(plan.plant, plan.speed, &stop_rx).await?;
    let feed = feed_for(model);
    let recorder = recorder(model, history_dir.path(), shield.clone())?;
    let dir = api_dir.path();
    let parts = (feed.clone(), &recorder, shield.clone());
    let (api, token) = api(plan.listen, &plan.options, model, dir, parts).await?;
    let url = api.url();
    let page = api.spawn(stop_rx.clone());
    ready(DemoReady {
        plant: plant.addr,
        url,
        token,
    });
    // The reference plant sends its clock with every sample.
    let map = modbus_map(model)?
        .with_timestamp(reference_plant_clock())
        .map_err(crate::wiring::WiringError::from)?;
    let parts = DemoParts {
        plant: plant.addr,
        map,
        speed: plan.speed,
        feed,
        attack: plan.attack.map(|a| (a.kind.name(), a.at)),
        recorder,
        shield: shield.clone(),
    };
    let clock = plant_clock(plan.seconds, plan.speed, plant.clock.clone());
    let outcome = session(model, parts)?.run(clock, stop_rx, observer).await;
    let _ = stop_tx.send(true);
    let plant_addr = plant.addr;
    plant.stopped().await;
    let _ = page.await;
    Ok(DemoSummary {
        alarms: outcome.alarms,
        attack: plan.attack.map(|a| AttackSummary {
            at_s: a.at,
            magnitude: a.magnitude,
            name: a.kind.name().to_owned(),
        }),
        data_quality_events: outcome.quality,
        plant: format!("modbus://{plant_addr}"),
        plant_seconds: round1(plan.seconds),
        samples: outcome.twin.samples(),
        shield: shield.status(),
        speed: plan.speed,
    })
}

/// The plant's own time until `seconds`, with a safety net in case the
/// plant stopped advancing.
#[diversify]
fn plant_clock(
    seconds: f64,
    speed: f64,
    clock: watch::Receiver<f64>,
) -> impl FnMut() -> Option<f64> {
    let started = std::time::Instant::now();
    move || {
        if started.elapsed().as_secs_f64() > 2.0 * seconds / speed + 10.0 {
            return None;
        }
        let t = *clock.borrow();
        (t < seconds).then_some(t)
    }
}
