//! `twinshield history export`: the device's encrypted history, read; `twinshield history
//! verify`: its hash chain checked, and against the signed heads its backend kept.

use super::files::{read_limited, read_text, state_dir};
use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use twinshield_runtime::export::HistoryExport;
use twinshield_runtime::history_verify::HistoryVerify;
use twinshield_seal::PublisherPub;
use twinshield_shield_macros::diversify;

/// History commands (on the device only: the history opens with its key).
#[derive(Subcommand)]
pub enum HistoryCommand {
    /// Export stored samples and events as CSV or JSON.
    Export(ExportArgs),
    /// Check the history's hash chain (and the backend's signed heads, with --heads or --bundle);
    /// name the first record that does not fit. Exit 0 intact, 4 damaged, rewritten or rolled
    /// back.
    Verify(VerifyArgs),
}

/// Exit status of `history verify` when the history does not verify (1 stays "the command
/// failed", 2 "bad arguments", 3 "lockdown").
const DAMAGED: u8 = 4;

/// Arguments of `history verify`.
#[derive(Args)]
pub struct VerifyArgs {
    /// Data directory of the history (default: `data` in the state directory).
    #[arg(long)]
    data: Option<PathBuf>,
    /// State directory holding the device's keys.
    #[arg(long)]
    state: Option<PathBuf>,
    /// The device's signed history heads as the backend kept them (JSON, from `twinshield
    /// backend heads`): finds a history rolled back or rebuilt since.
    #[arg(long, value_name = "FILE", conflicts_with = "bundle")]
    heads: Option<PathBuf>,
    /// Read the heads from the backend this bundle names (signed with the device key), trusting
    /// the anchors it pins; with --trust.
    #[arg(long, value_name = "FILE", requires = "trust")]
    bundle: Option<PathBuf>,
    /// The publisher key that signed --bundle.
    #[arg(long, value_name = "NAME.pub", requires = "bundle")]
    trust: Option<PathBuf>,
    /// For a --bundle that pins no trust anchors: certificates (PEM) trusted for its https://
    /// backend besides the system's store.
    #[arg(long, value_name = "PEM", requires = "bundle")]
    backend_ca: Option<PathBuf>,
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

/// `twinshield history export` and `history verify`.
#[diversify]
pub fn history(cmd: &HistoryCommand) -> Result<ExitCode> {
    match cmd {
        HistoryCommand::Export(args) => export(args),
        HistoryCommand::Verify(args) => verify(args),
    }
}

/// `twinshield history verify`: one line, on standard output when intact, on standard error
/// (exit 4) when not.
#[diversify]
fn verify(args: &VerifyArgs) -> Result<ExitCode> {
    let state = state_dir(args.state.as_deref())?;
    let data = args.data.clone().unwrap_or_else(|| state.join("data"));
    let history = HistoryVerify::open(&state, &data)?;
    let known = match (&args.heads, &args.bundle, &args.trust) {
        (Some(path), _, _) => history.heads_from_file(path)?,
        (None, Some(bundle), Some(trust)) => {
            let bundle = read_limited(bundle, "bundle")?;
            let trust = PublisherPub::from_text(&read_text(trust, "trusted key")?)?;
            let ca = match &args.backend_ca {
                Some(p) => Some(read_limited(p, "backend CA certificate")?),
                None => None,
            };
            history.heads_from_backend(&bundle, &trust, ca.as_deref())?
        }
        _ => Vec::new(),
    };
    let verdict = history.verify(&known)?;
    if verdict.is_intact() {
        println!("{verdict}");
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("error: {verdict}");
        Ok(ExitCode::from(DAMAGED))
    }
}

/// `twinshield history export`.
#[diversify]
fn export(args: &ExportArgs) -> Result<ExitCode> {
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
