//! `twinshield seal`: a model sealed for devices into a signed bundle.

use super::files::{read_limited, read_text, write_atomic};
use anyhow::{Context, Result, bail};
use clap::Args;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use twinshield_seal::{DeviceFp, PublisherKey, SealRequest};
use twinshield_shield::Policy;
use twinshield_shield_macros::diversify;
use zeroize::Zeroizing;

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
    /// The runtime shield's response policy, as CLASS=ACTION,... (classes tamper, debugger, hook,
    /// timing, environment; actions report, degrade, lockdown; unnamed classes keep the release
    /// default).
    #[arg(long, value_name = "POLICY")]
    shield_policy: Option<String>,
    /// The backend the twin publishes its alarms and state summaries to, each request signed with
    /// the device key: `https://`, or `http://` to a loopback address only.
    #[arg(long, value_name = "URL")]
    backend: Option<String>,
    /// Pin the trust anchors of the https:// backend (PEM: its CA, or its own certificate): the
    /// twin trusts these and nothing else for it (not the system's store, not `run --backend-ca`).
    #[arg(long, value_name = "PEM", requires = "backend")]
    backend_ca: Option<PathBuf>,
}

/// `twinshield seal`.
#[diversify]
pub fn seal(args: &SealArgs) -> Result<ExitCode> {
    let model = super::model::load(&args.file).context("nothing sealed")?;
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
    let backend_ca = match &args.backend_ca {
        Some(p) => {
            let pem = read_limited(p, "backend CA certificate")?;
            twinshield_backend::BackendTls::new(false, Some(&pem))
                .with_context(|| format!("--backend-ca {}", p.display()))?;
            Some(pem)
        }
        None => None,
    };
    let bundle = twinshield_seal::seal(&SealRequest {
        model: &model,
        devices: &devices,
        publisher: &publisher,
        release,
        secrets: &secrets,
        shield_policy: shield_policy.as_deref(),
        backend: args.backend.as_deref(),
        backend_ca: backend_ca.as_deref(),
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
