//! `twinshield run`: opens a bundle on this device and runs the twin
//! against a plant, with its history, API and backend where asked.

use super::files::{read_limited, read_text, state_dir};
use crate::api::ApiArgs;
use crate::observer::{Clock, Console};
use anyhow::{Context, Result, bail};
use clap::Args;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use twinshield_backend::SignRefused;
use twinshield_connect::{ClientConfig, ModbusClient, PlantSource};
use twinshield_model::Model;
use twinshield_runtime::api::{ApiKeys, BoundApi, Services, feed_for};
use twinshield_runtime::backend_link::gated_signer;
use twinshield_runtime::recorder::schema;
use twinshield_runtime::summary::{BackendReport, RunSummary};
use twinshield_runtime::{BackendLink, Recorder, Session, ShieldHandle, Wiring, wiring};
use twinshield_seal::{DeviceIdentity, EmbeddedSecret, OpenedBundle, PublisherPub};
use twinshield_shield::Policy;
use twinshield_shield_macros::diversify;
use twinshield_store::{Store, WriterConfig};
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

/// The TLS client for the bundle's backend when it is `https://` (the
/// system's trust roots and `--backend-ca`), built once before the twin
/// starts; `None` for `http://` or no backend.
#[diversify]
fn backend_tls(
    url: Option<&str>,
    ca: Option<&Path>,
) -> Result<Option<twinshield_backend::BackendTls>> {
    let https = match url {
        Some(u) => twinshield_backend::BackendUrl::parse(u)?.is_https(),
        None => false,
    };
    if !https {
        if let Some(ca) = ca {
            eprintln!(
                "warning: --backend-ca {} is not used: the bundle names no https:// backend",
                ca.display()
            );
        }
        return Ok(None);
    }
    let extra = match ca {
        Some(p) => Some(read_limited(p, "backend CA certificate")?),
        None => None,
    };
    match twinshield_backend::BackendTls::new(true, extra.as_deref()) {
        Ok(tls) => Ok(Some(tls)),
        Err(e @ twinshield_backend::BackendError::NoTrustRoots(_)) => {
            bail!("{e}; give the backend's CA certificate (or its own) with --backend-ca FILE")
        }
        Err(e) => match ca {
            Some(p) => Err(anyhow::Error::new(e).context(format!("--backend-ca {}", p.display()))),
            None => Err(e.into()),
        },
    }
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

/// What a lockdown wipes: the device's keys and the bundle's secrets
/// (both zeroize on drop).
type Vault = Arc<Mutex<Option<(DeviceIdentity, Vec<(String, zeroize::Zeroizing<Vec<u8>>)>)>>>;

/// The bundle's backend, ready to publish: URL, signer and outbox.
type Backend = (
    String,
    twinshield_backend::Signer,
    twinshield_backend::Outbox,
);

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

/// The bundle's shield policy (the release default when it names none).
#[diversify]
fn policy_of(opened: &OpenedBundle) -> Result<Policy> {
    Ok(match opened.shield_policy.as_deref() {
        Some(text) => text
            .parse::<Policy>()
            .context("the bundle's shield policy")?,
        None => Policy::release_default(),
    })
}

/// Opens (and compacts) the history in `data` and a recorder over it.
#[diversify]
fn open_history(
    data: &Path,
    device: &DeviceIdentity,
    model: &Model,
    ack_file: Option<PathBuf>,
    shield: ShieldHandle,
) -> Result<Recorder> {
    let mut store = Store::open(data, &device.storage_key("history"), Some(&schema(model)))
        .with_context(|| format!("data directory {}", data.display()))?;
    // Return the pages freed since the last run to the file system.
    store
        .compact()
        .with_context(|| format!("cannot compact the history in {}", data.display()))?;
    Ok(Recorder::new(
        store.into_writer(WriterConfig::default())?,
        ack_file,
        shield,
    ))
}

/// The backend's outbox beside the history, encrypted under a key derived
/// from the device key, and a signer that signs with the device key where
/// the vault holds it, never while the gate refuses key use.
#[diversify]
fn backend_of(
    url: Option<String>,
    data: &Path,
    device: &DeviceIdentity,
    vault: &Vault,
    shield: &ShieldHandle,
) -> Result<Option<Backend>> {
    let Some(url) = url else { return Ok(None) };
    let outbox =
        twinshield_backend::Outbox::open(&data.join("outbox.redb"), &device.storage_key("outbox"))
            .with_context(|| format!("data directory {}", data.display()))?;
    let held = Arc::clone(vault);
    let key_id = device.fingerprint().key_id_hex();
    let signer = gated_signer(key_id, shield.gate(), move |msg| {
        let held = held
            .lock()
            .map_err(|_| SignRefused("device key unavailable".into()))?;
        held.as_ref()
            .map(|(device, _)| device.sign(msg))
            .ok_or_else(|| SignRefused("device key wiped".into()))
    });
    Ok(Some((url, signer, outbox)))
}

/// `twinshield run`: opens a bundle on this device and runs the twin.
#[diversify]
pub fn run(args: &RunArgs) -> Result<ExitCode> {
    check(args)?;
    let addr = plant_addr(&args.plant)?;
    let bytes = read_limited(&args.file, "bundle")?;
    let trust = PublisherPub::from_text(&read_text(&args.trust, "trusted key")?)?;
    let state = state_dir(args.state.as_deref())?;
    let shield = crate::shield::handle();
    shield.check_before_key_use();
    let device = DeviceIdentity::open(&state, &EmbeddedSecret)?;
    let opened = twinshield_seal::open(&bytes, &trust, &device)?;
    let policy = policy_of(&opened)?;
    let tls = backend_tls(opened.backend.as_deref(), args.backend_ca.as_deref())?;
    let data = args.data.clone().unwrap_or_else(|| state.join("data"));
    let map = wiring::modbus_map(&opened.model)?;
    // Checked before the history is opened (opening touches its file), so a
    // refused bundle changes nothing in the state directory.
    device.check_and_record_release(&opened.header.model_name, opened.header.release)?;
    // From here the bundle's policy answers findings, the ones held since
    // start-up included.
    if let Some(s) = shield.shield() {
        crate::shield::show_environment_findings();
        s.set_policy(policy);
    }
    warn_if_development_secret();
    let recorder = open_history(
        &data,
        &device,
        &opened.model,
        args.ack_file.clone(),
        shield.clone(),
    )?;
    let api_keys = args.listen.map(|_| ApiKeys {
        tokens: device.storage_key("api-tokens"),
        tls: device.storage_key("api-tls"),
    });
    announce(args, &opened, &device, &recorder);
    let OpenedBundle {
        header,
        model,
        secrets,
        backend,
        ..
    } = opened;
    let vault: Vault = Arc::new(Mutex::new(None));
    let backend = backend_of(backend, &data, &device, &vault, &shield)?;
    if let Ok(mut v) = vault.lock() {
        *v = Some((device, secrets));
    }
    arm_lockdown(&shield, &vault);
    let mut session = session_of(args, &model, addr, map, shield)?;
    session.recorder = Some(recorder);
    let hosted = Hosted {
        state,
        api_keys,
        backend,
        tls,
        release: header.release,
    };
    crate::executor::runtime()?.block_on(serve(args, session, hosted))
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

/// Makes a lockdown wipe what the vault holds.
#[diversify]
fn arm_lockdown(shield: &ShieldHandle, vault: &Vault) {
    if let Some(s) = shield.shield() {
        let held = Arc::clone(vault);
        s.on_lockdown(Box::new(move || {
            if let Ok(mut held) = held.lock() {
                held.take();
            }
        }));
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
    })
}

/// Says what runs, in the audit log and on standard error.
#[diversify]
fn announce(args: &RunArgs, opened: &OpenedBundle, device: &DeviceIdentity, recorder: &Recorder) {
    let (model, header) = (&opened.model, &opened.header);
    recorder.audit(
        unix_now(),
        &format!(
            "twin started: `{}` {} release {} from publisher {} on device {}",
            model.name,
            model.version,
            header.release,
            header.publisher,
            device.fingerprint().key_id_hex()
        ),
    );
    eprintln!(
        "running `{}` {} release {} on device {} ({} of {} components match), plant {}",
        model.name,
        model.version,
        header.release,
        device.fingerprint().key_id_hex(),
        device.matched_components(),
        device.fingerprint().components().count(),
        args.plant
    );
}

/// What the session's hosts (API, publisher) start from.
struct Hosted {
    state: PathBuf,
    api_keys: Option<ApiKeys>,
    backend: Option<Backend>,
    tls: Option<twinshield_backend::BackendTls>,
    release: u64,
}

/// Binds the API when `--listen` asks for it.
#[diversify]
async fn start_api(
    args: &RunArgs,
    hosted: &Hosted,
    session: &Session<'_, ModbusClient>,
    stop: watch::Receiver<bool>,
) -> Result<Option<tokio::task::JoinHandle<()>>> {
    let (Some(listen), Some(keys), Some(feed), Some(recorder)) = (
        args.listen,
        &hosted.api_keys,
        &session.feed,
        &session.recorder,
    ) else {
        return Ok(None);
    };
    let services = Arc::new(Services::new(
        Some(recorder.store_handle()),
        session.model,
        session.shield.clone(),
    ));
    let options = args.api.options()?;
    let api = BoundApi::bind(
        listen,
        &options,
        &hosted.state,
        keys,
        feed.clone(),
        services,
    )
    .await?;
    crate::api::warn_without_tokens(&api);
    eprintln!(
        "API and dashboard {}{}",
        api.url(),
        api.fingerprint
            .as_deref()
            .map_or(String::new(), |f| format!(" (certificate sha256 {f})"))
    );
    Ok(Some(api.spawn(stop)))
}

/// Runs the session with its API and publisher until `--seconds` or
/// Ctrl-C, then prints the summary.
#[diversify]
async fn serve(
    args: &RunArgs,
    mut session: Session<'_, ModbusClient>,
    mut hosted: Hosted,
) -> Result<ExitCode> {
    let (stop_tx, stop_rx) = watch::channel(false);
    crate::executor::stop_on_ctrl_c(&stop_tx);
    let page = start_api(args, &hosted, &session, stop_rx.clone()).await?;
    // The API holds what it derived from them; the keys go now.
    hosted.api_keys = None;
    let publisher = match hosted.backend.take() {
        Some((url, signer, outbox)) => {
            let config = twinshield_backend::PublisherConfig {
                tls: hosted.tls.take(),
                ..twinshield_backend::PublisherConfig::default()
            };
            let handle = twinshield_backend::Publisher::start_with(&url, signer, outbox, config)?;
            eprintln!("publishing alarms and summaries to {url}");
            Some(handle)
        }
        None => None,
    };
    session.publisher = publisher
        .clone()
        .map(|h| BackendLink::new(h, session.shield.gate()));
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
    let outcome = session
        .run(clock, stop_rx, &mut Console::new(Clock::Elapsed))
        .await;
    let _ = stop_tx.send(true);
    if let Some(p) = page {
        let _ = p.await;
    }
    let backend = match &publisher {
        Some(p) => Some(shut_down(p).await),
        None => None,
    };
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
        release: hosted.release,
        samples: outcome.twin.samples(),
        shield: shield.status(),
        storage_faults: recorder.as_ref().map(Recorder::faults),
        stored_samples: recorder.as_ref().map(Recorder::acknowledged),
    };
    println!("{}", serde_json::to_string(&summary)?);
    Ok(ExitCode::SUCCESS)
}

/// Gives the publisher 10 s to deliver what waits, and says how it went.
#[diversify]
async fn shut_down(p: &twinshield_backend::PublisherHandle) -> BackendReport {
    let r = p.shutdown(Duration::from_secs(10)).await;
    eprintln!(
        "backend: {} message(s) delivered, {} waiting in the outbox{}",
        r.sent,
        r.pending,
        p.last_error()
            .filter(|_| r.failed_attempts > 0)
            .map_or(String::new(), |e| format!(
                "; {} failed attempt(s), the last: {e}",
                r.failed_attempts
            ))
    );
    BackendReport {
        dropped: r.dropped,
        failed_attempts: r.failed_attempts,
        pending: r.pending,
        sent: r.sent,
    }
}
