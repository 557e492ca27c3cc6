//! `twinshield model check` and `twinshield model simulate`.

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use std::fs;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use twinshield_atrest::AtomicFile;
use twinshield_model::{MAX_SOURCE_LEN, Model, Simulator};
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
    /// Write the CSV here instead of to standard output (written whole or
    /// not at all).
    #[arg(long, value_name = "OUT")]
    csv: Option<PathBuf>,
    /// Hold an input at a value, as NAME=VALUE (repeatable); inputs not
    /// given sit at their nominal value.
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

/// Loads and checks a model; on failure prints the full report and returns
/// the one-line summary as the error.
#[diversify]
fn load(path: &Path) -> Result<Model> {
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

#[diversify]
fn parse_inputs(model: &Model, given: &[String]) -> Result<Vec<f64>> {
    let mut u = model.nominal_inputs();
    for arg in given {
        let (name, value) = arg
            .split_once('=')
            .with_context(|| format!("--input `{arg}` is not NAME=VALUE"))?;
        let i = model.input_index(name.trim()).with_context(|| {
            let names: Vec<&str> = model.inputs.iter().map(|i| i.name.as_str()).collect();
            format!(
                "unknown input `{name}`; the model's inputs are {}",
                names.join(", ")
            )
        })?;
        let v: f64 = value
            .trim()
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite())
            .with_context(|| format!("--input {name}: `{value}` is not a finite number"))?;
        let (lo, hi) = model.inputs.get(i).map(|x| x.range).unwrap_or((v, v));
        if v < lo || v > hi {
            bail!("--input {name}={v} is outside its range [{lo}, {hi}]");
        }
        if let Some(slot) = u.get_mut(i) {
            *slot = v;
        }
    }
    Ok(u)
}

/// Rows above which progress is shown on a terminal.
const PROGRESS_ROWS: u64 = 10_000;

/// Most rows one simulation may write.
const MAX_ROWS: f64 = 100_000_000.0;

#[diversify]
fn simulate(args: &SimulateArgs) -> Result<ExitCode> {
    if !(args.seconds.is_finite() && args.seconds > 0.0) {
        bail!("--seconds must be a positive number of seconds");
    }
    let model = load(&args.file)?;
    let every = args.every.unwrap_or(model.step);
    if !(every.is_finite() && every > 0.0) {
        bail!("--every must be a positive number of seconds");
    }
    let rows_f = (args.seconds / every).floor();
    if rows_f > MAX_ROWS {
        bail!("--seconds / --every asks for {rows_f} rows, more than {MAX_ROWS}");
    }
    let rows = rows_f as u64;
    let u = parse_inputs(&model, &args.inputs)?;

    let Some(path) = &args.csv else {
        let mut out = BufWriter::new(io::stdout().lock());
        write_simulation(&model, &u, every, rows, &mut out, false)?;
        out.flush().context("cannot write the CSV")?;
        return Ok(ExitCode::SUCCESS);
    };
    // The CSV replaces its target whole or not at all: a failed run drops
    // the temporary file and never leaves a truncated CSV where a good one
    // was.
    let mut out = BufWriter::new(AtomicFile::create(path, 0o666)?);
    write_simulation(&model, &u, every, rows, &mut out, true)?;
    let file = out
        .into_inner()
        .map_err(io::IntoInnerError::into_error)
        .context("cannot write the CSV")?;
    file.commit()?;
    eprintln!("wrote {} rows to {}", rows + 1, path.display());
    Ok(ExitCode::SUCCESS)
}

#[diversify]
fn write_simulation(
    model: &Model,
    u: &[f64],
    every: f64,
    rows: u64,
    out: &mut dyn Write,
    to_file: bool,
) -> Result<()> {
    let mut header = vec!["t".to_owned()];
    header.extend(model.states.iter().map(|s| s.name.clone()));
    header.extend(model.outputs.iter().map(|o| o.name.clone()));
    writeln!(out, "{}", header.join(",")).context("cannot write the CSV")?;

    let bar = if to_file && rows >= PROGRESS_ROWS && io::stderr().is_terminal() {
        let bar = ProgressBar::new(rows);
        if let Ok(style) =
            ProgressStyle::with_template("simulating {bar:40} {pos}/{len} rows, {eta} left")
        {
            bar.set_style(style);
        }
        bar
    } else {
        ProgressBar::hidden()
    };
    let mut sim = Simulator::new(model);
    let mut y = vec![0.0; model.outputs.len()];
    let mut line = String::new();
    for row in 0..=rows {
        if row > 0 {
            // Advance to the row's absolute time, so rounding never accumulates.
            let target = row as f64 * every;
            sim.advance(u, target - sim.time())?;
        }
        sim.outputs(u, &mut y)?;
        line.clear();
        line.push_str(&format_value(sim.time()));
        for v in sim.states().iter().chain(&y) {
            line.push(',');
            line.push_str(&format_value(*v));
        }
        writeln!(out, "{line}").context("cannot write the CSV")?;
        if row % 1024 == 0 {
            bar.set_position(row);
        }
    }
    bar.finish_and_clear();
    Ok(())
}

#[diversify]
fn format_value(v: f64) -> String {
    // Shortest representation that reads back to the same f64.
    format!("{v}")
}
