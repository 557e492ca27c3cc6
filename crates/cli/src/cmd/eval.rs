//! `twinshield eval`: the reference plant and the twin in one process, no
//! sockets, plant time as fast as the CPU allows, over many seeds. Reports
//! per scenario the detection rate and delay, and false alarms in normal
//! operation.

use crate::cmd::plant::PLANT_STEP;
use crate::wiring::{Wiring, quadtank};
use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use twinshield_connect::RegisterBank;
use twinshield_model::Model;
use twinshield_plant::{Attack, AttackKind, PlantConfig, QuadTank};
use twinshield_runtime::{AlarmEvent, Twin, TwinSettings};
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

/// Plant time at which attacks start: after the twin's warm-up and at least
/// one setpoint change.
const ATTACK_AT: f64 = 900.0;

/// How long after the attack a run watches for detection, plant seconds.
#[diversify]
fn watch_for(kind: AttackKind) -> f64 {
    match kind {
        AttackKind::Ramp => 1800.0,
        _ => 900.0,
    }
}

/// Plant seconds per normal-operation run.
const NORMAL_RUN: f64 = 24.0 * 3600.0;

#[derive(Debug, Clone, Serialize)]
struct ScenarioResult {
    name: String,
    seeds: u32,
    detected: u32,
    detection_rate: f64,
    mean_delay_s: Option<f64>,
    max_delay_s: Option<f64>,
    /// Alarms raised before the attack started, over all seeds.
    false_alarms_before_attack: u32,
    /// Detector of the first alarm after the attack, per detected seed.
    first_detectors: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
struct Report {
    scenarios: Vec<ScenarioResult>,
    normal_hours: f64,
    false_alarms: u32,
    false_alarms_per_24h: f64,
    /// False alarms in normal operation by the detector that raised them.
    false_alarms_by_detector: std::collections::BTreeMap<String, u32>,
    sample_period_s: f64,
    attack_at_s: f64,
}

enum Job {
    Attack { kind: AttackKind, seed: u64 },
    Normal { seed: u64, seconds: f64 },
}

#[derive(Debug, Clone)]
enum Outcome {
    Attack {
        kind: AttackKind,
        delay: Option<f64>,
        detector: Option<String>,
        before: u32,
    },
    Normal {
        seconds: f64,
        alarms: u32,
        detectors: Vec<String>,
    },
}

/// Runs the plant and the twin together until `end` plant seconds or until
/// `stop` says so; returns the raised alarms as (time, detector).
#[diversify]
fn simulate(
    model: &Model,
    wiring: &Wiring,
    config: PlantConfig,
    end: f64,
    mut stop: impl FnMut(f64, &AlarmEvent) -> bool,
) -> Result<()> {
    let mut plant = QuadTank::new(config)?;
    let settings = TwinSettings {
        sample_period: PLANT_STEP,
        ..TwinSettings::default()
    };
    let mut twin = Twin::new(model, settings)?;
    let mut bank = RegisterBank::default();
    let (mut u, mut y) = (Vec::new(), Vec::new());
    while plant.time() < end {
        let dt = plant.jittered_period(PLANT_STEP);
        plant.step(dt)?;
        let r = plant.registers();
        bank.input.clear();
        bank.input.extend_from_slice(&r.input);
        bank.holding.clear();
        bank.holding.extend_from_slice(&r.holding);
        bank.coils.clear();
        bank.coils.extend_from_slice(&r.coils);
        let t = plant.time();
        let reading = match bank.read(wiring.map()) {
            Ok(r) => r,
            Err(e) => {
                twin.quality_event(t, e.to_string());
                continue;
            }
        };
        wiring.split(&reading, &mut u, &mut y);
        match twin.update(t, &u, &y) {
            Ok(events) => {
                for e in events {
                    if let AlarmEvent::Raised(_) = e
                        && stop(t, e)
                    {
                        return Ok(());
                    }
                }
            }
            Err(e) => twin.quality_event(t, e.to_string()),
        }
    }
    Ok(())
}

#[diversify]
fn run_job(model: &Model, wiring: &Wiring, job: &Job) -> Result<Outcome> {
    match *job {
        Job::Attack { kind, seed } => {
            let attack = Attack::new(kind, ATTACK_AT);
            let mut before = 0u32;
            let mut first: Option<(f64, String)> = None;
            simulate(
                model,
                wiring,
                PlantConfig {
                    seed,
                    attack: Some(attack),
                },
                ATTACK_AT + watch_for(kind),
                |t, e| {
                    // Plant time is a sum of steps: allow for rounding.
                    if t < ATTACK_AT - 1e-6 {
                        before += 1;
                        false
                    } else {
                        first = Some(((t - ATTACK_AT).max(0.0), e.alarm().kind.name().to_owned()));
                        true
                    }
                },
            )?;
            Ok(Outcome::Attack {
                kind,
                delay: first.as_ref().map(|f| f.0),
                detector: first.map(|f| f.1),
                before,
            })
        }
        Job::Normal { seed, seconds } => {
            let mut alarms = 0u32;
            let mut detectors = Vec::new();
            simulate(
                model,
                wiring,
                PlantConfig { seed, attack: None },
                seconds,
                |_, e| {
                    alarms += 1;
                    detectors.push(e.alarm().kind.name().to_owned());
                    false
                },
            )?;
            Ok(Outcome::Normal {
                seconds,
                alarms,
                detectors,
            })
        }
    }
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
    let model = quadtank()?;
    let wiring = Wiring::new(&model)?;
    let mut jobs = Vec::new();
    for &kind in &kinds {
        for s in 0..u64::from(args.seeds) {
            jobs.push(Job::Attack {
                kind,
                seed: args.seed.wrapping_add(s),
            });
        }
    }
    let mut left = args.hours * 3600.0;
    let mut n = 0u64;
    while left > 1e-9 {
        let seconds = left.min(NORMAL_RUN);
        jobs.push(Job::Normal {
            seed: args.seed.wrapping_add(1_000_000).wrapping_add(n),
            seconds,
        });
        left -= seconds;
        n += 1;
    }
    // Longest jobs first, so the two workers finish together.
    jobs.sort_by_key(|j| match j {
        Job::Normal { .. } => 0,
        Job::Attack { .. } => 1,
    });

    let bar = if std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(jobs.len() as u64);
        if let Ok(s) = ProgressStyle::with_template("eval {bar:40} {pos}/{len} runs, {eta} left") {
            bar.set_style(s);
        }
        bar
    } else {
        ProgressBar::hidden()
    };
    let next = AtomicUsize::new(0);
    let outcomes: Mutex<Vec<Outcome>> = Mutex::new(Vec::new());
    let failure: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(job) = jobs.get(i) else { break };
                    match run_job(&model, &wiring, job) {
                        Ok(o) => {
                            if let Ok(mut v) = outcomes.lock() {
                                v.push(o);
                            }
                        }
                        Err(e) => {
                            if let Ok(mut f) = failure.lock() {
                                f.get_or_insert(e);
                            }
                        }
                    }
                    bar.inc(1);
                }
            });
        }
    });
    bar.finish_and_clear();
    if let Some(e) = failure.into_inner().ok().flatten() {
        return Err(e.context("evaluation run failed"));
    }
    let outcomes = outcomes
        .into_inner()
        .ok()
        .context("evaluation results lost")?;
    let report = summarize(&kinds, args.seeds, &outcomes);
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_table(&report);
    }
    Ok(ExitCode::SUCCESS)
}

#[diversify]
fn summarize(kinds: &[AttackKind], seeds: u32, outcomes: &[Outcome]) -> Report {
    let mut scenarios = Vec::new();
    for &kind in kinds {
        let mut delays = Vec::new();
        let mut before = 0;
        let mut detectors = Vec::new();
        for o in outcomes {
            if let Outcome::Attack {
                kind: k,
                delay,
                detector,
                before: b,
            } = o
                && *k == kind
            {
                before += b;
                if let Some(d) = delay {
                    delays.push(*d);
                }
                if let Some(d) = detector {
                    detectors.push(d.clone());
                }
            }
        }
        let detected = delays.len() as u32;
        scenarios.push(ScenarioResult {
            name: kind.name().to_owned(),
            seeds,
            detected,
            detection_rate: f64::from(detected) / f64::from(seeds),
            mean_delay_s: (!delays.is_empty())
                .then(|| round1(delays.iter().sum::<f64>() / delays.len() as f64)),
            max_delay_s: delays.iter().copied().reduce(f64::max).map(round1),
            false_alarms_before_attack: before,
            first_detectors: detectors,
        });
    }
    let (mut seconds, mut alarms) = (0.0, 0u32);
    let mut by_detector = std::collections::BTreeMap::new();
    for o in outcomes {
        if let Outcome::Normal {
            seconds: s,
            alarms: a,
            detectors,
        } = o
        {
            seconds += s;
            alarms += a;
            for d in detectors {
                *by_detector.entry(d.clone()).or_insert(0) += 1;
            }
        }
    }
    let hours = seconds / 3600.0;
    Report {
        scenarios,
        normal_hours: round1(hours),
        false_alarms: alarms,
        false_alarms_by_detector: by_detector,
        false_alarms_per_24h: if hours > 0.0 {
            (f64::from(alarms) * 24.0 / hours * 1000.0).round() / 1000.0
        } else {
            0.0
        },
        sample_period_s: PLANT_STEP,
        attack_at_s: ATTACK_AT,
    }
}

#[diversify]
fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// The targets: (min detection rate, max mean delay seconds).
#[diversify]
fn target(name: &str) -> (f64, f64) {
    match name {
        "ramp" => (1.0, 300.0),
        "replay" => (0.9, f64::INFINITY),
        _ => (1.0, 30.0),
    }
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
