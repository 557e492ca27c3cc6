//! The async runtime the network commands share, and their stop signal.

use anyhow::{Context, Result};
use tokio::sync::watch;
use twinshield_shield_macros::diversify;

/// A two-worker runtime (the machines this runs on have two cores).
#[diversify]
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Turns `stop` true on Ctrl-C, so every task winds down and summaries print.
#[diversify]
pub fn stop_on_ctrl_c(stop: &watch::Sender<bool>) {
    let stop = stop.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = stop.send(true);
        }
    });
}
