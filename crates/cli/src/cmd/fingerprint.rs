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
    let hardware: Vec<&str> = fp.hardware_components().collect();
    eprintln!(
        "{} device {} ({} components: {}; any {} open its keys, {} of them hardware-resident); wrote {}",
        if created { "created" } else { "opened" },
        fp.key_id_hex(),
        components.len(),
        components.join(", "),
        fp.threshold(),
        fp.hardware_needed(),
        args.out.display()
    );
    if !fp.hardware_bound() {
        eprintln!("warning: {}", weak_binding(&hardware));
    }
    Ok(ExitCode::SUCCESS)
}

/// What a device whose keys need fewer than two hardware-resident
/// components should be told: a copy of its disk comes close to opening it.
#[diversify]
pub fn weak_binding(hardware: &[&str]) -> String {
    let have = if hardware.is_empty() {
        "no hardware-resident component".to_owned()
    } else {
        format!(
            "only {} hardware-resident component ({})",
            hardware.len(),
            hardware.join(", ")
        )
    };
    format!(
        "this machine has {have}: its keys open with what a copy of its disk holds{}; \
         run the twin on hardware with DMI identifiers or a physical network card, or bind it to a TPM",
        if hardware.is_empty() {
            ""
        } else {
            " and that component"
        }
    )
}
