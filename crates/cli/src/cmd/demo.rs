//! `twinshield demo`: the whole chain on one machine with no set-up. The
//! reference plant serves Modbus TCP on a loopback port, the twin polls it
//! over a real socket and records a history (encrypted, in a temporary
//! directory, under a key drawn for this run), the dashboard shows both,
//! an attack is injected after a while, and a JSON summary closes the run.

use crate::cmd::plant::{self, AttackArgs};
use crate::observer::{Clock, Console};
use anyhow::{Context, Result, bail};
use clap::Args;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::Instant;
use twinshield_connect::{ClientConfig, ModbusClient, PlantSource};
use twinshield_plant::{Attack, PlantConfig, QuadTank, UNIT_ID};
use twinshield_runtime::api::{ApiKeys, BoundApi, Services, feed_for, token_file};
use twinshield_runtime::eval::PLANT_STEP;
use twinshield_runtime::recorder::schema;
use twinshield_runtime::summary::{AttackSummary, DemoSummary, round1};
use twinshield_runtime::wiring::{self, quadtank};
use twinshield_runtime::{Recorder, SampleTime, Session, Wiring, plant_host};
use twinshield_shield_macros::diversify;
use twinshield_twin::{Twin, TwinSettings};

/// Arguments of `demo`.
#[derive(Args)]
#[command(allow_negative_numbers = true)]
pub struct DemoArgs {
    /// Plant seconds to run before printing the summary.
    #[arg(long, default_value_t = 240.0)]
    seconds: f64,
    /// Plant time runs this many times faster than wall time.
    #[arg(long, default_value_t = 10.0)]
    speed: f64,
    #[command(flatten)]
    attack: AttackArgs,
    /// Address of the API and dashboard.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    #[command(flatten)]
    api: crate::api::ApiArgs,
    /// Seed of the plant.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// Plant time of the default attack: after the twin's warm-up.
const DEFAULT_ATTACK_AT: f64 = 150.0;

/// Seals the model for this machine on the fly (a throw-away device
/// identity in a temporary state directory and a throw-away publisher key)
/// and opens the bundle again, so the demo runs what `run` would: the model
/// as it comes out of a verified, device-bound bundle, never from source.
#[diversify]
fn sealed_for_this_machine(model: &twinshield_model::Model) -> Result<twinshield_model::Model> {
    use twinshield_seal::{DeviceIdentity, EmbeddedSecret, PublisherKey, SealRequest};
    let state = std::env::temp_dir().join(format!("twinshield-demo-{}", std::process::id()));
    crate::shield::handle().check_before_key_use();
    let opened = (|| -> Result<_> {
        let (device, _) = DeviceIdentity::open_or_create(&state, &EmbeddedSecret)?;
        let publisher = PublisherKey::generate()?;
        let bundle = twinshield_seal::seal(&SealRequest {
            model,
            devices: &[device.fingerprint().clone()],
            publisher: &publisher,
            release: 1,
            secrets: &[],
            shield_policy: None,
            backend: None,
        })?;
        Ok(twinshield_seal::open(
            &bundle,
            &publisher.public(),
            &device,
        )?)
    })();
    let _ = std::fs::remove_dir_all(&state);
    let opened = opened.context("cannot seal the demo model for this machine")?;
    eprintln!(
        "twinshield demo: model sealed for this machine and opened from its bundle ({} bytes)",
        opened.header.total_bytes
    );
    Ok(opened.model)
}

/// A temporary directory of the demo's (its API identity and token file,
/// or its history), removed when the demo ends.
struct DemoDir(std::path::PathBuf);

#[diversify]
impl DemoDir {
    /// A new directory `twinshield-demo-WHAT-RANDOM` in the system's
    /// temporary directory.
    fn new(what: &str) -> Result<Self> {
        let mut nonce = [0u8; 8];
        getrandom::fill(&mut nonce).map_err(|e| anyhow::anyhow!("randomness: {e}"))?;
        let name: String = nonce.iter().map(|b| format!("{b:02x}")).collect();
        let dir = std::env::temp_dir().join(format!("twinshield-demo-{what}-{name}"));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(DemoDir(dir))
    }
}

#[diversify]
impl Drop for DemoDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A key drawn for this run only: the demo has no device key to derive
/// one from, and nothing it writes must outlive it.
#[diversify]
fn run_key() -> Result<zeroize::Zeroizing<[u8; 32]>> {
    let mut k = zeroize::Zeroizing::new([0u8; 32]);
    getrandom::fill(k.as_mut()).map_err(|e| anyhow::anyhow!("randomness: {e}"))?;
    Ok(k)
}

/// Full-rate samples the demo's history keeps, plant seconds: the
/// dashboard reads the last 10 minutes, and a long demo at high speed
/// must not fill the temporary directory (minute aggregates keep the rest).
const DEMO_FULL_RATE_S: f64 = 3600.0;

/// The demo's history, as `run` records one: an encrypted store in `dir`
/// under a key drawn for this run, and a recorder over it.
#[diversify]
fn demo_recorder(model: &twinshield_model::Model, dir: &std::path::Path) -> Result<Recorder> {
    let store = twinshield_store::Store::open(dir, &run_key()?, Some(&schema(model)))
        .context("cannot open the demo's history")?;
    let writer = store.into_writer(twinshield_store::WriterConfig {
        full_rate: DEMO_FULL_RATE_S,
        ..twinshield_store::WriterConfig::default()
    })?;
    Ok(Recorder::new(writer, None, crate::shield::handle()))
}

/// The demo's API: keys drawn for this run, an admin token issued into a
/// token file in `dir`, bound on `--listen`, its services reading the
/// history through `history`.
#[diversify]
async fn demo_api(
    args: &DemoArgs,
    model: &twinshield_model::Model,
    dir: &std::path::Path,
    feed: twinshield_api::Feed,
    history: twinshield_store::StoreHandle,
) -> Result<(BoundApi, twinshield_api::IssuedToken)> {
    let keys = ApiKeys {
        tokens: run_key()?,
        tls: run_key()?,
    };
    let store = twinshield_api::TokenStore::new(&token_file(dir), keys.tokens.clone());
    let (_, token) = store.issue(twinshield_api::Role::Admin, Some(1))?;
    let services = Arc::new(Services::new(Some(history), model, crate::shield::handle()));
    let options = args.api.options()?;
    let api = BoundApi::bind(args.listen, &options, dir, &keys, feed, services).await?;
    Ok((api, token))
}

/// Opens the dashboard, logged in, in the desktop's browser when there is
/// a desktop (a display and `xdg-open`); on a headless machine the address
/// and token printed above are the way in.
#[diversify]
fn open_in_browser(url: &str) {
    let desktop = std::env::var_os("DISPLAY").is_some_and(|d| !d.is_empty())
        || std::env::var_os("WAYLAND_DISPLAY").is_some_and(|d| !d.is_empty());
    if !desktop {
        return;
    }
    let opened = std::process::Command::new("xdg-open")
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    if opened.is_ok() {
        eprintln!("twinshield demo: dashboard opened in the browser");
    }
}

/// The attack the demo injects: `--attack` (default `bias`, `none` for
/// none) at `--at` (default after the twin's warm-up).
#[diversify]
fn demo_attack(args: &AttackArgs) -> Result<Option<Attack>> {
    let mut attack_args = args.clone();
    if attack_args.attack.is_none() {
        attack_args.attack = Some("bias".into());
    }
    if attack_args.attack.as_deref() == Some("none") {
        return Ok(None);
    }
    attack_args.attack(Some(DEFAULT_ATTACK_AT))
}

/// Runs the demo.
#[diversify]
pub fn run(args: &DemoArgs) -> Result<ExitCode> {
    plant::check_speed(args.speed)?;
    args.api.check(args.listen)?;
    if !(args.seconds.is_finite() && args.seconds > 0.0 && args.seconds <= 30.0 * 86400.0) {
        bail!("--seconds must be a positive number of plant seconds (at most 30 days)");
    }
    let attack = demo_attack(&args.attack)?;
    let model = sealed_for_this_machine(&quadtank()?)?;
    // The reference plant sends its clock with every sample.
    let map = wiring::modbus_map(&model)?.with_timestamp(wiring::reference_plant_clock())?;
    let plant = QuadTank::new(PlantConfig {
        seed: args.seed,
        attack,
    })?;
    let dirs = DemoDirs {
        api: DemoDir::new("api")?,
        history: DemoDir::new("history")?,
    };
    crate::executor::runtime()?.block_on(serve(args, &model, map, plant, attack, &dirs))
}

/// The demo's temporary directories.
struct DemoDirs {
    /// The API's TLS identity and token file.
    api: DemoDir,
    /// The history.
    history: DemoDir,
}

/// The demo's plant, served on a loopback port.
struct ServedPlant {
    addr: SocketAddr,
    /// The plant time, as the plant publishes it.
    clock: watch::Receiver<f64>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    stepping: tokio::task::JoinHandle<Result<QuadTank, twinshield_plant::PlantError>>,
}

/// Serves `plant` over Modbus TCP on a loopback port the system chooses,
/// stepping it at `speed` until `stop`.
#[diversify]
async fn start_plant(
    plant: QuadTank,
    speed: f64,
    stop: &watch::Receiver<bool>,
) -> Result<ServedPlant> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .context("cannot open a loopback port for the plant")?;
    let addr = listener.local_addr()?;
    let bank = plant_host::new_bank(&plant);
    let mut server_stop = stop.clone();
    let server = tokio::spawn(twinshield_connect::serve(
        listener,
        bank.clone(),
        UNIT_ID,
        async move {
            let _ = server_stop.wait_for(|s| *s).await;
        },
    ));
    // One site clock: the twin time-stamps its samples with the plant
    // time current when it reads them, as an NTP-synchronised site would.
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

/// Says where the plant and the dashboard are and the run's token, and
/// opens the dashboard on a desktop.
#[diversify]
fn announce(
    args: &DemoArgs,
    plant: SocketAddr,
    api_url: &str,
    attack: Option<Attack>,
    token: twinshield_api::IssuedToken,
) {
    eprintln!(
        "twinshield demo: plant on modbus://{plant}, dashboard {api_url} \
         ({} plant s at {}x{})",
        args.seconds,
        args.speed,
        attack.map_or(String::new(), |a| format!(
            ", attack `{}` at {} s",
            a.kind.name(),
            a.at
        )),
    );
    eprintln!("dashboard token (admin, this run only): {}", token.expose());
    open_in_browser(&format!("{api_url}#token={}", token.expose()));
}

/// The twin's session: polls the plant over Modbus TCP at the plant's
/// rate, feeds the API and records the history.
#[diversify]
fn demo_session<'m>(
    args: &DemoArgs,
    model: &'m twinshield_model::Model,
    plant: SocketAddr,
    map: twinshield_connect::PointMap,
    feed: twinshield_api::Feed,
    attack: Option<Attack>,
    recorder: Recorder,
) -> Result<Session<'m, ModbusClient>> {
    let mut cfg = ClientConfig::new(plant);
    cfg.timeout = Duration::from_millis(500);
    let source = ModbusClient::new(cfg, map);
    Ok(Session {
        model,
        wiring: Wiring::new(model, &source.describe())?,
        source,
        twin: Twin::new(
            model,
            TwinSettings {
                sample_period: PLANT_STEP,
                ..TwinSettings::default()
            },
        )?,
        period: Duration::from_secs_f64(PLANT_STEP / args.speed),
        feed: Some(feed),
        attack: attack.map(|a| (a.kind.name(), a.at)),
        recorder: Some(recorder),
        publisher: None,
        shield: crate::shield::handle(),
        time: SampleTime::Source,
    })
}

/// The demo's plant, API and twin, until the plant time is up.
#[diversify]
async fn serve(
    args: &DemoArgs,
    model: &twinshield_model::Model,
    map: twinshield_connect::PointMap,
    plant: QuadTank,
    attack: Option<Attack>,
    dirs: &DemoDirs,
) -> Result<ExitCode> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let plant = start_plant(plant, args.speed, &stop_rx).await?;
    let feed = feed_for(model);
    let recorder = demo_recorder(model, &dirs.history.0)?;
    // The API and dashboard, with a throw-away TLS identity and an admin
    // token for this run only, reading the run's history.
    let history = recorder.store_handle();
    let (api, token) = demo_api(args, model, &dirs.api.0, feed.clone(), history).await?;
    let api_url = api.url();
    let page = api.spawn(stop_rx.clone());
    announce(args, plant.addr, &api_url, attack, token);
    crate::executor::stop_on_ctrl_c(&stop_tx);
    let session = demo_session(args, model, plant.addr, map, feed, attack, recorder)?;
    let started = Instant::now();
    let (seconds, speed) = (args.seconds, args.speed);
    let clock = move || {
        // A safety net in case the plant stopped advancing.
        if started.elapsed().as_secs_f64() > 2.0 * seconds / speed + 10.0 {
            return None;
        }
        let t = *plant.clock.borrow();
        (t < seconds).then_some(t)
    };
    let outcome = session
        .run(clock, stop_rx.clone(), &mut Console::new(Clock::Plant))
        .await;
    let _ = stop_tx.send(true);
    let _ = plant.stepping.await;
    let _ = plant.server.await;
    let _ = page.await;
    let summary = DemoSummary {
        alarms: outcome.alarms,
        attack: attack.map(|a| AttackSummary {
            at_s: a.at,
            magnitude: a.magnitude,
            name: a.kind.name().to_owned(),
        }),
        data_quality_events: outcome.quality,
        plant: format!("modbus://{}", plant.addr),
        plant_seconds: round1(args.seconds),
        samples: outcome.twin.samples(),
        shield: crate::shield::handle().status(),
        speed: args.speed,
    };
    println!("{}", serde_json::to_string(&summary)?);
    Ok(ExitCode::SUCCESS)
}
