//! `twinshield eval`: the reference plant and the twin in one process, no sockets, plant time as
//! fast as the CPU allows, over many seeds. Reports per scenario the detection rate and delay, and
//! false alarms in normal operation.

use anyhow::{Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::process::ExitCode;
use twinshield_plant::AttackKind;
use twinshield_runtime::eval::{self, EvalPlan};
use twinshield_shield_macros::diversify;

/// Arguments of `eval`.
#[derive(Args)]
#[command(allow_negative_numbers = true)]
pub struct EvalArgs {
    /// Scenario to evaluate (bias, ramp, freeze, replay, actuator, dos, leak) or `all`.
    #[arg(long, default_value = "all")]
    scenario: String,
    /// Hours of normal plant operation over which false alarms are counted (0 skips the
    /// measurement).
    #[arg(long, default_value_t = 240.0)]
    hours: f64,
    /// First seed; runs use consecutive seeds from here.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Seeds per scenario.
    #[arg(long, default_value_t = 20)]
    seeds: u32,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// Runs one `eval`.
#[diversify]
pub fn run(args: &EvalArgs) -> Result<ExitCode> {
    let kinds: Vec<AttackKind> = if args.scenario == "all" {
        AttackKind::ALL.to_vec()
    } else {
        vec![args.scenario.parse()?]
    };
    if !(args.hours.is_finite() && args.hours >= 0.0 && args.hours <= 100_000.0) {
        bail!("--hours must be a number of hours from 0 to 100000");
    }
    if args.seeds == 0 || args.seeds > 10_000 {
        bail!("--seeds must be from 1 to 10000");
    }
    let plan = EvalPlan {
        kinds,
        first_seed: args.seed,
        seeds: args.seeds,
        hours: args.hours,
    };
    let bar = if std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(eval::run_count(&plan) as u64);
        if let Ok(s) = ProgressStyle::with_template("eval {bar:40} {pos}/{len} runs, {eta} left") {
            bar.set_style(s);
        }
        bar
    } else {
        ProgressBar::hidden()
    };
    let report = eval::evaluate(&plan, &|| bar.inc(1));
    bar.finish_and_clear();
    let report = report?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{report}");
    }
    Ok(ExitCode::SUCCESS)
}
