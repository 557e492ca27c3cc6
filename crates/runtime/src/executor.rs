//! The async runtime the network commands share, and their stop signal.

use tokio::sync::watch;
use twinshield_shield_macros::diversify;

/// A two-worker runtime (the machines this runs on have two cores).
#[diversify]
pub fn executor() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
}

/// A stop signal that turns true on Ctrl-C, so every task winds down and
/// summaries print. Call it inside the runtime.
#[diversify]
pub fn stop_on_ctrl_c() -> (watch::Sender<bool>, watch::Receiver<bool>) {
    let (tx, rx) = watch::channel(false);
    let stop = tx.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = stop.send(true);
        }
    });
    (tx, rx)
}
