//! `twinshield history export`: the device's encrypted history, read.

use super::files::state_dir;
use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use twinshield_runtime::export::HistoryExport;
use twinshield_shield_macros::diversify;

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
    let export = HistoryExport::open(&state, &data, args.channel.as_deref())?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if args.csv {
        export.write_csv(from, to, &mut out)?;
    } else {
        export.write_json(from, to, &mut out)?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
