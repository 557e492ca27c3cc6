//! `twinshield fingerprint`: the device identity and its device.fp.

use super::files::{state_dir, write_atomic};
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use twinshield_seal::{DeviceIdentity, EmbeddedSecret};
use twinshield_shield_macros::diversify;

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

/// `twinshield fingerprint`: creates the device identity on first use and writes device.fp.
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
