//! The detection evaluation behind `twinshield eval`: the reference plant
//! and a twin in one process, stepped as fast as the machine allows, over
//! many seeds per attack scenario and long stretches of normal operation.
//! A plant's register image goes through the same point map and wiring as
//! a Modbus poll would.

mod table;

use crate::gate::ShieldHandle;
use crate::session::{Progress, SampleTime, Session, SessionObserver};
use crate::summary::AlarmSummary;
use crate::summary::round1;
use crate::wiring::{self, Wiring, WiringError};
use serde::Serialize;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use twinshield_connect::{
    ConnectionState, PlantSample, PlantSource, PointMap, Quality, RegisterBank, SourceInfo,
};
use twinshield_model::Model;
use twinshield_plant::{Attack, AttackKind, PlantConfig, PlantError, QuadTank};
use twinshield_shield_macros::diversify;
use twinshield_twin::{AlarmEvent, Twin, TwinError, TwinSettings};

/// Plant step between register updates, plant seconds (the PLC's period).
pub const PLANT_STEP: f64 = 0.1;

/// Why an evaluation could not run.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The model does not fit the plant.
    #[error(transparent)]
    Wiring(#[from] WiringError),
    /// The plant refused its configuration or a step.
    #[error("evaluation run failed: {0}")]
    Plant(#[from] PlantError),
    /// The twin refused the model.
    #[error("evaluation run failed: {0}")]
    Twin(#[from] TwinError),
    /// A worker thread lost the results.
    #[error("evaluation results lost")]
    Lost,
}

/// What to evaluate.
#[derive(Debug, Clone)]
pub struct EvalPlan {
    /// Attack scenarios, each run over `seeds` seeds.
    pub kinds: Vec<AttackKind>,
    /// First seed; runs use consecutive seeds from here.
    pub first_seed: u64,
    /// Seeds per scenario.
    pub seeds: u32,
    /// Hours of normal operation over which false alarms are counted.
    pub hours: f64,
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

/// One scenario's figures.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioResult {
    /// The scenario.
    pub name: String,
    /// Seeds run.
    pub seeds: u32,
    /// Seeds in which an alarm followed the attack.
    pub detected: u32,
    /// `detected / seeds`.
    pub detection_rate: f64,
    /// Mean seconds from the attack to its first alarm.
    pub mean_delay_s: Option<f64>,
    /// Longest of those delays.
    pub max_delay_s: Option<f64>,
    /// Alarms raised before the attack started, over all seeds.
    pub false_alarms_before_attack: u32,
    /// Detector of the first alarm after the attack, per detected seed.
    pub first_detectors: Vec<String>,
}

/// The whole evaluation (`eval --json` prints it).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Per attack scenario.
    pub scenarios: Vec<ScenarioResult>,
    /// Hours of normal operation run.
    pub normal_hours: f64,
    /// Alarms raised in normal operation.
    pub false_alarms: u32,
    /// The same per 24 hours.
    pub false_alarms_per_24h: f64,
    /// False alarms in normal operation by the detector that raised them.
    pub false_alarms_by_detector: std::collections::BTreeMap<String, u32>,
    /// The twin's sample period.
    pub sample_period_s: f64,
    /// Plant time at which attacks start.
    pub attack_at_s: f64,
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

/// The reference plant's register image as a plant source: the host
/// loads each new image, the session reads it through the model's map.
struct RegisterImage {
    map: PointMap,
    bank: RegisterBank,
}

#[diversify]
impl RegisterImage {
    fn load(&mut self, r: &twinshield_plant::Registers) {
        self.bank.input.clear();
        self.bank.input.extend_from_slice(&r.input_registers());
        self.bank.holding.clear();
        self.bank.holding.extend_from_slice(&r.holding);
        self.bank.coils.clear();
        self.bank.coils.extend_from_slice(&r.coils);
    }
}

#[diversify]
impl PlantSource for RegisterImage {
    type Error = twinshield_connect::ReadError;

    async fn read(&mut self) -> Result<PlantSample, Self::Error> {
        let r = self.bank.read(&self.map)?;
        Ok(PlantSample {
            quality: vec![Quality::Good; r.values.len()],
            values: r.values,
            source_time: None,
        })
    }

    fn state(&self) -> ConnectionState {
        ConnectionState::Connected
    }

    fn describe(&self) -> SourceInfo {
        source_info(&self.map)
    }
}

/// Hands every raised alarm, with its sample time, to a stop rule.
struct Watcher<F: FnMut(f64, &AlarmEvent) -> bool> {
    stop_at: F,
    stopped: bool,
}

impl<F: FnMut(f64, &AlarmEvent) -> bool> SessionObserver for Watcher<F> {
    fn alarm_raised(&mut self, _: &AlarmSummary) {}
    fn progress(&mut self, _: &Progress) {}
    fn notice(&mut self, _: &str) {}
    fn alarm_event(&mut self, t: f64, e: &AlarmEvent) {
        if matches!(e, AlarmEvent::Raised(_)) && !self.stopped && (self.stop_at)(t, e) {
            self.stopped = true;
        }
    }
}

/// Runs the plant and a session over it together until `end` plant
/// seconds or until `stop` says so on a raised alarm.
#[diversify]
fn simulate(
    model: &Model,
    wiring: &Wiring,
    config: PlantConfig,
    end: f64,
    stop: impl FnMut(f64, &AlarmEvent) -> bool,
) -> Result<(), EvalError> {
    let mut plant = QuadTank::new(config)?;
    let settings = TwinSettings {
        sample_period: PLANT_STEP,
        ..TwinSettings::default()
    };
    let session = Session {
        model,
        wiring: wiring.clone(),
        source: RegisterImage {
            map: wiring::modbus_map(model)?,
            bank: RegisterBank::default(),
        },
        twin: Twin::new(model, settings)?,
        period: std::time::Duration::from_secs_f64(PLANT_STEP),
        feed: None,
        attack: None,
        recorder: None,
        publisher: None,
        shield: ShieldHandle::new(None),
        time: SampleTime::Poll,
    };
    let mut stepped = session.stepped();
    let mut watcher = Watcher {
        stop_at: stop,
        stopped: false,
    };
    // The source is always ready: no timer or socket is ever awaited, so
    // the smallest executor will do.
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|_| EvalError::Lost)?;
    rt.block_on(async {
        while plant.time() < end && !watcher.stopped {
            let dt = plant.jittered_period(PLANT_STEP);
            plant.step(dt)?;
            stepped.source_mut().load(&plant.registers());
            stepped.step(plant.time(), &mut watcher).await;
        }
        Ok(())
    })
}

#[diversify]
fn run_job(model: &Model, wiring: &Wiring, job: &Job) -> Result<Outcome, EvalError> {
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

/// The targets per scenario: (min detection rate, max mean delay seconds).
#[diversify]
pub fn target(name: &str) -> (f64, f64) {
    match name {
        "ramp" => (1.0, 300.0),
        "replay" => (0.9, f64::INFINITY),
        _ => (1.0, 30.0),
    }
}

/// The jobs of `plan`, longest first so the workers finish together.
#[diversify]
fn jobs(plan: &EvalPlan) -> Vec<Job> {
    let mut jobs = Vec::new();
    for &kind in &plan.kinds {
        for s in 0..u64::from(plan.seeds) {
            jobs.push(Job::Attack {
                kind,
                seed: plan.first_seed.wrapping_add(s),
            });
        }
    }
    let mut left = plan.hours * 3600.0;
    let mut n = 0u64;
    while left > 1e-9 {
        let seconds = left.min(NORMAL_RUN);
        jobs.push(Job::Normal {
            seed: plan.first_seed.wrapping_add(1_000_000).wrapping_add(n),
            seconds,
        });
        left -= seconds;
        n += 1;
    }
    jobs.sort_by_key(|j| match j {
        Job::Normal { .. } => 0,
        Job::Attack { .. } => 1,
    });
    jobs
}

/// How many runs `plan` makes (for a progress bar).
#[diversify]
pub fn run_count(plan: &EvalPlan) -> usize {
    jobs(plan).len()
}

/// Runs `plan` on every core (at most 8), calling `done` after each run.
#[diversify]
pub fn evaluate(plan: &EvalPlan, done: &(dyn Fn() + Sync)) -> Result<Report, EvalError> {
    let model = wiring::quadtank()?;
    let map = wiring::modbus_map(&model)?;
    let wiring = Wiring::new(&model, &source_info(&map))?;
    let jobs = jobs(plan);
    let next = AtomicUsize::new(0);
    let outcomes: Mutex<Vec<Outcome>> = Mutex::new(Vec::new());
    let failure: Mutex<Option<EvalError>> = Mutex::new(None);
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
                    done();
                }
            });
        }
    });
    if let Some(e) = failure.into_inner().ok().flatten() {
        return Err(e);
    }
    let outcomes = outcomes.into_inner().map_err(|_| EvalError::Lost)?;
    Ok(summarize(&plan.kinds, plan.seeds, &outcomes))
}

/// The channels a register image read through `map` carries.
#[diversify]
fn source_info(map: &PointMap) -> twinshield_connect::SourceInfo {
    twinshield_connect::SourceInfo {
        protocol: "modbus",
        address: "in-process".to_owned(),
        channels: map.points().iter().map(|p| p.name.clone()).collect(),
    }
}
