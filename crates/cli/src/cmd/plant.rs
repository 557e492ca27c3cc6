//! `twinshield plant quadtank`: the reference plant served over Modbus TCP.

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use std::net::SocketAddr;
use std::process::ExitCode;
use twinshield_plant::{Attack, AttackKind, PlantConfig, QuadTank, UNIT_ID};
use twinshield_runtime::executor::{executor, stop_on_ctrl_c};
use twinshield_runtime::plant_host;
use twinshield_shield_macros::diversify;

/// Reference plants.
#[derive(Subcommand)]
pub enum PlantCommand {
    /// The quadruple-tank process with its PLC, served over Modbus TCP.
    Quadtank(QuadtankArgs),
}

/// Attack injection flags shared by `plant` and `demo`.
#[derive(Args, Clone, Debug)]
pub struct AttackArgs {
    /// Attack or fault to inject: bias, ramp, freeze, replay, actuator, dos, leak.
    #[arg(long)]
    pub attack: Option<String>,
    /// Plant time of the attack's start, seconds.
    #[arg(long, value_name = "SECONDS")]
    pub at: Option<f64>,
    /// Attack magnitude (unit depends on the attack; default: the scenario's).
    #[arg(long)]
    pub magnitude: Option<f64>,
}

#[diversify]
impl AttackArgs {
    /// The attack these flags ask for, with `default_at` when `--at` is absent.
    pub fn attack(&self, default_at: Option<f64>) -> Result<Option<Attack>> {
        let Some(name) = &self.attack else {
            if self.at.is_some() || self.magnitude.is_some() {
                bail!("--at and --magnitude need --attack");
            }
            return Ok(None);
        };
        let kind: AttackKind = name.parse()?;
        let at = self
            .at
            .or(default_at)
            .context("--attack needs --at SECONDS (plant time of the attack's start)")?;
        let mut attack = Attack::new(kind, at);
        if let Some(m) = self.magnitude {
            attack = attack.with_magnitude(m);
        }
        attack.validate()?;
        Ok(Some(attack))
    }
}

/// Arguments of `plant quadtank`.
#[derive(Args)]
#[command(allow_negative_numbers = true)]
pub struct QuadtankArgs {
    /// Address to serve Modbus TCP on, e.g. 127.0.0.1:5020.
    #[arg(long)]
    listen: SocketAddr,
    /// Plant time runs this many times faster than wall time.
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    #[command(flatten)]
    attack: AttackArgs,
    /// Seed of the plant's noise, drift and setpoint schedule.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Stop after this much plant time (default: run until interrupted).
    #[arg(long)]
    seconds: Option<f64>,
}

/// Highest accepted `--speed`.
pub const MAX_SPEED: f64 = 1000.0;

/// Checks a `--speed` value.
#[diversify]
pub fn check_speed(speed: f64) -> Result<()> {
    if !(speed.is_finite() && speed > 0.0 && speed <= MAX_SPEED) {
        bail!("--speed must be a number above 0 and at most {MAX_SPEED}");
    }
    Ok(())
}

/// Runs one `plant` subcommand.
#[diversify]
pub fn run(cmd: PlantCommand) -> Result<ExitCode> {
    let PlantCommand::Quadtank(args) = cmd;
    check_speed(args.speed)?;
    if let Some(s) = args.seconds
        && !(s.is_finite() && s > 0.0)
    {
        bail!("--seconds must be a positive number of plant seconds");
    }
    let attack = args.attack.attack(None)?;
    let plant = QuadTank::new(PlantConfig {
        seed: args.seed,
        attack,
    })?;
    let attack_line = attack.map_or(String::new(), |a| {
        let (name, at, magnitude) = (a.kind.name(), a.at, a.magnitude);
        format!(", attack {name} at {at} s (magnitude {magnitude})")
    });
    let (speed, seed) = (args.speed, args.seed);
    let listening = |local| {
        eprintln!(
            "plant quadtank: Modbus TCP on {local} (unit {UNIT_ID}), speed {speed}x, seed {seed}{attack_line}"
        );
    };
    let plant = executor()?.block_on(async move {
        let pace = (args.speed, args.seconds);
        plant_host::serve(plant, args.listen, pace, stop_on_ctrl_c(), listening).await
    })?;
    eprintln!(
        "plant quadtank: stopped at plant time {:.1} s",
        plant.time()
    );
    Ok(ExitCode::SUCCESS)
}
