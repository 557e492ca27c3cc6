//! `twinshield model check` and `twinshield model simulate`.

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use std::fs;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use twinshield_atrest::AtomicFile;
use twinshield_model::{MAX_SOURCE_LEN, Model};
use twinshield_runtime::simulate::Simulation;
use twinshield_shield_macros::diversify;

/// Commands on `.twin` model files.
#[derive(Subcommand)]
pub enum ModelCommand {
    /// Check a model and report every problem with its location.
    Check {
        /// The model file.
        file: PathBuf,
    },
    /// Simulate a model and write time, states and outputs as CSV.
    Simulate(SimulateArgs),
}

/// Arguments of `model simulate`.
#[derive(Args)]
#[command(allow_negative_numbers = true)]
pub struct SimulateArgs {
    /// The model file.
    file: PathBuf,
    /// Simulated time, in seconds.
    #[arg(long)]
    seconds: f64,
    /// Write the CSV here instead of to standard output (written whole or not at all).
    #[arg(long, value_name = "OUT")]
    csv: Option<PathBuf>,
    /// Hold an input at a value, as NAME=VALUE (repeatable); inputs not given sit at their nominal
    /// value.
    #[arg(long = "input", value_name = "NAME=VALUE")]
    inputs: Vec<String>,
    /// Seconds between rows (default: the model's integration step).
    #[arg(long)]
    every: Option<f64>,
}

/// Runs one `model` subcommand.
#[diversify]
pub fn run(cmd: ModelCommand) -> Result<ExitCode> {
    match cmd {
        ModelCommand::Check { file } => check(&file),
        ModelCommand::Simulate(args) => simulate(&args),
    }
}

#[diversify]
fn read_source(path: &Path) -> Result<String> {
    let meta = fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if meta.len() > MAX_SOURCE_LEN as u64 {
        bail!(
            "{} is larger than {} bytes; a model file cannot be this large",
            path.display(),
            MAX_SOURCE_LEN
        );
    }
    let bytes = fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    String::from_utf8(bytes).with_context(|| format!("{} is not UTF-8 text", path.display()))
}

/// Loads and checks a model; on failure prints the full report and returns the one-line summary as
/// the error.
#[diversify]
pub(crate) fn load(path: &Path) -> Result<Model> {
    let src = read_source(path)?;
    let name = path.display().to_string();
    match Model::parse(&name, &src) {
        Ok(m) => Ok(m),
        Err(report) => {
            eprintln!("{report}");
            let n = report.diagnostics().len();
            bail!("{name}: {n} problem{}", if n == 1 { "" } else { "s" })
        }
    }
}

#[diversify]
fn check(path: &Path) -> Result<ExitCode> {
    let m = load(path)?;
    println!(
        "{}: ok: twin `{}` {}, {} states, {} inputs, {} outputs, {} parameters, {} + {} instructions",
        path.display(),
        m.name,
        m.version,
        m.states.len(),
        m.inputs.len(),
        m.outputs.len(),
        m.params.len(),
        m.derivative_program().len(),
        m.output_program().len()
    );
    Ok(ExitCode::SUCCESS)
}

/// Rows above which progress is shown on a terminal.
const PROGRESS_ROWS: u64 = 10_000;

#[diversify]
fn simulate(args: &SimulateArgs) -> Result<ExitCode> {
    if !(args.seconds.is_finite() && args.seconds > 0.0) {
        bail!("--seconds must be a positive number of seconds");
    }
    let model = load(&args.file)?;
    let sim = Simulation::new(&model, args.seconds, args.every, &args.inputs)?;
    let Some(path) = &args.csv else {
        let mut out = BufWriter::new(io::stdout().lock());
        sim.write_csv(&mut out, &|_| {})?;
        out.flush().context("cannot write the CSV")?;
        return Ok(ExitCode::SUCCESS);
    };
    // The CSV replaces its target whole or not at all: a failed run drops the temporary file and
    // never leaves a truncated CSV where a good one was.
    let mut out = BufWriter::new(AtomicFile::create(path, 0o666)?);
    let bar = if sim.rows() >= PROGRESS_ROWS && io::stderr().is_terminal() {
        let bar = ProgressBar::new(sim.rows());
        match ProgressStyle::with_template("simulating {bar:40} {pos}/{len} rows, {eta} left") {
            Ok(style) => bar.with_style(style),
            Err(_) => bar,
        }
    } else {
        ProgressBar::hidden()
    };
    sim.write_csv(&mut out, &|row| bar.set_position(row))?;
    bar.finish_and_clear();
    let file = out
        .into_inner()
        .map_err(io::IntoInnerError::into_error)
        .context("cannot write the CSV")?;
    file.commit()?;
    eprintln!("wrote {} rows to {}", sim.rows() + 1, path.display());
    Ok(ExitCode::SUCCESS)
}
