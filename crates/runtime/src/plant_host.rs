//! Serving the reference plant: stepping it in scaled real time and
//! publishing its register image where a Modbus server reads it.

use crate::eval::PLANT_STEP;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use twinshield_connect::{RegisterBank, SharedBank};
use twinshield_plant::{PlantError, QuadTank, Registers, UNIT_ID};
use twinshield_shield_macros::diversify;

/// Copies the plant's register image into the served bank.
#[diversify]
pub fn publish(bank: &SharedBank, r: &Registers) {
    if let Ok(mut b) = bank.write() {
        b.input = r.input_registers().to_vec();
        b.holding = r.holding.to_vec();
        b.coils = r.coils.to_vec();
    }
}

/// A bank holding the plant's registers.
#[diversify]
pub fn new_bank(plant: &QuadTank) -> SharedBank {
    let bank = Arc::new(RwLock::new(RegisterBank::default()));
    publish(&bank, &plant.registers());
    bank
}

/// Steps `plant` in real time scaled by `speed` (wall period at least 1 ms,
/// several plant steps per tick when faster), publishing registers after
/// each tick and the plant time on `clock`, until `until` plant seconds or
/// until `stop` turns true.
#[diversify]
pub async fn drive(
    mut plant: QuadTank,
    bank: SharedBank,
    speed: f64,
    until: Option<f64>,
    clock: watch::Sender<f64>,
    mut stop: watch::Receiver<bool>,
) -> Result<QuadTank, PlantError> {
    let wall_per_step = PLANT_STEP / speed;
    let steps_per_tick = (0.001 / wall_per_step).ceil().max(1.0) as u32;
    let tick = Duration::from_secs_f64(wall_per_step * f64::from(steps_per_tick));
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            break;
        }
        for _ in 0..steps_per_tick {
            plant.step(PLANT_STEP)?;
        }
        publish(&bank, &plant.registers());
        let _ = clock.send(plant.time());
        if until.is_some_and(|end| plant.time() >= end - 1e-9) {
            break;
        }
    }
    Ok(plant)
}

/// Serves `bank` over Modbus TCP on `listener` (the plant's unit) until
/// `stop` turns true.
#[diversify]
pub fn spawn_server(
    listener: TcpListener,
    bank: &SharedBank,
    stop: &watch::Receiver<bool>,
) -> tokio::task::JoinHandle<std::io::Result<()>> {
    let mut stop = stop.clone();
    tokio::spawn(twinshield_connect::serve(
        listener,
        bank.clone(),
        UNIT_ID,
        async move {
            let _ = stop.wait_for(|s| *s).await;
        },
    ))
}

/// Why the reference plant could not be served.
#[derive(Debug, thiserror::Error)]
pub enum PlantHostError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The plant refused a step.
    #[error(transparent)]
    Plant(#[from] PlantError),
}

/// Serves `plant` over Modbus TCP on `listen`, calls `listening` with the
/// bound address, and steps it at `speed` until `until` plant seconds or
/// until `stop` turns true; returns the plant as it stopped.
#[diversify]
pub async fn serve(
    plant: QuadTank,
    listen: SocketAddr,
    (speed, until): (f64, Option<f64>),
    (stop_tx, stop_rx): (watch::Sender<bool>, watch::Receiver<bool>),
    listening: impl FnOnce(SocketAddr),
) -> Result<QuadTank, PlantHostError> {
    let bound = |source| PlantHostError::Listen {
        addr: listen,
        source,
    };
    let listener = TcpListener::bind(listen).await.map_err(bound)?;
    listening(listener.local_addr().map_err(bound)?);
    let bank = new_bank(&plant);
    let server = spawn_server(listener, &bank, &stop_rx);
    let (clock, _) = watch::channel(0.0);
    let plant = drive(plant, bank, speed, until, clock, stop_rx).await;
    let _ = stop_tx.send(true);
    let _ = server.await;
    Ok(plant?)
}
