//! `twinshield history export`: the device's encrypted history, read.

use super::files::state_dir;
use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use serde_json::json;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use twinshield_seal::{DeviceIdentity, EmbeddedSecret};
use twinshield_shield_macros::diversify;
use twinshield_store::Store;

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
