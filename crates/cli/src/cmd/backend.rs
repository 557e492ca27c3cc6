//! `twinshield backend`: the reference receiver of what twins publish.
//! It verifies each request's signature against the enrolled devices'
//! device.fp files, refuses unknown devices, bad digests, stale timestamps
//! and replayed nonces (401, generic body; the reason on standard error),
//! and stores each accepted message exactly once.

use anyhow::{Context, Result};
use clap::Args;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;
use twinshield_backend::{MessageStore, Receiver, ReceiverEvent, Verifier};

/// Arguments of `backend`.
#[derive(Args)]
pub struct BackendArgs {
    /// Address to listen on (HTTP; put TLS in front for a remote twin).
    #[arg(long)]
    listen: SocketAddr,
    /// Directory of enrolled devices' device.fp files (`*.fp`).
    #[arg(long)]
    devices: PathBuf,
    /// Directory of the store (messages.jsonl).
    #[arg(long, default_value = "backend-store")]
    store: PathBuf,
}

/// `twinshield backend`: serves until interrupted.
pub fn run(args: &BackendArgs) -> Result<ExitCode> {
    let verifier = Verifier::from_dir(&args.devices)?;
    let devices = verifier.devices();
    let store = MessageStore::open(&args.store)?;
    let already = store.len();
    let receiver = Arc::new(Receiver::new(verifier, store).on_event(|e| match e {
        ReceiverEvent::Stored(m) => {
            println!(
                "accepted {} {} from device {}",
                m.kind.name(),
                m.id,
                m.device
            );
        }
        ReceiverEvent::Duplicate(m) => {
            println!("duplicate {} {} (already stored)", m.kind.name(), m.id);
        }
        ReceiverEvent::Rejected { peer, reason } => {
            eprintln!("rejected request from {peer}: {reason}");
        }
        ReceiverEvent::Invalid { peer, reason } => {
            eprintln!("invalid request from {peer}: {reason}");
        }
        ReceiverEvent::StoreFailed(e) => eprintln!("error: {e}"),
    }));
    crate::rt::runtime()?.block_on(async move {
        let (stop_tx, mut stop_rx) = watch::channel(false);
        crate::rt::stop_on_ctrl_c(&stop_tx);
        let listener = TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        eprintln!(
            "backend listening on http://{} ({devices} device(s) enrolled, {already} message(s) stored in {})",
            listener.local_addr()?,
            args.store.display()
        );
        receiver
            .serve(listener, async move {
                let _ = stop_rx.wait_for(|s| *s).await;
            })
            .await
            .context("the backend stopped")?;
        Ok(ExitCode::SUCCESS)
    })
}
