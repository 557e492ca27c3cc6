//! `twinshield run`: opens a bundle on this device and runs the twin against a plant, with its
//! history, API and backend where asked.

use super::files::{read_limited, read_text, state_dir};
use crate::api::ApiArgs;
use crate::observer::Console;
use anyhow::{Result, bail};
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use twinshield_backend::BackendError;
use twinshield_runtime::ProgressClock as Clock;
use twinshield_runtime::api::ApiOptions;
use twinshield_runtime::device::{DeviceError, DeviceRequest, DeviceTwin};
use twinshield_runtime::executor::{executor, stop_on_ctrl_c};
use twinshield_runtime::run::{RunPlan, plant_addr, run_device};
use twinshield_seal::{EmbeddedSecret, PublisherPub};
use twinshield_shield_macros::diversify;

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
    /// Data directory of the encrypted history (default: `data` in the state directory).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Write the number of durably stored samples here after every commit (for supervisors and
    /// tests).
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
    /// Also trust these certificates (PEM) for an `https://` backend: its private CA, or its own
    /// certificate, pinned. The system's trust store is used as well.
    #[arg(long, value_name = "FILE")]
    backend_ca: Option<PathBuf>,
}

/// Checks the flags before anything is opened, so a refused command line changes nothing; returns
/// the API's address and options.
#[diversify]
fn check(args: &RunArgs) -> Result<Option<(SocketAddr, ApiOptions)>> {
    if !(args.period.is_finite() && args.period >= 0.001 && args.period <= 60.0) {
        bail!("--period must be between 0.001 and 60 seconds");
    }
    if let Some(s) = args.seconds
        && !(s.is_finite() && s > 0.0)
    {
        bail!("--seconds must be a positive number of seconds");
    }
    let api = |listen| Ok((listen, args.api.options(listen)?));
    args.listen.map(api).transpose()
}

/// `twinshield run`: opens a bundle on this device and runs the twin.
#[diversify]
pub fn run(args: &RunArgs) -> Result<ExitCode> {
    let api = check(args)?;
    let plant = plant_addr(&args.plant)?;
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
    if let (None, Some(ca)) = (&twin.backend_tls, &args.backend_ca) {
        eprintln!(
            "warning: --backend-ca {} is not used: the bundle names no https:// backend",
            ca.display()
        );
    }
    if twin.backend_tls.is_some() {
        for var in twinshield_backend::ignored_trust_variables() {
            eprintln!(
                "warning: {var} is set and ignored: the backend is trusted by the anchors the bundle \
                 pins, or the system's store at its fixed location"
            );
        }
    }
    // From here the bundle's policy answers findings, the ones held since start-up included.
    if let Some(s) = shield.shield() {
        crate::shield::show_environment_findings();
        s.set_policy(twin.policy);
    }
    warn_if_development_secret();
    announce(args, &twin);
    let (period, seconds) = (args.period, args.seconds);
    let plan = RunPlan {
        plant,
        period,
        seconds,
        api,
        state,
        shield,
    };
    executor()?.block_on(async move {
        let stop = stop_on_ctrl_c();
        let mut console = Console::new(Clock::Elapsed);
        let summary = run_device(twin, plan, stop, &mut console).await?;
        println!("{}", serde_json::to_string(&summary)?);
        Ok(ExitCode::SUCCESS)
    })
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

/// Says what runs on standard error.
#[diversify]
fn announce(args: &RunArgs, twin: &DeviceTwin) {
    let (model, header) = (&twin.model, &twin.header);
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
    if !twin.binding.hardware_bound {
        let hardware: Vec<&str> = twin
            .binding
            .hardware_components
            .iter()
            .map(String::as_str)
            .collect();
        eprintln!("warning: {}", super::fingerprint::weak_binding(&hardware));
    }
}
