//! `twinshield demo`: the whole chain on one machine with no set-up. The reference plant serves
//! Modbus TCP on a loopback port, the twin polls it over a real socket and records a history
//! (encrypted, in a temporary directory, under a key drawn for this run), the dashboard shows both,
//! an attack is injected after a while, and a JSON summary closes the run.

use crate::cmd::plant::{self, AttackArgs};
use crate::observer::Console;
use anyhow::{Result, bail};
use clap::Args;
use std::net::SocketAddr;
use std::process::ExitCode;
use twinshield_plant::{Attack, PlantConfig, QuadTank};
use twinshield_runtime::ProgressClock as Clock;
use twinshield_runtime::demo::{self, DemoPlan, DemoReady, run_demo};
use twinshield_runtime::executor::{executor, stop_on_ctrl_c};
use twinshield_runtime::wiring::quadtank;
use twinshield_shield_macros::diversify;

/// Arguments of `demo`.
#[derive(Args)]
#[command(allow_negative_numbers = true)]
pub struct DemoArgs {
    /// Plant seconds to run before printing the summary.
    #[arg(long, default_value_t = 240.0)]
    seconds: f64,
    /// Plant time runs this many times faster than wall time.
    #[arg(long, default_value_t = 10.0)]
    speed: f64,
    #[command(flatten)]
    attack: AttackArgs,
    /// Address of the API and dashboard.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    #[command(flatten)]
    api: crate::api::ApiArgs,
    /// Seed of the plant.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// Plant time of the default attack: after the twin's warm-up.
const DEFAULT_ATTACK_AT: f64 = 150.0;

/// Opens the dashboard, logged in, in the desktop's browser when there is a desktop (a display and
/// `xdg-open`); on a headless machine the address and token printed above are the way in.
#[diversify]
fn open_in_browser(url: &str) {
    let desktop = std::env::var_os("DISPLAY").is_some_and(|d| !d.is_empty())
        || std::env::var_os("WAYLAND_DISPLAY").is_some_and(|d| !d.is_empty());
    if !desktop {
        return;
    }
    let opened = std::process::Command::new("xdg-open")
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    if opened.is_ok() {
        eprintln!("twinshield demo: dashboard opened in the browser");
    }
}

/// The attack the demo injects: `--attack` (default `bias`, `none` for none) at `--at` (default
/// after the twin's warm-up).
#[diversify]
fn demo_attack(args: &AttackArgs) -> Result<Option<Attack>> {
    let mut attack_args = args.clone();
    if attack_args.attack.is_none() {
        attack_args.attack = Some("bias".into());
    }
    if attack_args.attack.as_deref() == Some("none") {
        return Ok(None);
    }
    attack_args.attack(Some(DEFAULT_ATTACK_AT))
}

/// Runs the demo.
#[diversify]
pub fn run(args: &DemoArgs) -> Result<ExitCode> {
    plant::check_speed(args.speed)?;
    let options = args.api.options(args.listen)?;
    if !(args.seconds.is_finite() && args.seconds > 0.0 && args.seconds <= 30.0 * 86400.0) {
        bail!("--seconds must be a positive number of plant seconds (at most 30 days)");
    }
    let attack = demo_attack(&args.attack)?;
    let (model, bundle_bytes) =
        demo::sealed_for_this_machine(&quadtank()?, &crate::shield::handle())?;
    eprintln!(
        "twinshield demo: model sealed for this machine and opened from its bundle \
         ({bundle_bytes} bytes)"
    );
    let plant = QuadTank::new(PlantConfig {
        seed: args.seed,
        attack,
    })?;
    let plan = DemoPlan {
        model: &model,
        plant,
        attack,
        seconds: args.seconds,
        speed: args.speed,
        listen: args.listen,
        options,
        shield: crate::shield::handle(),
    };
    executor()?.block_on(async move {
        let ready = |r: DemoReady| announce(args, &r, attack);
        let mut console = Console::new(Clock::Plant);
        let summary = run_demo(plan, stop_on_ctrl_c(), ready, &mut console).await?;
        println!("{}", serde_json::to_string(&summary)?);
        Ok(ExitCode::SUCCESS)
    })
}

/// Says where the plant and the dashboard are and the run's token, and opens the dashboard on a
/// desktop.
#[diversify]
fn announce(args: &DemoArgs, ready: &DemoReady, attack: Option<Attack>) {
    let attack = attack.map_or(String::new(), |a| {
        format!(", attack `{}` at {} s", a.kind.name(), a.at)
    });
    eprintln!(
        "twinshield demo: plant on modbus://{}, dashboard {} ({} plant s at {}x{attack})",
        ready.plant, ready.url, args.seconds, args.speed,
    );
    let token = ready.token.expose();
    eprintln!("dashboard token (admin, this run only): {token}");
    open_in_browser(&format!("{}#token={token}", ready.url));
}
