//! `twinshield demo`: the whole chain on one machine with no set-up. The
//! reference plant serves Modbus TCP on a loopback port, the twin polls it
//! over a real socket, a status page shows both, an attack is injected after
//! a while, and a JSON summary closes the run.

use crate::cmd::plant::{self, AttackArgs, PLANT_STEP};
use crate::status;
use crate::wiring::{Wiring, quadtank};
use anyhow::{Context, Result, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use serde_json::json;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::Instant;
use twinshield_connect::{ClientConfig, ModbusClient};
use twinshield_plant::{PlantConfig, QuadTank, UNIT_ID};
use twinshield_runtime::{AlarmEvent, Twin, TwinSettings};

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
    /// Address of the status page.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Seed of the plant.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// Tolerance on plant-time comparisons: plant time is a sum of steps.
const TIME_EPS: f64 = 1e-6;

/// Plant time of the default attack: after the twin's warm-up.
const DEFAULT_ATTACK_AT: f64 = 150.0;

#[derive(Serialize)]
struct AlarmSummary {
    id: u64,
    channel: String,
    detector: String,
    raised_at_s: f64,
    delay_s: Option<f64>,
    cleared_at_s: Option<f64>,
}

/// Runs the demo.
pub fn run(args: &DemoArgs) -> Result<ExitCode> {
    plant::check_speed(args.speed)?;
    if !(args.seconds.is_finite() && args.seconds > 0.0 && args.seconds <= 30.0 * 86400.0) {
        bail!("--seconds must be a positive number of plant seconds (at most 30 days)");
    }
    let mut attack_args = args.attack.clone();
    if attack_args.attack.is_none() {
        attack_args.attack = Some("bias".into());
    }
    let attack = if attack_args.attack.as_deref() == Some("none") {
        None
    } else {
        attack_args.attack(Some(DEFAULT_ATTACK_AT))?
    };
    let model = quadtank()?;
    let wiring = Wiring::new(&model)?;
    let plant = QuadTank::new(PlantConfig {
        seed: args.seed,
        attack,
    })?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async move {
        let (stop_tx, stop_rx) = watch::channel(false);
        let stopped = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };

        // The plant, on a loopback port chosen by the system.
        let plant_listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("cannot open a loopback port for the plant")?;
        let plant_addr = plant_listener.local_addr()?;
        let bank = plant::new_bank(&plant);
        let server = tokio::spawn(twinshield_connect::serve(
            plant_listener,
            bank.clone(),
            UNIT_ID,
            stopped(stop_rx.clone()),
        ));
        // One site clock: the twin time-stamps its samples with the plant
        // time current when it reads them, as an NTP-synchronised site would.
        let (clock_tx, clock_rx) = watch::channel(0.0);
        let plant_task = tokio::spawn(plant::drive(
            plant,
            bank,
            args.speed,
            None,
            clock_tx,
            stop_rx.clone(),
        ));

        // The status page.
        let board: status::Board = Arc::new(RwLock::new(json!({"state": "starting"})));
        let page_listener = TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let page_addr = page_listener.local_addr()?;
        let page = tokio::spawn(status::serve(page_listener, board.clone(), stopped(stop_rx.clone())));
        eprintln!(
            "twinshield demo: plant on modbus://{plant_addr}, status page http://{page_addr}/ \
             ({} plant s at {}x{})",
            args.seconds,
            args.speed,
            attack.map_or(String::new(), |a| format!(", attack `{}` at {} s", a.kind.name(), a.at)),
        );

        let ctrl_c = stop_tx.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                let _ = ctrl_c.send(true);
            }
        });

        // The twin: polls the plant over Modbus TCP on its own clock.
        let settings = TwinSettings {
            sample_period: PLANT_STEP,
            ..TwinSettings::default()
        };
        let mut twin = Twin::new(&model, settings)?;
        let mut cfg = ClientConfig::new(plant_addr);
        cfg.timeout = Duration::from_millis(500);
        let mut client = ModbusClient::new(cfg, wiring.map().clone());
        let period = Duration::from_secs_f64(PLANT_STEP / args.speed);
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let started = Instant::now();
        let progress = if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new_spinner();
            if let Ok(s) = ProgressStyle::with_template("{spinner} {msg}") {
                bar.set_style(s);
            }
            bar
        } else {
            ProgressBar::hidden()
        };
        let mut alarms: Vec<AlarmSummary> = Vec::new();
        let (mut u, mut y) = (Vec::new(), Vec::new());
        let mut quality = 0u64;
        let mut last_report = 0.0;
        let mut last_t = f64::NEG_INFINITY;
        let mut stop_seen = stop_rx.clone();
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = stop_seen.changed() => {}
            }
            if *stop_seen.borrow() {
                break;
            }
            // A safety net in case the plant stopped advancing.
            if started.elapsed().as_secs_f64() > 2.0 * args.seconds / args.speed + 10.0 {
                break;
            }
            let t = *clock_rx.borrow();
            if t >= args.seconds {
                break;
            }
            if t <= last_t {
                continue; // no new plant sample since the last poll
            }
            last_t = t;
            match client.read().await {
                Ok(reading) => {
                    wiring.split(&reading, &mut u, &mut y);
                    match twin.update(t, &u, &y) {
                        Ok(events) => {
                            for e in events {
                                if let AlarmEvent::Raised(a) = e {
                                    let summary = AlarmSummary {
                                        id: a.id,
                                        channel: a.channels.join("+"),
                                        detector: a.kind.name().to_owned(),
                                        raised_at_s: round1(a.start),
                                        delay_s: attack
                                            .filter(|at| a.start >= at.at - TIME_EPS)
                                            .map(|at| round1((a.start - at.at).max(0.0))),
                                        cleared_at_s: None,
                                    };
                                    progress.suspend(|| {
                                        eprintln!(
                                            "alarm {}: {} on {} at {:.1} s",
                                            summary.id, summary.detector, summary.channel, summary.raised_at_s
                                        )
                                    });
                                    alarms.push(summary);
                                }
                                if let AlarmEvent::Cleared(a) = e
                                    && let Some(s) = alarms.iter_mut().find(|s| s.id == a.id)
                                {
                                    s.cleared_at_s = a.clear.map(round1);
                                }
                            }
                        }
                        Err(e) => {
                            quality += 1;
                            twin.quality_event(t, e.to_string());
                        }
                    }
                }
                Err(e) => {
                    quality += 1;
                    twin.quality_event(t, e.to_string());
                }
            }
            let worst = twin
                .history()
                .latest()
                .map_or(0.0, |r| r.residual.iter().fold(0.0f64, |m, v| m.max(v.abs())));
            let active = twin.alarms().active_count();
            let line = format!(
                "t {t:6.1} s  samples {}  max |plant - twin| {worst:.3} cm  active alarms {active}  data-quality events {quality}",
                twin.samples()
            );
            progress.set_message(line.clone());
            progress.tick();
            if !progress.is_hidden() || t - last_report >= 30.0 {
                if progress.is_hidden() {
                    eprintln!("{line}");
                }
                last_report = t;
                if let Ok(mut b) = board.write() {
                    *b = status_json(&model, &twin, t, &alarms, attack.map(|a| (a.kind.name(), a.at)), quality);
                }
            }
        }
        progress.finish_and_clear();
        let _ = stop_tx.send(true);
        let _ = plant_task.await;
        let _ = server.await;
        let _ = page.await;
        let summary = json!({
            "samples": twin.samples(),
            "alarms": alarms,
            "attack": attack.map(|a| json!({"name": a.kind.name(), "at_s": a.at, "magnitude": a.magnitude})),
            "plant_seconds": round1(args.seconds),
            "speed": args.speed,
            "data_quality_events": quality,
            "plant": format!("modbus://{plant_addr}"),
        });
        println!("{}", serde_json::to_string(&summary)?);
        Ok(ExitCode::SUCCESS)
    })
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn status_json(
    model: &twinshield_model::Model,
    twin: &Twin,
    t: f64,
    alarms: &[AlarmSummary],
    attack: Option<(&str, f64)>,
    quality: u64,
) -> serde_json::Value {
    let latest = twin.history().latest();
    let outputs: Vec<_> = model
        .outputs
        .iter()
        .enumerate()
        .map(|(i, o)| {
            json!({
                "name": o.name,
                "unit": o.unit,
                "measured": latest.and_then(|r| r.outputs.get(i)).copied(),
                "residual": latest.and_then(|r| r.residual.get(i)).copied(),
            })
        })
        .collect();
    json!({
        "time_s": round1(t),
        "samples": twin.samples(),
        "twin": model.name,
        "outputs": outputs,
        "estimate": twin.estimate(),
        "active_alarms": twin.alarms().active_count(),
        "alarms": alarms,
        "attack": attack.map(|(n, at)| json!({"name": n, "at_s": at})),
        "data_quality_events": quality,
    })
}
