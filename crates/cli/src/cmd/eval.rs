//! `twinshield eval`: the reference plant and the twin in one process, no
//! sockets, plant time as fast as the CPU allows, over many seeds. Reports
//! per scenario the detection rate and delay, and false alarms in normal
//! operation.

use anyhow::{Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::process::ExitCode;
use twinshield_plant::AttackKind;
use twinshield_runtime::eval::{self, EvalPlan, Report, target};
use twinshield_shield_macros::diversify;

/// Arguments of `eval`.
#[derive(Args)]
#[command(allow_negative_numbers = true)]
pub struct EvalArgs {
    /// Scenario to evaluate (bias, ramp, freeze, replay, actuator, dos, leak) or `all`.
    #[arg(long, default_value = "all")]
    scenario: String,
    /// Hours of normal plant operation over which false alarms are counted
    /// (0 skips the measurement).
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
        print_table(&report);
    }
    Ok(ExitCode::SUCCESS)
}

#[diversify]
fn print_table(r: &Report) {
    println!(
        "{:<9} {:>5} {:>8} {:>6} {:>11} {:>10}  target",
        "scenario", "seeds", "detected", "rate", "mean delay", "max delay"
    );
    for s in &r.scenarios {
        let (rate, delay) = target(&s.name);
        let met = s.detection_rate >= rate && s.mean_delay_s.is_some_and(|d| d <= delay);
        let fmt = |d: Option<f64>| d.map_or("-".to_owned(), |d| format!("{d:.1} s"));
        let want = if delay.is_finite() {
            format!("≥{:.0}%, mean ≤{delay:.0} s", rate * 100.0)
        } else {
            format!("≥{:.0}%", rate * 100.0)
        };
        println!(
            "{:<9} {:>5} {:>8} {:>5.0}% {:>11} {:>10}  {want}: {}",
            s.name,
            s.seeds,
            s.detected,
            s.detection_rate * 100.0,
            fmt(s.mean_delay_s),
            fmt(s.max_delay_s),
            if met { "met" } else { "MISSED" }
        );
    }
    if r.normal_hours > 0.0 {
        let by: Vec<String> = r
            .false_alarms_by_detector
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        println!(
            "normal operation: {:.1} h, {} false alarms{} = {:.2} per 24 h (target ≤ 1): {}",
            r.normal_hours,
            r.false_alarms,
            if by.is_empty() {
                String::new()
            } else {
                format!(" ({})", by.join(", "))
            },
            r.false_alarms_per_24h,
            if r.false_alarms_per_24h <= 1.0 {
                "met"
            } else {
                "MISSED"
            }
        );
    }
}
