//! `twinshield inspect`: a bundle's public header, never the model.

use super::files::read_limited;
use anyhow::Result;
use clap::Args;
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;
use twinshield_shield_macros::diversify;

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
