//! Device identity, publisher keys and bundles: `fingerprint`, `keys new`,
//! `seal`, `inspect` and `run`.

use crate::recorder::{self, Recorder};
use crate::sync::{self, SyncLoop};
use crate::wiring::Wiring;
use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use serde_json::json;
use std::fs;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use twinshield_connect::{ClientConfig, ModbusClient};
use twinshield_model::{MAX_SOURCE_LEN, Model};
use twinshield_runtime::{Twin, TwinSettings};
use twinshield_seal::{
    DeviceFp, DeviceIdentity, EmbeddedSecret, PublisherKey, PublisherPub, SealRequest,
};
use twinshield_shield::Policy;
use twinshield_shield_macros::diversify;
use twinshield_store::{Store, WriterConfig};
use zeroize::Zeroizing;

/// Largest bundle, device.fp, key or secret file read, bytes.
const MAX_FILE: u64 = 64 * 1024 * 1024;

/// The state directory: `--state`, else `/var/lib/twinshield` for root,
/// else `$XDG_STATE_HOME/twinshield` (`~/.local/state/twinshield`).
#[diversify]
pub(crate) fn state_dir(given: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = given {
        return Ok(p.to_path_buf());
    }
    let root = fs::metadata("/proc/self").map(|m| {
        use std::os::unix::fs::MetadataExt;
        m.uid() == 0
    });
    if root.unwrap_or(false) {
        return Ok(PathBuf::from("/var/lib/twinshield"));
    }
    if let Some(x) = std::env::var_os("XDG_STATE_HOME").filter(|x| !x.is_empty()) {
        return Ok(PathBuf::from(x).join("twinshield"));
    }
    let home = std::env::var_os("HOME").context("cannot find a state directory: set --state")?;
    Ok(PathBuf::from(home).join(".local/state/twinshield"))
}

#[diversify]
fn read_limited(path: &Path, what: &str) -> Result<Vec<u8>> {
    let meta =
        fs::metadata(path).with_context(|| format!("cannot read {what} {}", path.display()))?;
    if meta.len() > MAX_FILE {
        bail!("{what} {} is larger than 64 MiB", path.display());
    }
    fs::read(path).with_context(|| format!("cannot read {what} {}", path.display()))
}

#[diversify]
fn read_text(path: &Path, what: &str) -> Result<Zeroizing<String>> {
    let bytes = Zeroizing::new(read_limited(path, what)?);
    String::from_utf8(bytes.to_vec())
        .map(Zeroizing::new)
        .map_err(|_| anyhow::anyhow!("{what} {} is not text", path.display()))
}

/// Writes `bytes` to `path` whole or not at all, with `mode`.
#[diversify]
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(format!(".partial-{}", std::process::id()));
    let tmp = path.with_file_name(name);
    let result = (|| {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("cannot write {}", path.display()));
    }
    Ok(())
}

// ---------------------------------------------------------------- fingerprint

/// Arguments of `fingerprint`.
#[derive(Args)]
pub struct FingerprintArgs {
    /// Where to write device.fp.
    #[arg(long, default_value = "device.fp")]
    out: PathBuf,
    /// State directory holding the device's keys.
    #[arg(long)]
    state: Option<PathBuf>,
}

/// `twinshield fingerprint`: creates the device identity on first use and
/// writes device.fp.
#[diversify]
pub fn fingerprint(args: &FingerprintArgs) -> Result<ExitCode> {
    let state = state_dir(args.state.as_deref())?;
    let (id, created) = DeviceIdentity::open_or_create(&state, &EmbeddedSecret)?;
    write_atomic(&args.out, &id.device_fp_bytes(), 0o644)?;
    let fp = id.fingerprint();
    let components: Vec<&str> = fp.components().collect();
    eprintln!(
        "{} device {} ({} components: {}; any {} open its keys); wrote {}",
        if created { "created" } else { "opened" },
        fp.key_id_hex(),
        components.len(),
        components.join(", "),
        fp.threshold(),
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

// ---------------------------------------------------------------- keys

/// Publisher key commands.
#[derive(Subcommand)]
pub enum KeysCommand {
    /// Create a publisher key pair: NAME.key (secret, mode 0600) and NAME.pub.
    New {
        /// Path prefix of the two files.
        #[arg(long)]
        out: PathBuf,
    },
}

/// `twinshield keys new`.
#[diversify]
pub fn keys(cmd: &KeysCommand) -> Result<ExitCode> {
    let KeysCommand::New { out } = cmd;
    let key_path = PathBuf::from(format!("{}.key", out.display()));
    let pub_path = PathBuf::from(format!("{}.pub", out.display()));
    for p in [&key_path, &pub_path] {
        if p.exists() {
            bail!("{} already exists; not overwriting a key", p.display());
        }
    }
    let key = PublisherKey::generate()?;
    write_atomic(&key_path, key.to_text().as_bytes(), 0o600)?;
    write_atomic(&pub_path, key.public().to_text().as_bytes(), 0o644)?;
    eprintln!(
        "publisher key {} written to {} and {}",
        key.public().key_id_hex(),
        key_path.display(),
        pub_path.display()
    );
    Ok(ExitCode::SUCCESS)
}

// ---------------------------------------------------------------- seal

/// Arguments of `seal`.
#[derive(Args)]
pub struct SealArgs {
    /// The model to seal.
    file: PathBuf,
    /// A device's device.fp (repeatable).
    #[arg(long = "device", required = true)]
    devices: Vec<PathBuf>,
    /// The publisher's key (NAME.key).
    #[arg(long)]
    sign: PathBuf,
    /// Where to write the bundle.
    #[arg(long)]
    out: PathBuf,
    /// A secret sealed with the model, as NAME=@FILE (repeatable).
    #[arg(long = "secret", value_name = "NAME=@FILE")]
    secrets: Vec<String>,
    /// Release number (monotonic per model; default: seconds since 1970).
    #[arg(long)]
    release: Option<u64>,
    /// The runtime shield's response policy, as CLASS=ACTION,... (classes
    /// tamper, debugger, hook, timing, environment; actions report, degrade,
    /// lockdown; unnamed classes keep the release default).
    #[arg(long, value_name = "POLICY")]
    shield_policy: Option<String>,
    /// The backend the twin publishes its alarms and state summaries to,
    /// each request signed with the device key: `https://`, or `http://`
    /// to a loopback address only.
    #[arg(long, value_name = "URL")]
    backend: Option<String>,
}

/// `twinshield seal`.
#[diversify]
pub fn seal(args: &SealArgs) -> Result<ExitCode> {
    let src = read_limited(&args.file, "model")?;
    if src.len() > MAX_SOURCE_LEN {
        bail!(
            "{} is larger than {MAX_SOURCE_LEN} bytes",
            args.file.display()
        );
    }
    let src = String::from_utf8(src)
        .with_context(|| format!("{} is not UTF-8 text", args.file.display()))?;
    let name = args.file.display().to_string();
    let model = match Model::parse(&name, &src) {
        Ok(m) => m,
        Err(report) => {
            eprintln!("{report}");
            bail!("{name}: the model does not check; nothing sealed");
        }
    };
    let publisher = PublisherKey::from_text(&read_text(&args.sign, "publisher key")?)?;
    let mut devices = Vec::new();
    for d in &args.devices {
        let fp = DeviceFp::decode(&read_limited(d, "device.fp")?)
            .with_context(|| format!("{}", d.display()))?;
        devices.push(fp);
    }
    let mut secrets = Vec::new();
    for s in &args.secrets {
        let Some((name, file)) = s.split_once("=@") else {
            bail!("--secret `{s}` is not NAME=@FILE");
        };
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            bail!("--secret name `{name}` must be letters, digits, `_` or `-`");
        }
        let value = Zeroizing::new(read_limited(Path::new(file), "secret")?);
        secrets.push((name.to_owned(), value));
    }
    let release = match args.release {
        Some(r) => r,
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .context("the system clock is before 1970")?,
    };
    let shield_policy = match &args.shield_policy {
        Some(text) => Some(
            text.parse::<Policy>()
                .with_context(|| "--shield-policy".to_owned())?
                .to_string(),
        ),
        None => None,
    };
    if let Some(url) = &args.backend {
        twinshield_backend::BackendUrl::parse(url)?;
    }
    let bundle = twinshield_seal::seal(&SealRequest {
        model: &model,
        devices: &devices,
        publisher: &publisher,
        release,
        secrets: &secrets,
        shield_policy: shield_policy.as_deref(),
        backend: args.backend.as_deref(),
    })?;
    write_atomic(&args.out, &bundle, 0o644)?;
    eprintln!(
        "sealed `{}` {} release {release} for {} device(s), {} secret(s): {} ({} bytes)",
        model.name,
        model.version,
        devices.len(),
        secrets.len(),
        args.out.display(),
        bundle.len()
    );
    Ok(ExitCode::SUCCESS)
}

// ---------------------------------------------------------------- inspect

/// Arguments of `inspect`.
#[derive(Args)]
pub struct InspectArgs {
    /// The bundle.
    file: PathBuf,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// `twinshield inspect`: the public header only.
#[diversify]
pub fn inspect(args: &InspectArgs) -> Result<ExitCode> {
    let h = twinshield_seal::inspect(&read_limited(&args.file, "bundle")?)?;
    if args.json {
        println!(
            "{}",
            json!({
                "model": h.model_name,
                "version": h.model_version,
                "release": h.release,
                "publisher": h.publisher,
                "devices": h.devices,
                "payload_bytes": h.payload_bytes,
                "total_bytes": h.total_bytes,
            })
        );
    } else {
        println!("model      {} {}", h.model_name, h.model_version);
        println!("release    {}", h.release);
        println!("publisher  {}", h.publisher);
        println!("devices    {}", h.devices.join(", "));
        println!("payload    {} bytes (encrypted)", h.payload_bytes);
        println!("bundle     {} bytes", h.total_bytes);
    }
    Ok(ExitCode::SUCCESS)
}

// ---------------------------------------------------------------- run

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
    api: crate::api::ApiArgs,
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

/// `twinshield run`: opens a bundle on this device and runs the twin.
#[diversify]
pub fn run(args: &RunArgs) -> Result<ExitCode> {
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
    let addr = plant_addr(&args.plant)?;
    let bytes = read_limited(&args.file, "bundle")?;
    let trust = PublisherPub::from_text(&read_text(&args.trust, "trusted key")?)?;
    let state = state_dir(args.state.as_deref())?;
    crate::shield::check_before_key_use();
    let device = DeviceIdentity::open(&state, &EmbeddedSecret)?;
    let opened = twinshield_seal::open(&bytes, &trust, &device)?;
    let policy = match opened.shield_policy.as_deref() {
        Some(text) => text
            .parse::<Policy>()
            .context("the bundle's shield policy")?,
        None => Policy::release_default(),
    };
    let tls = backend_tls(opened.backend.as_deref(), args.backend_ca.as_deref())?;
    let data = args.data.clone().unwrap_or_else(|| state.join("data"));
    let model = opened.model;
    let wiring = Wiring::new(&model)?;
    // Checked before the history is opened (opening touches its file), so a
    // refused bundle changes nothing in the state directory.
    device.check_and_record_release(&opened.header.model_name, opened.header.release)?;
    // From here the bundle's policy answers findings, the ones held since
    // start-up included.
    if let Some(s) = crate::shield::get() {
        crate::shield::show_environment_findings();
        s.set_policy(policy);
    }
    if EmbeddedSecret.is_development() {
        eprintln!(
            "warning: this build embeds the public development white-box secret; \
             build releases with TWINSHIELD_WB_SECRET or TWINSHIELD_WB_SECRET_FILE"
        );
    }
    let mut store = Store::open(
        &data,
        &device.storage_key("history"),
        Some(&recorder::schema(&model)),
    )
    .with_context(|| format!("data directory {}", data.display()))?;
    // Return the pages freed since the last run to the file system.
    store
        .compact()
        .with_context(|| format!("cannot compact the history in {}", data.display()))?;
    let recorder = Recorder::new(
        store.into_writer(WriterConfig::default())?,
        args.ack_file.clone(),
    );
    let api_keys = args.listen.map(|_| crate::api::ApiKeys {
        tokens: device.storage_key("api-tokens"),
        tls: device.storage_key("api-tls"),
    });
    recorder.audit(
        unix_now(),
        &format!(
            "twin started: `{}` {} release {} from publisher {} on device {}",
            model.name,
            model.version,
            opened.header.release,
            opened.header.publisher,
            device.fingerprint().key_id_hex()
        ),
    );
    eprintln!(
        "running `{}` {} release {} on device {} ({} of {} components match), plant {}",
        model.name,
        model.version,
        opened.header.release,
        device.fingerprint().key_id_hex(),
        device.matched_components(),
        device.fingerprint().components().count(),
        args.plant
    );
    // What a lockdown wipes: the device's keys and the bundle's secrets
    // (both zeroize on drop). Nothing below needs them.
    // The bundle's backend: its outbox sits beside the history, encrypted
    // under a key derived from the device key.
    let outbox = match &opened.backend {
        Some(_) => Some(
            twinshield_backend::Outbox::open(
                &data.join("outbox.redb"),
                &device.storage_key("outbox"),
            )
            .with_context(|| format!("data directory {}", data.display()))?,
        ),
        None => None,
    };
    let key_id = device.fingerprint().key_id_hex();
    let vault = Arc::new(std::sync::Mutex::new(Some((device, opened.secrets))));
    // Requests are signed with the device key where it is held (and wiped
    // on lockdown), never while the shield has degraded the twin.
    let backend = opened.backend.zip(outbox).map(|(url, outbox)| {
        let held = Arc::clone(&vault);
        let signer = twinshield_backend::Signer::new(key_id, move |msg| {
            use twinshield_backend::SignRefused;
            if crate::shield::degraded() {
                return Err(SignRefused("the shield degraded the twin".into()));
            }
            let held = held
                .lock()
                .map_err(|_| SignRefused("device key unavailable".into()))?;
            held.as_ref()
                .map(|(device, _)| device.sign(msg))
                .ok_or_else(|| SignRefused("device key wiped".into()))
        });
        (url, signer, outbox)
    });
    if let Some(s) = crate::shield::get() {
        let held = Arc::clone(&vault);
        s.on_lockdown(Box::new(move || {
            if let Ok(mut held) = held.lock() {
                held.take();
            }
        }));
    }
    crate::rt::runtime()?.block_on(async move {
        let (stop_tx, stop_rx) = watch::channel(false);
        crate::rt::stop_on_ctrl_c(&stop_tx);
        let feed = args.listen.map(|_| crate::api::feed_for(&model));
        let page = match (args.listen, &api_keys, &feed) {
            (Some(listen), Some(keys), Some(feed)) => {
                let services = Arc::new(crate::api::Services::new(
                    Some(recorder.store_handle()),
                    &model,
                ));
                let api = crate::api::BoundApi::bind(
                    listen,
                    &args.api,
                    &state,
                    keys,
                    feed.clone(),
                    services,
                )
                .await?;
                eprintln!(
                    "API and dashboard {}{}",
                    api.url(),
                    api.fingerprint
                        .as_deref()
                        .map_or(String::new(), |f| format!(" (certificate sha256 {f})"))
                );
                Some(api.spawn(stop_rx.clone()))
            }
            _ => None,
        };
        // The API holds what it derived from them; the keys go now.
        drop(api_keys);
        let settings = TwinSettings {
            sample_period: args.period,
            ..TwinSettings::default()
        };
        let twin = Twin::new(&model, settings)?;
        let client = ModbusClient::new(ClientConfig::new(addr), wiring.map().clone());
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
        let publisher = match backend {
            Some((url, signer, outbox)) => {
                let config = twinshield_backend::PublisherConfig {
                    tls,
                    ..twinshield_backend::PublisherConfig::default()
                };
                let handle =
                    twinshield_backend::Publisher::start_with(&url, signer, outbox, config)?;
                eprintln!("publishing alarms and summaries to {url}");
                Some(handle)
            }
            None => None,
        };
        let outcome = sync::run(
            SyncLoop {
                model: &model,
                wiring: &wiring,
                client,
                twin,
                period: Duration::from_secs_f64(args.period),
                feed,
                attack: None,
                recorder: Some(recorder),
                publisher: publisher.clone().map(crate::publish::BackendLink::new),
            },
            clock,
            stop_rx,
        )
        .await;
        let _ = stop_tx.send(true);
        if let Some(p) = page {
            let _ = p.await;
        }
        let published = match &publisher {
            Some(p) => {
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
                Some(json!({"sent": r.sent, "pending": r.pending, "failed_attempts": r.failed_attempts, "dropped": r.dropped}))
            }
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
        println!(
            "{}",
            json!({
                "model": model.name,
                "release": opened.header.release,
                "samples": outcome.twin.samples(),
                "stored_samples": recorder.as_ref().map(Recorder::acknowledged),
                "storage_faults": recorder.as_ref().map(Recorder::faults),
                "alarms": outcome.alarms,
                "data_quality_events": outcome.quality,
                "backend": published,
                "shield": crate::shield::status(),
            })
        );
        Ok(ExitCode::SUCCESS)
    })
}

// ---------------------------------------------------------------- history

/// History commands (on the device only: the history opens with its key).
#[derive(Subcommand)]
pub enum HistoryCommand {
    /// Export stored samples and events as CSV or JSON.
    Export(ExportArgs),
}

/// Arguments of `history export`.
#[derive(Args)]
#[command(allow_negative_numbers = true)]
pub struct ExportArgs {
    /// Data directory of the history (default: `data` in the state directory).
    #[arg(long)]
    data: Option<PathBuf>,
    /// State directory holding the device's keys.
    #[arg(long)]
    state: Option<PathBuf>,
    /// From this time (Unix seconds; default: the beginning).
    #[arg(long)]
    from: Option<f64>,
    /// Up to this time (Unix seconds; default: the end).
    #[arg(long)]
    to: Option<f64>,
    /// Only this channel (default: all).
    #[arg(long)]
    channel: Option<String>,
    /// Write CSV (time and channels; events are not included).
    #[arg(long, conflicts_with = "json", required_unless_present = "json")]
    csv: bool,
    /// Write one JSON object with samples and events.
    #[arg(long)]
    json: bool,
}

/// `twinshield history export`.
#[diversify]
pub fn history(cmd: &HistoryCommand) -> Result<ExitCode> {
    let HistoryCommand::Export(args) = cmd;
    let from = args.from.unwrap_or(f64::MIN);
    let to = args.to.unwrap_or(f64::MAX);
    if from.is_nan() || to.is_nan() || from > to {
        bail!("--from must not be after --to");
    }
    let state = state_dir(args.state.as_deref())?;
    let data = args.data.clone().unwrap_or_else(|| state.join("data"));
    if !data.join("history.redb").exists() {
        bail!("no history in {}", data.display());
    }
    let device = DeviceIdentity::open(&state, &EmbeddedSecret)?;
    let store = Store::open(&data, &device.storage_key("history"), None)
        .with_context(|| format!("data directory {}", data.display()))?;
    let columns: Vec<usize> = match &args.channel {
        Some(name) => vec![store.channel(name).with_context(|| {
            format!(
                "unknown channel `{name}`; the channels are {}",
                store.schema().join(", ")
            )
        })?],
        None => (0..store.schema().len()).collect(),
    };
    let samples = store.samples(from, to)?;
    let names: Vec<&str> = columns
        .iter()
        .filter_map(|&c| store.schema().get(c).map(String::as_str))
        .collect();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if args.csv {
        writeln!(out, "time,{}", names.join(","))?;
        for s in &samples {
            let vals: Vec<String> = columns
                .iter()
                .map(|&c| s.values.get(c).map_or(String::new(), |v| v.to_string()))
                .collect();
            writeln!(out, "{:.6},{}", s.time, vals.join(","))?;
        }
    } else {
        let events = store.events(from, to)?;
        let v = json!({
            "channels": names,
            "samples": samples.iter().map(|s| json!({
                "time": s.time,
                "values": columns.iter().map(|&c| s.values.get(c).copied()).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "events": events.iter().map(|e| json!({
                "kind": e.kind.name(), "time": e.time, "text": e.text,
            })).collect::<Vec<_>>(),
        });
        writeln!(out, "{v}")?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
