//! `twinshield run`: opens a bundle on this device and runs the twin
//! against a plant, with its history, API and backend where asked.

use super::files::{read_limited, read_text, state_dir};
use crate::api::ApiArgs;
use crate::observer::{Clock, Console};
use anyhow::{Context, Result, bail};
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use twinshield_backend::BackendError;
use twinshield_connect::{ClientConfig, ModbusClient, PlantSource};
use twinshield_model::Model;
use twinshield_runtime::api::feed_for;
use twinshield_runtime::device::{DeviceError, DeviceRequest, DeviceTwin};
use twinshield_runtime::host::{ApiHosting, Hosting, host};
use twinshield_runtime::summary::RunSummary;
use twinshield_runtime::{Recorder, SampleTime, Session, ShieldHandle, Wiring, wiring};
use twinshield_seal::{EmbeddedSecret, PublisherPub};
use twinshield_shield_macros::diversify;
use twinshield_twin::{Twin, TwinSettings};

/// Arguments of `run`.
#[derive(Args)]
pub struct RunArgs {
    /// The sealed bundle.
    file: PathBuf,
    /// The publisher public key to trust (NAME.pub).
    #[arg(long)]
    trust: PathBuf,
    /// The plant, as modbus://HOST:PORT.
    #[arg(long)]
    plant: String,
    /// Serve the status page here.
    #[arg(long)]
    listen: Option<SocketAddr>,
    #[command(flatten)]
    api: ApiArgs,
    /// Data directory of the encrypted history (default: `data` in the
    /// state directory).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Write the number of durably stored samples here after every commit
    /// (for supervisors and tests).
    #[arg(long, value_name = "FILE")]
    ack_file: Option<PathBuf>,
    /// State directory holding the device's keys.
    #[arg(long)]
    state: Option<PathBuf>,
    /// Stop after this many seconds (default: run until interrupted).
    #[arg(long)]
    seconds: Option<f64>,
    /// Seconds between polls of the plant.
    #[arg(long, default_value_t = 0.1)]
    period: f64,
    /// Also trust these certificates (PEM) for an `https://` backend: its
    /// private CA, or its own certificate, pinned. The system's trust
    /// store is used as well.
    #[arg(long, value_name = "FILE")]
    backend_ca: Option<PathBuf>,
}

#[diversify]
fn plant_addr(url: &str) -> Result<SocketAddr> {
    let rest = url
        .strip_prefix("modbus://")
        .with_context(|| format!("--plant `{url}` must be modbus://HOST:PORT"))?;
    use std::net::ToSocketAddrs;
    rest.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .with_context(|| format!("--plant `{url}`: `{rest}` is not a reachable HOST:PORT"))
}

/// Seconds since 1970, the history's time base.
#[diversify]
fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Checks the flags before anything is opened, so a refused command line
/// changes nothing.
#[diversify]
fn check(args: &RunArgs) -> Result<()> {
    if !(args.period.is_finite() && args.period >= 0.001 && args.period <= 60.0) {
        bail!("--period must be between 0.001 and 60 seconds");
    }
    if let Some(s) = args.seconds
        && !(s.is_finite() && s > 0.0)
    {
        bail!("--seconds must be a positive number of seconds");
    }
    if let Some(listen) = args.listen {
        args.api.check(listen)?;
    }
    Ok(())
}

/// `twinshield run`: opens a bundle on this device and runs the twin.
#[diversify]
pub fn run(args: &RunArgs) -> Result<ExitCode> {
    check(args)?;
    let addr = plant_addr(&args.plant)?;
    let bytes = read_limited(&args.file, "bundle")?;
    let trust = PublisherPub::from_text(&read_text(&args.trust, "trusted key")?)?;
    let state = state_dir(args.state.as_deref())?;
    let data = args.data.clone().unwrap_or_else(|| state.join("data"));
    let backend_ca = match &args.backend_ca {
        Some(p) => Some(read_limited(p, "backend CA certificate")?),
        None => None,
    };
    let shield = crate::shield::handle();
    let request = DeviceRequest {
        bundle: &bytes,
        trust: &trust,
        state: &state,
        data: &data,
        ack_file: args.ack_file.clone(),
        api: args.listen.is_some(),
        backend_ca: backend_ca.as_deref(),
    };
    let twin = DeviceTwin::open(request, &shield).map_err(|e| explain(e, args))?;
    if twin.backend_tls.is_none()
        && let Some(ca) = &args.backend_ca
    {
        eprintln!(
            "warning: --backend-ca {} is not used: the bundle names no https:// backend",
            ca.display()
        );
    }
    // From here the bundle's policy answers findings, the ones held since
    // start-up included.
    if let Some(s) = shield.shield() {
        crate::shield::show_environment_findings();
        s.set_policy(twin.policy);
    }
    warn_if_development_secret();
    announce(args, &twin);
    let DeviceTwin {
        model,
        header,
        recorder,
        api_keys,
        backend,
        backend_tls,
        ..
    } = twin;
    let map = wiring::modbus_map(&model)?;
    let mut session = session_of(args, &model, addr, map, shield)?;
    session.recorder = Some(recorder);
    let api = match (args.listen, api_keys) {
        (Some(listen), Some(keys)) => Some(ApiHosting {
            listen,
            options: args.api.options()?,
            state,
            keys,
        }),
        _ => None,
    };
    let hosting = Hosting {
        api,
        backend,
        backend_tls,
    };
    crate::executor::runtime()?.block_on(serve(args, session, hosting, header.release))
}

/// Adds the flag that fixes it to a refusal about the backend's TLS.
#[diversify]
fn explain(e: DeviceError, args: &RunArgs) -> anyhow::Error {
    match (e, &args.backend_ca) {
        (DeviceError::BackendTls(e @ BackendError::NoTrustRoots(_)), _) => anyhow::anyhow!(
            "{e}; give the backend's CA certificate (or its own) with --backend-ca FILE"
        ),
        (DeviceError::BackendTls(e), Some(p)) => {
            anyhow::Error::new(e).context(format!("--backend-ca {}", p.display()))
        }
        (e, _) => e.into(),
    }
}

/// A release must embed its own white-box secret: say so when it does not.
#[diversify]
fn warn_if_development_secret() {
    if EmbeddedSecret.is_development() {
        eprintln!(
            "warning: this build embeds the public development white-box secret; \
             build releases with TWINSHIELD_WB_SECRET or TWINSHIELD_WB_SECRET_FILE"
        );
    }
}

/// The session `run` hosts: the twin polling the plant over Modbus TCP,
/// recording its history (the recorder is added by the caller).
#[diversify]
fn session_of<'m>(
    args: &RunArgs,
    model: &'m Model,
    addr: SocketAddr,
    map: twinshield_connect::PointMap,
    shield: ShieldHandle,
) -> Result<Session<'m, ModbusClient>> {
    let twin = Twin::new(
        model,
        TwinSettings {
            sample_period: args.period,
            ..TwinSettings::default()
        },
    )?;
    let source = ModbusClient::new(ClientConfig::new(addr), map);
    Ok(Session {
        model,
        wiring: Wiring::new(model, &source.describe())?,
        source,
        twin,
        period: Duration::from_secs_f64(args.period),
        feed: args.listen.map(|_| feed_for(model)),
        attack: None,
        recorder: None,
        publisher: None,
        shield,
        time: SampleTime::Poll,
    })
}

/// Says what runs, in the audit log and on standard error.
#[diversify]
fn announce(args: &RunArgs, twin: &DeviceTwin) {
    let (model, header) = (&twin.model, &twin.header);
    twin.recorder.audit(
        unix_now(),
        &format!(
            "twin started: `{}` {} release {} from publisher {} on device {}",
            model.name, model.version, header.release, header.publisher, twin.device_key_id
        ),
    );
    eprintln!(
        "running `{}` {} release {} on device {} ({} of {} components match), plant {}",
        model.name,
        model.version,
        header.release,
        twin.device_key_id,
        twin.components.0,
        twin.components.1,
        args.plant
    );
}

/// Runs the session with its API and publisher until `--seconds` or
/// Ctrl-C, then prints the summary.
#[diversify]
async fn serve(
    args: &RunArgs,
    session: Session<'_, ModbusClient>,
    hosting: Hosting,
    release: u64,
) -> Result<ExitCode> {
    let (stop_tx, stop_rx) = watch::channel(false);
    crate::executor::stop_on_ctrl_c(&stop_tx);
    // History is kept in Unix time.
    let started = Instant::now();
    let epoch = unix_now();
    let until = args.seconds;
    let clock = move || {
        let elapsed = started.elapsed().as_secs_f64();
        until
            .is_none_or(|end| elapsed < end)
            .then_some(epoch + elapsed)
    };
    let model_name = session.model.name.clone();
    let shield = session.shield.clone();
    let mut console = Console::new(Clock::Elapsed);
    let stop = (stop_tx, stop_rx);
    let hosted = host(session, hosting, clock, stop, &mut console).await?;
    let (outcome, backend) = (hosted.outcome, hosted.backend);
    let mut recorder = outcome.recorder;
    if let Some(r) = recorder.as_mut() {
        r.audit(
            unix_now(),
            &format!("twin stopped after {} samples", outcome.twin.samples()),
        );
        r.flush(unix_now());
    }
    let summary = RunSummary {
        alarms: outcome.alarms,
        backend,
        data_quality_events: outcome.quality,
        model: model_name,
        release,
        samples: outcome.twin.samples(),
        shield: shield.status(),
        storage_faults: recorder.as_ref().map(Recorder::faults),
        stored_samples: recorder.as_ref().map(Recorder::acknowledged),
    };
    println!("{}", serde_json::to_string(&summary)?);
    Ok(ExitCode::SUCCESS)
}
