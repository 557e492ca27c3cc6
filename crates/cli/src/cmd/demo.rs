//! `twinshield demo`: the whole chain on one machine with no set-up. The
//! reference plant serves Modbus TCP on a loopback port, the twin polls it
//! over a real socket and records a history (encrypted, in a temporary
//! directory, under a key drawn for this run), the dashboard shows both,
//! an attack is injected after a while, and a JSON summary closes the run.

use crate::cmd::plant::{self, AttackArgs};
use crate::observer::{Clock, Console};
use anyhow::{Result, bail};
use clap::Args;
use std::net::SocketAddr;
use std::process::ExitCode;
use tokio::sync::watch;
use tokio::time::Instant;
use twinshield_model::Model;
use twinshield_plant::{Attack, PlantConfig, QuadTank};
use twinshield_runtime::api::feed_for;
use twinshield_runtime::demo::{self, DemoParts, ServedPlant};
use twinshield_runtime::summary::{AttackSummary, DemoSummary, round1};
use twinshield_runtime::wiring::{self, quadtank};
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

/// Opens the dashboard, logged in, in the desktop's browser when there is
/// a desktop (a display and `xdg-open`); on a headless machine the address
/// and token printed above are the way in.
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

/// The attack the demo injects: `--attack` (default `bias`, `none` for
/// none) at `--at` (default after the twin's warm-up).
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
    args.api.check(args.listen)?;
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
    crate::executor::runtime()?.block_on(serve(args, &model, plant, attack))
}

/// Says where the plant and the dashboard are and the run's token, and
/// opens the dashboard on a desktop.
#[diversify]
fn announce(
    args: &DemoArgs,
    plant: SocketAddr,
    api_url: &str,
    attack: Option<Attack>,
    token: &twinshield_api::IssuedToken,
) {
    let attack = attack.map_or(String::new(), |a| {
        format!(", attack `{}` at {} s", a.kind.name(), a.at)
    });
    eprintln!(
        "twinshield demo: plant on modbus://{plant}, dashboard {api_url} \
         ({} plant s at {}x{attack})",
        args.seconds, args.speed,
    );
    eprintln!("dashboard token (admin, this run only): {}", token.expose());
    open_in_browser(&format!("{api_url}#token={}", token.expose()));
}

/// The demo's plant, API and twin, until the plant time is up.
#[diversify]
async fn serve(
    args: &DemoArgs,
    model: &Model,
    plant: QuadTank,
    attack: Option<Attack>,
) -> Result<ExitCode> {
    let shield = crate::shield::handle();
    let (api_dir, history_dir) = (demo::temp_dir("api")?, demo::temp_dir("history")?);
    let (stop_tx, stop_rx) = watch::channel(false);
    let plant = ServedPlant::start(plant, args.speed, &stop_rx).await?;
    let feed = feed_for(model);
    let recorder = demo::recorder(model, history_dir.path(), shield.clone())?;
    let options = args.api.options()?;
    let (api, token) = demo::api(
        args.listen,
        &options,
        model,
        api_dir.path(),
        feed.clone(),
        &recorder,
        shield.clone(),
    )
    .await?;
    let api_url = api.url();
    let page = api.spawn(stop_rx.clone());
    announce(args, plant.addr, &api_url, attack, &token);
    drop(token);
    crate::executor::stop_on_ctrl_c(&stop_tx);
    // The reference plant sends its clock with every sample.
    let map = wiring::modbus_map(model)?.with_timestamp(wiring::reference_plant_clock())?;
    let parts = DemoParts {
        plant: plant.addr,
        map,
        speed: args.speed,
        feed,
        attack: attack.map(|a| (a.kind.name(), a.at)),
        recorder,
        shield: shield.clone(),
    };
    let session = demo::session(model, parts)?;
    let started = Instant::now();
    let (seconds, speed, clock_rx) = (args.seconds, args.speed, plant.clock.clone());
    let clock = move || {
        // A safety net in case the plant stopped advancing.
        if started.elapsed().as_secs_f64() > 2.0 * seconds / speed + 10.0 {
            return None;
        }
        let t = *clock_rx.borrow();
        (t < seconds).then_some(t)
    };
    let outcome = session
        .run(clock, stop_rx, &mut Console::new(Clock::Plant))
        .await;
    let _ = stop_tx.send(true);
    let plant_addr = plant.addr;
    plant.stopped().await;
    let _ = page.await;
    let summary = DemoSummary {
        alarms: outcome.alarms,
        attack: attack.map(|a| AttackSummary {
            at_s: a.at,
            magnitude: a.magnitude,
            name: a.kind.name().to_owned(),
        }),
        data_quality_events: outcome.quality,
        plant: format!("modbus://{plant_addr}"),
        plant_seconds: round1(args.seconds),
        samples: outcome.twin.samples(),
        shield: shield.status(),
        speed: args.speed,
    };
    println!("{}", serde_json::to_string(&summary)?);
    Ok(ExitCode::SUCCESS)
}
